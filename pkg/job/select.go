package job

import (
	"math"
	"time"

	"github.com/certalloc/certalloc/pkg/apply"
	"github.com/certalloc/certalloc/pkg/plan"
	"github.com/certalloc/certalloc/pkg/report"
)

// baseline is what a previous report says was applied: Id to the
// CertTotalCount of its last success.
type baseline map[int64]int32

func readBaseline(path string) (baseline, error) {
	b := baseline{}
	err := report.ReadFile(path, func(r report.Row) error {
		if r.Status == report.Succeeded {
			b[r.ID] = r.CertTotalCount
		}
		return nil
	})
	if err != nil {
		return nil, inputErrorf("--baseline: %v", err)
	}
	return b, nil
}

// Row kinds against a baseline.
const (
	kindNew       = "new"
	kindChanged   = "changed"
	kindUnchanged = "unchanged"
)

// classify says what a row is against the baseline.
func (b baseline) classify(r plan.Row) string {
	n, ok := b[r.ID]
	switch {
	case !ok:
		return kindNew
	case n != r.CertTotalCount:
		return kindChanged
	}
	return kindUnchanged
}

// selectRows drops rows already done (resume) or unchanged (baseline).
func selectRows(rows []plan.Row, done map[int64]int32, base baseline) (todo []plan.Row, skipped int, unchanged []plan.Row) {
	todo = make([]plan.Row, 0, len(rows))
	for _, r := range rows {
		if n, ok := done[r.ID]; ok && n == r.CertTotalCount {
			skipped++
			continue
		}
		if base != nil && base.classify(r) == kindUnchanged {
			unchanged = append(unchanged, r)
			continue
		}
		todo = append(todo, r)
	}
	return todo, skipped, unchanged
}

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
