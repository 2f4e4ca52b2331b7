package apply

import (
	"context"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// PaceGuard widens the sliding window the pacer keeps sends in. The service
// counts arrivals, not sends: the time from our clock reading to the
// service's varies by a little, and a window exactly one second wide would
// let that push an eleventh arrival into some second. 10ms costs 1% of the
// rate at 10 QPS.
const PaceGuard = 10 * time.Millisecond

// Pacer spaces every request of a run, first tries and retries alike.
//
// Two mechanisms work together. A token bucket (x/time/rate, burst 1)
// spreads sends evenly at the current rate, which throttling lowers and
// time restores. Behind it, a ring of the last floor(qps) actual send times
// holds back any send that would make more than qps in one window of
// 1s+PaceGuard, whatever timer lateness or rate changes did to the spacing:
// the service's limit is on any sliding second, and the ring enforces
// exactly that. An x-acs-retry-after from the service holds every send
// until it has passed.
type Pacer struct {
	lim    *rate.Limiter
	maxQPS float64
	window time.Duration

	mu         sync.Mutex
	ring       []time.Time // actual send times; ring[next] is the oldest
	next       int
	cur        float64 // current rate
	minRate    float64 // lowest rate reached
	lastAdjust time.Time
	holdUntil  time.Time // no send before this (x-acs-retry-after)
}

// Throttle adaptation, AIMD: every Throttling answer multiplies the rate
// by decreaseFactor, down to floorFraction of the configured rate, and the
// rate grows back by recoverFraction of the configured rate per second.
// The cut is small and per answer, so it is proportional to the evidence:
// spurious throttles on 5% of answers at 10 QPS cost well under 1% of the
// rate (bench: 9.89 requests/s sent), while another client really sharing
// the quota throttles many answers a second and pulls the rate down. The
// real service's x-acs-retry-after, when sent, pauses the run on top.
const (
	decreaseFactor  = 0.97
	floorFraction   = 0.05
	recoverFraction = 0.15
)

// NewPacer returns a pacer for qps requests per second.
func NewPacer(qps float64) *Pacer {
	p := &Pacer{
		lim:     rate.NewLimiter(rate.Limit(qps), 1),
		maxQPS:  qps,
		window:  time.Second + PaceGuard,
		cur:     qps,
		minRate: qps,
	}
	if n := int(math.Floor(qps)); n >= 1 {
		p.ring = make([]time.Time, n)
	}
	return p
}

// Wait blocks until a request may be sent, or ctx is done. It returns a
// func to call when the request actually goes on the wire: that moves the
// window's stamp from the planned time to the real one (later, after a
// late timer or a TLS handshake), so the next sends are spaced from when
// the service saw this one. Not calling it leaves the planned time.
func (p *Pacer) Wait(ctx context.Context) (sent func(), err error) {
	p.recover()
	if err := p.lim.Wait(ctx); err != nil {
		return nil, err
	}
	if p.ring == nil {
		p.mu.Lock()
		hold := time.Until(p.holdUntil)
		p.mu.Unlock()
		if !sleepCtx(ctx, hold) {
			return nil, ctx.Err()
		}
		return func() {}, nil
	}
	p.mu.Lock()
	slot := p.next
	p.next = (p.next + 1) % len(p.ring)
	at := time.Now()
	if p.holdUntil.After(at) {
		// The ring below still caps how many leave together at the end.
		at = p.holdUntil
	}
	if oldest := p.ring[slot]; !oldest.IsZero() {
		if t := oldest.Add(p.window); t.After(at) {
			at = t
		}
	}
	p.ring[slot] = at // claimed; moved to the actual time on send
	p.mu.Unlock()

	if !sleepCtx(ctx, time.Until(at)) {
		return nil, ctx.Err()
	}
	return func() {
		now := time.Now()
		p.mu.Lock()
		// A late wake-up moves the stamp later, never earlier: the window
		// is measured from when the request really left.
		if now.After(p.ring[slot]) {
			p.ring[slot] = now
		}
		p.mu.Unlock()
	}, nil
}

// maxHold bounds how long one x-acs-retry-after can hold the whole run, in
// case a proxy or a bug sends a huge value.
const maxHold = 5 * time.Second

// Throttled tells the pacer the service throttled a request. retryAfter is
// the service's x-acs-retry-after (0 if none): the account's window is full
// until then, so no request of the run leaves before it.
func (p *Pacer) Throttled(retryAfter time.Duration) {
	p.recover() // bank the growth so far before cutting
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if until := now.Add(min(retryAfter, maxHold)); until.After(p.holdUntil) {
		p.holdUntil = until
	}
	p.lastAdjust = now
	p.cur = max(p.cur*decreaseFactor, p.maxQPS*floorFraction)
	p.minRate = min(p.minRate, p.cur)
	p.lim.SetLimitAt(now, rate.Limit(p.cur))
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
