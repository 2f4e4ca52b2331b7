package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/certalloc/certalloc/pkg/apply"
	"github.com/certalloc/certalloc/pkg/cas"
	"github.com/certalloc/certalloc/pkg/plan"
	"github.com/certalloc/certalloc/pkg/report"
)

// Run applies the plan and writes the run's record.
//
// An error means the job did not start, and nothing was sent and no file
// was changed: *InputError, ErrLocked (wrapped), Interrupted (a signal
// came first), or a set-up problem (credentials, an unwritable output).
// Otherwise the Summary tells how the run went; its Err is the outcome.
//
// The record: until the first request leaves, no file is touched. From
// then on every row's outcome is appended to the journal as it arrives
// (and a row about to be sent is noted there first), while the previous
// report stays as it was. At the end the report is rewritten whole, one row
// per plan row in plan order, and renamed into place; then the journal is
// removed. A run that dies in between leaves the previous report and the
// journal, which the next run reads together.
func Run(ctx context.Context, c Config) (*Summary, error) {
	r := &run{c: c, log: c.Log, now: nowRFC3339()}
	return r.run(ctx)
}

type run struct {
	c   Config
	log *slog.Logger
	now string

	led   *ledger
	base  []slot // the baseline's latest records, by plan position
	files [3]recordFile
	// The previous report and a crashed run's journal, as read at the
	// start, kept open: the ledger's offsets point into these files.
	prevReport  *os.File
	leftJournal *os.File
	journal     *report.Journal
	journalAt   string
	openOnce    sync.Once
	openErr     error
	unrecorded  map[int]apply.Outcome
	stopMsg     string
	skipped     int
	unchanged   int
	hasCA       bool // the plan has a CaIdentifier column: the failures file keeps it
}

func (r *run) run(ctx context.Context) (*Summary, error) {
	c := &r.c
	rows, st, err := readRows(ctx, c.PlanPath, c.Delimiter)
	if err != nil {
		return nil, err
	}
	r.hasCA = st.HasCaIdentifier
	if st.Delimiter != ',' {
		r.log.Info("plan read", "plan", c.PlanPath, "delimiter", plan.DelimiterName(st.Delimiter))
	}
	if err := checkWritable(c.ReportPath, c.FailuresPath, c.SummaryPath, c.MetricsPath); err != nil {
		return nil, fmt.Errorf("%v; nothing was sent", err)
	}
	creds := c.Credentials
	if creds == nil {
		if creds, err = cas.ResolveCredentials(c.Profile); err != nil {
			return nil, err
		}
	}

	unlock, err := report.Lock(report.LockPath(c.ReportPath))
	if err != nil {
		return nil, reportOpenError(err)
	}
	defer unlock()
	defer r.closeFiles()

	if err := r.readPrevious(ctx, rows); err != nil {
		return nil, err
	}
	todo := r.selectRows(rows)
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}

	limit, maxFail, _ := parseMaxFailures(c.MaxFailures, len(todo))
	cfg := apply.Config{QPS: c.QPS, MaxAttempts: c.MaxAttempts, LimitFailures: limit, MaxFailures: maxFail,
		OnSend: r.onSend, OnAttempt: r.logAttempt(ctx)}
	if c.Deadline > 0 {
		cfg.Deadline = c.Started.Add(c.Deadline) // the budget includes reading the plan
	}
	clients, err := cas.NewClients(cas.Config{Endpoint: c.Endpoint, Region: c.Region, Timeout: c.Timeout, Credentials: creds,
		UserAgent: c.UserAgent}, min(c.Workers, max(1, len(todo))))
	if err != nil {
		return nil, err
	}
	assigners := make([]apply.Assigner, len(clients))
	for i, cl := range clients {
		assigners[i] = cl
	}

	r.log.Info("applying", "plan", c.PlanPath, "rows", len(todo), "endpoint", c.Endpoint.String(), "region", c.Region,
		"credentials", creds.Source, "access_key_id", creds.AccessKeyID, "qps", c.QPS, "workers", len(clients))
	prog := c.Progress
	if prog == nil {
		prog = noProgress{}
	}
	prog.Start(len(todo))
	stats := apply.Run(ctx, todo, assigners, cfg, func(out apply.Outcome) error {
		prog.Add(out)
		return r.outcome(out)
	})
	prog.Finish()

	sum := newSummary(ctx, c, stats, len(rows), r.skipped, r.unchanged)
	if sum.Stopped == "interrupted" && stats.Requests == 0 {
		// Nothing left: the files are as they were before the run.
		sum.Untouched = true
		return sum, nil
	}
	sum.recordErrors(r.finish()...)
	if len(r.unrecorded) > 0 {
		ids := make([]int64, 0, len(r.unrecorded))
		for p := range r.unrecorded {
			ids = append(ids, r.led.rows[p].ID)
		}
		slices.Sort(ids)
		sum.recordErrors(fmt.Errorf("%d answered rows could not be journaled: Ids %s", len(ids), joinIDs(ids)))
	}
	if c.SummaryPath != "" {
		if err := sum.writeJSON(c.SummaryPath, c.Private); err != nil {
			r.log.Error("could not write the summary", "error", err)
		}
	}
	if c.MetricsPath != "" {
		if err := sum.writeMetrics(c.MetricsPath, c.Private); err != nil {
			r.log.Error("could not write the metrics file", "error", err)
		}
	}
	return sum, nil
}

