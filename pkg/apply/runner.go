package apply

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/certalloc/certalloc/pkg/cas"
	"github.com/certalloc/certalloc/pkg/plan"
)

// Assigner makes one AssignCertificateCount call. It need not be safe for
// concurrent use: Run hands each one to one goroutine at a time. It calls
// onWire when the request is about to go on the wire, after connection
// set-up, so that the pacer measures its window where the service does.
type Assigner interface {
	Assign(r cas.Request, onWire func()) (cas.Result, *cas.Error)
}

// Defaults for Config.
const (
	DefaultQPS         = 10
	DefaultMaxAttempts = 8
	DefaultBackoffBase = 200 * time.Millisecond
	DefaultBackoffMax  = 10 * time.Second
	// DefaultBreakerRows is the breaker the CLI should default to; a zero
	// Config.BreakerRows turns the breaker off.
	DefaultBreakerRows = 20
	// MaxRetryAfter caps how long one x-acs-retry-after makes a row wait
	// (pkg/cas caps it too), so a bogus header cannot stall a row for ten
	// minutes.
	MaxRetryAfter = 60 * time.Second
)

// Config tunes a run. Zero fields take the defaults above, but for
// BreakerRows, where zero means off.
type Config struct {
	QPS         float64 // at most MaxQPS; more is paced as MaxQPS
	MaxAttempts int
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// Workers caps the rows in progress (sent, waiting at the pacer or to
	// retry). The pool starts small and grows with measured latency up to
	// this cap. Zero means DefaultWorkers(QPS, 0); more than MaxWorkers is
	// MaxWorkers.
	Workers int
	// With LimitFailures set, the run stops admitting rows once more than
	// MaxFailures rows have failed.
	LimitFailures bool
	MaxFailures   int
	// BreakerRows, when positive, stops the run as fatal when the first
	// BreakerRows finished rows all failed with the same code and none
	// succeeded: an error every row gets, that nobody listed as run-fatal.
	BreakerRows int
	// Deadline stops admitting rows at this time; zero means none.
	Deadline time.Time
	// OnAttempt, if set, is called after every request, from the worker.
	OnAttempt func(Attempt)
	// OnSend, if set, is called once per row just before its first request
	// leaves, from the worker, so that a journal can say the row's state is
	// about to be unknown. An error keeps the row from being sent and stops
	// the run as fatal: a run that cannot keep its record must not send.
	OnSend func(plan.Row) error

	fixedGuard time.Duration // tests: a guard that does not learn
	seed       uint64        // tests: replay the pacer's random draws
}

