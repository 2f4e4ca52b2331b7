package apply

import (
	"context"
	"math"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestPacerGuard(t *testing.T) {
	p := NewPacer(10)
	wide, narrow := &Ticket{p: p}, &Ticket{p: p, narrow: true}
	steps := []struct {
		name string
		do   func()
		want time.Duration
	}{
		{"start", func() {}, MinGuard},
		{"narrow throttled", func() { p.Throttled(narrow, 0) }, MinGuard + guardStep},
		{"again", func() { p.Throttled(narrow, 0) }, MinGuard + 2*guardStep},
		{"clean answer", func() { p.Clean(narrow) }, MinGuard + 2*guardStep - guardStep/50},
		{"wide throttled", func() { p.Throttled(wide, 0) }, (MinGuard + 2*guardStep - guardStep/50) / 2},
		{"many clean answers", func() {
			for range 1000 {
				p.Clean(wide)
			}
		}, MinGuard},
		{"many narrow throttles", func() {
			for range 100 {
				p.Throttled(narrow, 0)
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

// A narrow send's throttle widens the guard by a step; when it says when
// the window frees (the limit speaking) it also makes the pacer take long
// round trips as late arrivals. A wide send's throttle halves the guard
// and teaches nothing about arrivals.
func TestPacerThrottleLessons(t *testing.T) {
	const wait = 300 * time.Millisecond
	tests := []struct {
		name      string
		narrow    bool
		wait      time.Duration
		wantGuard time.Duration
		wantLate  float64
	}{
		{"narrow, the limit", true, wait, MinGuard + guardStep, 1},
		{"narrow, no wait given", true, 0, MinGuard + guardStep, 0},
		{"wide", false, wait, MinGuard, 0},
	}
	for _, tt := range tests {
		p := NewPacer(10)
		p.Throttled(&Ticket{p: p, narrow: tt.narrow}, tt.wait)
		if g, _ := p.Guards(); g != tt.wantGuard || p.late != tt.wantLate {
			t.Errorf("%s: guard %v, lateness weight %v; want %v, %v", tt.name, g, p.late, tt.wantGuard, tt.wantLate)
		}
	}
}

// Once arrivals are known to be late, an answer's round trip beyond the
// shortest moves its send's stamp (at most maxLate), so the send that
// reuses the slot leaves that much later; before that, or for a send the
// service did not count, or once the slot is reused, it moves nothing.
func TestPacerLateArrivals(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		late    float64
		rtt     time.Duration
		counted bool
		reused  bool
		want    time.Duration
	}{
		{"not learned", 0, 60 * ms, true, false, 0},
		{"learned", 1, 60 * ms, true, false, 50 * ms},
		{"half worn off", 0.5, 60 * ms, true, false, 25 * ms},
		{"capped", 1, 2 * time.Second, true, false, maxLate},
		{"throttled: not counted", 1, 60 * ms, false, false, 0},
		{"slot reused", 1, 60 * ms, true, true, 0},
	}
	for _, tt := range tests {
		p := NewPacer(10)
		p.late = tt.late
		sent := time.Now().Add(-time.Second)
		p.answered(&Ticket{p: p, slot: 1, seq: 1, wire: sent}, sent.Add(10*ms), true) // the shortest: 10ms
		p.ring[2] = stamp{at: sent, seq: 2}
		seq := uint64(2)
		if tt.reused {
			seq = 1
		}
		p.answered(&Ticket{p: p, slot: 2, seq: seq, wire: sent}, sent.Add(tt.rtt), tt.counted)
		if got := p.ring[2].at.Sub(sent); got != tt.want {
			t.Errorf("%s: stamp moved %v; want %v", tt.name, got, tt.want)
		}
	}
}

// Clean answers wear the lateness off, and the shortest round trip is
// the shortest of the last one to two epochs, so a slower route is
// followed.
func TestPacerLatenessWearsOff(t *testing.T) {
	p := NewPacer(10)
	p.late = 1
	sent := time.Now()
	for i := range 2 * rttEpoch {
		rtt := 50 * time.Millisecond
		if i == 0 {
			rtt = 5 * time.Millisecond
		}
		p.Clean(&Ticket{p: p, seq: 99, wire: sent.Add(-rtt)})
	}
	if p.late > 1-2*rttEpoch*lateForget+1e-9 {
		t.Errorf("lateness weight %v after %d clean answers; want %v", p.late, 2*rttEpoch, 1-2*rttEpoch*lateForget)
	}
	p.Clean(&Ticket{p: p, seq: 99, wire: sent.Add(-50 * time.Millisecond)})
	if d := p.rttMin[1]; d < 49*time.Millisecond {
		t.Errorf("shortest round trip of the previous epoch %v; want the 5ms of two epochs ago forgotten", d)
	}
}

// A fixed guard (the pacer before the guard learned, for comparison)
// never moves and is not dithered.
func TestPacerFixedGuard(t *testing.T) {
	p := NewPacer(10)
	p.fix(70 * time.Millisecond)
	p.Throttled(&Ticket{p: p, narrow: true}, time.Second)
	p.Throttled(&Ticket{p: p}, 0)
	p.Clean(&Ticket{p: p})
	for range 10 {
		if g, narrow := p.sendGuard(time.Now()); g != 70*time.Millisecond || narrow {
			t.Fatalf("fixed guard drew %v (narrow %v); want 70ms, not narrow", g, narrow)
		}
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
			p.Throttled(&Ticket{p: p}, 300*time.Millisecond)
			start := time.Now()
			if _, err := p.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d < 300*time.Millisecond {
				t.Errorf("qps %v: sent %v after a 300ms retry-after", qps, d)
			}
		}
		p := NewPacer(10)
		p.Throttled(&Ticket{p: p}, time.Hour)
		if most := maxHold + 100*time.Millisecond; p.holdUntil.After(time.Now().Add(most)) {
			t.Errorf("a one-hour retry-after holds the run until %v; want at most %v (the cap and one interval)", time.Until(p.holdUntil), most)
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

// sendsOf runs n goroutines that each take k tickets from p (rows waiting at
// the pacer, as in a run) and returns the send times, sorted.
func sendsOf(p *Pacer, n, k int) []time.Time {
	var mu sync.Mutex
	var sends []time.Time
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for range k {
				tk, err := p.Wait(context.Background())
				if err != nil {
					return
				}
				tk.OnWire()
				mu.Lock()
				sends = append(sends, time.Now())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.SortFunc(sends, func(a, b time.Time) int { return a.Compare(b) })
	return sends
}

func closestGap(ts []time.Time) time.Duration {
	gap := time.Duration(math.MaxInt64)
	for i := 1; i < len(ts); i++ {
		gap = min(gap, ts[i].Sub(ts[i-1]))
	}
	return gap
}

// A cut takes effect at the next send: the rows already queued for a
// token at the old pace queue again at the new one.
func TestPacerCutAppliesAtTheNextSend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := NewPacer(10)
		go func() {
			time.Sleep(time.Second + 50*time.Millisecond)
			p.mu.Lock()
			p.rate.cur, p.rate.from, p.rate.lastCut = 2, 2, time.Now()
			p.repace()
			p.mu.Unlock()
		}()
		sends := sendsOf(p, 6, 4)
		var after []time.Time
		for _, s := range sends {
			if s.Sub(sends[0]) > time.Second+50*time.Millisecond {
				after = append(after, s)
			}
		}
		// At 2/s, 500ms apart (less the growth since the cut: 2% in the
		// first 1.5s), the first one 500ms after the last send before it.
		if g := closestGap(after[:4]); g < 480*time.Millisecond {
			t.Errorf("after the cut to 2/s, two sends %v apart; want about 500ms", g)
		}
		if d := after[0].Sub(sends[len(sends)-len(after)-1]); d < 490*time.Millisecond {
			t.Errorf("first send after the cut %v after the one before; want about 500ms", d)
		}
	})
}

// The rows held by x-acs-retry-after leave one interval apart after the
// hold, not together at its end.
func TestPacerHeldRowsLeaveSpaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := NewPacer(10)
		first, _ := p.Wait(context.Background())
		first.OnWire()
		p.Throttled(first, 500*time.Millisecond)
		sends := sendsOf(p, 8, 1)
		if d := sends[0].Sub(first.at); d < 500*time.Millisecond {
			t.Errorf("first send %v after the throttled one; want the 500ms hold at least", d)
		}
		if g := closestGap(sends); g < 99*time.Millisecond {
			t.Errorf("rows held left %v apart; want one interval, 100ms", g)
		}
	})
}

// Two runs throttled by the same full window are told the same moment; each
// leaves at its own random point of the next interval.
func TestPacerHoldsEndApart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		now := time.Now()
		var ends []time.Duration
		for range 20 {
			p := NewPacer(10)
			p.Throttled(&Ticket{p: p, at: now}, 300*time.Millisecond)
			ends = append(ends, p.holdUntil.Sub(now))
		}
		slices.Sort(ends)
		if ends[0] < 300*time.Millisecond || ends[len(ends)-1] > 400*time.Millisecond {
			t.Errorf("holds end %v to %v after the send; want within 300ms and 300ms + one interval", ends[0], ends[len(ends)-1])
		}
		if spread := ends[len(ends)-1] - ends[0]; spread < 50*time.Millisecond {
			t.Errorf("20 pacers' holds end within %v of each other; want them spread over the interval", spread)
		}
	})
}

