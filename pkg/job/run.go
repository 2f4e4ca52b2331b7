package job

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

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
	files [nSources]recordFile
	// The previous report and a crashed run's journal, as read at the
	// start, kept open: the ledger's offsets point into these files.
	prevReport  *os.File
	leftJournal *os.File
	// unlockFailures releases the lock of the failures file's own record,
	// held while this run may carry rows from it.
	unlockFailures func() error
	journal        *report.Journal
	journalAt      string
	openOnce       sync.Once
	openErr        error
	unrecorded     map[int]apply.Outcome
	stopMsg        string
	skipped        int
	unchanged      int
	hasCA          bool // the plan has a CaIdentifier column: the failures file keeps it
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
	if err := checkWritable("--report", c.ReportPath, "--failures", c.FailuresPath, "--summary", c.SummaryPath, "--metrics-file", c.MetricsPath); err != nil {
		return nil, err
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
	defer func() {
		if r.unlockFailures != nil {
			r.unlockFailures()
		}
	}()

	if err := r.readPrevious(ctx, rows); err != nil {
		return nil, err
	}
	todo := r.selectRows(rows)
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}

	limit, maxFail, _ := parseMaxFailures(c.MaxFailures, len(todo))
	cfg := apply.Config{QPS: c.QPS, Workers: c.Workers, MaxAttempts: c.MaxAttempts, BreakerRows: c.BreakerRows,
		LimitFailures: limit, MaxFailures: maxFail, OnSend: r.onSend, OnAttempt: r.logAttempt(ctx)}
	if c.Deadline > 0 {
		cfg.Deadline = c.Started.Add(c.Deadline) // the budget includes reading the plan
	}
	workers := min(c.Workers, max(1, len(todo)))
	clients, err := cas.NewFactory(cas.Config{Endpoint: c.Endpoint, Region: c.Region, Timeout: c.Timeout, Credentials: creds,
		UserAgent: c.UserAgent}, workers)
	if err != nil {
		return nil, err
	}
	// Made as the runner's pool grows (half a KiB each, sharing one
	// connection pool), at most workers.
	newAssigner := func() (apply.Assigner, error) { return clients.New() }

	r.log.Info("applying", "plan", c.PlanPath, "rows", len(todo), "report", c.ReportPath, "failures", c.FailuresPath,
		"endpoint", c.Endpoint.String(), "region", c.Region,
		"credentials", creds.Source, "access_key_id", creds.AccessKeyID, "qps", c.QPS, "workers", workers)
	r.noteFailuresPlan()
	prog := c.Progress
	if prog == nil {
		prog = noProgress{}
	}
	prog.Start(len(todo))
	stats := apply.Run(ctx, todo, newAssigner, cfg, func(out apply.Outcome) error {
		prog.Add(out)
		return r.outcome(out)
	})
	prog.Finish()
	if stats.Fatal != nil {
		r.logAccessDenied(stats.Fatal)
	}

	if !limit {
		maxFail = -1
	}
	sum := newSummary(c, stats, len(rows), r.skipped, r.unchanged, maxFail)
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
	r.led.slots = make([]slot, len(rows))
	r.journalAt = report.JournalPath(c.ReportPath)
	sameBase := c.BaselinePath != "" && samePath(c.BaselinePath, c.ReportPath)
	var pr prior
	var err error
	// --overwrite replaces the record without reading it (unless this run
	// carries on from it after all, as its own baseline).
	if !c.Overwrite || sameBase {
		if r.files[srcReport].cols, r.prevReport, err = r.led.readOpen(ctx, c.ReportPath, srcReport, &pr); err != nil {
			return readError("", err)
		}
		if pr.torn {
			r.log.Warn("the report's last line is torn (a crash of an earlier version); that row counts as not done", "report", c.ReportPath)
		}
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
	flag := map[bool]string{false: "--resume", true: "--retry-failed"}[c.RetryFailed]
	switch {
	case c.RetryFailed && !pr.exists:
		return inputErrorf("--retry-failed: there is no record to finish at %s (no report with rows, no journal); apply the plan without --retry-failed first, or give --report the record's path",
			c.ReportPath)
	case c.carries() && pr.foreign != 0:
		// A row taken out of the plan: the record as the baseline carries
		// on from it, keeping what is done and dropping that row.
		return inputErrorf("%s: report %s is not this plan's: it has Id %d (%s), which %s does not; "+
			"to apply %s from that record, sending only the rows not done there: %s; or give --report a new path",
			flag, c.ReportPath, pr.foreign, pr.foreignAt, c.PlanPath,
			c.PlanPath, c.command([]string{"--baseline", shellQuote(c.ReportPath)}, c.PlanPath, c.ReportPath, c.FailuresPath))
	case pr.applied > 0 && !c.carries() && !sameBase && !c.Overwrite:
		return inputErrorf("report %s records %d rows an earlier run sent; to keep that record, carry on with --resume, "+
			"or give --report another path; to replace it, pass --overwrite", c.ReportPath, pr.applied)
	}
	if jc := r.files[srcJournal].cols; jc != nil && !jc.Current {
		return inputErrorf("journal %s was written by another version of certalloc; finish its run with that version, or remove it", r.journalAt)
	}
	if c.RetryFailed {
		if err := r.checkUnchangedPlan(); err != nil {
			return err
		}
	}
	if c.carries() {
		if err := r.adoptFailuresRecord(ctx); err != nil {
			return err
		}
	}
	if !c.carries() && !sameBase {
		// Nothing of the earlier record is carried into this run's report
		// (readPrevious refused the run if that would lose a sent row
		// without --overwrite).
		clear(r.led.slots)
	}
	if c.BaselinePath == "" {
		return nil
	}
	exists := pr.exists
	if sameBase {
		// The report is its own baseline: what was read is it.
		r.led.base = slices.Clone(r.led.slots)
	} else if exists, err = r.led.readBaseline(ctx, c.BaselinePath, &r.files); err != nil {
		return err
	}
	if !exists {
		r.log.Info("the baseline does not exist yet or is empty: every row is new", "baseline", c.BaselinePath)
	}
	return nil
}

