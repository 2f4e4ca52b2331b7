package apply

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// MaxQPS is the highest rate a Pacer paces at; NewPacer treats more as
// MaxQPS. The pacer keeps one stamp per send of a window, so this bounds
// its memory; it is a hundred times the service's documented limit.
const MaxQPS = 10000

// The guard widens the sliding window beyond one second to absorb arrival
// jitter (see the package doc for the model and the arithmetic).
const (
	// MinGuard is the guard on a clean network: sub-millisecond timer and
	// stamp noise must not put an eleventh send into a second. 10ms costs
	// 1% of the rate at 10 QPS.
	MinGuard = 10 * time.Millisecond
	// MaxGuard bounds what jitter may cost: a guard of 250ms still lets
	// 8 of 10 requests a second through. Throttling a wider window would
	// not prevent is left to the rate cut.
	MaxGuard = 250 * time.Millisecond
	// guardStep widens the guard on a throttle of a narrow send, and a
	// fiftieth of it narrows the guard on every clean answer: the guard
	// settles where narrow sends, half of all, are throttled about 4% of
	// the time (½·p·step = step/50), wide ones almost never.
	guardStep = 20 * time.Millisecond
	// guardProbe is the half-width of the dither while throttles are
	// recent (else it is half the guard, 5ms on a clean network): wide
	// enough that under 30ms of jitter a few throttles tell the halves
	// apart, narrow enough that at the guard jitter asks for, the narrow
	// half is not throttled so often that it drives the guard past it.
	guardProbe  = 25 * time.Millisecond
	probeMemory = 10 * time.Second
	// narrowFloor keeps a narrow send's window above one second.
	narrowFloor = MinGuard / 2
	// A round trip's spread bounds one leg's: sd(out) ≤ sd(RTT) when the
	// legs and the service time are independent. The guard that keeps a
	// pair of arrivals in order with probability Q(z) is z·√2·sd(out), so
	// z·√2·sd(RTT) is as wide as jitter can need it. With z = √2 (8% of
	// pairs, which the service's own relief turns into a few % of
	// throttles) that is 2·sd(RTT). maxPrior stops a slow, uneven service,
	// whose spread is not the network's, from costing more than 9% of the
	// rate on one throttle.
	priorFactor = 2.0
	maxPrior    = 100 * time.Millisecond
	// wideCut shrinks the guard when a wide send is throttled anyway: the
	// width did not help, so it is not jitter.
	wideCut = 0.5
)

// Throttle adaptation, AIMD, for throttling the guard cannot explain: a
// throttle of a wide send multiplies the rate by decreaseFactor, down to
// floorFraction of the configured rate, and the rate grows back by
// recoverFraction of the configured rate per second. The cut is small and
// per answer, so it is proportional to the evidence: spurious throttles on
// 5% of answers cost well under 1% of the rate, while another client
// really sharing the quota throttles many answers a second and pulls the
// rate down.
const (
	decreaseFactor  = 0.97
	floorFraction   = 0.05
	recoverFraction = 0.15
)

// maxHold bounds how long one x-acs-retry-after holds every send of the
// run. The limit is per second, so an honest value for a full window is
// under a second; five seconds leaves room for a service that asks for a
// longer pause, while a bogus header cannot stall the whole run: the
// throttled row itself still waits the full value (up to MaxRetryAfter).
const maxHold = 5 * time.Second

// Pacer spaces every request of a run, first tries and retries alike.
//
// A token bucket (x/time/rate, burst 1) holds the long-run rate to qps:
// any interval of length T holds at most 1 + qps·T sends. Behind it, a
// ring of the last ceil(qps) send times holds back any send that would put
// more than ceil(qps) sends into one window of one second plus a guard.
// The guard adapts to arrival jitter; the bucket's rate adapts (AIMD) to
// throttling the guard cannot explain. An x-acs-retry-after from the
// service holds every send until it has passed.
type Pacer struct {
	lim    *rate.Limiter
	maxQPS float64

	mu   sync.Mutex
	ring []stamp // the last len(ring) sends; ring[next] is the oldest
	next int
	seq  uint64
	rng  *rand.Rand

	guard, widest time.Duration
	lastThrottle  time.Time
	fixed         bool // the guard does not learn (tests compare with it)

	cur        float64 // current rate
	minRate    float64 // lowest rate reached
	lastAdjust time.Time
	holdUntil  time.Time // no send before this (x-acs-retry-after)
}

type stamp struct {
	at  time.Time
	seq uint64
}

// Ticket is one send the pacer let through.
type Ticket struct {
	p      *Pacer
	slot   int
	seq    uint64
	narrow bool // sent with the narrow half of the dithered guard
}

// NewPacer returns a pacer for qps requests per second (at most MaxQPS).
func NewPacer(qps float64) *Pacer {
	qps = min(qps, MaxQPS)
	return &Pacer{
		lim:     rate.NewLimiter(rate.Limit(qps), 1),
		maxQPS:  qps,
		ring:    make([]stamp, max(1, int(math.Ceil(qps)))),
		rng:     rand.New(rand.NewPCG(0x9ace, 0x11)), // fixed: runs replay the same dither
		guard:   MinGuard,
		widest:  MinGuard,
		cur:     qps,
		minRate: qps,
	}
}

