package apply

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"
)

// MaxWorkers bounds Config.Workers and DefaultWorkers.
const MaxWorkers = 2048

// DefaultWorkers is the default cap on rows in progress: enough to keep qps
// requests a second going when every answer takes as long as timeout, the
// longest a request can take before it comes back as a timeout (0 means
// the client's 10s default), plus a fifth for rows waiting at the pacer or
// to retry. A bigger pool could not raise the rate; the pool grows only as
// far as measured latency asks, so the cap costs nothing when answers are
// fast.
func DefaultWorkers(qps float64, timeout time.Duration) int {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return min(MaxWorkers, max(poolStart, int(math.Ceil(min(qps, MaxQPS)*timeout.Seconds()*poolHeadroom))))
}

// The in-flight limit follows Little's law: rows in progress = rate ×
// time in progress. It starts at poolStart and grows to
// ceil(poolHeadroom × qps × latency) + poolSpare + rows waiting to retry,
// at most doubling every poolPoll. latency is the larger of the mean of
// the last recentLatencies answers and twice the median age of the calls
// in flight: the ages see a slow-down before any slow answer is back (at
// the start of a run with 5s answers, none is back for 5s), and the
// median ignores one hung call.
//
// Little's law cannot tell a slow service from answers slowed by the
// calls themselves (certalloc's own CPU at thousands of requests a second,
// or a service that queues them), where more rows in progress only
// lengthen the queue, and the latency they cause asks for more still. So
// the pool watches what growth buys, as TCP's BBR does. Calls complete in
// rounds (a round ends when as many calls have completed as were in
// flight at its start, and lasts at least poolRound), and a round's
// completion rate is its delivery rate. When the limit has grown in
// poolFlatRounds rounds in a row without the best delivery rate rising by
// poolGain, while that rate is under poolPaced of the pacer's (so the
// pacer is not what holds the run back), more rows in progress do not
// pay: the limit goes back to the one the best rate was reached with,
// plus poolSpare and the rows waiting to retry, and stays there.
//
// A delivery rate (smoothed over rounds, as one round's is noisy) under
// the one at that time by poolGain for poolRecheck (the service slowed
// down) starts a probe: the limit may grow again, by poolGain a round and
// to twice where it was (again twice as long as that pays), judged the
// same way against the rate at the probe's start. A probe that finds no
// better rate puts the limit back, and doubles the wait before the next
// (up to poolRecheckMax), so that noise costs little.
const (
	poolStart       = 4
	poolHeadroom    = 1.2
	poolSpare       = 2
	poolPoll        = 50 * time.Millisecond
	recentLatencies = 32

	poolRound      = 100 * time.Millisecond
	poolFlatRounds = 2
	poolGain       = 1.25
	poolPaced      = 0.9
	poolSmooth     = 0.1
	poolRecheck    = 2 * time.Second
	poolRecheckMax = time.Minute
)

// pool bounds the rows in progress with a limit beside the errgroup (whose
// own limit cannot change while goroutines run), and hands out Assigners,
// creating them as calls need them.
type pool struct {
	newAssigner func() (Assigner, error)
	qps         float64
	cap         int

	mu       sync.Mutex
	limit    int // rows in progress at most
	maxLimit int // the largest limit reached
	grewAt   time.Time
	held     int // rows in progress
	wake     chan struct{}
	members  []*member // every Assigner created
	idle     []*member
	calls    int // calls in flight
	maxCalls int
	retrying int // rows waiting to retry
	recent   [recentLatencies]time.Duration
	recentN  int
	ages     []time.Duration // scratch

	pace func() float64 // the pacer's current rate
	// Delivery rounds (see the constants). ceiling, when not 0, is where
	// growth stopped paying.
	done       int       // calls completed
	roundStart time.Time // the current round's start
	roundDone  int       // done at its start
	roundEnd   int       // it ends when done reaches this
	grew       bool      // the limit grew during it
	best       float64   // the best delivery rate of a round, per second
	lastRate   float64   // the last round's
	smooth     float64   // the rounds' rates, smoothed (poolSmooth)
	atCeiling  float64   // smooth when the ceiling was set
	bestLimit  int       // the limit at the end of that round, less retries
	flat       int       // rounds in a row that grew without gain
	ceiling    int       // rows in progress at most, but those waiting to retry
	// At the ceiling, slowSince is when the delivery rate fell well under
	// the best; after recheck of that, the pool probes again.
	slowSince  time.Time
	recheck    time.Duration
	probing    bool
	probeLimit int // bestLimit when the probe began
	probeCap   int // the most a probe may grow the limit to
}