// noteFailuresPlan says, when the plan is another plan's failures file,
// where this run's record goes: to its own report, not to that plan's,
// which --retry-failed on that plan later takes these rows from.
func (r *run) noteFailuresPlan() {
	base := strings.TrimSuffix(r.c.PlanPath, filepath.Ext(r.c.PlanPath))
	orig, ok := strings.CutSuffix(base, ".failures")
	if !ok {
		return
	}
	if _, err := os.Stat(orig + ".report.csv"); err != nil {
		return
	}
	finish := "certalloc apply --retry-failed on its plan"
	if _, err := os.Stat(orig + ".csv"); err == nil {
		finish = r.c.RetryCommand(orig+".csv", orig+".report.csv", r.c.PlanPath)
	}
	r.log.Info("this plan is a failures file: this run's record goes to its own report, and "+orig+".report.csv is not changed; "+
		finish+" takes the rows this run finishes from it", "report", r.c.ReportPath, "failures", r.c.FailuresPath)
}

// checkUnchangedPlan refuses a --retry-failed whose plan gives a row the
// record has as done another total: sending it would be a new assignment,
// not a retry, and keeping its record would leave a report at odds with
// its plan. A row not done may have a corrected total: it is sent anyway.
func (r *run) checkUnchangedPlan() error {
	var changed []string
	n := 0
	for p, row := range r.led.rows {
		s := &r.led.slots[p]
		if s.status() != stSucceeded || s.count == row.CertTotalCount {
			continue
		}
		if n++; n <= 5 {
			changed = append(changed, fmt.Sprintf("%s:%d: Id %d is %d in the record, %d in the plan", r.c.PlanPath, row.Line, row.ID, s.count, row.CertTotalCount))
		}
	}
	if n == 0 {
		return nil
	}
	if n > 5 {
		changed = append(changed, fmt.Sprintf("and %d more", n-5))
	}
	return inputErrorf("--retry-failed: the plan changed since the record %s: %d rows it has as done have another CertTotalCount now:\n  %s\n"+
		"--retry-failed only sends rows that are not done; to apply the changed plan and keep the record, carry on with --resume",
		r.c.ReportPath, n, strings.Join(changed, "\n  "))
}