// Wait blocks until a request may be sent, or ctx is done. The caller
// reports the request's fate with Clean or Throttled, and calls the
// ticket's OnWire when the request actually goes on the wire.
func (p *Pacer) Wait(ctx context.Context) (*Ticket, error) {
	p.recover()
	if err := p.lim.Wait(ctx); err != nil {
		return nil, err
	}
	p.mu.Lock()
	now := time.Now()
	g, narrow := p.sendGuard(now)
	slot := p.next
	p.next = (p.next + 1) % len(p.ring)
	p.seq++
	at := now
	if p.holdUntil.After(at) {
		// The ring below still caps how many leave together at the end.
		at = p.holdUntil
	}
	if oldest := p.ring[slot].at; !oldest.IsZero() {
		if t := oldest.Add(time.Second + g); t.After(at) {
			at = t
		}
	}
	p.ring[slot] = stamp{at: at, seq: p.seq} // claimed; moved to the wire time by OnWire
	t := &Ticket{p: p, slot: slot, seq: p.seq, narrow: narrow}
	p.mu.Unlock()

	if !sleepCtx(ctx, time.Until(at)) {
		return nil, ctx.Err()
	}
	return t, nil
}

// sendGuard draws this send's guard: the guard plus or minus a half-width,
// each with probability one half. The mean is the guard (but for the floor
// on the narrow side), so dithering costs no rate; it makes every run an
// experiment in which throttles of narrow and of wide sends can be
// compared. Called with p.mu held.
func (p *Pacer) sendGuard(now time.Time) (g time.Duration, narrow bool) {
	if p.fixed {
		return p.guard, false
	}
	d := p.guard / 2
	if !p.lastThrottle.IsZero() && now.Sub(p.lastThrottle) < probeMemory {
		d = guardProbe
	}
	if p.rng.IntN(2) == 0 {
		return max(p.guard-d, narrowFloor), true
	}
	return p.guard + d, false
}

// OnWire moves the send's stamp from the planned time to now, when the
// request really left (later, after a late timer or a TLS handshake), so
// the next sends are spaced from when the service saw this one. Not
// calling it leaves the planned time.
func (t *Ticket) OnWire() {
	now := time.Now()
	p := t.p
	p.mu.Lock()
	defer p.mu.Unlock()
	// Later only, and only while the slot is still this send's.
	if s := &p.ring[t.slot]; s.seq == t.seq && now.After(s.at) {
		s.at = now
	}
}

// Clean tells the pacer the service answered without throttling: the guard
// narrows a little.
func (p *Pacer) Clean(*Ticket) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.fixed {
		p.guard = max(MinGuard, p.guard-guardStep/50)
	}
}

// Throttled tells the pacer the service throttled the send. retryAfter is
// the service's x-acs-retry-after (0 if none): the account's window is full
// until then, so no request of the run leaves before it (up to maxHold).
//
// A narrow send throttled is evidence of jitter, which a wider window would
// have absorbed: the guard widens. A wide send throttled is evidence that
// width does not help (another client on the account, or throttling for
// other reasons): the guard shrinks and the rate is cut.
//
// spread is the spread (standard deviation) of the round-trip times seen so
// far, 0 if unknown: the prior for how wide jitter can need the guard (see
// the package doc). A narrow send's throttle widens the guard at once to
// priorFactor × spread, up to maxPrior.
func (p *Pacer) Throttled(t *Ticket, retryAfter, spread time.Duration) {
	p.recover() // bank the growth so far before cutting
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	p.lastThrottle = now
	if until := now.Add(min(retryAfter, maxHold)); until.After(p.holdUntil) {
		p.holdUntil = until
	}
	switch {
	case p.fixed:
		// As before the guard learned: every throttle cuts the rate.
	case t.narrow:
		prior := min(maxPrior, time.Duration(priorFactor*float64(spread)))
		p.guard = min(MaxGuard, max(p.guard+guardStep, prior))
		p.widest = max(p.widest, p.guard)
		return
	default:
		p.guard = max(MinGuard, time.Duration(float64(p.guard)*wideCut))
	}
	p.lastAdjust = now
	p.cur = max(p.cur*decreaseFactor, p.maxQPS*floorFraction)
	p.minRate = min(p.minRate, p.cur)
	p.lim.SetLimitAt(now, rate.Limit(p.cur))
}

// fix holds the guard at g, without dither: the pacer as it was before
// the guard learned, for comparison.
func (p *Pacer) fix(g time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fixed, p.guard, p.widest = true, g, g
}

// recover grows the rate back towards the configured one.
func (p *Pacer) recover() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur >= p.maxQPS {
		return
	}
	now := time.Now()
	p.cur = min(p.maxQPS, p.cur+p.maxQPS*recoverFraction*now.Sub(p.lastAdjust).Seconds())
	p.lastAdjust = now
	p.lim.SetLimitAt(now, rate.Limit(p.cur))
}

// Rates returns the current and the lowest rate reached.
func (p *Pacer) Rates() (current, lowest float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur, p.minRate
}

// Guards returns the current guard and the widest it has been.
func (p *Pacer) Guards() (current, widest time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.guard, p.widest
}

// Estimate is how long rows take at qps on a clean network: the rate, or
// ceil(qps) sends per second plus MinGuard, whichever is slower.
func Estimate(rows int, qps float64) time.Duration {
	if rows <= 1 || qps <= 0 {
		return 0
	}
	qps = min(qps, MaxQPS)
	perWindow := math.Ceil(qps)
	byWindow := float64(rows-1) / perWindow * float64(time.Second+MinGuard)
	byRate := float64(rows-1) / qps * float64(time.Second)
	return time.Duration(max(byWindow, byRate)).Round(time.Second)
}
