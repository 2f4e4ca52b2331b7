package casemu

import (
	"slices"
	"time"
)

// window is one account's flow-control record. Its stamps are arrival times
// at the service, one-way network delay included, so they need not come in
// order: a request sent later can overtake one sent earlier. Both lists are
// kept sorted, and every question is asked of all the windows that contain
// a stamp, not only of the second that ends at it.
//
// A window is a half-open interval (y-width, y]: two stamps exactly width
// apart are never in one window. The limit holds when no window contains
// more than limit admitted stamps.
type window struct {
	admitted []time.Time // admitted calls, sorted (and refused ones, with countRefusals)
	arrivals []time.Time // every arrival, admitted or not, sorted
	// countRefusals makes a refused call take a slot too, as gateways do
	// that count every request against the quota: a client that pushes
	// into a full window keeps it full.
	countRefusals bool
}

// arrive records an arrival at t and decides it. A negative or zero limit
// admits everything. When the arrival is refused, wait is how long after t
// the same request would have been admitted had nothing else arrived.
// busiest is the most arrivals, admitted or not, in any window holding t.
func (w *window) arrive(t time.Time, limit int, width time.Duration) (ok bool, wait time.Duration, busiest int) {
	var i int
	w.arrivals, i = insert(w.arrivals, t)
	busiest = mostAround(w.arrivals, i, width)
	if limit <= 0 {
		return true, 0, busiest
	}
	if fits(w.admitted, t, limit, width) {
		w.admitted, _ = insert(w.admitted, t)
		return true, 0, busiest
	}
	if w.countRefusals {
		// Counted all the same: the wait below is until a request would
		// fit beside this refused one too.
		w.admitted, _ = insert(w.admitted, t)
	}
	// The request would have fitted at t or at the moment an admitted
	// stamp leaves the last window holding it; admitted stamps past t can
	// only make a later moment worse, so the first candidate that fits is
	// the earliest.
	for _, s := range w.admitted {
		if c := s.Add(width); c.After(t) && fits(w.admitted, c, limit, width) {
			return false, c.Sub(t), busiest
		}
	}
	// Unreachable: past the last stamp plus width every window is empty.
	return false, width, busiest
}

// forget drops the stamps at or before horizon. The caller picks a horizon
// that no window holding a future arrival can reach back to.
func (w *window) forget(horizon time.Time) {
	w.admitted = dropUntil(w.admitted, horizon)
	w.arrivals = dropUntil(w.arrivals, horizon)
}

// fits reports whether one more stamp at t keeps every window holding t
// at or under limit.
func fits(ts []time.Time, t time.Time, limit int, width time.Duration) bool {
	probe, i := insert(slices.Clone(ts), t)
	return mostAround(probe, i, width) <= limit
}

// insert places t into sorted ts after any equal stamps, and returns where.
func insert(ts []time.Time, t time.Time) ([]time.Time, int) {
	i, _ := slices.BinarySearchFunc(ts, t, func(a, b time.Time) int {
		if a.After(b) {
			return 1
		}
		return -1 // equal stamps sort before t
	})
	return slices.Insert(ts, i, t), i
}

// mostAround returns the most stamps of sorted ts in any window (y-width, y]
// that contains ts[i]. Such windows end at y in [ts[i], ts[i]+width), and a
// window's count only grows when y reaches a stamp, so the windows ending at
// the stamps in that range are the only ones to count.
func mostAround(ts []time.Time, i int, width time.Duration) int {
	best := 0
	l := 0
	for r := i; r < len(ts) && ts[r].Before(ts[i].Add(width)); r++ {
		for !ts[l].After(ts[r].Add(-width)) {
			l++
		}
		best = max(best, r-l+1)
	}
	return best
}

// dropUntil drops stamps at or before cut from the front of sorted ts.
func dropUntil(ts []time.Time, cut time.Time) []time.Time {
	i := 0
	for i < len(ts) && !ts[i].After(cut) {
		i++
	}
	if i == 0 {
		return ts
	}
	return append(ts[:0], ts[i:]...)
}