// readPrevious reads the previous report and its journal (and the baseline,
// if it is another file) into the ledger, changing nothing, and refuses to
// go on where going on would destroy a record.
func (r *run) readPrevious(ctx context.Context, rows []plan.Row) error {
	c := &r.c
	r.led = newLedger(rows)
	r.journalAt = report.JournalPath(c.ReportPath)
	var pr prior
	var err error
	if r.files[srcReport].cols, r.prevReport, err = r.led.readOpen(ctx, c.ReportPath, srcReport, &pr); err != nil {
		return readError("", err)
	}
	if pr.torn {
		r.log.Warn("the report's last line is torn (a crash of an earlier version); that row counts as not done", "report", c.ReportPath)
	}
	{
		var jp prior
		if r.files[srcJournal].cols, r.leftJournal, err = r.led.readOpen(ctx, r.journalAt, srcJournal, &jp); err != nil {
			return readError("", err)
		}
		if jp.torn {
			r.log.Warn("the journal's last line was cut short by a crash; that row counts as not done", "journal", r.journalAt)
		}
		pr.applied += jp.applied
		pr.exists = pr.exists || jp.exists
		if pr.foreign == 0 {
			pr.foreign, pr.foreignAt = jp.foreign, jp.foreignAt
		}
	}
	sameBase := c.BaselinePath != "" && samePath(c.BaselinePath, c.ReportPath)
	switch {
	case c.Resume && pr.foreign != 0:
		return inputErrorf("--resume: report %s is not this plan's: it has Id %d (%s), which %s does not; give --report a new path",
			c.ReportPath, pr.foreign, pr.foreignAt, c.PlanPath)
	case pr.applied > 0 && !c.Resume && !sameBase && !c.Overwrite:
		return inputErrorf("report %s records %d rows an earlier run sent; to keep that record, carry on with --resume, "+
			"or give --report another path; to replace it, pass --overwrite", c.ReportPath, pr.applied)
	}
	if jc := r.files[srcJournal].cols; jc != nil && !jc.Current {
		return inputErrorf("journal %s was written by another version of certalloc; finish its run with that version, or remove it", r.journalAt)
	}
	if !c.Resume && !sameBase {
		// Nothing of the earlier record is carried into this run's report
		// (readPrevious refused the run if that would lose a sent row
		// without --overwrite).
		r.led.slots = make([]slot, len(rows))
	}
	if c.BaselinePath == "" {
		return nil
	}
	if sameBase {
		r.base = r.led.slots
		if !pr.exists {
			r.log.Info("the baseline does not exist yet or is empty: every row is new", "baseline", c.BaselinePath)
		}
		return nil
	}
	base := &ledger{rows: rows, byID: r.led.byID, slots: make([]slot, len(rows))}
	var bp prior
	_, err = base.readFile(ctx, c.BaselinePath, srcNone, &bp)
	if err == nil {
		_, err = base.readFile(ctx, report.JournalPath(c.BaselinePath), srcNone, &bp)
	}
	if err != nil {
		return readError("--baseline: ", err)
	}
	if !bp.exists {
		r.log.Info("the baseline does not exist yet or is empty: every row is new", "baseline", c.BaselinePath)
	}
	r.base = base.slots
	return nil
}

