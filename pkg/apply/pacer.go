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
	// A round trip longer than the shortest lately seen is taken, once the
	// service has shown that arrivals are late (see answered), as that
	// much later an arrival: its send's stamp moves by the excess, up to
	// maxLate, so that the send that reuses its slot leaves that much
	// later. maxLate stops one slow answer of an uneven service from
	// costing more than a tenth of a second.
	maxLate = 100 * time.Millisecond
	// lateForget is how much of the lateness weight one clean answer takes
	// away: after 1000 answers (100s at 10/s) without a throttle telling
	// otherwise, round trips are taken to say nothing about arrivals.
	lateForget = 1.0 / 1000
	// rttEpoch is how many answers the shortest round trip is taken over,
	// twice: the shortest of the last rttEpoch to 2·rttEpoch answers, so
	// that a route that grows slower is followed.
	rttEpoch = 100
	// wideCut shrinks the guard when a wide send is throttled anyway: the
	// width did not help, so it is not jitter.
	wideCut = 0.5
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
// The guard adapts to arrival jitter, and once the limit has shown that
// arrivals come late, each send's stamp moves to its estimated arrival
// (see answered); the bucket's rate adapts (AIMD, see aimd) to throttling
// neither can explain. An x-acs-retry-after from the service holds every
// send until it has passed, and a little longer at random. A cut or a hold
// replaces the bucket, so that the new pace applies from the next send.
type Pacer struct {
	maxQPS float64

	mu   sync.Mutex
	lim  *rate.Limiter // replaced on a cut or a hold (see repace)
	ring []stamp       // the last len(ring) sends; ring[next] is the oldest
	next int
	seq  uint64
	rng  *rand.Rand
	// desync draws the random end of a hold. Its own source, seeded per
	// pacer: two pacers (two runs on one account) must not draw alike.
	desync rand.PCG

	guard, widest time.Duration
	lastThrottle  time.Time
	// late is the weight (0 to 1) of a round trip's excess over the
	// shortest in the arrival the pacer assumes for its send; see answered.
	late float64
	// rttMin holds the shortest round trip of the current epoch of answers
	// and of the previous one; rttN counts the current epoch's answers.
	rttMin [2]time.Duration
	rttN   int
	fixed  bool // the guard does not learn (tests compare with it)

	rate      aimd
	holdUntil time.Time     // no send before this (x-acs-retry-after)
	holdSent  time.Time     // the send time of the throttle that set holdUntil
	holdLate  float64       // late before that throttle
	lastAt    time.Time     // the latest send planned
	paced     chan struct{} // closed when the bucket is replaced
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
	at     time.Time // planned send time
	narrow bool      // sent with the narrow half of the dithered guard
	wire   time.Time // when it went on the wire, if OnWire was called
}

// NewPacer returns a pacer for qps requests per second (at most MaxQPS).
func NewPacer(qps float64) *Pacer {
	qps = min(qps, MaxQPS)
	return &Pacer{
		lim:    rate.NewLimiter(rate.Limit(qps), 1),
		maxQPS: qps,
		ring:   make([]stamp, max(1, int(math.Ceil(qps)))),
		rng:    rand.New(rand.NewPCG(0x9ace, 0x11)), // fixed: runs replay the same dither
		desync: *rand.NewPCG(rand.Uint64(), rand.Uint64()),
		guard:  MinGuard,
		widest: MinGuard,
		rate:   newAIMD(qps),
		paced:  make(chan struct{}),
	}
}

