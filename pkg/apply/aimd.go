package apply

import (
	"time"
)

// The rate half of the pacer: it cuts the rate on evidence that the quota
// is shared with another client, and grows it back. The package doc has
// the model and the arithmetic.
const (
	// minWindow is the shortest evidence window: answers to the sends of
	// the last window (in send time) are the evidence. At low rates the
	// window is longer, long enough for cutAnswers sends.
	minWindow       = 2 * time.Second
	evidenceBuckets = 20

	// A run that has not met another client cuts only on strong evidence:
	// at least cutAnswers answers and cutThrottles throttles in the
	// window, and less than cutEfficiency of the rate the pacer allowed
	// got through. A spurious throttle costs one request, so 5% of them
	// leave 95% of the rate; another client's share costs the holds its
	// throttles bring as well, and leaves the run about half.
	cutAnswers    = 10
	cutThrottles  = 2
	cutEfficiency = 0.6
	// A strong cut goes to cutMargin of what got through: that was the
	// run's share with the sum of all clients at the limit, and a run
	// that sat exactly on it would go over at its first step of growth.
	cutMargin = 0.95

	// For waryMemory after a cut the run knows the quota is shared. It
	// judges once a window, on the sends made since the last cut, and a
	// single throttle cuts if it came with the service's wait (the run
	// sits at its share, and such a throttle says the sum went over; one
	// without a wait says nothing of the window, and spurious throttles
	// look like that). The cut is one throttle's share of a full window's
	// answers, at most maxWeakCut, never below weakFloor of the share the
	// last strong cut found, and it renews the memory. Strong evidence
	// still cuts to what got through, by at most maxWaryCut.
	waryMemory = 60 * time.Second
	maxWaryCut = 0.3
	maxWeakCut = 0.2
	weakFloor  = 0.75

	// After a cut the rate grows by (slowGrowth·t + cubeGrowth·t³) × qps
	// at t seconds: 0.3% of qps a second at first, so that two runs near
	// their shares add a few hundredths of a request a second and the
	// next throttle comes seconds later; +5% of qps after 10s, +21% after
	// 15s, the whole rate back from half after about 20s, so a run whose
	// rival has gone does not crawl.
	slowGrowth = 0.003
	cubeGrowth = 0.00005

	// floorFraction of the configured rate is the lowest a cut goes.
	floorFraction = 0.05
)

// aimd holds the rate. Its methods are called with the pacer's lock held.
type aimd struct {
	max, cur, lowest float64
	window           time.Duration // of the evidence; also the least time between cuts

	evidence [evidenceBuckets]tally
	start    time.Time // the evidence covers sends from here on
	answered time.Time // the latest send answered since start
	// lastThrottled is the send time of the latest throttle: a throttle
	// with none in the window before it starts an episode.
	lastThrottled time.Time

	lastCut time.Time
	from    float64 // the rate right after the last cut
	found   float64 // the share the last strong cut found
	// excused is send time since start the run was held by waits that
	// clean answers refuted.
	excused time.Duration
}

// tally counts the answers to the sends of one bucket of send time.
type tally struct {
	slot               int64 // which bucket of time it counts
	answers, throttled int
	waited             int // throttles that said how long the window stays full
}

func newAIMD(qps float64) aimd {
	window := minWindow
	if qps > 0 {
		window = max(window, time.Duration(cutAnswers/qps*float64(time.Second)))
	}
	return aimd{max: qps, cur: qps, lowest: qps, window: window}
}

// wary reports whether a cut is recent: another client is known to share
// the quota.
func (a *aimd) wary(now time.Time) bool {
	return !a.lastCut.IsZero() && now.Sub(a.lastCut) < waryMemory
}