// Run applies rows, paced by one shared Pacer. It takes Assigners from
// newAssigner as the pool grows, one per call in flight at most, and never
// uses one from two goroutines at once; a failure to make one stops the
// run as fatal. report is called once per row, in completion order, from a
// single goroutine; an error from it stops the run as fatal (the report
// could not be written). Rows never sent because the run stopped are
// reported too, as NotAttempted. Run returns when every row has been
// reported.
func Run(ctx context.Context, rows []plan.Row, newAssigner func() (Assigner, error), cfg Config, report func(Outcome) error) Stats {
	cfg = withDefaults(cfg)
	r := &runner{
		cfg:   cfg,
		pacer: NewPacer(cfg.QPS),
		stats: Stats{Rows: len(rows), Start: time.Now()},
	}
	r.pool = newPool(newAssigner, cfg.QPS, cfg.Workers, func() float64 { cur, _ := r.pacer.Rates(); return cur })
	if cfg.fixedGuard > 0 {
		r.pacer.fix(cfg.fixedGuard)
	}
	if cfg.seed != 0 {
		r.pacer.desync.Seed(cfg.seed, 0)
	}

	// sendCtx gates every send: cancelling it stops new rows and retries,
	// while requests already in flight run to their timeout (the SDK takes
	// no context).
	sendCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	if !cfg.Deadline.IsZero() {
		// A timer, not a context deadline: rate.Limiter.Wait fails at once
		// when its wait would end past a deadline, which would stop rows
		// early and for the wrong reason.
		t := time.AfterFunc(time.Until(cfg.Deadline), func() { stop(ErrDeadline) })
		defer t.Stop()
	}
	r.stop = stop

	results := make(chan Outcome, 64)
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		b := breaker{rows: cfg.BreakerRows}
		failed := 0
		for o := range results {
			r.record(o)
			if o.Status == Failed {
				failed++
				if cfg.LimitFailures && failed > cfg.MaxFailures {
					stop(ErrMaxFailures)
				}
			}
			if e := b.add(o); e != nil {
				r.fatal(e)
			}
			if err := report(o); err != nil {
				r.fatal(&cas.Error{Class: cas.Fatal, Code: CodeRecordFailed, Message: err.Error()})
			}
		}
	}()

	// The pool's limit grows while rows run; the errgroup's cannot, so it
	// only backs up the pool's cap.
	var g errgroup.Group
	g.SetLimit(cfg.Workers)
	for _, row := range rows {
		if sendCtx.Err() != nil || r.pool.acquire(sendCtx) != nil {
			results <- r.notAttempted(sendCtx, row)
			continue
		}
		g.Go(func() error {
			defer r.pool.release()
			results <- r.apply(sendCtx, row)
			return nil // a failed row is recorded, never returned
		})
	}
	g.Wait()
	close(results)
	<-collected

	s := &r.stats
	s.End = time.Now()
	s.Requests = int(r.requests.Load())
	s.Throttled = int(r.throttled.Load())
	s.LostAnswers = int(r.lost.Load())
	_, s.MinRate = r.pacer.Rates()
	s.Guard, s.GuardMax = r.pacer.Guards()
	s.Workers, s.MaxInFlight, s.Assigners = r.pool.figures()
	s.LatencyP50, s.LatencyP95, s.LatencyMax = r.latency.quantile(0.50), r.latency.quantile(0.95), r.latency.max
	if s.Fatal != nil || s.CutShort > 0 {
		// A stop that cut nothing short changed nothing: the run is as
		// if it had not come.
		s.Stop = context.Cause(sendCtx)
	}
	return *s
}

func withDefaults(cfg Config) Config {
	if cfg.QPS <= 0 {
		cfg.QPS = DefaultQPS
	}
	cfg.QPS = min(cfg.QPS, MaxQPS)
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = DefaultBackoffBase
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers(cfg.QPS, 0)
	}
	cfg.Workers = min(cfg.Workers, MaxWorkers)
	return cfg
}

type runner struct {
	cfg   Config
	pacer *Pacer
	pool  *pool
	stop  context.CancelCauseFunc

	requests, throttled, lost atomic.Int64

	mu      sync.Mutex
	stats   Stats
	latency histogram
}

func (r *runner) apply(ctx context.Context, row plan.Row) Outcome {
	o := Outcome{Row: row}
	req := cas.Request{ID: row.ID, CertTotalCount: row.CertTotalCount, CaIdentifier: row.CaIdentifier}
	for {
		if ctx.Err() != nil {
			return r.stopped(ctx, o)
		}
		t, err := r.pacer.Wait(ctx)
		if err != nil {
			return r.stopped(ctx, o)
		}
		if o.Attempts == 0 && r.cfg.OnSend != nil {
			if err := r.cfg.OnSend(row); err != nil {
				r.fatal(&cas.Error{Class: cas.Fatal, Code: CodeRecordFailed, Message: err.Error()})
				return r.stopped(ctx, o)
			}
		}
		// Taken after the pacer, so rows waiting for their turn hold no
		// Assigner: Assigners number the calls in flight, not the rows.
		m, err := r.pool.get()
		if err != nil {
			r.fatal(&cas.Error{Class: cas.Fatal, Code: cas.CodeClient, Message: "could not set up a client: " + err.Error()})
			return r.stopped(ctx, o)
		}
		start := time.Now()
		r.pool.begin(m, start)
		res, e := m.a.Assign(req, t.OnWire)
		o.Latency = time.Since(start)
		r.pool.end(m, o.Latency)
		r.pool.put(m)
		o.Attempts++
		r.sent(start, o.Latency)
		if r.cfg.OnAttempt != nil {
			r.cfg.OnAttempt(Attempt{Row: row, N: o.Attempts, Latency: o.Latency, Err: e})
		}
		o.Finished = time.Now()
		if e == nil {
			r.pacer.Clean(t)
			o.Status, o.Result, o.Err = Succeeded, res, nil
			return o
		}
		o.Status, o.Err = Failed, e
		throttled := e.Throttled()
		switch {
		case throttled:
			r.throttled.Add(1)
			r.pacer.Throttled(t, e.RetryAfter) // the pacer caps its hold
		case e.HTTPStatus != 0:
			r.pacer.Clean(t) // an answer, and not a throttle
		}
		if e.MaybeApplied {
			o.Lost = e.Code
			r.lost.Add(1)
		}
		switch {
		case throttled:
			// Retried whatever its class: a throttle says "later", not "never".
		case e.Class == cas.Fatal:
			r.fatal(e)
			return o
		case e.Class != cas.Retryable:
			return o
		}
		if o.Attempts >= r.cfg.MaxAttempts {
			return o
		}
		r.pool.waiting(1)
		ok := sleepCtx(ctx, r.backoff(o.Attempts, e))
		r.pool.waiting(-1)
		if !ok {
			o.CutShort = true // stopped while waiting to retry: failed, not retried
			return o
		}
	}
}