// Wait blocks until a request may be sent, or ctx is done. The caller
// reports the request's fate with Clean or Throttled, and calls the
// ticket's OnWire when the request actually goes on the wire.
func (p *Pacer) Wait(ctx context.Context) (*Ticket, error) {
	p.recover()
	if err := p.token(ctx); err != nil {
		return nil, err
	}
	p.mu.Lock()
	now := time.Now()
	g, narrow := p.sendGuard(now)
	slot := p.next
	p.next = (p.next + 1) % len(p.ring)
	p.seq++
	at := now
	if oldest := p.ring[slot].at; !oldest.IsZero() {
		if t := oldest.Add(time.Second + g); t.After(at) {
			at = t
		}
	}
	p.ring[slot] = stamp{at: at, seq: p.seq} // claimed; moved to the wire time by OnWire
	p.planned(at)
	t := &Ticket{p: p, slot: slot, seq: p.seq, at: at, narrow: narrow}
	p.mu.Unlock()

	for {
		if !sleepCtx(ctx, time.Until(at)) {
			return nil, ctx.Err()
		}
		p.mu.Lock()
		held := p.holdUntil.After(time.Now())
		p.mu.Unlock()
		if !held {
			return t, nil
		}
		// A hold began while this send waited for its window: it waits
		// the hold out and queues for a token again, keeping its slot.
		if err := p.token(ctx); err != nil {
			return nil, err
		}
		p.mu.Lock()
		at = time.Now()
		if s := &p.ring[t.slot]; s.seq == t.seq && at.After(s.at) {
			s.at = at
		}
		t.at = at
		p.planned(at)
		p.mu.Unlock()
	}
}

// planned records the latest send planned. Called with p.mu held.
func (p *Pacer) planned(at time.Time) {
	if at.After(p.lastAt) {
		p.lastAt = at
	}
}

// token waits until the account's window is open (no hold) and the bucket
// grants a token at the current pace. A cut or a new hold replaces the
// bucket: a row already queued queues again on the new one, so the new
// pace applies from the next send, not after the rows granted at the old.
func (p *Pacer) token(ctx context.Context) error {
	for {
		p.mu.Lock()
		hold, lim, paced := p.holdUntil, p.lim, p.paced
		p.mu.Unlock()
		// No token is taken while the account's window is full. A hold
		// that a clean answer refutes ends early (see Clean): the bucket is
		// replaced then, and the wait with it.
		if d := time.Until(hold); d > 0 {
			if repaced, err := sleepPaced(ctx, d, paced); err != nil {
				return err
			} else if repaced {
				continue
			}
		}
		r := lim.Reserve()
		repaced, err := sleepPaced(ctx, r.Delay(), paced)
		if err != nil {
			r.Cancel()
			return err
		}
		if repaced {
			continue
		}
		p.mu.Lock()
		stale := p.paced != paced || p.holdUntil.After(time.Now())
		p.mu.Unlock()
		if !stale {
			return nil
		}
	}
}

// sleepPaced sleeps d, and reports whether the bucket was replaced first
// (paced closed).
func sleepPaced(ctx context.Context, d time.Duration, paced <-chan struct{}) (bool, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-paced:
		return true, nil
	case <-timer.C:
		return false, nil
	}
}

// repace replaces the bucket after a cut or a hold: a fresh one at the
// current rate whose next token is one interval after the latest send
// planned. Rows waiting on the old one are woken to queue on the new one.
// Called with p.mu held.
func (p *Pacer) repace() {
	p.lim = rate.NewLimiter(rate.Limit(p.rate.cur), 1)
	if !p.lastAt.IsZero() {
		p.lim.ReserveN(p.lastAt, 1) // the bucket was spent at the latest send
	}
	close(p.paced)
	p.paced = make(chan struct{})
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
	t.wire = now
}

// answered learns the round trip of a send the service counted, and moves
// its stamp towards the arrival the round trip suggests: by late × (round
// trip - the shortest lately seen), at most maxLate, and only while the
// slot is still this send's. The next send in the slot is spaced from
// there. A throttled send (counted false) teaches nothing. Called with
// p.mu held.
func (p *Pacer) answered(t *Ticket, now time.Time, counted bool) {
	sent := t.wire
	if sent.IsZero() {
		sent = t.at
	}
	// A throttle's round trip is left out: a gateway that refuses a call
	// answers sooner than the service that handles one, and the shortest
	// round trip must be of the calls whose stamps move.
	if !counted || sent.IsZero() || !now.After(sent) {
		return
	}
	rtt := now.Sub(sent)
	if p.rttN == rttEpoch {
		p.rttMin = [2]time.Duration{0, p.rttMin[0]}
		p.rttN = 0
	}
	p.rttN++
	if p.rttMin[0] == 0 || rtt < p.rttMin[0] {
		p.rttMin[0] = rtt
	}
	shortest := p.rttMin[0]
	if p.rttMin[1] > 0 {
		shortest = min(shortest, p.rttMin[1])
	}
	if p.late == 0 || p.fixed {
		return
	}
	if s := &p.ring[t.slot]; s.seq == t.seq {
		s.at = s.at.Add(min(maxLate, time.Duration(p.late*float64(rtt-shortest))))
	}
}

