package job

import (
	"math"
	"time"

	"github.com/certalloc/certalloc/pkg/apply"
)

// Estimate is how long rows take at qps, with the pacer's guard.
func Estimate(rows int, qps float64) time.Duration {
	if rows == 0 {
		return 0
	}
	perWindow := math.Max(1, math.Floor(qps))
	byWindow := time.Duration(float64(rows-1) / perWindow * float64(time.Second+apply.PaceGuard))
	byRate := time.Duration(float64(rows-1) / qps * float64(time.Second))
	return max(byWindow, byRate).Round(time.Second)
}
