package casemu

import (
	"math"
	mrand "math/rand/v2"
	"slices"
	"testing"
	"time"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func ms(n float64) time.Time { return epoch.Add(time.Duration(n * float64(time.Millisecond))) }

// Arrivals in the order they are decided, as stamps in ms, with the
// verdicts and waits the limit must give.
func TestWindowArrive(t *testing.T) {
	type arrival struct {
		at   float64
		ok   bool
		wait float64 // ms, when refused
	}
	tests := []struct {
		name     string
		limit    int
		arrivals []arrival
		busiest  int
		refusals bool // countRefusals
	}{
		{"in order, the 3rd within a second waits for the 1st to leave", 2,
			[]arrival{{0, true, 0}, {400, true, 0}, {900, false, 100}, {1000, true, 0}}, 3, false},
		{"exactly a window apart is two windows", 1,
			[]arrival{{0, true, 0}, {1000, true, 0}, {2000, true, 0}}, 1, false},
		{"equal stamps", 2,
			[]arrival{{500, true, 0}, {500, true, 0}, {500, false, 1000}}, 3, false},
		// Sent first, delayed more: 900 was admitted before 500 arrived out
		// of order; 500 cannot join without putting two in (x-1s, x] for
		// x in [900, 1500), and 900 leaves every window holding it at 1900.
		{"an earlier stamp decided later is judged against the later one", 1,
			[]arrival{{900, true, 0}, {500, false, 1400}}, 2, false},
		// 1100 was decided first; 1050 fits beside it ((100ms, 1100ms]
		// holds two), 1060 would make three there, and fits only once
		// 1050 has left every window holding it, at 2050.
		{"out of order, windows ending after the stamp count", 2,
			[]arrival{{0, true, 0}, {1100, true, 0}, {1050, true, 0}, {1060, false, 990}}, 3, false},
		{"limit off admits all", -1,
			[]arrival{{0, true, 0}, {1, true, 0}, {2, true, 0}}, 3, false},
		// The refusal at 900 takes a slot: 1000 would be admitted had it
		// not been counted (first case), and is refused until 400 and 900
		// leave; 1900 fits beside 1000's refusal once 900 has gone.
		{"counted refusals keep the window full", 2,
			[]arrival{{0, true, 0}, {400, true, 0}, {900, false, 500}, {1000, false, 900}, {1900, true, 0}}, 3, true},
		{"counted refusals: the wait is for a slot beside the refusal", 1,
			[]arrival{{0, true, 0}, {500, false, 1000}}, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := window{countRefusals: tt.refusals}
			most := 0
			for i, a := range tt.arrivals {
				ok, wait, busiest := w.arrive(ms(a.at), tt.limit, time.Second)
				most = max(most, busiest)
				want := time.Duration(a.wait * float64(time.Millisecond))
				if ok != a.ok || (!ok && wait != want) {
					t.Errorf("arrival %d at %vms: ok %v wait %v; want ok %v wait %v", i, a.at, ok, wait, a.ok, want)
				}
			}
			if most != tt.busiest {
				t.Errorf("busiest window = %d; want %d", most, tt.busiest)
			}
		})
	}
}

// mostInAnyWindow counts, by brute force, the most stamps in any window
// (y-width, y]; it is enough to end windows at the stamps.
func mostInAnyWindow(ts []time.Time, width time.Duration) int {
	most := 0
	for _, y := range ts {
		n := 0
		for _, s := range ts {
			if s.After(y.Add(-width)) && !s.After(y) {
				n++
			}
		}
		most = max(most, n)
	}
	return most
}

// jitteredStamps sends n requests evenly every gap and delays each by a
// normal one-way delay, cut at 0, as the server does.
func jitteredStamps(seed uint64, n int, gap, mean, sd time.Duration) []time.Time {
	rng := mrand.New(mrand.NewPCG(seed, seed))
	ts := make([]time.Time, n)
	for i := range ts {
		ts[i] = epoch.Add(time.Duration(i)*gap + jitterDraw(mean, sd, rng.NormFloat64()))
	}
	return ts
}

// Against brute force, over jittered arrivals decided in the order they
// were sent (so out of stamp order): no window ever holds more than the
// limit of admitted calls; every refusal was needed; each wait is the
// first moment the call would have fitted; and the busiest window is
// exact.
func TestWindowMatchesBruteForce(t *testing.T) {
	const width = time.Second
	for seed := uint64(1); seed <= 20; seed++ {
		limit := 1 + int(seed%12)
		stamps := jitteredStamps(seed, 150, 90*time.Millisecond, 40*time.Millisecond, 60*time.Millisecond)
		var w window
		var admitted []time.Time
		busiest := 0
		for i, at := range stamps {
			ok, wait, most := w.arrive(at, limit, width)
			busiest = max(busiest, most)
			if got := mostInAnyWindow(append(slices.Clone(admitted), at), width); ok != (got <= limit) {
				t.Fatalf("seed %d arrival %d: ok=%v but admitting it makes a window of %d (limit %d)", seed, i, ok, got, limit)
			}
			if ok {
				admitted = append(admitted, at)
				continue
			}
			fitsAt := func(c time.Time) bool { return mostAround2(admitted, c, width) <= limit }
			if !fitsAt(at.Add(wait)) {
				t.Fatalf("seed %d arrival %d: told to wait %v, but would not fit then", seed, i, wait)
			}
			for k := 0; k < 200; k++ {
				c := at.Add(wait * time.Duration(k) / 200)
				if fitsAt(c) {
					t.Fatalf("seed %d arrival %d: told to wait %v, but would have fitted after %v", seed, i, wait, c.Sub(at))
				}
			}
		}
		if want := mostInAnyWindow(stamps, width); busiest != want {
			t.Errorf("seed %d: busiest window %d; brute force says %d", seed, busiest, want)
		}
		if got := mostInAnyWindow(admitted, width); got > limit {
			t.Errorf("seed %d: %d admitted in one window; limit %d", seed, got, limit)
		}
	}
}

