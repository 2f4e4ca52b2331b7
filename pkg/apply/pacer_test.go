package apply

import (
	"context"
	"math"
	"testing"
	"testing/synctest"
	"time"
)

func TestPacerRateCutIsForWideSends(t *testing.T) {
	p := NewPacer(10)
	wide, narrow := &Ticket{p: p}, &Ticket{p: p, narrow: true}
	p.Throttled(narrow, 0, 0)
	if cur, _ := p.Rates(); cur != 10 {
		t.Errorf("after a throttle of a narrow send: rate %v; want 10 (jitter is the guard's)", cur)
	}
	p.Throttled(wide, 0, 0)
	p.Throttled(wide, 0, 0)
	if cur, low := p.Rates(); cur < 9.40 || cur > 9.41 || low != cur {
		t.Fatalf("after two throttles of wide sends: rate %v, lowest %v; want 10 × 0.97² = 9.409", cur, low)
	}
	p.mu.Lock()
	p.lastAdjust = time.Now().Add(-200 * time.Millisecond)
	p.mu.Unlock()
	p.recover()
	if cur, low := p.Rates(); cur < 9.70 || cur > 9.75 || low > 9.41 {
		t.Errorf("after 0.2s: rate %v, lowest %v; want about 9.709, lowest 9.409", cur, low)
	}
	for range 200 {
		p.Throttled(wide, 0, 0)
	}
	if cur, _ := p.Rates(); cur != 0.5 {
		t.Errorf("after many throttles: rate %v; want the floor 0.5", cur)
	}
}

func TestPacerGuard(t *testing.T) {
	p := NewPacer(10)
	wide, narrow := &Ticket{p: p}, &Ticket{p: p, narrow: true}
	steps := []struct {
		name string
		do   func()
		want time.Duration
	}{
		{"start", func() {}, MinGuard},
		{"narrow throttled", func() { p.Throttled(narrow, 0, 0) }, MinGuard + guardStep},
		{"again", func() { p.Throttled(narrow, 0, 0) }, MinGuard + 2*guardStep},
		{"clean answer", func() { p.Clean(narrow) }, MinGuard + 2*guardStep - guardStep/50},
		{"wide throttled", func() { p.Throttled(wide, 0, 0) }, (MinGuard + 2*guardStep - guardStep/50) / 2},
		{"many clean answers", func() {
			for range 1000 {
				p.Clean(wide)
			}
		}, MinGuard},
		{"many narrow throttles", func() {
			for range 100 {
				p.Throttled(narrow, 0, 0)
			}
		}, MaxGuard},
	}
	for _, s := range steps {
		s.do()
		if g, _ := p.Guards(); g != s.want {
			t.Errorf("%s: guard %v; want %v", s.name, g, s.want)
		}
	}
	if _, widest := p.Guards(); widest != MaxGuard {
		t.Errorf("widest guard %v; want %v", widest, MaxGuard)
	}
}

// A narrow send's throttle widens the guard at once to the prior the round
// trips give, within bounds; a wide send's throttle ignores it.
func TestPacerGuardPrior(t *testing.T) {
	tests := []struct {
		name   string
		narrow bool
		spread time.Duration
		want   time.Duration
	}{
		{"no spread", true, 0, MinGuard + guardStep},
		{"small spread", true, 5 * time.Millisecond, MinGuard + guardStep},
		{"40ms spread", true, 40 * time.Millisecond, 80 * time.Millisecond},
		{"a slow, uneven service", true, time.Second, maxPrior},
		{"wide send", false, 40 * time.Millisecond, MinGuard},
	}
	for _, tt := range tests {
		p := NewPacer(10)
		p.Throttled(&Ticket{p: p, narrow: tt.narrow}, 0, tt.spread)
		if g, _ := p.Guards(); g != tt.want {
			t.Errorf("%s: guard %v; want %v", tt.name, g, tt.want)
		}
	}
}

// A fixed guard (the pacer before the guard learned, for comparison) never
// moves and every throttle cuts the rate.
func TestPacerFixedGuard(t *testing.T) {
	p := NewPacer(10)
	p.fix(70 * time.Millisecond)
	p.Throttled(&Ticket{p: p, narrow: true}, 0, time.Second)
	p.Throttled(&Ticket{p: p}, 0, 0)
	p.Clean(&Ticket{p: p})
	if g, _ := p.sendGuard(time.Now()); g != 70*time.Millisecond {
		t.Errorf("fixed guard moved to %v", g)
	}
	if cur, _ := p.Rates(); cur > 9.41 {
		t.Errorf("rate %v after two throttles; want both to cut it", cur)
	}
}