type member struct {
	a     Assigner
	since time.Time // start of the call in flight; zero when idle
}

// newPool returns a pool for qps, whose limit grows up to limitCap. pace
// gives the pacer's current rate (lower than qps after a cut).
func newPool(newAssigner func() (Assigner, error), qps float64, limitCap int, pace func() float64) *pool {
	p := &pool{newAssigner: newAssigner, qps: qps, cap: limitCap, wake: make(chan struct{}, 1), pace: pace}
	p.limit = min(limitCap, poolStart)
	p.maxLimit, p.recheck = p.limit, poolRecheck
	p.roundStart, p.roundEnd = time.Now(), poolStart
	return p
}

// acquire waits for room for one more row, growing the limit if the calls
// in flight say answers have slowed.
func (p *pool) acquire(ctx context.Context) error {
	var tick *time.Ticker
	for {
		p.mu.Lock()
		if p.held >= p.limit {
			p.growLocked(time.Now())
		}
		if p.held < p.limit {
			p.held++
			p.mu.Unlock()
			if tick != nil {
				tick.Stop()
			}
			return nil
		}
		p.mu.Unlock()
		if tick == nil {
			tick = time.NewTicker(poolPoll)
		}
		select {
		case <-p.wake:
		case <-tick.C:
		case <-ctx.Done():
			tick.Stop()
			return ctx.Err()
		}
	}
}

func (p *pool) release() {
	p.mu.Lock()
	p.held--
	p.mu.Unlock()
	p.signal()
}

func (p *pool) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// growLocked raises the limit to what Little's law asks, up to the cap.
// It is called only while a row waits for room: once the plan's rows are
// all in, the calls left in flight are the newest, and their ages would
// ask for a pool no row needs.
func (p *pool) growLocked(now time.Time) {
	if p.limit >= p.cap || (p.ceiling > 0 && p.limit >= p.ceiling+p.retrying) || now.Sub(p.grewAt) < poolPoll {
		return
	}
	// Until growth has been judged (no round yet) and while the pacer sets
	// the rate, the pool may double every poolPoll; otherwise once a round,
	// and by poolGain once a round has shown no gain or in a probe, so
	// that the rounds that find growth useless cost little.
	step := 2.0
	switch {
	case p.best == 0 || p.lastRate >= poolPaced*p.pacedLocked():
	case p.grew:
		return
	case p.flat > 0 || p.probing:
		step = poolGain
	}
	lat := time.Duration(0)
	if p.recentN > 0 {
		var sum time.Duration
		for _, d := range p.recent[:min(p.recentN, recentLatencies)] {
			sum += d
		}
		lat = sum / time.Duration(min(p.recentN, recentLatencies))
	}
	p.ages = p.ages[:0]
	for _, m := range p.members {
		if !m.since.IsZero() {
			p.ages = append(p.ages, now.Sub(m.since))
		}
	}
	if len(p.ages) > 0 {
		slices.Sort(p.ages)
		lat = max(lat, 2*p.ages[len(p.ages)/2])
	}
	want := int(math.Ceil(poolHeadroom*p.qps*lat.Seconds())) + poolSpare + p.retrying
	want = min(want, p.cap, max(p.limit+1, int(step*float64(p.limit))))
	if p.ceiling > 0 {
		want = min(want, p.ceiling+p.retrying)
	}
	if p.probing {
		want = min(want, p.probeCap)
	}
	if want > p.limit {
		p.limit, p.grew, p.grewAt = want, true, now
		p.maxLimit = max(p.maxLimit, p.limit)
	}
}

