package apply

import (
	"math"
	"time"
)

// histogram counts durations in logarithmic buckets, so a run's latency
// percentiles take a fixed 9 KB however many requests it sends. Bucket i
// (i ≥ 1) holds [histMin·γ^(i-1), histMin·γ^i) with γ = histGrowth, and a
// quantile is reported as its bucket's geometric middle: within a factor
// √γ of the true value, a relative error under 1%. The maximum is exact.
//
// Hand-written rather than taken from a library (HdrHistogram's Go port,
// say): forty lines, no dependency, and the error bound is stated here.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	max    time.Duration
}

const (
	histGrowth = 1.02
	histMin    = time.Microsecond
	// histBuckets covers histMin to more than an hour.
	histBuckets = 1120
)

var logGrowth = math.Log(histGrowth)

func (h *histogram) add(d time.Duration) {
	h.counts[bucket(d)]++
	h.n++
	h.max = max(h.max, d)
}

func bucket(d time.Duration) int {
	if d < histMin {
		return 0
	}
	i := 1 + int(math.Log(float64(d)/float64(histMin))/logGrowth)
	return min(i, histBuckets-1)
}

// quantile returns the q-quantile by nearest rank (the ceil(q·n)-th
// smallest), within the stated error, and never above the maximum.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := max(1, uint64(math.Ceil(q*float64(h.n))))
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			if i == 0 {
				return min(h.max, histMin/2)
			}
			mid := float64(histMin) * math.Pow(histGrowth, float64(i)-0.5)
			return min(h.max, time.Duration(mid))
		}
	}
	return h.max
}
