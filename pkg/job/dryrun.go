package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/certalloc/certalloc/pkg/plan"
	"github.com/certalloc/certalloc/pkg/report"
)

// PlanResult is what a dry run found.
type PlanResult struct {
	PlanPath, ReportPath, BaselinePath string

	Rows int   // valid rows in the plan
	Sum  int64 // CertTotalCount over all rows
	// With a baseline: how the rows compare to it.
	HasBaseline             bool
	New, Changed, Unchanged int
	ToSend                  int
	QPS                     float64
	// Endpoint and Region are where an apply would send, shown before
	// anything is sent: RPC signatures do not cover the host, so a wrong
	// endpoint would fail every row without saying why.
	Endpoint, Region string
}

// Plan validates the plan, compares it with the baseline if any, and
// writes the rows it would send to the planned report, replacing it whole.
// It sends nothing and needs no credentials.
func Plan(ctx context.Context, c Config) (*PlanResult, error) {
	res := &PlanResult{PlanPath: c.PlanPath, ReportPath: c.ReportPath, BaselinePath: c.BaselinePath, QPS: c.QPS,
		Endpoint: c.Endpoint.String(), Region: c.Region}
	var led *ledger
	var rows []plan.Row
	if fi, err := os.Stat(c.PlanPath); c.BaselinePath != "" || err == nil && !fi.Mode().IsRegular() {
		// The baseline is matched by Id, and a pipe can be read once, so
		// the plan is held; otherwise it is streamed twice, to keep a
		// million-row dry run small.
		if rows, _, err = readRows(ctx, c.PlanPath, c.Delimiter); err != nil {
			return nil, err
		}
		led = newLedger(rows)
	}
	if c.BaselinePath != "" {
		var files [nSources]recordFile
		exists, err := led.readBaseline(ctx, c.BaselinePath, &files)
		for _, f := range files {
			if f.f != nil {
				f.f.Close()
			}
		}
		if err != nil {
			return nil, err
		}
		if !exists {
			c.Log.Info("the baseline does not exist yet or is empty: every row is new", "baseline", c.BaselinePath)
		}
		res.HasBaseline = true
	} else if led == nil {
		if _, err := readPlan(c.PlanPath, c.Delimiter, func(plan.Row) error { return cause(ctx) }); err != nil {
			return nil, err
		}
	}
	err := report.WriteAtomic(c.ReportPath, c.Private, func(w io.Writer) error {
		buf := report.HeaderLine()
		add := func(p int, r plan.Row) error {
			res.Rows++
			res.Sum += int64(r.CertTotalCount)
			if led != nil && led.base != nil {
				switch b := led.base[p]; {
				case b.status() == stNone:
					res.New++
				case led.unchanged(p):
					res.Unchanged++
					return nil
				default:
					res.Changed++
				}
			}
			buf = report.AppendRow(buf, &report.Row{Line: int(r.Line), ID: r.ID, CertTotalCount: r.CertTotalCount, CaIdentifier: r.CaIdentifier, Status: report.Planned})
			if len(buf) < 256<<10 {
				return nil
			}
			_, err := w.Write(buf)
			buf = buf[:0]
			return err
		}
		if led != nil {
			for p, r := range rows {
				if err := add(p, r); err != nil {
					return err
				}
			}
		} else {
			p := 0
			if _, err := readPlan(c.PlanPath, c.Delimiter, func(r plan.Row) error { p++; return add(p, r) }); err != nil {
				return err
			}
		}
		_, err := w.Write(buf)
		return err
	})
	if err != nil {
		var ie *InputError
		if errors.As(err, &ie) {
			return nil, err
		}
		return nil, fmt.Errorf("%v; nothing was sent", err)
	}
	res.ToSend = res.Rows - res.Unchanged
	return res, nil
}

// readPlan validates the whole plan; an invalid one is an InputError.
func readPlan(path string, delim rune, fn func(plan.Row) error) (plan.Stats, error) {
	st, err := plan.ReadFile(path, plan.Options{Delimiter: delim}, fn)
	var perrs *plan.Errors
	switch {
	case errors.As(err, &perrs):
		return st, &InputError{fmt.Errorf("%v\nnothing was sent", err)}
	case err != nil:
		var sig Interrupted
		if errors.As(err, &sig) {
			return st, err
		}
		return st, inputErrorf("plan: %v", err)
	}
	return st, nil
}

// readError is an error reading an earlier record: the input's fault (exit
// 2), unless a signal stopped the reading, which exits as the signal says.
func readError(prefix string, err error) error {
	var sig Interrupted
	if errors.As(err, &sig) {
		return err
	}
	return inputErrorf("%s%v", prefix, err)
}

// cause is why ctx is done, or nil.
func cause(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	return context.Cause(ctx)
}

func reportOpenError(err error) error {
	if errors.Is(err, report.ErrLocked) {
		return fmt.Errorf("%w: it is running already; nothing was sent", err)
	}
	return fmt.Errorf("%v; nothing was sent", err)
}
