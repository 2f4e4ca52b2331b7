package apply

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// The histogram's quantiles are within 1% of the exact nearest-rank ones,
// and its max is exact, over spreads from loopback to timeouts.
func TestHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() time.Duration{
		"uniform 20-80ms": func() time.Duration {
			return 20*time.Millisecond + time.Duration(rng.Int64N(int64(60*time.Millisecond)))
		},
		"lognormal ~50ms": func() time.Duration { return time.Duration(float64(50*time.Millisecond) * math.Exp(rng.NormFloat64())) },
		"constant 5s":     func() time.Duration { return 5 * time.Second },
		"sub-microsecond": func() time.Duration { return time.Duration(rng.Int64N(1000)) },
		"up to an hour":   func() time.Duration { return time.Duration(rng.Int64N(int64(time.Hour))) },
	}
	for name, draw := range dists {
		var h histogram
		var exact []time.Duration
		for range 10000 {
			d := draw()
			h.add(d)
			exact = append(exact, d)
		}
		slices.Sort(exact)
		for _, q := range []float64{0.01, 0.5, 0.95, 0.999, 1} {
			want := exact[int(math.Ceil(q*float64(len(exact))))-1]
			got := h.quantile(q)
			if rel := math.Abs(float64(got-want)) / float64(want); want >= histMin && rel > 0.01 {
				t.Errorf("%s: quantile(%v) = %v; want %v within 1%% (off by %.2f%%)", name, q, got, want, 100*rel)
			}
			if want < histMin && got >= histMin {
				t.Errorf("%s: quantile(%v) = %v; want under %v", name, q, got, histMin)
			}
		}
		if h.max != exact[len(exact)-1] {
			t.Errorf("%s: max %v; want %v", name, h.max, exact[len(exact)-1])
		}
	}
	var empty histogram
	if empty.quantile(0.5) != 0 {
		t.Errorf("empty histogram quantile = %v; want 0", empty.quantile(0.5))
	}
}

// Recording a latency allocates nothing: a run's memory does not grow with
// its requests.
func TestHistogramDoesNotAllocate(t *testing.T) {
	var h histogram
	if n := testing.AllocsPerRun(1000, func() { h.add(42 * time.Millisecond) }); n != 0 {
		t.Errorf("add allocates %v times; want 0", n)
	}
}
