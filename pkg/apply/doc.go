// Package apply runs a validated plan: an errgroup pool whose in-flight
// limit follows latency, one shared Pacer that every attempt waits on, and
// per-row retries.
//
// Run is where the batch's promises are kept:
//
//   - Rate: every request, first tries and retries alike, passes the
//     Pacer (see Pacing below). The pool never adds to the rate: it only
//     keeps enough rows waiting at the pacer.
//   - Exactly once: a row is retried only while it has not succeeded, and
//     only on an error classified retryable or throttled. A lost answer
//     (timeout, dropped connection) is retried because
//     AssignCertificateCount sets a total; the Outcome records that it
//     happened.
//   - Nothing lost: every row, sent or not, is reported exactly once, from
//     a single collector goroutine, in completion order. A failed row is a
//     result, never an error of the errgroup.
//   - Stopping: a run-fatal answer, the breaker, the failure limit, the
//     deadline or the caller's context stop admission; requests in flight
//     run to their timeout (the SDK takes no context) and are reported;
//     rows never sent are reported as NotAttempted. A row that finished is
//     never reported as interrupted, and a stop that cut no row short
//     leaves Stats.Stop nil: the run is as if it had not come.
//   - Throttling: a throttled attempt is retried whatever its class, and
//     fails the row only when the row is out of attempts. It slows the
//     whole run (the guard or the rate, below); its x-acs-retry-after
//     holds every send of the run for up to 5s, and the row itself for up
//     to MaxRetryAfter (60s).
//   - Breaker: with Config.BreakerRows = N, if the first N rows to finish
//     all failed with one code and none succeeded, the run stops as fatal
//     naming the code. Codes pkg/cas lists as run-wide stop at once; this
//     catches the ones nobody listed (a new gateway code, a wrong region)
//     after about N requests instead of one per plan row.
//
// # Pacing
//
// With n = ceil(qps), the pacer promises, measured at the moment each
// request goes on the wire:
//
//   - no window of one second holds more than n sends (a ring of the last
//     n send times holds each send until the n-th before it is 1s + guard
//     old);
//   - the long-run rate is qps: a token bucket at qps with a burst of one
//     grants sends, so any span T holds at most 1 + qps·T grants.
//
// A rate of 9.5 can therefore mean only this: 9.5 a second in the long
// run, and never 11 in any second. "Never more than 9.5 in any second"
// cannot be met literally: if every sliding second held at most 9 sends,
// the long-run rate could not exceed 9. The rate is the bucket's when
// qps ≤ n/(1s + guard), as for 9.5 (10/1.01s = 9.9), and n/(1s + guard)
// when qps is a whole number.
//
// # The guard, and arrival jitter
//
// The service counts arrivals, not sends. Request k leaves at s_k and
// arrives at a_k = s_k + d_k, where d_k is the one-way delay. The pacer
// keeps s_k - s_{k-n} ≥ 1s + g, for a guard g; when the run is saturated
// the two are equal, and send k-n falls in k's second, (a_k - 1s, a_k],
// exactly when
//
//	d_{k-n} - d_k > g.
//
// For independent delays with standard deviation σ, the difference has
// standard deviation σ√2; if it is normal the chance is Q(g / σ√2), so the
// guard for a chance P is g = z_P·σ√2. For σ = 30ms (σ√2 = 42ms) at
// n = 10:
//
//	P      z_P   guard   rate n/(1s+g)
//	10%    1.28   54ms    9.48/s
//	 5%    1.64   70ms    9.35/s
//	 1%    2.33   99ms    9.10/s
//	0.1%   3.09  131ms    8.84/s
//
// A normal delay of 40±30ms truncated at 0 has σ = 25.6ms, and the
// difference's upper tail is measured at 39% beyond 10ms, 6.9% beyond
// 54ms, 2.7% beyond 70ms, 1.3% beyond 80ms. Not every such pair is a
// throttle: an arrival the service rejects does not count, which relieves
// the seconds after it. In the simulation (sim_test.go: 300 rows at 10/s,
// medians of 15 runs), a fixed guard, with every throttle cutting the rate
// as the pacer did before, gets this share of requests throttled, and
// this goodput:
//
//	guard   10ms   30ms   50ms   70ms   90ms   110ms
//	thr.    8.0%   6.5%   4.2%   1.6%   0.7%   0.0%
//	rows/s  9.12   9.08   9.12   9.20   9.12   9.04
//
// Goodput, n/(1s+g) × (1 - throttled), hardly moves: what a good guard
// buys is few throttles (each a wasted request, a retry and a pause), not
// more rows per second, and past 90ms it costs rate.
//
// The guard learns g from the throttles, by experiment. The send record
// alone cannot tell jitter from another client on the account: in a
// saturated run every window holds n sends, whoever caused the throttle.
// An experiment can. Each send draws
// its guard at g - w or g + w, half and half (w = g/2, or 25ms while
// throttles are recent; the narrow side never below 5ms), so the mean
// window, and the rate, is that of g. Then:
//
//   - a throttle of a narrow send is evidence that a wider window would
//     have absorbed it: g += 20ms, and at once up to the prior below;
//   - a throttle of a wide send says width did not help: someone else
//     shares the quota, or the service throttles for its own reasons.
//     g halves, and the rate takes the AIMD cut (x0.97, back at 15% of qps
//     a second), which is for a quota really shared;
//   - a clean answer narrows g by 0.4ms.
//
// Under jitter, narrow sends are throttled far more often than wide ones,
// so g climbs until narrow sends are throttled about 4% of the time: 60-
// 100ms for 40±30ms. Throttling that width cannot prevent (spurious, or
// another client) hits both halves alike, and the halving holds g near
// its floor. On a clean network there is no throttle and g stays at 10ms.
//
// The prior: the spread of the round trips the client sees bounds the
// spread of one leg (sd(out) ≤ sd(RTT) when the legs and the service time
// are independent), so z·√2·sd(RTT) is the widest guard jitter can need.
// On a narrow send's throttle, g jumps to 2·sd(RTT) (z = √2), at most
// 100ms, with sd(RTT) estimated from the interquartile range of the
// latencies (IQR/1.349, which a timeout cannot inflate). It speeds up the
// first seconds on a real network; where the jitter does not show in the
// round trip (an emulator that only stamps arrivals), the steps alone do
// the work, a few seconds slower. It is not used to start the guard: a
// service whose own time varies (20-80ms on loopback) would cost 4% of
// the rate on a network that needs no guard.
//
// Measured in the same simulation, medians of 15 runs (fixed 10ms guard
// in brackets): with 40±30ms of jitter, 2.6% of requests throttled and
// 9.10 rows/s (8.0%, 9.12); with the jitter hidden from the round trip,
// 3.5% and 9.01 (8.0%, 9.11); with 5% spurious throttles, 9.26 rows/s
// (9.40); on a clean network, 9.90 (9.90). The learning costs the first
// seconds of a run, at the fixed guard's throttle rate, and a little
// wander: 1-2% of goodput against the best fixed guard, which no one
// knows in advance.
//
// # The pool
//
// Rows in progress (waiting at the pacer, on the wire, or waiting to
// retry) follow Little's law: rate × time in progress. The limit starts at
// 4 and grows, up to Config.Workers, to ceil(1.2 × qps × latency) + 2 +
// rows waiting to retry, where latency is the larger of the mean of the
// last 32 answers and twice the median age of the calls in flight. The
// ages see a slow-down before any slow answer is back; the median ignores
// one hung call. errgroup.SetLimit cannot change while goroutines run, so
// the limit is a semaphore beside the errgroup. Assigners are made on
// first need and taken after the pacer, so there are as many as calls in
// flight, not rows waiting.
//
// The package knows nothing of the SDK: it calls Assigners, which pkg/cas
// provides.
package apply
