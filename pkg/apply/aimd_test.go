package apply

import (
	"math"
	"testing"
	"time"
)

// evidence feeds a at 10/s: answers to sends every 100ms from start, the
// ones listed throttled, and then judges, as the pacer does, at the last
// answer. held shifts the sends after the first throttle by a hold.
type evidence struct {
	answers   int
	throttled []int // which answers, 0-based
	held      time.Duration
	unwaited  bool // the throttles carry no x-acs-retry-after
}

func (e evidence) feed(a *aimd, start time.Time) (judged time.Time, cut bool) {
	at := start
	thr := map[int]bool{}
	for _, i := range e.throttled {
		thr[i] = true
	}
	var hold time.Duration
	for i := range e.answers {
		at = start.Add(time.Duration(i)*100*time.Millisecond + hold)
		a.answer(at, at.Add(20*time.Millisecond), thr[i], thr[i] && !e.unwaited)
		if thr[i] {
			hold = e.held
		}
	}
	judged = at.Add(20 * time.Millisecond)
	return judged, a.judge(judged, a.cur)
}

func TestAIMDFirstCut(t *testing.T) {
	tests := []struct {
		name string
		ev   evidence
		cut  bool
		to   float64 // about, when cut
	}{
		// 5% spurious throttles: one request each, no hold.
		{"spurious", evidence{answers: 20, throttled: []int{3}}, false, 0},
		{"spurious, an unlucky window", evidence{answers: 20, throttled: []int{3, 9, 15}}, false, 0},
		// Another client: the throttles bring holds, half the rate is lost.
		{"shared", evidence{answers: 12, throttled: []int{0, 6, 11}, held: 500 * time.Millisecond}, true, 10 * 9 / 19.0},
		{"shared, too few answers yet", evidence{answers: 8, throttled: []int{0, 4, 7}, held: 500 * time.Millisecond}, false, 0},
		{"one throttle, however costly", evidence{answers: 15, throttled: []int{0}, held: time.Second}, false, 0},
		// Everything throttled: what got through is nothing; the floor holds.
		{"starved", evidence{answers: 12, throttled: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}}, true, 0.5},
	}
	for _, tt := range tests {
		a := newAIMD(10)
		_, cut := tt.ev.feed(&a, time.Unix(1000, 0))
		if cut != tt.cut || (cut && math.Abs(a.cur-tt.to) > 0.6) {
			t.Errorf("%s: cut %v to %.2f; want cut %v (to about %.2f)", tt.name, cut, a.cur, tt.cut, tt.to)
		}
		if !cut && a.cur != 10 {
			t.Errorf("%s: rate %v without a cut", tt.name, a.cur)
		}
	}
}

// Clean answers before the first throttle of an episode are not evidence:
// they show what the run sent before the limit was reached.
func TestAIMDEvidenceStartsAtTheFirstThrottle(t *testing.T) {
	a := newAIMD(10)
	start := time.Unix(1000, 0)
	for i := range 15 { // a clean second and a half
		at := start.Add(time.Duration(i) * 100 * time.Millisecond)
		a.answer(at, at, false, false)
	}
	_, cut := evidence{answers: 12, throttled: []int{0, 6, 11}, held: 500 * time.Millisecond}.feed(&a, start.Add(1500*time.Millisecond))
	if !cut || a.cur > 5.5 {
		t.Errorf("cut %v to %.2f; want a cut to about 4.7, the clean answers left out", cut, a.cur)
	}
}