// A clean answer to a send made after the throttled one, inside the wait
// it named, shows the window had room: the run's hold ends then (the row
// itself still waits, see retryDelay), the throttle counts as one without
// a wait, and it leaves no lateness behind. A clean answer to an earlier
// send says nothing of the window after the throttle: the hold stays.
func TestPacerCleanAnswerEndsAHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, tt := range []struct {
			name  string
			later time.Duration // send time of the clean answer, after the throttled send
			want  time.Duration // least time the next send waits
		}{
			{"a later send got through", 10 * time.Millisecond, 0},
			{"an earlier send got through", -10 * time.Millisecond, 300 * time.Millisecond},
		} {
			p := NewPacer(40)
			sent := time.Now()
			throttled := &Ticket{p: p, at: sent, narrow: true}
			clean := &Ticket{p: p, at: sent.Add(tt.later)}
			time.Sleep(50 * time.Millisecond)
			p.Throttled(throttled, 300*time.Millisecond)
			got := make(chan time.Duration)
			start := time.Now()
			go func() {
				if _, err := p.Wait(context.Background()); err != nil {
					t.Error(err)
				}
				got <- time.Since(start)
			}()
			time.Sleep(20 * time.Millisecond)
			p.Clean(clean)
			d := <-got
			if tt.want == 0 && d > 100*time.Millisecond || d < tt.want-50*time.Millisecond {
				t.Errorf("%s: the next send waited %v; want %v", tt.name, d, tt.want)
			}
			p.mu.Lock()
			late, waited := p.late, 0
			for _, b := range p.rate.evidence {
				waited += b.waited
			}
			p.mu.Unlock()
			if tt.want == 0 && (late != 0 || waited != 0) {
				t.Errorf("%s: late %v, %d waited throttles after the hold was refuted; want 0, 0", tt.name, late, waited)
			}
		}
	})
}
