package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
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
	made     int
	ids      []int64
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
	s.ids = append(s.ids, id)
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

// fakes returns a factory of fakes sharing one script and one record.
func fakes(script map[int64][]*cas.Error, delay time.Duration) (func() (Assigner, error), *sharedState) {
	s := &sharedState{calls: map[int64]int{}}
	return func() (Assigner, error) {
		s.mu.Lock()
		s.made++
		s.mu.Unlock()
		return &fake{script: script, delay: delay, shared: s}, nil
	}, s
}

func rowsN(n int) []plan.Row {
	rows := make([]plan.Row, n)
	for i := range rows {
		rows[i] = plan.Row{Line: int32(i + 2), ID: int64(i + 1), CertTotalCount: int32(i)}
	}
	return rows
}

func collect(ctx context.Context, rows []plan.Row, newAssigner func() (Assigner, error), cfg Config) (Stats, map[int64]Outcome) {
	got := map[int64]Outcome{}
	var mu sync.Mutex
	st := Run(ctx, rows, newAssigner, cfg, func(o Outcome) error {
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
	cfg.QPS = MaxQPS
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
		// A throttle is retried whatever class pkg/cas gave it.
		7: {{Class: cas.RowFinal, Code: "Throttling.Api", HTTPStatus: 429}},
	}
	newA, s := fakes(script, 0)
	st, got := collect(context.Background(), rowsN(7), newA, fast(Config{MaxAttempts: 3, Workers: 4}))
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
		{7, Succeeded, 2, "", ""},
	}
	for _, tt := range tests {
		o := got[tt.id]
		code := ""
		if o.Err != nil {
			code = o.Err.Code
		}
		if o.Status != tt.status || o.Attempts != tt.attempts || code != tt.code || o.Lost != tt.lost || o.CutShort {
			t.Errorf("row %d = %s, %d attempts, code %q, lost %q, cut short %v; want %s, %d, %q, %q, not cut short",
				tt.id, o.Status, o.Attempts, code, o.Lost, o.CutShort, tt.status, tt.attempts, tt.code, tt.lost)
		}
	}
	if st.Succeeded != 5 || st.Failed != 2 || st.Requests != 13 || st.Retries != 6 || st.Throttled != 3 || st.Stop != nil || st.CutShort != 0 {
		t.Errorf("stats = %+v", st)
	}
	if len(s.sends) != 13 {
		t.Errorf("%d sends; want 13", len(s.sends))
	}
	if st.Goodput() <= 0 || st.RunGoodput() <= 0 || st.FirstSuccess.After(st.LastSuccess) {
		t.Errorf("goodput %v, run goodput %v, successes %v..%v", st.Goodput(), st.RunGoodput(), st.FirstSuccess, st.LastSuccess)
	}
}

func TestRunBoundsConcurrency(t *testing.T) {
	newA, s := fakes(nil, 5*time.Millisecond)
	st, _ := collect(context.Background(), rowsN(40), newA, fast(Config{Workers: 3}))
	if s.maxIn > 3 || st.Workers > 3 || st.MaxInFlight > 3 || s.made > 3 {
		t.Errorf("%d requests in flight at once, limit %d, %d assigners made; want at most 3 each", s.maxIn, st.Workers, s.made)
	}
}

func TestRunFatalStopsSending(t *testing.T) {
	script := map[int64][]*cas.Error{5: {badKey}}
	newA, s := fakes(script, 10*time.Millisecond)
	var mu sync.Mutex
	var fatalAt time.Time // when the runner has the fatal answer in hand
	cfg := fast(Config{Workers: 2, OnAttempt: func(a Attempt) {
		if a.Err != nil && a.Err.Class == cas.Fatal {
			mu.Lock()
			fatalAt = time.Now()
			mu.Unlock()
		}
	}})
	st, got := collect(context.Background(), rowsN(50), newA, cfg)
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
	if len(got) != 50 || st.Succeeded+st.Failed+st.NotAttempted != 50 || st.NotAttempted < 43 || st.CutShort != st.NotAttempted {
		t.Errorf("reported %d rows, stats %+v; want all 50, at least 43 not attempted, all of them cut short", len(got), st)
	}
}

func TestRunMaxFailures(t *testing.T) {
	script := map[int64][]*cas.Error{}
	for id := int64(1); id <= 10; id++ {
		script[id] = []*cas.Error{invalid}
	}
	newA, _ := fakes(script, 5*time.Millisecond)
	st, _ := collect(context.Background(), rowsN(30), newA, fast(Config{Workers: 1, LimitFailures: true, MaxFailures: 3}))
	// The 4th failure stops admission; a row already admitted may follow.
	if !errors.Is(st.Stop, ErrMaxFailures) || st.Failed < 4 || st.Failed > 6 || st.NotAttempted < 24 {
		t.Errorf("stats = %+v; want a stop after the 4th failure", st)
	}
}

func TestRunDeadlineAndCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		newA, _ := fakes(nil, 0)
		cfg := Config{QPS: 100, Deadline: time.Now().Add(150 * time.Millisecond)}
		st, _ := collect(context.Background(), rowsN(100), newA, cfg)
		if !errors.Is(st.Stop, ErrDeadline) || st.NotAttempted == 0 || st.Succeeded == 0 || st.Succeeded+st.NotAttempted != 100 {
			t.Errorf("deadline stats = %+v", st)
		}

		ctx, cancel := context.WithCancel(context.Background())
		newA, _ = fakes(nil, 0)
		time.AfterFunc(150*time.Millisecond, cancel)
		st, _ = collect(ctx, rowsN(100), newA, Config{QPS: 100})
		if !errors.Is(st.Stop, context.Canceled) || st.NotAttempted == 0 || st.Succeeded+st.NotAttempted != 100 {
			t.Errorf("cancel stats = %+v", st)
		}
	})
}

// A stop that comes once every row has finished costs nothing, and the run
// says so: no Stop, nothing cut short, no row reported interrupted.
func TestRunStopAfterTheLastRowChangesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, name := range []string{"cancel", "deadline"} {
			ctx, cancel := context.WithCancel(context.Background())
			newA, _ := fakes(nil, 0)
			cfg := Config{QPS: 100}
			var last atomic.Int32
			st := Run(ctx, rowsN(10), newA, cfg, func(o Outcome) error {
				if last.Add(1) == 10 {
					// The stop lands after the last row is done, before Run
					// returns.
					if name == "cancel" {
						cancel()
					} else {
						time.Sleep(time.Millisecond)
					}
				}
				return nil
			})
			cancel()
			if st.Stop != nil || st.CutShort != 0 || st.Succeeded != 10 {
				t.Errorf("%s after the last row: Stop %v, cut short %d, succeeded %d; want nil, 0, 10", name, st.Stop, st.CutShort, st.Succeeded)
			}
		}
	})
}

// A row stopped while it waits to retry keeps its last error and says the
// stop cut it short; rows that finished are untouched.
func TestRunStopDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		newA, _ := fakes(map[int64][]*cas.Error{2: {timeout}}, 0)
		ctx, cancel := context.WithCancel(context.Background())
		cfg := Config{QPS: 100, BackoffBase: time.Hour, BackoffMax: time.Hour}
		time.AfterFunc(2*time.Second, cancel)
		st, got := collect(ctx, rowsN(3), newA, cfg)
		if o := got[2]; o.Status != Failed || !o.CutShort || o.Err.Code != cas.CodeClientTimeout {
			t.Errorf("row 2 = %+v; want failed with its timeout, cut short", o)
		}
		if got[1].CutShort || got[3].CutShort || st.CutShort != 1 || !errors.Is(st.Stop, context.Canceled) {
			t.Errorf("stats %+v; want only row 2 cut short and the cancel as the stop", st)
		}
	})
}

// The pacer's guarantee: never more than ceil(qps) sends in any second.
func TestRunNeverExceedsRateInAnySecond(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 3s")
	}
	newA, s := fakes(nil, 2*time.Millisecond)
	const qps = 40
	collect(context.Background(), rowsN(3*qps+1), newA, Config{QPS: qps})
	if n, at := mostInAnySecond(s.sends); n > qps {
		t.Fatalf("%d sends in the second from %v; want at most %d", n, at, qps)
	}
}

// mostInAnySecond is the most sends in any window [t, t+1s).
func mostInAnySecond(sends []time.Time) (int, time.Time) {
	s := slices.Clone(sends)
	slices.SortFunc(s, func(a, b time.Time) int { return a.Compare(b) })
	most, at := 0, time.Time{}
	j := 0
	for i := range s {
		for s[i].Sub(s[j]) >= time.Second {
			j++
		}
		if i-j+1 > most {
			most, at = i-j+1, s[j]
		}
	}
	return most, at
}

func TestDefaultWorkers(t *testing.T) {
	tests := []struct {
		qps     float64
		timeout time.Duration
		atLeast int // qps × timeout: every call as slow as the timeout
		atMost  int
	}{
		{1, 0, 10, 20},
		{10, 0, 100, 150},
		{10, 30 * time.Second, 300, 400},
		{0.1, 0, poolStart, poolStart},
		{1e12, 0, MaxWorkers, MaxWorkers},
	}
	for _, tt := range tests {
		if w := DefaultWorkers(tt.qps, tt.timeout); w < tt.atLeast || w > tt.atMost {
			t.Errorf("DefaultWorkers(%v, %v) = %d; want %d..%d", tt.qps, tt.timeout, w, tt.atLeast, tt.atMost)
		}
	}
}

