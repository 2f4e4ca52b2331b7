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
// time in progress. It starts at poolStart and grows, never shrinks, to
// ceil(poolHeadroom × qps × latency) + poolSpare + rows waiting to retry.
// latency is the larger of the mean of the last recentLatencies answers and
// twice the median age of the calls in flight: the ages see a slow-down
// before any slow answer is back (at the start of a run with 5s answers,
// none is back for 5s), and the median ignores one hung call.
const (
	poolStart       = 4
	poolHeadroom    = 1.2
	poolSpare       = 2
	poolPoll        = 50 * time.Millisecond
	recentLatencies = 32
)

// pool bounds the rows in progress with a limit beside the errgroup (whose
// own limit cannot change while goroutines run), and hands out Assigners,
// creating them as calls need them.
type pool struct {
	newAssigner func() (Assigner, error)
	qps         float64
	cap         int

	mu       sync.Mutex
	limit    int // rows in progress at most; only grows
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
}

type member struct {
	a     Assigner
	since time.Time // start of the call in flight; zero when idle
}

func newPool(newAssigner func() (Assigner, error), qps float64, limitCap int) *pool {
	p := &pool{newAssigner: newAssigner, qps: qps, cap: limitCap, wake: make(chan struct{}, 1)}
	p.limit = min(limitCap, poolStart)
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
	p.limit = max(p.limit, min(want, p.cap))
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
}

// waiting counts rows sleeping before a retry: they hold room in the pool.
func (p *pool) waiting(delta int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.retrying += delta
}

// figures returns the largest limit reached (the limit only grows), the
// most calls in flight at once, and the Assigners created.
func (p *pool) figures() (limit, maxCalls, created int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limit, p.maxCalls, len(p.members)
}