// fatal records the first run-fatal error and stops sending.
func (r *runner) fatal(e *cas.Error) {
	r.mu.Lock()
	if r.stats.Fatal == nil {
		r.stats.Fatal = e
	}
	r.mu.Unlock()
	r.stop(ErrFatal)
}

// stopped is the outcome of a row the run stopped before it could finish.
func (r *runner) stopped(ctx context.Context, o Outcome) Outcome {
	if o.Attempts > 0 {
		o.CutShort = true
		return o // it was sent and failed; the retry is what was stopped
	}
	return r.notAttempted(ctx, o.Row)
}

func (r *runner) notAttempted(ctx context.Context, row plan.Row) Outcome {
	return Outcome{Row: row, Status: NotAttempted, CutShort: true, Finished: time.Now(),
		Err: &cas.Error{Code: "NotAttempted", Message: "not sent: " + reason(context.Cause(ctx))}}
}

func reason(err error) string {
	switch {
	case errors.Is(err, ErrFatal):
		return "the run stopped on a run-fatal error"
	case errors.Is(err, ErrMaxFailures):
		return "the run stopped after too many failed rows"
	case errors.Is(err, ErrDeadline):
		return "the run reached its deadline"
	}
	return "the run was interrupted"
}

// backoff is capped exponential with full jitter, and never shorter than
// the service's x-acs-retry-after (itself capped at MaxRetryAfter).
func (r *runner) backoff(attempt int, e *cas.Error) time.Duration {
	ceil := min(r.cfg.BackoffMax, r.cfg.BackoffBase<<min(attempt-1, 20))
	d := time.Duration(rand.Int64N(int64(ceil) + 1))
	return max(d, min(e.RetryAfter, MaxRetryAfter))
}

func (r *runner) sent(at time.Time, latency time.Duration) {
	r.requests.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stats.FirstSend.IsZero() || at.Before(r.stats.FirstSend) {
		r.stats.FirstSend = at
	}
	if at.After(r.stats.LastSend) {
		r.stats.LastSend = at
	}
	r.latency.add(latency)
}

func (r *runner) record(o Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &r.stats
	switch o.Status {
	case Succeeded:
		s.Succeeded++
		if s.FirstSuccess.IsZero() || o.Finished.Before(s.FirstSuccess) {
			s.FirstSuccess = o.Finished
		}
		if o.Finished.After(s.LastSuccess) {
			s.LastSuccess = o.Finished
		}
	case Failed:
		s.Failed++
	case NotAttempted:
		s.NotAttempted++
	}
	if o.CutShort {
		s.CutShort++
	}
	if o.Attempts > 1 {
		s.Retries += o.Attempts - 1
	}
}

// sleepCtx waits d, or until ctx is done; it reports whether ctx is still
// live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