// Each send's guard is drawn either side of the guard, half and half, so
// the mean window, and with it the rate, is what the guard says.
func TestPacerDither(t *testing.T) {
	p := NewPacer(10)
	for _, tt := range []struct {
		guard      time.Duration
		throttled  bool
		narrow     time.Duration
		wide       time.Duration
		meanAtMost time.Duration
	}{
		{MinGuard, false, MinGuard / 2, MinGuard * 3 / 2, MinGuard},
		{80 * time.Millisecond, false, 40 * time.Millisecond, 120 * time.Millisecond, 80 * time.Millisecond},
		// Recent throttles set the probe's width so its halves differ.
		{MinGuard, true, narrowFloor, MinGuard + guardProbe, (narrowFloor + MinGuard + guardProbe) / 2},
		{80 * time.Millisecond, true, 80*time.Millisecond - guardProbe, 80*time.Millisecond + guardProbe, 80 * time.Millisecond},
	} {
		now := time.Now()
		p.guard, p.lastThrottle = tt.guard, time.Time{}
		if tt.throttled {
			p.lastThrottle = now.Add(-time.Second)
		}
		var sum time.Duration
		narrows := 0
		const n = 2000
		for range n {
			g, narrow := p.sendGuard(now)
			sum += g
			if narrow {
				narrows++
				if g != tt.narrow {
					t.Fatalf("guard %v: narrow send got %v; want %v", tt.guard, g, tt.narrow)
				}
			} else if g != tt.wide {
				t.Fatalf("guard %v: wide send got %v; want %v", tt.guard, g, tt.wide)
			}
		}
		if narrows < n*45/100 || narrows > n*55/100 {
			t.Errorf("guard %v: %d of %d sends narrow; want about half", tt.guard, narrows, n)
		}
		if mean := sum / n; mean > tt.meanAtMost+time.Millisecond || mean < tt.meanAtMost-3*time.Millisecond {
			t.Errorf("guard %v: mean send guard %v; want about %v", tt.guard, mean, tt.meanAtMost)
		}
	}
}

// Fractional rates are paced exactly: the long-run rate is qps (but for
// the guard's share when ceil(qps)/(1s+guard) is less), and no sliding
// second holds more than ceil(qps) sends.
func TestPacerFractionalRates(t *testing.T) {
	for _, qps := range []float64{9.5, 7.5, 10, 2.5, 0.5} {
		synctest.Test(t, func(t *testing.T) {
			p := NewPacer(qps)
			var sends []time.Time
			end := time.Now().Add(60 * time.Second)
			for time.Now().Before(end) {
				tk, err := p.Wait(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				tk.OnWire()
				sends = append(sends, time.Now())
			}
			span := sends[len(sends)-1].Sub(sends[0]).Seconds()
			got := float64(len(sends)-1) / span
			want := min(qps, math.Ceil(qps)/(1+MinGuard.Seconds()))
			if got < want*0.99 || got > qps {
				t.Errorf("qps %v: long-run rate %.3f; want %.3f", qps, got, want)
			}
			if n, at := mostInAnySecond(sends); n > int(math.Ceil(qps)) {
				t.Errorf("qps %v: %d sends in the second from %v; want at most %v", qps, n, at, math.Ceil(qps))
			}
		})
	}
}

// --qps 1e12 must not allocate in proportion.
func TestPacerMemoryIsBounded(t *testing.T) {
	p := NewPacer(1e12)
	if len(p.ring) != MaxQPS || p.maxQPS != MaxQPS {
		t.Errorf("NewPacer(1e12): ring of %d, rate %v; want %d, %d", len(p.ring), p.maxQPS, MaxQPS, MaxQPS)
	}
	if n := testing.AllocsPerRun(1, func() { NewPacer(1e12) }); n > 10 {
		t.Errorf("NewPacer(1e12) allocates %v times", n)
	}
}

// A request that reaches the wire late (a TLS handshake, a late timer)
// pushes the window: the next send is spaced from when it really left.
func TestPacerMeasuresFromTheWire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := NewPacer(2) // 2 per second and a guard
		ctx := context.Background()
		first, _ := p.Wait(ctx)
		p.Wait(ctx)             // the limiter's next slot, 0.5s
		time.Sleep(time.Second) // the first request only now gets its connection
		first.OnWire()
		wire := time.Now()
		p.Wait(ctx)
		if got := time.Since(wire); got < time.Second+narrowFloor {
			t.Errorf("third send %v after the first hit the wire; want at least %v", got, time.Second+narrowFloor)
		}
	})
}

// OnWire moves only its own send's stamp: a slot reused since is left alone.
func TestPacerOnWireAfterSlotReuse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := NewPacer(1)
		old, _ := p.Wait(context.Background())
		newer, _ := p.Wait(context.Background()) // same slot, a second later
		stamp := p.ring[newer.slot].at
		time.Sleep(5 * time.Second)
		old.OnWire()
		if got := p.ring[newer.slot].at; !got.Equal(stamp) {
			t.Errorf("a late OnWire of an earlier send moved the slot's stamp from %v to %v", stamp, got)
		}
	})
}

// x-acs-retry-after holds every send of the run, not just the row's retry.
func TestPacerHoldsForRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, qps := range []float64{10, 0.5} {
			p := NewPacer(qps)
			p.Throttled(&Ticket{p: p}, 300*time.Millisecond, 0)
			start := time.Now()
			if _, err := p.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d < 300*time.Millisecond {
				t.Errorf("qps %v: sent %v after a 300ms retry-after", qps, d)
			}
		}
		p := NewPacer(10)
		p.Throttled(&Ticket{p: p}, time.Hour, 0)
		if p.holdUntil.After(time.Now().Add(maxHold)) {
			t.Errorf("a one-hour retry-after holds the run until %v; want at most %v", p.holdUntil, maxHold)
		}
	})
}

func TestEstimate(t *testing.T) {
	tests := []struct {
		rows int
		qps  float64
		want time.Duration
	}{
		{0, 10, 0},
		{1, 10, 0},
		{1001, 10, 101 * time.Second}, // 100 windows of 1.01s
		{951, 9.5, 100 * time.Second}, // the rate binds
		{101, 0.5, 200 * time.Second},
		{1_000_001, 1e12, 101 * time.Second}, // paced at MaxQPS (10000)
	}
	for _, tt := range tests {
		if got := Estimate(tt.rows, tt.qps); got != tt.want {
			t.Errorf("Estimate(%d, %v) = %v; want %v", tt.rows, tt.qps, got, tt.want)
		}
	}
}