// A throttled row waits at least the service's x-acs-retry-after, capped.
func TestRetryHonoursRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, tt := range []struct{ retryAfter, want time.Duration }{
			{300 * time.Millisecond, 300 * time.Millisecond},
			{time.Hour, MaxRetryAfter},
		} {
			wait := &cas.Error{Class: cas.Retryable, Code: "Throttling.User", HTTPStatus: 400, RetryAfter: tt.retryAfter}
			newA, s := fakes(map[int64][]*cas.Error{1: {wait}}, 0)
			_, got := collect(context.Background(), rowsN(1), newA, fast(Config{}))
			if o := got[1]; o.Status != Succeeded || o.Attempts != 2 {
				t.Fatalf("outcome %+v", o)
			}
			if d := s.sends[1].Sub(s.sends[0]); d < tt.want || d > tt.want+time.Second {
				t.Errorf("retry-after %v: retried %v after the throttle; want %v", tt.retryAfter, d, tt.want)
			}
		}
	})
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

// The breaker stops a run whose first rows all fail with one code nobody
// listed, after about BreakerRows requests.
func TestBreaker(t *testing.T) {
	odd := &cas.Error{Class: cas.RowFinal, Code: "InvalidFoo.Unheard", HTTPStatus: 400, Message: "no such thing"}
	other := &cas.Error{Class: cas.RowFinal, Code: "InvalidBar", HTTPStatus: 400}
	all := func(e *cas.Error, ids ...int64) map[int64][]*cas.Error {
		m := map[int64][]*cas.Error{}
		for id := int64(1); id <= 500; id++ {
			if !slices.Contains(ids, id) {
				m[id] = []*cas.Error{e}
			}
		}
		return m
	}
	mixed := all(odd)
	mixed[7] = []*cas.Error{other}
	// Sends past the N-th are the calls in flight when it trips: about
	// rate × latency.
	tests := []struct {
		name     string
		script   map[int64][]*cas.Error
		latency  time.Duration
		rows     int
		tripped  bool
		maxSends int
	}{
		{"same code", all(odd), 50 * time.Millisecond, 20, true, 25},
		{"same code, 1s answers", all(odd), time.Second, 20, true, 20 + 10 + 5},
		{"same code, small breaker", all(odd), 50 * time.Millisecond, 3, true, 8},
		{"mixed codes", mixed, 50 * time.Millisecond, 20, false, 500},
		{"a success among them", all(odd, 12), 50 * time.Millisecond, 20, false, 500},
		{"off", all(odd), 50 * time.Millisecond, 0, false, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				newA, s := fakes(tt.script, tt.latency)
				st, got := collect(context.Background(), rowsN(500), newA, Config{BreakerRows: tt.rows})
				if len(got) != 500 {
					t.Fatalf("%d rows reported; want 500", len(got))
				}
				if !tt.tripped {
					if st.Stop != nil || len(s.sends) != 500 {
						t.Errorf("Stop %v after %d sends; want no stop, 500 sends", st.Stop, len(s.sends))
					}
					return
				}
				if !errors.Is(st.Stop, ErrFatal) || st.Fatal == nil || st.Fatal.Class != cas.Fatal || st.Fatal.Code != odd.Code {
					t.Fatalf("Stop %v, Fatal %v; want a fatal stop naming %s", st.Stop, st.Fatal, odd.Code)
				}
				if msg := st.Fatal.Error(); !strings.Contains(msg, fmt.Sprintf("first %d finished rows", tt.rows)) || !strings.Contains(msg, odd.Message) {
					t.Errorf("fatal message %q; want it to say why and keep the service's message", msg)
				}
				t.Logf("%d requests sent", len(s.sends))
				if n := len(s.sends); n < tt.rows || n > tt.maxSends {
					t.Errorf("%d requests sent; want %d..%d", n, tt.rows, tt.maxSends)
				}
			})
		})
	}
}

// A factory that fails stops the run as fatal; nothing is sent.
func TestRunAssignerSetupFails(t *testing.T) {
	newA := func() (Assigner, error) { return nil, errors.New("no region") }
	st, got := collect(context.Background(), rowsN(5), newA, fast(Config{}))
	if !errors.Is(st.Stop, ErrFatal) || st.Fatal == nil || !strings.Contains(st.Fatal.Message, "no region") || st.Requests != 0 || len(got) != 5 || st.NotAttempted != 5 {
		t.Errorf("stats %+v, fatal %v; want a fatal stop, 5 rows not attempted", st, st.Fatal)
	}
}
