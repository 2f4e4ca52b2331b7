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
//     holds every send of the run for up to 5s and a random part of one
//     interval, until a clean answer to a later send shows the window was
//     not full (see Sharing the quota), and the row itself for up to
//     MaxRetryAfter (60s).
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
// medians of 15 runs), a fixed guard gets this share of requests
// throttled, and this goodput:
//
//	guard   10ms   30ms   50ms   70ms   90ms   110ms
//	thr.    8.0%   6.5%   4.2%   2.0%   0.7%   0.0%
//	rows/s  9.09   9.02   9.12   9.20   9.12   9.04
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
//     have absorbed it: g += 20ms. When the answer also says when the
//     window frees (x-acs-retry-after: the limit speaking), it is evidence
//     that arrivals come later than their sends say, and the pacer starts
//     taking round trips as arrival times (Late arrivals, below). A
//     throttle that says nothing may be a gateway's spurious answer, and
//     teaches only the step;
//   - a throttle of a wide send says width did not help: someone else
//     shares the quota, or the service throttles for its own reasons.
//     g halves; whether the rate is cut is for the rate half of the pacer
//     to judge, on the answers of both halves (see Sharing the quota);
//   - a clean answer narrows g by 0.4ms.
//
// Under jitter, narrow sends are throttled far more often than wide ones,
// so g climbs until narrow sends are throttled about 4% of the time: 60-
// 100ms for 40±30ms. Throttling that width cannot prevent (spurious, or
// another client) hits both halves alike, and the halving holds g near
// its floor. On a clean network there is no throttle and g stays at 10ms.
//
// # Late arrivals: the round trip as a prior
//
// The guard alone cannot do better than the table above: it pays for the
// spread of both delays of a pair, σ√2, on every window. But the client
// sees part of each arrival after the fact. A request can be counted no
// later than its answer leaves, so its round trip, less the shortest round
// trip lately seen, is an estimate of how late it arrived: exact when the
// way back and the service's own time do not vary, too long (never too
// short) when they do. Once the limit has throttled a narrow send, each
// answer moves its send's stamp in the ring later by that excess (at most
// 100ms), so the send that reuses the slot a second later is spaced from
// the arrival, not from the send. For a pair k-n, k that gives
//
//	a_k - a_{k-n} ≥ 1s + g + (d_k - d_min)  ≥  1s + g,
//
// where d_min is the shortest way there: no pair can share a second, at
// the cost of the mean excess, E[d] - d_min, on each window, and with no
// need for g to widen. For 40±30ms with negative draws taken as 0, as
// pkg/casemu draws it (E[d] = 41ms, d_min = 0), that is
// 10/(1.01s + 41ms) = 9.51 rows/s with next to no throttle, against at
// best 9.12 with the guard alone. When the way back varies as much, the
// excess doubles (about 9.2 rows/s), still with next to no throttle.
//
// The weight of the excess, 0 at the start, is set to 1 by a narrow
// send's throttle from the limit and wears off over 1000 clean answers,
// so that a network which calmed down stops paying for it. It is not
// used before the limit has spoken: the round trips of a service whose
// own time varies (20-80ms on loopback) look the same as jitter's and
// would cost 3% of the rate on a network that needs no guard. Where the
// jitter does not show in the round trip (an emulator that stamps
// arrivals without holding them, not a real network), only the guard
// works.
//
// Measured in the simulation (sim_test.go), medians of 15 runs of 300
// rows at 10/s, fixed 10ms guard in brackets: with 40±30ms each way,
// 0.7% of requests throttled and 9.25 rows/s (8.0%, 9.07); with 40±30ms
// on the way there only, as pkg/casemu draws it, 0.7% and 9.41 (8.0%,
// 9.09); with the jitter hidden from the round trip, 3.5% and 8.99 (8.0%,
// 9.10); with 5% spurious throttles, 9.26 rows/s (9.40); on a clean
// network, 9.90 (9.90), and with a service taking 20-80ms, 9.91 (9.91).
//
// # Through a real network path
//
// certalloc bench judges pacing through a TCP proxy (pkg/netpath) that
// holds each chunk the client sends for max(0, N(40ms, 30ms)), in order per
// connection, in front of an emulator answering in 20-80ms; the emulator
// counts a request when it reads it, as the proxy releases it. The
// emulator's own model (--arrival-jitter) holds the request inside the
// handler instead. Why the two could differ, and what was measured:
//
//   - The arrival stamp: both stamp a request when the service starts to
//     read it, the model by adding its drawn delay to the handler's start,
//     the proxy by releasing the bytes then. The same.
//   - Order on one connection: HTTP/1.1 without pipelining puts a request
//     on a kept-alive connection only once the answer before it is read,
//     so a request never queues behind an earlier one's bytes, and the
//     SDK writes each request in one chunk. Measured: 303 chunks for 303
//     requests over 4 connections, none held behind an earlier one. A
//     proxy that splits a request into several chunks, or a client that
//     pipelines, would add head-of-line blocking: the request's delay is
//     then the largest of its chunks', longer and less spread.
//   - The round trip: what the client sees is the delay there plus the
//     service's own time, and the pacer takes the whole excess over the
//     shortest round trip as lateness (Late arrivals, above). The service's
//     20-80ms spread is not lateness, but cannot be told from it one
//     request at a time, so each window pays E[d] + E[L - L_min] = 41ms +
//     30ms instead of 41ms: 10/(1.01s + 71ms) = 9.25 rows/s, with next to
//     no throttle. That, not the path, is what separates the figures the
//     issue compared: the old jitter scenario had answers in no time
//     (9.3-9.45 rows/s), the proxy run 20-80ms.
//
// Measured through the proxy (certalloc bench, 300 rows, default flags,
// eight runs): 9.21-9.31 rows/s, 0.3-1.0% of requests throttled; the model
// with the same service time, 9.14-9.31 rows/s, 0.3-1.6%. With the limit
// counting its refusals (--count-refusals, 200 rows): 9.09-9.26 rows/s,
// 1.0-1.5% throttled, through the proxy. The same bench run on the pacer
// before a wait cost once (A wait costs once, below; certalloc bench --bin
// with the binary of 979f047, three runs): 9.06, 9.29 and 9.09 rows/s,
// 0.7-2.0% throttled through the proxy. The limit's own throttles name a
// wait, and a collision that jitter caused held and cut the whole run
// though the next send came back clean.
//
// Taking less than the whole excess does not pay. In the simulation's
// proxy path (sim_test.go), subtracting the 10ms guard from the excess, or
// weighing it 0.8, left goodput at 9.23-9.29 rows/s and raised throttles
// to 1.0-1.6% (medians of 15 seeds): a request whose delay was drawn long
// but whose answer was fast is not told apart from one that was slow to
// answer, and each miss costs a throttle, a retry and a hold. The best
// linear split (the share of the excess's variance that is the path's,
// 0.69 here) would save 26ms a window but, computed for these
// distributions, let 4% of pairs collide. So the pacer keeps the whole
// excess, and the figures through the proxy and through the model agree
// once both have the same service time.
//
// # Sharing the quota
//
// The limit is per account, and other runs and tools on the account use
// it too. The guard cannot help when the window is full of someone else's
// requests; the rate half of the pacer (aimd.go) is for that.
//
// Before, a throttle of a wide send cut the rate by 3%, and the rate grew
// back by 15% of qps a second. Two runs at 10/s on one account each get
// about 5 of their 10 requests a second through: 5 throttles a second,
// 2.5 of them wide, a cut of 0.03 × 10 × 2.5 = 0.75 a second against a
// growth of 1.5. They would balance only at r(r - 5) = 100, r = 12.8,
// above the rate allowed: both stayed at 10/s, 20 arrivals a second, 45%
// of requests throttled. (5% spurious throttles cost the same rule
// 0.03 × 10 × 0.25 = 0.075 a second against 1.5: nothing, as tuned.)
//
// The evidence now is what got through. The pacer counts the answers to
// the sends of the last window (2s, or 10 sends at a low rate), in send
// time, and compares what was not throttled, per second, with what it
// allowed the run to send:
//
//   - A spurious throttle costs one request: 5% of them leave 95% of the
//     rate. A rival's share costs its throttles and the holds they bring
//     (x-acs-retry-after: until a slot frees), and two runs at 10/s each
//     get about half. A run that has not met a rival cuts when less than
//     60% got through, on 10 answers and 2 throttles at least. Under 5%
//     spurious throttles that takes 40% of a window throttled. The
//     evidence starts at the first throttle of an episode (before it the
//     run got what it sent, which says nothing of the limit), and that
//     throttle is not counted: every episode has one, and counted it made
//     24 runs in 1000 take a cut. Not counted: 8 in 1000, none under
//     40±30ms of jitter.
//   - The cut goes to 95% of what got through: the run's share with the
//     sum at the limit, less a margin, since a run that sat exactly on it
//     would go over at its first step of growth. Cuts do not compound:
//     answers to sends made before a cut are not evidence, and there is
//     one cut a window at most.
//   - For a minute after a cut the run is wary: the runs' sum sits at the
//     limit, and a throttle that came with the service's wait says it went
//     over. Such a throttle cuts by one throttle's share of a full
//     window's answers, 1/(r × 2s) (10% at 5/s), at most 20%, never below
//     3/4 of the share found, and renews the minute. A throttle without a
//     wait says nothing of the window, and spurious throttles look like
//     that: it does not cut. So a spurious run that took a cut does not
//     sink, and loses only the growth back.
//
// The rate grows back by (0.003·t + 0.00005·t³) × qps at t seconds after
// a cut: at --qps 10, 0.03 a second at first, +0.5 at 8s, +2.1 at 15s,
// +4.6 at 20s. With two runs near their shares, a wary cut takes
// 1/(r × 2s) × r = 0.5 a second off one run, and its growth gives that
// back in 8s (0.03 × 8 + 0.0005 × 8³ = 0.5): each run is cut about every
// 8s, for one throttle (sometimes two), 2-3% of its 5 requests a second,
// while the sum stays between 9.5 and 10. A run whose rival has finished
// keeps growing, faster and faster, and has the whole rate again about
// 20s after its last cut. Faster growth would get there sooner, and push
// the sum further over the limit before each next throttle.
//
// Holds. A full window throttles every request that reaches it until its
// oldest admitted request is a second old, and tells each the same
// moment; two runs that wait exactly that long leave together and collide
// again. So a hold lasts the service's wait, counted from the send (the
// service counts from the arrival; the answer comes a round trip later),
// plus a random part of one interval at the current rate. No token is
// taken during a hold, and a cut or a hold replaces the token bucket:
// rows waiting for a token queue again at the new pace, so a cut applies
// at the next send and the rows held leave one interval apart. The random
// part matters most once two runs are cut to the same rate: in step, their
// sends come in pairs and a window holds 10 or 12 arrivals, never 11.
// Without it, all of 100 simulated pairs reached 12; with a random half
// interval or more, none.
//
// A wait costs once. A wait is the limit's word on the shared window only
// if the window really is full, and then every send made after the
// throttled one, until the wait ends, is throttled too. So a clean answer
// to a later send made inside the wait refutes it: the run's hold ends at
// once (the bucket is replaced, so held rows leave at the current pace),
// the throttle no longer counts as one that named a wait (it cannot cut a
// wary run), the time held is left out of what-got-through, and the
// lateness it taught is taken back. The throttled row itself still waits
// the whole wait (up to MaxRetryAfter). A spurious throttle that names a
// wait (a gateway's 429 Throttling.User with x-acs-retry-after: 300)
// costs then what one without a wait costs. Before, each held every send
// for its wait, the holds cut the rate as a rival would, and a wary run
// cut again at each: 100 rows at --qps 40, limit 50, 12% spurious took
// 13.9s against 3.0-3.3s for the other shapes. Now (certalloc bench
// --scenario shapes, 7 runs): 3.12-3.86s for 429 with the wait,
// 2.80-3.38s for bare 429, 400 Throttling and Throttling.Api but once
// 4.85s (Throttling, 1.71x the fastest; otherwise at most 1.37x); no
// arrivals over the limit. A full window keeps its hold:
// the sends after its throttle are throttled as well, and the two-runs
// figures below are unchanged.
//
// Measured (share_test.go: two runs of 150 rows at --qps 10, one account
// limited to 10 a second, 100 seeds; the pacer before in brackets): 4.0%
// of requests throttled, 4.8% at worst (46.6%); at most 11 arrivals in any
// second after the first 3s in all 100 (20 in all); 4.7 rows/s each, 9.37
// together (9.84, with 46% of requests wasted). For 3.5 minutes (1000 rows
// each): 2.9% throttled, and the runs end within 2s of each other. End to
// end (TestIssue9TwoKeysOneAccount: two processes, the real SDK, 50 rows
// each, 10 runs under -race): 5.7-8.3% throttled (44%), at most 11
// arrivals in a second after 3s (20), 4.3-4.9 rows/s each. One run alone,
// means of 100: 5% spurious throttles 9.22 rows/s (9.23); 40±30ms of
// jitter 9.03 rows/s, 2.6% throttled (9.04, 2.6%); clean 9.90 (9.90).
//
// What it does not do well: a run that starts while another is already at
// full rate hardly gets a share. The incumbent's sends land 10ms (its
// guard) after each of its own slots frees, so the newcomer wins only the
// slots it reaches first and cuts to the little that got through, while
// the incumbent loses too few to call its window poor. The account stays
// at its limit (4.8% throttled; at most 11 arrivals a second in 26 of 30
// runs, 13 at most), but the newcomer waits: 150 rows each, the second
// starting 5s late, it ends at 46s (31s before, when both sent at 10/s and
// 30% of requests were throttled). A survivor's climb costs too: 50 and
// 150 rows, the second ends at 28s (20.5s before). And against a gateway
// that throttles without saying when the window frees (neither
// x-acs-retry-after nor x-ratelimit-user), only the strong evidence acts:
// simulated, two runs then see 17-18% of requests throttled and 14-16
// arrivals a second (45% and 20 before).
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
// Little's law cannot tell a slow service from calls slowed by their own
// number: at --qps 10000 on two cores certalloc's CPU, not the service,
// sets the latency, and the latency more calls cause asked for more calls
// still, up to the 2048 cap (231 MiB for 300,000 rows). So growth must pay
// (see pool.go): calls complete in rounds, and when two rounds of growth
// raise the completion rate by less than 25% while it is under 90% of the
// pacer's, the limit returns to where the best rate was reached. A rate
// that later stays a fifth under that for 2s (the service slowed) starts a
// probe. Measured with certalloc bench's memory scenario, default flags,
// five runs: largest pool limit 17-46, 42.3-44.6 MiB, 5800-6800
// requests/s. At the service's 10/s the pacer sets the rate, and the pool
// grows as before (slow answers: 24 at 1.5s, 65 at 5s).
//
// The package knows nothing of the SDK: it calls Assigners, which pkg/cas
// provides.
package apply
