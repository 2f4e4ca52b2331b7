package apply

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certalloc/certalloc/pkg/cas"
	"github.com/certalloc/certalloc/pkg/plan"
)

// fake answers from a script keyed by Id: the n-th call for an Id gets
// script[id][n], and success once the script runs out.
type fake struct {
	script map[int64][]*cas.Error
	delay  time.Duration
	busy   atomic.Bool // catches a client used by two goroutines at once
	shared *sharedState
}

type sharedState struct {
	mu       sync.Mutex
	calls    map[int64]int
	sends    []time.Time
	inFlight int
	maxIn    int
}

func (f *fake) Assign(r cas.Request, onWire func()) (cas.Result, *cas.Error) {
	id, n := r.ID, r.CertTotalCount
	onWire()
	now := time.Now()
	if !f.busy.CompareAndSwap(false, true) {
		panic("client used concurrently")
	}
	defer f.busy.Store(false)
	s := f.shared
	s.mu.Lock()
	k := s.calls[id]
	s.calls[id]++
	s.sends = append(s.sends, now)
	s.inFlight++
	s.maxIn = max(s.maxIn, s.inFlight)
	s.mu.Unlock()
	time.Sleep(f.delay)
	s.mu.Lock()
	s.inFlight--
	s.mu.Unlock()
	if k < len(f.script[id]) && f.script[id][k] != nil {
		return cas.Result{}, f.script[id][k]
	}
	return cas.Result{RequestID: "R", CertCount: int64(n)}, nil
}

func fakes(n int, script map[int64][]*cas.Error, delay time.Duration) ([]Assigner, *sharedState) {
	s := &sharedState{calls: map[int64]int{}}
	out := make([]Assigner, n)
	for i := range out {
		out[i] = &fake{script: script, delay: delay, shared: s}
	}
	return out, s
}

func rowsN(n int) []plan.Row {
	rows := make([]plan.Row, n)
	for i := range rows {
		rows[i] = plan.Row{Line: int32(i + 2), ID: int64(i + 1), CertTotalCount: int32(i)}
	}
	return rows
}

func collect(ctx context.Context, rows []plan.Row, cs []Assigner, cfg Config) (Stats, map[int64]Outcome) {
	got := map[int64]Outcome{}
	var mu sync.Mutex
	st := Run(ctx, rows, cs, cfg, func(o Outcome) error {
		mu.Lock()
		defer mu.Unlock()
		if _, dup := got[o.Row.ID]; dup {
			panic("row reported twice")
		}
		got[o.Row.ID] = o
		return nil
	})
	return st, got
}

var (
	throttle = &cas.Error{Class: cas.Retryable, Code: "Throttling.User", HTTPStatus: 400}
	timeout  = &cas.Error{Class: cas.Retryable, Code: cas.CodeClientTimeout, MaybeApplied: true}
	invalid  = &cas.Error{Class: cas.RowFinal, Code: "InvalidParameter", HTTPStatus: 400}
	badKey   = &cas.Error{Class: cas.Fatal, Code: "InvalidAccessKeyId.NotFound", HTTPStatus: 404}
)

func fast(cfg Config) Config {
	cfg.QPS = 2000
	cfg.BackoffBase = time.Millisecond
	cfg.BackoffMax = 2 * time.Millisecond
	return cfg
}

func TestRunOutcomes(t *testing.T) {
	script := map[int64][]*cas.Error{
		2: {throttle, throttle},
		3: {timeout},
		4: {invalid},
		5: {timeout, timeout, timeout},
	}
	cs, s := fakes(4, script, 0)
	st, got := collect(context.Background(), rowsN(6), cs, fast(Config{MaxAttempts: 3}))
	tests := []struct {
		id       int64
		status   string
		attempts int
		code     string
		lost     string
	}{
		{1, Succeeded, 1, "", ""},
		{2, Succeeded, 3, "", ""},
		{3, Succeeded, 2, "", cas.CodeClientTimeout},
		{4, Failed, 1, "InvalidParameter", ""},
		{5, Failed, 3, cas.CodeClientTimeout, cas.CodeClientTimeout},
		{6, Succeeded, 1, "", ""},
	}
	for _, tt := range tests {
		o := got[tt.id]
		code := ""
		if o.Err != nil {
			code = o.Err.Code
		}
		if o.Status != tt.status || o.Attempts != tt.attempts || code != tt.code || o.Lost != tt.lost {
			t.Errorf("row %d = %s, %d attempts, code %q, lost %q; want %s, %d, %q, %q", tt.id, o.Status, o.Attempts, code, o.Lost, tt.status, tt.attempts, tt.code, tt.lost)
		}
	}
	if st.Succeeded != 4 || st.Failed != 2 || st.Requests != 11 || st.Retries != 5 || st.Throttled != 2 || st.Stop != nil {
		t.Errorf("stats = %+v", st)
	}
	if len(s.sends) != 11 {
		t.Errorf("%d sends; want 11", len(s.sends))
	}
}

