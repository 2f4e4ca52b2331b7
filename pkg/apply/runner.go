package apply

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sort"
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
	// latencyHeadroom is the answer time the default worker count covers:
	// workers = qps × headroom keeps the pacer, not the pool, the limit.
	latencyHeadroom = 4 * time.Second
)

// DefaultWorkers is enough workers to keep qps requests per second going
// when answers take up to 4 seconds.
func DefaultWorkers(qps float64) int {
	return min(512, max(1, int(math.Ceil(qps*latencyHeadroom.Seconds()))))
}

// Config tunes a run. Zero fields take the defaults above.
type Config struct {
	QPS         float64
	MaxAttempts int
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// With LimitFailures set, the run stops admitting rows once more than
	// MaxFailures rows have failed.
	LimitFailures bool
	MaxFailures   int
	// Deadline stops admitting rows at this time; zero means none.
	Deadline time.Time
	// OnAttempt, if set, is called after every request, from the worker.
	OnAttempt func(Attempt)
	// OnSend, if set, is called once per row just before its first request
	// leaves, from the worker, so that a journal can say the row's state is
	// about to be unknown. An error keeps the row from being sent and stops
	// the run as fatal: a run that cannot keep its record must not send.
	OnSend func(plan.Row) error
}

// Attempt is one request sent.
type Attempt struct {
	Row     plan.Row
	N       int // 1-based attempt number
	Latency time.Duration
	Err     *cas.Error // nil on success
}

// Status of a row after a run.
const (
	Succeeded    = "succeeded"
	Failed       = "failed"
	NotAttempted = "not-attempted"
)

// Outcome is what happened to one row.
type Outcome struct {
	Row      plan.Row
	Status   string
	Attempts int
	Result   cas.Result
	// Err is the last error of a failed row, and for a row not attempted
	// the reason the run stopped.
	Err *cas.Error
	// Lost is the code of the last attempt whose answer was lost, when the
	// row was retried after one: the call may have been applied twice.
	Lost     string
	Latency  time.Duration // of the last attempt
	Finished time.Time
}

// CodeRecordFailed is the fatal code of a run that could not write its
// record (the journal or the report).
const CodeRecordFailed = "RecordWriteFailed"

// Stop reasons.
var (
	ErrFatal       = errors.New("stopped by a run-fatal error")
	ErrMaxFailures = errors.New("stopped: too many rows failed")
	ErrDeadline    = errors.New("stopped: deadline reached")
)

// Stats sums up a run.
type Stats struct {
	Rows                               int
	Succeeded, Failed, NotAttempted    int
	Requests, Retries, Throttled       int
	LostAnswers                        int
	Start, End                         time.Time
	FirstSend, LastSend                time.Time
	MinRate                            float64
	LatencyP50, LatencyP95, LatencyMax time.Duration
	// Stop is why the run stopped early: nil, ErrFatal (with Fatal set),
	// ErrMaxFailures, ErrDeadline, or the context's error.
	Stop  error
	Fatal *cas.Error
}

// RequestRate is requests per second over the span in which they were sent.
func (s Stats) RequestRate() float64 {
	d := s.LastSend.Sub(s.FirstSend).Seconds()
	if s.Requests < 2 || d <= 0 {
		return 0
	}
	return float64(s.Requests-1) / d
}

// Run applies rows through clients, at most len(clients) at once, paced by
// one shared Pacer. report is called once per row, in completion order,
// from a single goroutine; an error from it stops the run as fatal (the
// report could not be written). Rows never sent because the run stopped
// are reported too, as NotAttempted. Run returns when every row has been
// reported.
func Run(ctx context.Context, rows []plan.Row, clients []Assigner, cfg Config, report func(Outcome) error) Stats {
	if cfg.QPS <= 0 {
		cfg.QPS = DefaultQPS
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = DefaultBackoffBase
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	r := &runner{cfg: cfg, pacer: NewPacer(cfg.QPS), stats: Stats{Rows: len(rows), Start: time.Now()}}

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

	pool := make(chan Assigner, len(clients))
	for _, c := range clients {
		pool <- c
	}
	results := make(chan Outcome, len(clients))
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		failed := 0
		for o := range results {
			r.record(o)
			if o.Status == Failed {
				failed++
				if cfg.LimitFailures && failed > cfg.MaxFailures {
					stop(ErrMaxFailures)
				}
			}
			if err := report(o); err != nil {
				r.fatal(&cas.Error{Class: cas.Fatal, Code: CodeRecordFailed, Message: err.Error()})
			}
		}
	}()

	var g errgroup.Group
	g.SetLimit(len(clients))
	for _, row := range rows {
		if sendCtx.Err() != nil {
			results <- r.notAttempted(sendCtx, row)
			continue
		}
		g.Go(func() error {
			c := <-pool
			defer func() { pool <- c }()
			results <- r.apply(sendCtx, c, row)
			return nil // a failed row is recorded, never returned
		})
	}
	g.Wait()
	close(results)
	<-collected

	r.stats.End = time.Now()
	r.stats.Stop = context.Cause(sendCtx)
	r.stats.Requests = int(r.requests.Load())
	r.stats.Throttled = int(r.throttled.Load())
	r.stats.LostAnswers = int(r.lost.Load())
	_, r.stats.MinRate = r.pacer.Rates()
	r.stats.LatencyP50, r.stats.LatencyP95, r.stats.LatencyMax = percentiles(r.latencies)
	return r.stats
}