// pacedLocked is the rate the pacer allows now.
func (p *pool) pacedLocked() float64 { return min(p.qps, p.pace()) }

// roundLocked closes a delivery round when it has ended, and judges what
// the limit's growth in it bought.
func (p *pool) roundLocked(now time.Time) {
	span := now.Sub(p.roundStart)
	if p.done < p.roundEnd || span < poolRound {
		return
	}
	rate := float64(p.done-p.roundDone) / span.Seconds()
	p.lastRate = rate
	if p.smooth == 0 {
		p.smooth = rate
	}
	p.smooth += poolSmooth * (rate - p.smooth)
	switch {
	case rate >= poolGain*p.best:
		p.best, p.bestLimit, p.flat = rate, max(1, p.limit-p.retrying), 0
		if p.probing && p.limit >= p.probeCap {
			p.probeCap *= 2 // growth still pays: the probe goes on
		}
	case p.grew && rate < poolPaced*p.pacedLocked():
		p.flat++
		if p.flat >= poolFlatRounds && p.ceiling == 0 {
			// The ceiling counts rows in progress but those waiting to
			// retry, which hold room and send nothing.
			p.ceiling = max(poolStart, min(p.limit-p.retrying, p.bestLimit+poolSpare))
			p.limit, p.atCeiling = p.ceiling+p.retrying, p.smooth
			// A probe that found nothing better waits twice as long
			// before the next.
			if p.probing && p.bestLimit == p.probeLimit {
				p.recheck = min(2*p.recheck, poolRecheckMax)
			} else {
				p.recheck = poolRecheck
			}
			p.probing = false
		}
	}
	switch {
	case p.ceiling == 0 || p.smooth >= p.atCeiling/poolGain:
		p.slowSince = time.Time{}
	case p.slowSince.IsZero():
		p.slowSince = p.roundStart
	case now.Sub(p.slowSince) >= p.recheck:
		// The service slowed down, for longer than a pause for garbage
		// collection: let Little's law grow the pool again, and judge the
		// growth against the rate it has now. A probe may at most double
		// the limit it started from, so that noise taken for gains cannot
		// run away with it.
		p.ceiling, p.flat, p.slowSince = 0, 0, time.Time{}
		p.probing, p.probeLimit = true, p.bestLimit
		p.best, p.probeCap = rate, 2*p.limit
	}
	p.roundStart, p.roundDone, p.roundEnd, p.grew = now, p.done, p.done+max(p.calls+1, poolStart), false
}

// get returns an idle Assigner, or a new one.
func (p *pool) get() (*member, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		m := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return m, nil
	}
	p.mu.Unlock()
	// Outside the lock: building an SDK client is slow next to a pacer tick.
	a, err := p.newAssigner()
	if err != nil {
		return nil, err
	}
	m := &member{a: a}
	p.mu.Lock()
	p.members = append(p.members, m)
	p.mu.Unlock()
	return m, nil
}

func (p *pool) put(m *member) {
	p.mu.Lock()
	p.idle = append(p.idle, m)
	p.mu.Unlock()
}

// begin and end bracket one call.
func (p *pool) begin(m *member, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m.since = at
	p.calls++
	p.maxCalls = max(p.maxCalls, p.calls)
}

func (p *pool) end(m *member, latency time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m.since = time.Time{}
	p.calls--
	p.recent[p.recentN%recentLatencies] = latency
	p.recentN++
	p.done++
	p.roundLocked(time.Now())
}

// waiting counts rows sleeping before a retry: they hold room in the pool.
func (p *pool) waiting(delta int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.retrying += delta
}

// figures returns the largest limit reached, the most calls in flight at
// once, and the Assigners created.
func (p *pool) figures() (limit, maxCalls, created int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxLimit, p.maxCalls, len(p.members)
}