func TestRunBoundsConcurrency(t *testing.T) {
	cs, s := fakes(3, nil, 5*time.Millisecond)
	collect(context.Background(), rowsN(40), cs, fast(Config{}))
	if s.maxIn > 3 {
		t.Errorf("%d requests in flight at once; want at most 3", s.maxIn)
	}
}

func TestRunFatalStopsSending(t *testing.T) {
	script := map[int64][]*cas.Error{5: {badKey}}
	cs, s := fakes(2, script, 10*time.Millisecond)
	var mu sync.Mutex
	var fatalAt time.Time // when the runner has the fatal answer in hand
	cfg := fast(Config{OnAttempt: func(a Attempt) {
		if a.Err != nil && a.Err.Class == cas.Fatal {
			mu.Lock()
			fatalAt = time.Now()
			mu.Unlock()
		}
	}})
	st, got := collect(context.Background(), rowsN(50), cs, cfg)
	if !errors.Is(st.Stop, ErrFatal) || st.Fatal == nil || st.Fatal.Code != "InvalidAccessKeyId.NotFound" {
		t.Fatalf("Stop = %v, Fatal = %v; want the fatal error", st.Stop, st.Fatal)
	}
	// Once the fatal answer is in, no request may leave, but for one the
	// other worker had already passed the gate with.
	after := 0
	for _, at := range s.sends {
		if at.After(fatalAt) {
			after++
		}
	}
	if after > 1 {
		t.Errorf("%d requests sent after the fatal answer; want at most 1", after)
	}
	if len(got) != 50 || st.Succeeded+st.Failed+st.NotAttempted != 50 || st.NotAttempted < 43 {
		t.Errorf("reported %d rows, stats %+v; want all 50, at least 43 not attempted", len(got), st)
	}
}

func TestRunMaxFailures(t *testing.T) {
	script := map[int64][]*cas.Error{}
	for id := int64(1); id <= 10; id++ {
		script[id] = []*cas.Error{invalid}
	}
	cs, _ := fakes(1, script, 5*time.Millisecond)
	st, _ := collect(context.Background(), rowsN(30), cs, fast(Config{LimitFailures: true, MaxFailures: 3}))
	// The 4th failure stops admission; a row already admitted may follow.
	if !errors.Is(st.Stop, ErrMaxFailures) || st.Failed < 4 || st.Failed > 6 || st.NotAttempted < 24 {
		t.Errorf("stats = %+v; want a stop after the 4th failure", st)
	}
}

func TestRunDeadlineAndCancel(t *testing.T) {
	cs, _ := fakes(2, nil, 0)
	cfg := Config{QPS: 100, Deadline: time.Now().Add(150 * time.Millisecond)}
	st, _ := collect(context.Background(), rowsN(100), cs, cfg)
	if !errors.Is(st.Stop, ErrDeadline) || st.NotAttempted == 0 || st.Succeeded == 0 || st.Succeeded+st.NotAttempted != 100 {
		t.Errorf("deadline stats = %+v", st)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cs, _ = fakes(2, nil, 0)
	time.AfterFunc(150*time.Millisecond, cancel)
	st, _ = collect(ctx, rowsN(100), cs, Config{QPS: 100})
	if !errors.Is(st.Stop, context.Canceled) || st.NotAttempted == 0 || st.Succeeded+st.NotAttempted != 100 {
		t.Errorf("cancel stats = %+v", st)
	}
}

// The pacer's guarantee: never more than floor(qps) sends in any second.
func TestRunNeverExceedsRateInAnySecond(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 3s")
	}
	cs, s := fakes(20, nil, 2*time.Millisecond)
	const qps = 40
	collect(context.Background(), rowsN(3*qps+1), cs, Config{QPS: qps})
	sends := append([]time.Time(nil), s.sends...)
	sort.Slice(sends, func(i, j int) bool { return sends[i].Before(sends[j]) })
	for i := qps; i < len(sends); i++ {
		if d := sends[i].Sub(sends[i-qps]); d < time.Second {
			t.Fatalf("sends %d and %d are %v apart: %d sends in under a second", i-qps, i, d, qps+1)
		}
	}
}