func TestAIMDWary(t *testing.T) {
	start := time.Unix(1000, 0)
	shared := func() *aimd {
		a := newAIMD(10)
		evidence{answers: 12, throttled: []int{0, 6, 11}, held: 500 * time.Millisecond}.feed(&a, start)
		if a.lastCut.IsZero() {
			t.Fatal("no first cut")
		}
		return &a
	}
	t.Run("one throttle in the next window cuts by a window's share", func(t *testing.T) {
		a := shared()
		from := a.cur
		_, cut := evidence{answers: 25, throttled: []int{22}}.feed(a, a.lastCut.Add(time.Millisecond))
		// The window holds 20 answers (the feed sends every 100ms), more
		// than a window at the cut rate would: one throttle in 20.
		if want := from * (1 - 1.0/20); !cut || math.Abs(a.cur-want) > 0.01 {
			t.Errorf("cut %v from %.2f to %.2f; want %.2f", cut, from, a.cur, want)
		}
	})
	t.Run("a window with few answers (the run was held) cuts no harder", func(t *testing.T) {
		a := shared()
		from := a.cur
		_, cut := evidence{answers: 5, throttled: []int{4}, held: 0}.feed(a, a.lastCut.Add(a.window))
		// One throttle in what a full window at the rate would hold.
		if want := from * (1 - 1/(from*a.window.Seconds())); !cut || math.Abs(a.cur-want) > 0.01 {
			t.Errorf("cut %v from %.2f to %.2f; want %.2f", cut, from, a.cur, want)
		}
	})
	t.Run("a throttle that gave no wait is no evidence of the window", func(t *testing.T) {
		a := shared()
		from := a.cur
		if _, cut := (evidence{answers: 25, throttled: []int{22}, unwaited: true}).feed(a, a.lastCut.Add(time.Millisecond)); cut {
			t.Errorf("cut from %.2f to %.2f on a throttle without x-acs-retry-after", from, a.cur)
		}
	})
	t.Run("not twice in a window", func(t *testing.T) {
		a := shared()
		from, cutAt := a.cur, a.lastCut
		at := cutAt.Add(time.Second)
		a.answer(at, at, true, true)
		if a.judge(at, a.cur) || a.cur != from {
			t.Errorf("cut again %v after a cut: rate %.2f, was %.2f", at.Sub(cutAt), a.cur, from)
		}
	})
	t.Run("answers to sends before the cut are not evidence", func(t *testing.T) {
		a := shared()
		from := a.cur
		before := a.lastCut.Add(-time.Millisecond)
		later := a.lastCut.Add(3 * time.Second)
		a.answer(before, later, true, true)
		if a.judge(later, a.cur) {
			t.Errorf("cut from %.2f on a send made before the last cut", from)
		}
	})
	t.Run("single throttles never go below three quarters of the share found", func(t *testing.T) {
		a := shared()
		found, cuts := a.found, 0
		for range 20 {
			if _, cut := (evidence{answers: 25, throttled: []int{22}}).feed(a, a.lastCut.Add(time.Millisecond)); cut {
				cuts++
			}
		}
		if cuts == 0 {
			t.Error("no cut")
		}
		if a.cur < found*weakFloor-1e-9 {
			t.Errorf("rate %.2f; want at least %.2f (¾ of %.2f)", a.cur, found*weakFloor, found)
		}
	})
	t.Run("forgotten after a minute", func(t *testing.T) {
		a := shared()
		if !a.wary(a.lastCut.Add(waryMemory-time.Second)) || a.wary(a.lastCut.Add(waryMemory)) {
			t.Errorf("wary %v before %v and %v at it; want true, false", a.wary(a.lastCut.Add(waryMemory-time.Second)), waryMemory, a.wary(a.lastCut.Add(waryMemory)))
		}
	})
}

// The rate grows back slowly at first, then faster: flat near the share
// for the seconds in which a rival's next throttle would come, the whole
// rate back within about 20s.
func TestAIMDGrowth(t *testing.T) {
	tests := []struct {
		after time.Duration
		want  float64 // from 5 at qps 10: 5 + 10·(0.003t + 0.00005t³)
	}{
		{0, 5},
		{5 * time.Second, 5.2125},
		{10 * time.Second, 5.8},
		{15 * time.Second, 7.1375},
		{20 * time.Second, 9.6},
		{22 * time.Second, 10}, // 11.0 by the curve: capped
		{time.Minute, 10},
	}
	for _, tt := range tests {
		a := newAIMD(10)
		a.lastCut, a.cur, a.from = time.Unix(1000, 0), 5, 5
		a.grow(a.lastCut.Add(tt.after))
		if math.Abs(a.cur-tt.want) > 1e-9 {
			t.Errorf("%v after the cut: rate %.4f; want %.4f", tt.after, a.cur, tt.want)
		}
	}
}

// At a low rate the window is long enough to hold cutAnswers sends: a run
// at --qps 2 can still see another client.
func TestAIMDWindowFollowsTheRate(t *testing.T) {
	for _, tt := range []struct {
		qps  float64
		want time.Duration
	}{{10, 2 * time.Second}, {100, 2 * time.Second}, {2, 5 * time.Second}, {0.5, 20 * time.Second}} {
		if got := newAIMD(tt.qps).window; got != tt.want {
			t.Errorf("qps %v: window %v; want %v", tt.qps, got, tt.want)
		}
	}
}