// selectRows decides each row's disposition and returns the rows to send.
func (r *run) selectRows(rows []plan.Row) []plan.Row {
	send := 0
	for p := range rows {
		s := &r.led.slots[p]
		switch {
		case r.c.carries() && r.led.done(p):
			s.setDo(doSkip)
			r.skipped++
		case r.led.unchanged(p):
			s.setDo(doUnchanged)
			r.unchanged++
		default:
			send++
		}
	}
	// The rows to send, in plan order: the plan's own slice when that is
	// all of it, so a big first run holds its rows once.
	todo := rows
	if send < len(rows) {
		todo = make([]plan.Row, 0, send)
		for p, row := range rows {
			if r.led.slots[p].do() == doSend {
				todo = append(todo, row)
			}
		}
	}
	switch {
	case r.c.Resume:
		r.log.Info("resuming", "report", r.c.ReportPath, "skipped", r.skipped, "remaining", len(rows)-r.skipped)
	case r.c.RetryFailed:
		r.log.Info("retrying the rows not done", "report", r.c.ReportPath, "done", r.skipped, "to_retry", len(rows)-r.skipped)
	}
	if r.c.BaselinePath != "" {
		r.log.Info("baseline", "file", r.c.BaselinePath, "to_assign", len(todo), "unchanged", r.unchanged)
	}
	return todo
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
	// Sized from the line count, a bound on the rows: grown by append, a
	// million-row plan would peak at three times its 40 MB.
	rows := make([]plan.Row, 0, countLines(path))
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

// countLines counts the lines of path (LF ends, or CR ends in a file that
// has no LF), or 0 when it cannot be read twice (readPlan will say why).
func countLines(path string) int {
	// Only a regular file can be read twice: a plan on a pipe
	// (/dev/stdin) is read once, by the plan reader, and its rows grow.
	if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
		return 0
	}
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	buf := make([]byte, 256<<10)
	lf, cr := 0, 0
	for {
		k, err := f.Read(buf)
		lf += bytes.Count(buf[:k], []byte{'\n'})
		cr += bytes.Count(buf[:k], []byte{'\r'})
		if err != nil {
			if lf == 0 { // old-Mac line ends
				lf = cr
			}
			return lf + 1
		}
	}
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

// checkWritable makes sure output files can be created before anything is
// sent, without leaving them behind; pairs are a flag and its path. Its
// errors name the flag and the user's path, not the probe file's. A folder
// that does not exist is a bad argument (exit 2), as any other; a folder
// that exists but refuses the file is the host's problem (exit 1).
func checkWritable(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		flag, p := pairs[i], pairs[i+1]
		if p == "" {
			continue
		}
		dir := filepath.Dir(p)
		switch fi, err := os.Stat(dir); {
		case errors.Is(err, fs.ErrNotExist):
			return inputErrorf("%s %s: folder %s does not exist (create it first); nothing was sent", flag, p, dir)
		case err == nil && !fi.IsDir():
			return inputErrorf("%s %s: %s is not a folder; nothing was sent", flag, p, dir)
		}
		f, err := os.CreateTemp(dir, "."+filepath.Base(p)+".check*")
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return fmt.Errorf("%s: cannot write %s: %w; nothing was sent", flag, p, err)
		}
		f.Close()
		os.Remove(f.Name())
	}
	return nil
}