type runner struct {
	cfg   Config
	pacer *Pacer
	stop  context.CancelCauseFunc

	requests, throttled, lost atomic.Int64

	mu        sync.Mutex
	stats     Stats
	latencies []time.Duration
}

func (r *runner) apply(ctx context.Context, c Assigner, row plan.Row) Outcome {
	o := Outcome{Row: row}
	for {
		if ctx.Err() != nil {
			return r.stopped(ctx, o)
		}
		sent, err := r.pacer.Wait(ctx)
		if err != nil {
			return r.stopped(ctx, o)
		}
		if o.Attempts == 0 && r.cfg.OnSend != nil {
			if err := r.cfg.OnSend(row); err != nil {
				r.fatal(&cas.Error{Class: cas.Fatal, Code: CodeRecordFailed, Message: err.Error()})
				return r.notAttempted(ctx, row)
			}
		}
		start := time.Now()
		res, e := c.Assign(cas.Request{ID: row.ID, CertTotalCount: row.CertTotalCount, CaIdentifier: row.CaIdentifier}, sent)
		o.Latency = time.Since(start)
		o.Attempts++
		r.sent(start, o.Latency)
		if r.cfg.OnAttempt != nil {
			r.cfg.OnAttempt(Attempt{Row: row, N: o.Attempts, Latency: o.Latency, Err: e})
		}
		if e == nil {
			o.Status, o.Result, o.Err = Succeeded, res, nil
			o.Finished = time.Now()
			return o
		}
		o.Status, o.Err = Failed, e
		o.Finished = time.Now()
		if e.Throttled() {
			r.throttled.Add(1)
			r.pacer.Throttled(e.RetryAfter)
		}
		if e.MaybeApplied {
			o.Lost = e.Code
			r.lost.Add(1)
		}
		switch e.Class {
		case cas.Fatal:
			r.fatal(e)
			return o
		case cas.RowFinal:
			return o
		}
		if o.Attempts >= r.cfg.MaxAttempts {
			return o
		}
		if !sleepCtx(ctx, r.backoff(o.Attempts, e)) {
			return o // stopped while waiting to retry: failed, not retried
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
		return o // it was sent and failed; the retry is what was stopped
	}
	return r.notAttempted(ctx, o.Row)
}

func (r *runner) notAttempted(ctx context.Context, row plan.Row) Outcome {
	return Outcome{Row: row, Status: NotAttempted, Finished: time.Now(),
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
// the service's x-acs-retry-after.
func (r *runner) backoff(attempt int, e *cas.Error) time.Duration {
	ceil := min(r.cfg.BackoffMax, r.cfg.BackoffBase<<min(attempt-1, 20))
	d := time.Duration(rand.Int64N(int64(ceil) + 1))
	return max(d, e.RetryAfter)
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
	r.latencies = append(r.latencies, latency)
}

func (r *runner) record(o Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch o.Status {
	case Succeeded:
		r.stats.Succeeded++
	case Failed:
		r.stats.Failed++
	case NotAttempted:
		r.stats.NotAttempted++
	}
	if o.Attempts > 1 {
		r.stats.Retries += o.Attempts - 1
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

func percentiles(ds []time.Duration) (p50, p95, maxd time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) time.Duration { return s[int(math.Ceil(q*float64(len(s))))-1] }
	return at(0.50), at(0.95), s[len(s)-1]
}