// answer adds the answer to a send made at sent to the evidence, unless the
// send predates the last cut: it was paced at the old rate. waited is set
// for a throttle that came with the service's wait (x-acs-retry-after).
func (a *aimd) answer(sent, now time.Time, throttled, waited bool) {
	if sent.IsZero() {
		sent = now
	}
	if sent.Before(a.lastCut) {
		return
	}
	if throttled {
		episode := !a.wary(now) && (a.lastThrottled.IsZero() || sent.Sub(a.lastThrottled) > a.window)
		if sent.After(a.lastThrottled) {
			a.lastThrottled = sent
		}
		if episode {
			// Until this throttle the run got what it sent, which says
			// nothing of the limit: the evidence starts here. The throttle
			// that started it is not counted (every episode has one: it
			// would make one spurious throttle in ten look like two), but
			// the hold it brings is in the span.
			a.reset(sent)
			return
		}
	}
	if a.start.IsZero() || sent.Before(a.start) {
		a.start = sent
	}
	if sent.After(a.answered) {
		a.answered = sent
	}
	slot := a.slot(sent)
	b := &a.evidence[(slot%evidenceBuckets+evidenceBuckets)%evidenceBuckets]
	if b.slot != slot {
		*b = tally{slot: slot}
	}
	b.answers++
	if throttled {
		b.throttled++
		if waited {
			b.waited++
		}
	}
}

// unwait takes back the wait of the throttle of the send made at sent: a
// clean answer showed the window was not full (see Pacer.Clean). The run
// sent nothing for held, which says nothing of the limit either: it is
// not counted in the span of what got through.
func (a *aimd) unwait(sent time.Time, held time.Duration) {
	if !sent.Before(a.start) {
		a.excused += held
	}
	slot := a.slot(sent)
	if b := &a.evidence[(slot%evidenceBuckets+evidenceBuckets)%evidenceBuckets]; b.slot == slot && b.waited > 0 {
		b.waited--
	}
}

func (a *aimd) slot(t time.Time) int64 {
	return t.UnixNano() / int64(a.window/evidenceBuckets)
}

func (a *aimd) reset(start time.Time) {
	a.evidence = [evidenceBuckets]tally{}
	a.start, a.answered, a.excused = start, time.Time{}, 0
}

// judge cuts the rate if the evidence says the quota is shared; could is
// the most the pacer would send at the current rate (its window may allow
// less). It reports whether it cut.
func (a *aimd) judge(now time.Time, could float64) bool {
	wary := a.wary(now)
	if !a.lastCut.IsZero() && now.Sub(a.lastCut) < a.window {
		return false // at most one cut a window: cuts must not compound
	}
	var sum tally
	last := a.slot(a.answered)
	for _, b := range a.evidence {
		if b.slot > last-evidenceBuckets {
			sum.answers += b.answers
			sum.throttled += b.throttled
			sum.waited += b.waited
		}
	}
	if sum.throttled == 0 {
		return false
	}
	// What got through, per second of send time: from the evidence's start
	// (or the oldest bucket's) to the latest answered send, which stands
	// for one interval. A throttle that brings a hold costs the whole hold.
	from := time.Unix(0, (last-evidenceBuckets+1)*int64(a.window/evidenceBuckets))
	if a.start.After(from) {
		from = a.start
	}
	span := max(0, a.answered.Sub(from).Seconds()-a.excused.Seconds()) + 1/a.cur
	got := float64(sum.answers-sum.throttled) / span
	poor := got < cutEfficiency*could && sum.throttled >= cutThrottles
	var next float64
	strong := false
	switch {
	case !wary:
		if !poor || sum.answers < cutAnswers {
			return false
		}
		next, strong = got*cutMargin, true
	case poor:
		next, strong = max(got*cutMargin, a.cur*(1-maxWaryCut)), true
	case sum.waited == 0:
		// A throttle that did not say when the window frees says
		// nothing of the window: spurious throttles look like that.
		return false
	default:
		// A full window's worth of answers: a window that holds few
		// (the run was held) must not cut harder for it.
		f := float64(sum.throttled) / max(float64(sum.answers), a.cur*a.window.Seconds())
		next = max(a.cur*(1-min(f, maxWeakCut)), a.found*weakFloor)
	}
	next = max(next, a.max*floorFraction)
	if next >= a.cur {
		return false
	}
	if strong {
		a.found = next
	}
	a.lastCut = now
	a.reset(now)
	a.cur, a.from = next, next
	a.lowest = min(a.lowest, a.cur)
	return true
}

// grow moves the rate back up along the curve since the last cut, and
// reports whether it changed.
func (a *aimd) grow(now time.Time) bool {
	if a.cur >= a.max || a.lastCut.IsZero() {
		return false
	}
	t := now.Sub(a.lastCut).Seconds()
	r := min(a.max, a.from+a.max*(slowGrowth*t+cubeGrowth*t*t*t))
	if r == a.cur {
		return false
	}
	a.cur = r
	return true
}
