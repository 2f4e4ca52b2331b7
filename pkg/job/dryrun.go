package job

import (
	"context"
	"errors"
	"fmt"

	"github.com/certalloc/certalloc/pkg/plan"
	"github.com/certalloc/certalloc/pkg/report"
)

// PlanResult is what a dry run found.
type PlanResult struct {
	Rows int   // valid rows in the plan
	Sum  int64 // CertTotalCount over all rows
	// With a baseline: how the rows compare to it.
	HasBaseline              bool
	New, Changed, Unchanged  int
	ToSend                   int
	ReportPath, BaselinePath string
	PlanPath                 string
	QPS                      float64
}

// Plan validates the plan, compares it with the baseline if any, and
// writes the rows it would send to the planned report. It sends nothing and
// needs no credentials.
func Plan(ctx context.Context, c Config) (*PlanResult, error) {
	var base baseline
	if c.BaselinePath != "" {
		var err error
		if base, err = readBaseline(c.BaselinePath); err != nil {
			return nil, err
		}
	}
	// Pass one validates the whole plan; only a valid plan gets a report.
	st, err := readPlan(c.PlanPath, func(plan.Row) error { return nil })
	if err != nil {
		return nil, err
	}
	w, err := report.Open(c.ReportPath, report.Options{Private: c.Private, Buffered: true})
	if err != nil {
		return nil, reportOpenError(err)
	}
	res := &PlanResult{Rows: st.Rows, Sum: st.Sum, HasBaseline: base != nil, PlanPath: c.PlanPath,
		ReportPath: c.ReportPath, BaselinePath: c.BaselinePath, QPS: c.QPS}
	_, err = readPlan(c.PlanPath, func(r plan.Row) error {
		if base != nil {
			switch base.classify(r) {
			case kindNew:
				res.New++
			case kindChanged:
				res.Changed++
			default:
				res.Unchanged++
				return nil
			}
		}
		return w.Write(report.Row{Line: r.Line, ID: r.ID, CertTotalCount: r.CertTotalCount, CaIdentifier: r.CaIdentifier, Status: report.Planned})
	})
	if cerr := w.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	res.ToSend = st.Rows
	if base != nil {
		res.ToSend = res.New + res.Changed
	}
	return res, nil
}

// readPlan validates the whole plan; an invalid one is an InputError.
func readPlan(path string, fn func(plan.Row) error) (plan.Stats, error) {
	st, err := plan.ReadFile(path, plan.Options{}, fn)
	var perrs *plan.Errors
	switch {
	case errors.As(err, &perrs):
		return st, &InputError{fmt.Errorf("%v\nnothing was sent", err)}
	case err != nil:
		return st, inputErrorf("plan: %v", err)
	}
	return st, nil
}

func reportOpenError(err error) error {
	if errors.Is(err, report.ErrLocked) {
		return fmt.Errorf("%w: it is running already; nothing was sent", err)
	}
	return fmt.Errorf("%v; nothing was sent", err)
}