// selectRows decides each row's disposition and returns the rows to send.
func (r *run) selectRows(rows []plan.Row) []plan.Row {
	todo := make([]plan.Row, 0, len(rows))
	for p, row := range rows {
		s := &r.led.slots[p]
		switch {
		case r.c.Resume && r.led.done(p):
			s.do = doSkip
			r.skipped++
		case r.base != nil && r.base[p].status == stSucceeded && r.base[p].count == row.CertTotalCount:
			s.do = doUnchanged
			r.unchanged++
		default:
			todo = append(todo, row)
		}
	}
	if r.c.Resume {
		r.log.Info("resuming", "report", r.c.ReportPath, "skipped", r.skipped, "remaining", len(rows)-r.skipped)
	}
	if r.c.BaselinePath != "" {
		r.log.Info("baseline", "file", r.c.BaselinePath, "to_assign", len(todo), "unchanged", r.unchanged)
	}
	return todo
}

// onSend runs before a row's first request leaves. The first one opens the
// record for writing: the stale failures file goes (it may hold another
// plan's values, and applying it then would roll the service back), and
// the journal is opened, its torn tail cut. Then the row is noted as being
// sent: should the run die now, its state is unknown.
func (r *run) onSend(row plan.Row) error {
	r.openOnce.Do(func() { r.openErr = r.openJournal() })
	if r.openErr != nil {
		return r.openErr
	}
	rec := report.Row{Line: row.Line, ID: row.ID, CertTotalCount: row.CertTotalCount, CaIdentifier: row.CaIdentifier,
		Status: report.Sending, FinishedAt: time.Now().UTC().Format(time.RFC3339)}
	off, n, err := r.journal.Append(&rec)
	if err != nil {
		return err
	}
	r.led.noteJournal(r.led.pos(row.ID), off, n, stOther, row.CertTotalCount)
	return nil
}

func (r *run) openJournal() error {
	if err := os.Remove(r.c.FailuresPath); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove the last run's failures file: %w", err)
	}
	j, err := report.OpenJournal(r.journalAt, r.c.Private)
	if err != nil {
		return err
	}
	keep := r.c.Resume || r.base != nil && samePath(r.c.BaselinePath, r.c.ReportPath)
	if keep && r.leftJournal != nil {
		// The ledger points into the journal read at the start; appending
		// to another file there (the first deleted or replaced since) would
		// mix offsets of two files in the final report.
		if err := sameFile(j, r.leftJournal); err != nil {
			j.Close()
			return fmt.Errorf("journal %s: %w; nothing more is sent", r.journalAt, err)
		}
	}
	if keep {
		_, err = j.Load(nil)
	} else {
		err = j.Reset()
	}
	if err != nil {
		j.Close()
		return err
	}
	r.journal = j
	r.files[srcJournal] = recordFile{r: j.ReaderAt(), cols: report.CurrentColumns()}
	return nil
}

// outcome journals a finished row. Rows the run never sent are not
// journaled: the final report says why, and a crash before it loses
// nothing, since they were not sent.
func (r *run) outcome(out apply.Outcome) error {
	p := r.led.pos(out.Row.ID)
	if out.Status == apply.NotAttempted {
		r.led.slots[p].do = doNotSent
		if r.stopMsg == "" && out.Err != nil {
			r.stopMsg = strings.TrimPrefix(out.Err.Message, "not sent: ")
		}
		return nil
	}
	if out.Status == apply.Failed {
		r.log.Warn("row failed", "line", out.Row.Line, "id", out.Row.ID, "code", out.Err.Code, "message", out.Err.Message, "attempts", out.Attempts)
	}
	rec := reportRow(out)
	var err error
	if r.journal == nil {
		err = errors.New("the journal is not open")
	} else {
		var off, n int64
		if off, n, err = r.journal.Append(&rec); err == nil {
			st := stOther
			if out.Status == apply.Succeeded {
				st = stSucceeded
			}
			r.led.noteJournal(p, off, n, st, out.Row.CertTotalCount)
			return nil
		}
	}
	if r.unrecorded == nil {
		r.unrecorded = map[int]apply.Outcome{}
	}
	r.unrecorded[p] = out
	r.led.slots[p].do = doUnrecorded
	r.log.Error("could not journal a row's outcome; stopping", "line", out.Row.Line, "id", out.Row.ID, "status", out.Status, "error", err)
	return err
}