func TestPacerAdaptsToThrottling(t *testing.T) {
	p := NewPacer(10)
	p.Throttled(0)
	p.Throttled(0)
	if cur, low := p.Rates(); cur < 9.40 || cur > 9.41 || low != cur {
		t.Fatalf("after two throttles: rate %v, lowest %v; want 10 × 0.97² = 9.409", cur, low)
	}
	p.mu.Lock()
	p.lastAdjust = time.Now().Add(-200 * time.Millisecond)
	p.mu.Unlock()
	p.recover()
	if cur, low := p.Rates(); cur < 9.70 || cur > 9.75 || low > 9.41 {
		t.Errorf("after 0.2s: rate %v, lowest %v; want about 9.709, lowest 9.409", cur, low)
	}
	for i := 0; i < 200; i++ {
		p.Throttled(0)
	}
	if cur, _ := p.Rates(); cur != 0.5 {
		t.Errorf("after many throttles: rate %v; want the floor 0.5", cur)
	}
}

func TestDefaultWorkersSustainRateAtSlowAnswers(t *testing.T) {
	for _, qps := range []float64{1, 10, 25} {
		if w := DefaultWorkers(qps); float64(w) < qps*3 {
			t.Errorf("DefaultWorkers(%v) = %d; want at least %v for 3s answers", qps, w, qps*3)
		}
	}
}

// A request that reaches the wire late (a TLS handshake, a late timer)
// pushes the window: the next send is spaced from when it really left.
func TestPacerMeasuresFromTheWire(t *testing.T) {
	p := NewPacer(2) // 2 per 1.01s
	ctx := context.Background()
	start := time.Now()
	first, _ := p.Wait(ctx)
	p.Wait(ctx) // the limiter's next slot, ~0.5s
	first()     // the first request only now got its connection
	wire := time.Now()
	p.Wait(ctx)
	if got, want := time.Since(wire), time.Second; got < want-50*time.Millisecond {
		t.Errorf("third send %v after the first hit the wire (%v after start); want about %v", got, time.Since(start), want+PaceGuard)
	}
}

// A throttled row waits at least the service's x-acs-retry-after.
func TestRetryHonoursRetryAfter(t *testing.T) {
	wait := &cas.Error{Class: cas.Retryable, Code: "Throttling.User", HTTPStatus: 400, RetryAfter: 300 * time.Millisecond}
	cs, s := fakes(1, map[int64][]*cas.Error{1: {wait}}, 0)
	_, got := collect(context.Background(), rowsN(1), cs, fast(Config{}))
	if o := got[1]; o.Status != Succeeded || o.Attempts != 2 {
		t.Fatalf("outcome %+v", o)
	}
	if d := s.sends[1].Sub(s.sends[0]); d < 300*time.Millisecond {
		t.Errorf("retried %v after the throttle; want at least the 300ms retry-after", d)
	}
}

func TestBackoffIsCappedAndJittered(t *testing.T) {
	r := &runner{cfg: Config{BackoffBase: 100 * time.Millisecond, BackoffMax: time.Second}}
	e := &cas.Error{}
	for attempt := 1; attempt <= 30; attempt++ {
		ceil := min(time.Second, 100*time.Millisecond<<(attempt-1))
		seen := map[time.Duration]bool{}
		for i := 0; i < 20; i++ {
			d := r.backoff(attempt, e)
			if d < 0 || d > ceil {
				t.Fatalf("backoff(%d) = %v; want within [0, %v]", attempt, d, ceil)
			}
			seen[d] = true
		}
		if len(seen) < 5 {
			t.Errorf("backoff(%d) took only %d values in 20 draws; want jitter", attempt, len(seen))
		}
	}
}

// x-acs-retry-after holds every send of the run, not just the row's retry.
func TestPacerHoldsForRetryAfter(t *testing.T) {
	for _, qps := range []float64{10, 0.5} { // with and without the ring
		p := NewPacer(qps)
		p.Throttled(300 * time.Millisecond)
		start := time.Now()
		if _, err := p.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 280*time.Millisecond {
			t.Errorf("qps %v: sent %v after a 300ms retry-after", qps, d)
		}
	}
	p := NewPacer(10)
	p.Throttled(time.Hour)
	if p.holdUntil.After(time.Now().Add(maxHold)) {
		t.Errorf("a one-hour retry-after holds the run until %v; want at most %v", p.holdUntil, maxHold)
	}
}
