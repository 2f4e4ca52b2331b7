package job

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/certalloc/certalloc/pkg/apply"
	"github.com/certalloc/certalloc/pkg/cas"
	"github.com/certalloc/certalloc/pkg/plan"
	"github.com/certalloc/certalloc/pkg/report"
)

// Run applies the plan and writes the run's record. An error means the job
// could not start and nothing was sent: *InputError, ErrLocked (wrapped),
// or a fatal set-up problem (credentials, an unwritable output). Otherwise
// the Summary tells how the run went; its Err is the run's outcome.
func Run(ctx context.Context, c Config) (*Summary, error) {
	log := c.Log
	var base baseline
	if c.BaselinePath != "" {
		var err error
		if base, err = readBaseline(c.BaselinePath); err != nil {
			return nil, err
		}
	}
	var rows []plan.Row
	if _, err := readPlan(c.PlanPath, func(r plan.Row) error { rows = append(rows, r); return nil }); err != nil {
		return nil, err
	}
	if err := checkWritable(c.FailuresPath, c.SummaryPath, c.MetricsPath); err != nil {
		return nil, fmt.Errorf("%v; nothing was sent", err)
	}

	creds := c.Credentials
	if creds == nil {
		var err error
		if creds, err = cas.ResolveCredentials(c.Profile); err != nil {
			return nil, err
		}
	}
	region := firstNonEmpty(c.Region, os.Getenv("ALIBABA_CLOUD_REGION_ID"), cas.ProfileRegion(c.Profile), cas.DefaultRegion)

	// The report is opened last of the inputs: it takes the lock, and
	// (without --resume) empties the last run's report.
	done := map[int64]int32{}
	var planIDs map[int64]bool
	if c.Resume {
		planIDs = make(map[int64]bool, len(rows))
		for _, r := range rows {
			planIDs[r.ID] = true
		}
	}
	var foreign []int64
	w, err := report.Open(c.ReportPath, report.Options{Resume: c.Resume, Private: c.Private, Existing: func(r report.Row) error {
		if !planIDs[r.ID] {
			foreign = append(foreign, r.ID)
		}
		if r.Status == report.Succeeded {
			done[r.ID] = r.CertTotalCount
		}
		return nil
	}})
	if err != nil {
		return nil, reportOpenError(err)
	}
	defer w.Close()
	if len(foreign) > 0 {
		return nil, inputErrorf("--resume: report %s is not this plan's: it has Id %d, which %s does not; give --report a new path", c.ReportPath, foreign[0], c.PlanPath)
	}
	if w.Torn {
		log.Warn("the report's last line was cut short by a crash; removed it, that row counts as not done", "report", c.ReportPath)
	}

	todo, skipped, unchanged := selectRows(rows, done, base)
	if c.Resume {
		log.Info("resuming", "report", c.ReportPath, "skipped", skipped, "remaining", len(todo))
	}
	now := time.Now().UTC().Format(time.RFC3339)
	for _, r := range unchanged {
		// Carried forward so that this report can be tomorrow's baseline.
		if err := w.Write(report.Row{Line: r.Line, ID: r.ID, CertTotalCount: r.CertTotalCount, CaIdentifier: r.CaIdentifier, Status: report.Succeeded,
			ErrorMessage: "unchanged since baseline " + c.BaselinePath + "; not sent", FinishedAt: now}); err != nil {
			return nil, err
		}
	}
	if base != nil {
		log.Info("baseline", "file", c.BaselinePath, "to_assign", len(todo), "unchanged", len(unchanged))
	}

	limit, maxFail, _ := parseMaxFailures(c.MaxFailures, len(todo))
	cfg := apply.Config{QPS: c.QPS, MaxAttempts: c.MaxAttempts, LimitFailures: limit, MaxFailures: maxFail}
	if c.Deadline > 0 {
		cfg.Deadline = c.Started.Add(c.Deadline) // the budget includes reading the plan
	}
	cfg.OnAttempt = func(a apply.Attempt) {
		if !log.Enabled(ctx, slog.LevelDebug) {
			return
		}
		attrs := []any{"line", a.Row.Line, "id", a.Row.ID, "attempt", a.N, "latency_ms", a.Latency.Milliseconds()}
		if a.Err != nil {
			attrs = append(attrs, "code", a.Err.Code, "status", a.Err.HTTPStatus, "class", a.Err.Class.String(), "message", a.Err.Message)
		}
		log.Debug("attempt", attrs...)
	}

	clients, err := cas.NewClients(cas.Config{Endpoint: c.Endpoint, Region: region, Timeout: c.Timeout, Credentials: creds,
		UserAgent: c.UserAgent}, min(c.Workers, max(1, len(todo))))
	if err != nil {
		return nil, err
	}
	assigners := make([]apply.Assigner, len(clients))
	for i, cl := range clients {
		assigners[i] = cl
	}

	log.Info("applying", "plan", c.PlanPath, "rows", len(todo), "endpoint", c.Endpoint.String(), "region", region,
		"credentials", creds.Source, "access_key_id", creds.AccessKeyID, "qps", c.QPS, "workers", len(clients))
	prog := c.Progress
	if prog == nil {
		prog = noProgress{}
	}
	prog.Start(len(todo))
	var notDone []plan.Row
	stats := apply.Run(ctx, todo, assigners, cfg, func(out apply.Outcome) error {
		if out.Status != apply.Succeeded {
			notDone = append(notDone, out.Row)
		}
		if out.Status == apply.Failed {
			log.Warn("row failed", "line", out.Row.Line, "id", out.Row.ID, "code", out.Err.Code, "message", out.Err.Message, "attempts", out.Attempts)
		}
		prog.Add(out)
		return w.Write(reportRow(out))
	})
	prog.Finish()
	if err := w.Close(); err != nil && stats.Fatal == nil {
		stats.Fatal = &cas.Error{Class: cas.Fatal, Code: "ReportWriteFailed", Message: err.Error()}
		stats.Stop = apply.ErrFatal
	}
	ferr := report.WriteFailures(c.FailuresPath, failureRows(notDone), c.Private)

	sum := newSummary(ctx, &c, stats, len(rows), skipped, len(unchanged))
	if ferr != nil {
		log.Error("could not write the failures file", "error", ferr)
	}
	if c.SummaryPath != "" {
		if err := sum.writeJSON(c.SummaryPath, c.Private); err != nil {
			log.Error("could not write the summary", "error", err)
		}
	}
	if c.MetricsPath != "" {
		if err := sum.writeMetrics(c.MetricsPath, c.Private); err != nil {
			log.Error("could not write the metrics file", "error", err)
		}
	}
	return sum, nil
}