// Clean tells the pacer the service answered without throttling: the guard
// narrows a little.
func (p *Pacer) Clean(t *Ticket) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	p.answered(t, now, true)
	if !p.fixed {
		p.guard = max(MinGuard, p.guard-guardStep/50)
		p.late = max(0, p.late-lateForget)
	}
	p.rate.answer(t.at, now, false, false)
	if p.holdUntil.After(now) && t.at.After(p.holdSent) {
		// A send made after the throttled one, inside the wait it named,
		// got through: the account's window was not full, so the wait
		// concerned that one send (its row still waits it out), not the
		// run. The hold ends, and the throttle is not counted as the
		// limit's word on the window: neither for the rate nor as a late
		// arrival.
		p.rate.unwait(p.holdSent, now.Sub(p.holdSent))
		if !p.fixed {
			p.late = min(p.late, p.holdLate)
		}
		p.holdUntil = time.Time{}
		p.repace()
	}
}

// Throttled tells the pacer the service throttled the send. retryAfter is
// the service's x-acs-retry-after (0 if none): the account's window is full
// until then, so no request of the run leaves before it (up to maxHold).
//
// A narrow send throttled is evidence of jitter, which a wider window would
// have absorbed: the guard widens. A wide send throttled is evidence that
// width does not help (another client on the account, or throttling for
// other reasons): the guard shrinks. Either is counted as evidence for the
// rate, which is cut when the throttles of the last window cost more than
// spurious ones explain (see aimd).
//
// A narrow send throttled by the limit itself (it says when the window
// frees) also shows that arrivals came later than the sends' spacing
// allowed for: from then on, round trips longer than the shortest are
// taken as late arrivals (see answered), until clean answers wear that off
// (lateForget). On a network where the delay that varies is the way there,
// the round trip measures it, and spacing each send from its slot's
// arrival rather than its send removes most of what the guard is for.
func (p *Pacer) Throttled(t *Ticket, retryAfter time.Duration) {
	p.recover() // bank the growth so far before cutting
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	p.answered(t, now, false)
	p.lastThrottle = now
	lateBefore := p.late
	switch {
	case p.fixed:
		// The guard does not learn.
	case t.narrow && retryAfter > 0:
		p.late = 1
		p.guard = min(MaxGuard, p.guard+guardStep)
		p.widest = max(p.widest, p.guard)
	case t.narrow:
		// A throttle that does not say when the window frees may not be
		// the window at all (a gateway's spurious answer): it moves the
		// guard by a step, not at once to the prior.
		p.guard = min(MaxGuard, p.guard+guardStep)
		p.widest = max(p.widest, p.guard)
	default:
		p.guard = max(MinGuard, time.Duration(float64(p.guard)*wideCut))
	}
	p.rate.answer(t.at, now, true, retryAfter > 0)
	repace := p.rate.judge(now, min(p.rate.cur, float64(len(p.ring))/(1+p.guard.Seconds())))
	if retryAfter > 0 {
		// Every client the service throttled in this window was told the
		// same moment: leave at a random point of the next interval (at
		// the rate just cut, if it was), so that two runs on one account
		// do not leave together, nor fall into step.
		extra := time.Duration(p.desync.Uint64() % uint64(p.interval()+1))
		// The service counts the wait from the request's arrival: from the
		// send, not from the answer, which came back a round trip later.
		sent := t.at
		if sent.IsZero() {
			sent = now
		}
		if until := sent.Add(min(retryAfter, maxHold) + extra); until.After(p.holdUntil) {
			p.holdUntil, p.holdSent, p.holdLate = until, sent, lateBefore
			repace = true
		}
	}
	if repace {
		p.repace()
	}
}

// interval is the time between two sends at the current rate. Called with
// p.mu held.
func (p *Pacer) interval() time.Duration {
	return time.Duration(float64(time.Second) / p.rate.cur)
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
	if now := time.Now(); p.rate.grow(now) {
		p.lim.SetLimitAt(now, rate.Limit(p.rate.cur))
	}
}

// Rates returns the current and the lowest rate reached.
func (p *Pacer) Rates() (current, lowest float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rate.cur, p.rate.lowest
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