// finish writes the final report and the failures file, and removes the
// journal once the report holds everything it had.
func (r *run) finish() []error {
	var errs []error
	c := &r.c
	if err := r.openReportForCopy(); err != nil {
		return []error{err, r.writeFailures()}
	}
	rc := rowContext{now: r.now, baseline: c.BaselinePath, stopReason: r.stopMsg, unrecorded: r.unrecorded}
	err := report.WriteAtomic(c.ReportPath, c.Private, func(w io.Writer) error {
		if _, err := w.Write(report.HeaderLine()); err != nil {
			return err
		}
		return r.led.writeReport(w, r.files, rc)
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("could not write the report: %w; the previous report is unchanged and this run's rows are in %s", err, r.journalAt))
	} else if err := r.removeJournal(); err != nil {
		errs = append(errs, err)
	}
	if err := r.writeFailures(); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// openReportForCopy points the final report's copying at the files the
// ledger's offsets were taken from: the previous report, and a journal a
// crashed run left that this run did not open for writing. They were kept
// open since they were read, so a report deleted or replaced meanwhile
// changes nothing.
func (r *run) openReportForCopy() error {
	if r.files[srcReport].cols != nil {
		if r.prevReport == nil {
			return errors.New("internal error: the previous report is not open")
		}
		r.files[srcReport].r = r.prevReport
	}
	if r.journal == nil && r.files[srcJournal].cols != nil {
		if r.leftJournal == nil {
			return errors.New("internal error: the journal is not open")
		}
		r.files[srcJournal].r = r.leftJournal
	}
	return nil
}

func sameFile(j *report.Journal, read *os.File) error {
	now, err := j.Stat()
	if err != nil {
		return err
	}
	then, err := read.Stat()
	if err != nil {
		return err
	}
	if !os.SameFile(now, then) {
		return errors.New("deleted or replaced since this run read it")
	}
	return nil
}

func (r *run) removeJournal() error {
	if r.journal != nil {
		if err := r.journal.Close(); err != nil {
			return fmt.Errorf("journal %s: %w", r.journalAt, err)
		}
		r.journal = nil
	}
	if err := os.Remove(r.journalAt); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("the report is complete, but its journal could not be removed: %w", err)
	}
	return nil
}

func (r *run) writeFailures() error {
	var rows []report.FailureRow
	for p, row := range r.led.rows {
		if !r.led.succeeded(p) {
			rows = append(rows, report.FailureRow{ID: row.ID, CertTotalCount: row.CertTotalCount, CaIdentifier: row.CaIdentifier})
		}
	}
	if err := report.WriteFailures(r.c.FailuresPath, rows, report.FailuresOptions{Private: r.c.Private, CaIdentifier: r.hasCA}); err != nil {
		return fmt.Errorf("could not write the failures file: %w", err)
	}
	return nil
}

func (r *run) closeFiles() {
	if r.journal != nil {
		r.journal.Close()
	}
	for _, f := range []*os.File{r.prevReport, r.leftJournal} {
		if f != nil {
			f.Close()
		}
	}
}

func (r *run) logAttempt(ctx context.Context) func(apply.Attempt) {
	return func(a apply.Attempt) {
		if !r.log.Enabled(ctx, slog.LevelDebug) {
			return
		}
		attrs := []any{"line", a.Row.Line, "id", a.Row.ID, "attempt", a.N, "latency_seconds", a.Latency.Seconds()}
		if a.Err != nil {
			attrs = append(attrs, "code", a.Err.Code, "status", a.Err.HTTPStatus, "class", a.Err.Class.String(), "message", a.Err.Message)
		}
		r.log.Debug("attempt", attrs...)
	}
}

// readRows reads and validates the whole plan. ctx is checked as it goes:
// a signal while a big plan is read ends the run before anything changes.
func readRows(ctx context.Context, path string, delim rune) ([]plan.Row, plan.Stats, error) {
	var rows []plan.Row
	st, err := readPlan(path, delim, func(row plan.Row) error {
		if len(rows)%4096 == 0 && ctx.Err() != nil {
			return context.Cause(ctx)
		}
		rows = append(rows, row)
		return nil
	})
	if err != nil {
		return nil, st, err
	}
	return rows, st, nil
}

func joinIDs(ids []int64) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteString(", ")
		}
		if i == 50 {
			fmt.Fprintf(&b, "and %d more", len(ids)-i)
			break
		}
		fmt.Fprint(&b, id)
	}
	return b.String()
}

type noProgress struct{}

func (noProgress) Start(int)         {}
func (noProgress) Add(apply.Outcome) {}
func (noProgress) Finish()           {}

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