type noProgress struct{}

func (noProgress) Start(int)         {}
func (noProgress) Add(apply.Outcome) {}
func (noProgress) Finish()           {}

// failureRows lists rows in plan order, which is how operators read them.
func failureRows(rows []plan.Row) []report.FailureRow {
	sort.Slice(rows, func(i, j int) bool { return rows[i].Line < rows[j].Line })
	out := make([]report.FailureRow, len(rows))
	for i, r := range rows {
		out[i] = report.FailureRow{ID: r.ID, CertTotalCount: r.CertTotalCount}
	}
	return out
}

func reportRow(o apply.Outcome) report.Row {
	r := report.Row{
		Line: o.Row.Line, ID: o.Row.ID, CertTotalCount: o.Row.CertTotalCount, CaIdentifier: o.Row.CaIdentifier,
		Status: report.Failed, Attempts: o.Attempts, LatencyMs: o.Latency.Milliseconds(),
		FinishedAt: o.Finished.UTC().Format(time.RFC3339),
	}
	switch o.Status {
	case apply.Succeeded:
		r.Status = report.Succeeded
		r.RequestID = o.Result.RequestID
		r.CertCount = &o.Result.CertCount
		r.CurrentYearFreeCertCount = &o.Result.CurrentYearFreeCertCount
		if o.Lost != "" {
			r.ErrorMessage = fmt.Sprintf("succeeded after a lost answer (%s): the call was sent again; it sets a total, so the state is the same", o.Lost)
		}
	default:
		if o.Err != nil {
			r.ErrorCode, r.ErrorMessage, r.RequestID = o.Err.Code, o.Err.Message, o.Err.RequestID
		}
	}
	return r
}

// checkWritable makes sure output files can be created before anything is
// sent, without leaving them behind. Its errors name the user's path, not
// the probe file's.
func checkWritable(paths ...string) error {
	for _, p := range paths {
		if p == "" {
			continue
		}
		f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".check*")
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return fmt.Errorf("cannot write %s: %w", p, err)
		}
		f.Close()
		os.Remove(f.Name())
	}
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