// mostAround2 is mostInAnyWindow restricted to windows holding c, by
// brute force, with c added.
func mostAround2(ts []time.Time, c time.Time, width time.Duration) int {
	all := append(slices.Clone(ts), c)
	most := 0
	for _, y := range all {
		if y.Before(c) || !y.Before(c.Add(width)) {
			continue
		}
		n := 0
		for _, s := range all {
			if s.After(y.Add(-width)) && !s.After(y) {
				n++
			}
		}
		most = max(most, n)
	}
	return most
}

// Decided in stamp order, the window is the plain sliding-second limiter:
// admit when fewer than limit admitted calls are in (t-1s, t].
func TestWindowInOrderIsPlainLimiter(t *testing.T) {
	stamps := jitteredStamps(7, 400, 80*time.Millisecond, 40*time.Millisecond, 30*time.Millisecond)
	slices.SortFunc(stamps, func(a, b time.Time) int { return a.Compare(b) })
	var w window
	var admitted []time.Time
	for i, at := range stamps {
		n := 0
		for _, s := range admitted {
			if s.After(at.Add(-time.Second)) {
				n++
			}
		}
		ok, _, _ := w.arrive(at, 10, time.Second)
		if ok != (n < 10) {
			t.Fatalf("arrival %d: ok=%v with %d admitted in the second before", i, ok, n)
		}
		if ok {
			admitted = append(admitted, at)
		}
	}
}

// The point of arrival jitter: sends paced at exactly 10 per second land
// 11 (or more) in some second, and the limit throttles some of them.
// Without jitter the same sends never do.
func TestJitterBunchesPacedSends(t *testing.T) {
	count := func(stamps []time.Time) (throttled, busiest int) {
		var w window
		for _, at := range stamps {
			ok, _, most := w.arrive(at, 10, time.Second)
			busiest = max(busiest, most)
			if !ok {
				throttled++
			}
		}
		return throttled, busiest
	}
	if th, most := count(jitteredStamps(3, 300, 100*time.Millisecond, 0, 0)); th != 0 || most != 10 {
		t.Errorf("no jitter: %d throttled, busiest window %d; want 0 and 10", th, most)
	}
	th, most := count(jitteredStamps(3, 300, 100*time.Millisecond, 40*time.Millisecond, 30*time.Millisecond))
	if th == 0 || most < 11 {
		t.Errorf("40ms±30ms jitter: %d throttled, busiest window %d; want some throttled and 11 or more", th, most)
	}
	t.Logf("300 sends at 10/s with 40ms±30ms jitter: %d throttled (%.1f%%), busiest window %d", th, 100*float64(th)/300, most)
}

func TestJitterDraw(t *testing.T) {
	tests := []struct {
		mean, sd time.Duration
		z        float64
		want     time.Duration
	}{
		{40 * time.Millisecond, 30 * time.Millisecond, 0, 40 * time.Millisecond},
		{40 * time.Millisecond, 30 * time.Millisecond, 1, 70 * time.Millisecond},
		{40 * time.Millisecond, 30 * time.Millisecond, -1, 10 * time.Millisecond},
		{40 * time.Millisecond, 30 * time.Millisecond, -2, 0}, // cut at 0
		{0, 0, 3, 0},
	}
	for _, tt := range tests {
		if got := jitterDraw(tt.mean, tt.sd, tt.z); got != tt.want {
			t.Errorf("jitterDraw(%v, %v, %v) = %v; want %v", tt.mean, tt.sd, tt.z, got, tt.want)
		}
	}
	// The server's draws: the mean and the share cut to 0 of a normal
	// 40ms±30ms censored at 0 are E[max(0,X)] = μΦ(μ/σ)+σφ(μ/σ) = 41.27ms
	// and Φ(-μ/σ) = 9.1%.
	s := New(Config{Seed: 99})
	f := Faults{JitterMean: 40 * time.Millisecond, JitterStdDev: 30 * time.Millisecond}
	const n = 20000
	var sum time.Duration
	zeros := 0
	for range n {
		d := s.arrivalDelay(f)
		sum += d
		if d == 0 {
			zeros++
		}
	}
	phi := func(x float64) float64 { return math.Exp(-x*x/2) / math.Sqrt(2*math.Pi) }
	cdf := func(x float64) float64 { return 0.5 * math.Erfc(-x/math.Sqrt2) }
	mu, sigma := 40.0, 30.0
	wantMean := mu*cdf(mu/sigma) + sigma*phi(mu/sigma)
	gotMean := float64(sum) / n / float64(time.Millisecond)
	if math.Abs(gotMean-wantMean) > 1 {
		t.Errorf("mean delay %.2fms; want %.2fms", gotMean, wantMean)
	}
	if got, want := float64(zeros)/n, cdf(-mu/sigma); math.Abs(got-want) > 0.01 {
		t.Errorf("share of zero delays %.3f; want %.3f", got, want)
	}
}

func TestWindowForget(t *testing.T) {
	var w window
	for _, at := range []float64{0, 100, 200, 1500} {
		w.arrive(ms(at), 10, time.Second)
	}
	w.forget(ms(100))
	if len(w.admitted) != 2 || len(w.arrivals) != 2 || !w.admitted[0].Equal(ms(200)) {
		t.Errorf("after forget(100ms): admitted %v arrivals %v; want 200ms and 1500ms", w.admitted, w.arrivals)
	}
}
