package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/certalloc/certalloc/pkg/apply"
	"github.com/certalloc/certalloc/pkg/cas"
	"github.com/certalloc/certalloc/pkg/plan"
	"github.com/certalloc/certalloc/pkg/report"
)

const applyUsage = `
Usage: certalloc apply [flags] PLAN.csv
       certalloc plan [flags] PLAN.csv        (the same as apply --dry-run)

Applies an allocation plan: one AssignCertificateCount call per row, paced
to --qps, with retries, and a report row per plan row as results arrive.

Examples:
  # check and price a plan; sends nothing, needs no credentials
  certalloc plan plans/example.csv

  # apply it with the credentials of the aliyun CLI's default profile
  certalloc apply plans/example.csv

  # nightly from cron: send only what changed since the last run, stop
  # before the next run starts, JSON logs and a metric for monitoring
  certalloc apply --baseline last.report.csv --report tonight.report.csv \
      --deadline 50m --log-format json --metrics-file /var/lib/node_exporter/certalloc.prom plan.csv

  # carry on after a crash or Ctrl-C, skipping rows already applied
  certalloc apply --resume plans/example.csv

  # apply the rows that failed last time
  certalloc apply plans/example.failures.csv

  # try it against the bundled emulator (run 'certalloc emulator' first)
  certalloc apply --endpoint http://127.0.0.1:8080 plans/example.csv
`

type applyOptions struct {
	planPath     string
	reportPath   string
	failuresPath string
	summaryPath  string
	metricsPath  string
	baselinePath string

	dryRun, resume, private, insecure bool

	qps         float64
	workers     int
	maxAttempts int
	timeout     time.Duration
	deadline    time.Duration
	maxFailures string
	region      string
	endpoint    string
	profile     string

	progress      string
	progressEvery time.Duration
	term          *termWriter // stderr, shared by the logger and the bar
	started       time.Time
	ep            cas.Endpoint
	epWarning     string
	logFormat     string
	logLevel      string
}

func (o *applyOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.reportPath, "report", "", "report CSV `path` (default PLAN.report.csv beside the plan; PLAN.planned.csv for a dry run)")
	fs.StringVar(&o.failuresPath, "failures", "", "failures CSV `path`, itself a plan of the rows not done (default PLAN.failures.csv)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "validate and price the plan; send nothing, need no credentials")
	fs.BoolVar(&o.resume, "resume", false, "keep the existing report and skip rows it shows succeeded with the same CertTotalCount")
	fs.StringVar(&o.baselinePath, "baseline", "", "a previous run's report: rows it shows succeeded with the same CertTotalCount are unchanged and skipped")
	fs.Float64Var(&o.qps, "qps", apply.DefaultQPS, "requests per second, never exceeded in any sliding second (the service allows 10 per account)")
	fs.IntVar(&o.workers, "workers", 0, "requests in flight at most (default 4 × qps, enough for 4s answers)")
	fs.IntVar(&o.maxAttempts, "max-attempts", apply.DefaultMaxAttempts, "requests per row at most, throttled and timed-out ones included")
	fs.DurationVar(&o.timeout, "timeout", cas.DefaultTimeout, "per-request timeout")
	fs.DurationVar(&o.deadline, "deadline", 0, "stop admitting rows after this long (e.g. 50m); the rest go to the failures file")
	fs.StringVar(&o.maxFailures, "max-failures", "", "stop once more than `N` rows (or N% of them) have failed")
	fs.StringVar(&o.region, "region", "", "region id (default $ALIBABA_CLOUD_REGION_ID, then the profile's, then cn-hangzhou)")
	fs.StringVar(&o.endpoint, "endpoint", "", "endpoint URL (default https://cas.aliyuncs.com; http only to loopback)")
	fs.BoolVar(&o.insecure, "insecure-endpoint", false, "allow a plain http endpoint that is not loopback")
	fs.StringVar(&o.profile, "profile", "", "aliyun CLI profile in ~/.aliyun/config.json (default $ALIBABA_CLOUD_PROFILE, then the SDK's default chain)")
	fs.BoolVar(&o.private, "private", false, "create output files with mode 0600 instead of 0644")
	fs.StringVar(&o.summaryPath, "summary", "", "also write the summary as JSON to this `file`")
	fs.StringVar(&o.metricsPath, "metrics-file", "", "write Prometheus textfile-collector metrics to this `file.prom`")
	fs.StringVar(&o.progress, "progress", "auto", "progress display: auto (a bar on a terminal, log lines otherwise), always, never")
	fs.DurationVar(&o.progressEvery, "progress-interval", 30*time.Second, "without a terminal, log a progress line this often")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format on stderr: text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

func runApply(ctx context.Context, args []string, dryRun bool, stdout, stderr io.Writer) error {
	o, log, err := parseApply(args, dryRun, stderr)
	if err != nil {
		return err
	}
	if o.dryRun {
		return dryRunPlan(ctx, o, log, stdout)
	}
	return applyPlan(ctx, o, log, stdout, stderr)
}

// parseApply reads and checks an apply or plan command line.
func parseApply(args []string, dryRun bool, stderr io.Writer) (*applyOptions, *slog.Logger, error) {
	o := applyOptions{started: time.Now()}
	fs := newFlagSet("apply", applyUsage, stderr)
	o.register(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return nil, nil, err
	}
	if len(pos) != 1 {
		return nil, nil, usagef("apply takes one plan file, got %d arguments (see --help)", len(pos))
	}
	o.planPath = pos[0]
	o.dryRun = o.dryRun || dryRun
	if err := o.check(); err != nil {
		return nil, nil, err
	}
	o.term = &termWriter{w: stderr}
	log, err := newLogger(o.term, o.logFormat, o.logLevel)
	if err != nil {
		return nil, nil, err
	}
	if o.epWarning != "" {
		log.Warn(o.epWarning)
	}
	return &o, log, nil
}

// check validates flags and fills in defaults. Every problem here is a
// usage error: nothing has been read or sent.
func (o *applyOptions) check() error {
	if os.Getenv("DEBUG") != "" && strings.Contains(","+os.Getenv("DEBUG")+",", ",sdk,") {
		return usagef("DEBUG=sdk makes the Alibaba Cloud SDK print signed URLs, security tokens included; unset it")
	}
	if o.qps <= 0 || math.IsInf(o.qps, 0) || math.IsNaN(o.qps) {
		return usagef("--qps must be a positive number, got %v", o.qps)
	}
	if o.workers < 0 {
		return usagef("--workers must be positive, got %d", o.workers)
	}
	if o.workers == 0 {
		o.workers = apply.DefaultWorkers(o.qps)
	}
	if o.maxAttempts < 1 {
		return usagef("--max-attempts must be at least 1, got %d", o.maxAttempts)
	}
	if o.timeout <= 0 {
		return usagef("--timeout must be positive, got %v", o.timeout)
	}
	if o.deadline < 0 {
		return usagef("--deadline must be positive, got %v", o.deadline)
	}
	if _, _, err := parseMaxFailures(o.maxFailures, 0); err != nil {
		return err
	}
	if o.progressEvery <= 0 {
		return usagef("--progress-interval must be positive, got %v", o.progressEvery)
	}
	switch o.progress {
	case "auto", "always", "never":
	default:
		return usagef("--progress must be auto, always or never, got %q", o.progress)
	}
	var err error
	if o.ep, o.epWarning, err = cas.ParseEndpoint(o.endpoint, o.insecure); err != nil {
		return usageError{err.Error()}
	}
	if o.region != "" && !regionRE.MatchString(o.region) {
		return usagef("--region %q: want a region id such as cn-hangzhou", o.region)
	}
	if o.resume && o.baselinePath != "" {
		return usagef("--resume and --baseline do not go together: resume carries on in the same report")
	}
	if o.dryRun && o.resume {
		return usagef("--resume does not go with a dry run")
	}
	base := strings.TrimSuffix(o.planPath, filepath.Ext(o.planPath))
	if o.reportPath == "" {
		o.reportPath = base + ".report.csv"
		if o.dryRun {
			// Not the apply report: a dry run must not replace the record
			// of what was applied, which --resume and --baseline read.
			o.reportPath = base + ".planned.csv"
		}
	}
	if o.failuresPath == "" {
		o.failuresPath = base + ".failures.csv"
	}
	return checkPaths(map[string]string{
		"plan": o.planPath, "--report": o.reportPath, "--failures": o.failuresPath,
		"--summary": o.summaryPath, "--metrics-file": o.metricsPath,
	}, o.baselinePath)
}

var regionRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// checkPaths refuses two roles on one file: a report written over its own
// plan loses the plan.
func checkPaths(paths map[string]string, baseline string) error {
	type seen struct{ role, path string }
	var all []seen
	for _, role := range []string{"plan", "--report", "--failures", "--summary", "--metrics-file"} {
		p := paths[role]
		if p == "" {
			continue
		}
		for _, s := range all {
			if samePath(s.path, p) {
				return usagef("%s and %s are the same file (%s)", s.role, role, p)
			}
		}
		all = append(all, seen{role, p})
	}
	if baseline != "" {
		for _, s := range all[1:] { // the baseline may well be an old report, but not an output
			if s.role != "--report" && samePath(s.path, baseline) {
				return usagef("--baseline and %s are the same file (%s)", s.role, baseline)
			}
		}
	}
	return nil
}

func samePath(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	if err1 == nil && err2 == nil && aa == bb {
		return true
	}
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// parseMaxFailures reads "N" or "N%" (of rows).
func parseMaxFailures(s string, rows int) (limit bool, n int, err error) {
	if s == "" {
		return false, 0, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || f < 0 || f > 100 {
			return false, 0, usagef("--max-failures %q: want N or N%% with N from 0 to 100", s)
		}
		return true, int(math.Floor(f / 100 * float64(rows))), nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return false, 0, usagef("--max-failures %q: want a count or a percentage such as 5%%", s)
	}
	return true, v, nil
}

// readPlan validates the whole plan; an invalid one is a usage error.
func readPlan(path string, fn func(plan.Row) error) (plan.Stats, error) {
	st, err := plan.ReadFile(path, plan.Options{}, fn)
	var perrs *plan.Errors
	switch {
	case errors.As(err, &perrs):
		return st, exitError{ExitUsage, fmt.Errorf("%v\nnothing was sent", err)}
	case err != nil:
		return st, exitError{ExitUsage, fmt.Errorf("plan: %v", err)}
	}
	return st, nil
}

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
		return nil, exitError{ExitUsage, fmt.Errorf("--baseline: %v", err)}
	}
	return b, nil
}

// classify says what a row is against the baseline.
func (b baseline) classify(r plan.Row) string {
	n, ok := b[r.ID]
	switch {
	case !ok:
		return "new"
	case n != r.CertTotalCount:
		return "changed"
	}
	return "unchanged"
}

// estimate is how long rows take at qps, with the pacer's guard.
func estimate(rows int, qps float64) time.Duration {
	if rows == 0 {
		return 0
	}
	perWindow := math.Max(1, math.Floor(qps))
	byWindow := time.Duration(float64(rows-1) / perWindow * float64(time.Second+apply.PaceGuard))
	byRate := time.Duration(float64(rows-1) / qps * float64(time.Second))
	return max(byWindow, byRate).Round(time.Second)
}

func dryRunPlan(ctx context.Context, o *applyOptions, log *slog.Logger, stdout io.Writer) error {
	start := time.Now()
	var base baseline
	if o.baselinePath != "" {
		var err error
		if base, err = readBaseline(o.baselinePath); err != nil {
			return err
		}
	}
	// Pass one validates the whole plan; only a valid plan gets a report.
	st, err := readPlan(o.planPath, func(plan.Row) error { return nil })
	if err != nil {
		return err
	}
	w, err := report.Open(o.reportPath, report.Options{Private: o.private, Buffered: true})
	if err != nil {
		return reportOpenError(err)
	}
	counts := map[string]int{}
	_, err = readPlan(o.planPath, func(r plan.Row) error {
		if base != nil {
			kind := base.classify(r)
			counts[kind]++
			if kind == "unchanged" {
				return nil
			}
		}
		return w.Write(report.Row{Line: r.Line, ID: r.ID, CertTotalCount: r.CertTotalCount, CaIdentifier: r.CaIdentifier, Status: report.Planned})
	})
	if cerr := w.Close(); err == nil && cerr != nil {
		err = exitError{ExitFatal, cerr}
	}
	if err != nil {
		return err
	}
	toSend := st.Rows
	fmt.Fprintf(stdout, "Plan %s is valid: %d rows, %d distinct Ids, CertTotalCount sum %d.\n", o.planPath, st.Rows, st.Rows, st.Sum)
	if base != nil {
		toSend = counts["new"] + counts["changed"]
		fmt.Fprintf(stdout, "Plan: %d to assign (%d new Ids, %d changed), %d unchanged (baseline %s).\n",
			toSend, counts["new"], counts["changed"], counts["unchanged"], o.baselinePath)
	}
	fmt.Fprintf(stdout, "Estimated time at %g requests/s: %s (%d requests, no retries).\n", o.qps, estimate(toSend, o.qps), toSend)
	fmt.Fprintf(stdout, "Dry run: nothing was sent. Report: %s\n", o.reportPath)
	log.Debug("dry run done", "elapsed", time.Since(start))
	return nil
}

func reportOpenError(err error) error {
	if errors.Is(err, report.ErrLocked) {
		return exitError{ExitLocked, fmt.Errorf("%v: it is running already; nothing was sent", err)}
	}
	return exitError{ExitFatal, fmt.Errorf("%v; nothing was sent", err)}
}

func applyPlan(ctx context.Context, o *applyOptions, log *slog.Logger, stdout, stderr io.Writer) error {
	ep := o.ep
	var err error
	var base baseline
	if o.baselinePath != "" {
		if base, err = readBaseline(o.baselinePath); err != nil {
			return err
		}
	}
	var rows []plan.Row
	if _, err := readPlan(o.planPath, func(r plan.Row) error { rows = append(rows, r); return nil }); err != nil {
		return err
	}
	if err := checkWritable(o.failuresPath, o.summaryPath, o.metricsPath); err != nil {
		return exitError{ExitFatal, fmt.Errorf("%v; nothing was sent", err)}
	}

	creds, err := cas.ResolveCredentials(o.profile)
	if err != nil {
		return exitError{ExitFatal, err}
	}
	region := firstNonEmpty(o.region, os.Getenv("ALIBABA_CLOUD_REGION_ID"), cas.ProfileRegion(o.profile), cas.DefaultRegion)

	// The report is opened last of the inputs: it takes the lock, and
	// (without --resume) empties the last run's report.
	done := map[int64]int32{}
	var planIDs map[int64]bool
	if o.resume {
		planIDs = make(map[int64]bool, len(rows))
		for _, r := range rows {
			planIDs[r.ID] = true
		}
	}
	var foreign []int64
	w, err := report.Open(o.reportPath, report.Options{Resume: o.resume, Private: o.private, Existing: func(r report.Row) error {
		if !planIDs[r.ID] {
			foreign = append(foreign, r.ID)
		}
		if r.Status == report.Succeeded {
			done[r.ID] = r.CertTotalCount
		}
		return nil
	}})
	if err != nil {
		return reportOpenError(err)
	}
	defer w.Close()
	if len(foreign) > 0 {
		return exitError{ExitUsage, fmt.Errorf("--resume: report %s is not this plan's: it has Id %d, which %s does not; give --report a new path", o.reportPath, foreign[0], o.planPath)}
	}
	if w.Torn {
		log.Warn("the report's last line was cut short by a crash; removed it, that row counts as not done", "report", o.reportPath)
	}

	todo, skipped, unchanged := selectRows(rows, done, base)
	if o.resume {
		log.Info("resuming", "report", o.reportPath, "skipped", skipped, "remaining", len(todo))
	}
	now := time.Now().UTC().Format(time.RFC3339)
	for _, r := range unchanged {
		// Carried forward so that this report can be tomorrow's baseline.
		if err := w.Write(report.Row{Line: r.Line, ID: r.ID, CertTotalCount: r.CertTotalCount, CaIdentifier: r.CaIdentifier, Status: report.Succeeded,
			ErrorMessage: "unchanged since baseline " + o.baselinePath + "; not sent", FinishedAt: now}); err != nil {
			return exitError{ExitFatal, err}
		}
	}
	if base != nil {
		log.Info("baseline", "file", o.baselinePath, "to_assign", len(todo), "unchanged", len(unchanged))
	}

	limit, maxFail, _ := parseMaxFailures(o.maxFailures, len(todo))
	cfg := apply.Config{QPS: o.qps, MaxAttempts: o.maxAttempts, LimitFailures: limit, MaxFailures: maxFail}
	if o.deadline > 0 {
		cfg.Deadline = o.started.Add(o.deadline) // the budget includes reading the plan
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

	clients, err := cas.NewClients(cas.Config{Endpoint: ep, Region: region, Timeout: o.timeout, Credentials: creds,
		UserAgent: "certalloc/" + version()}, min(o.workers, max(1, len(todo))))
	if err != nil {
		return exitError{ExitFatal, err}
	}
	assigners := make([]apply.Assigner, len(clients))
	for i, c := range clients {
		assigners[i] = c
	}

	log.Info("applying", "plan", o.planPath, "rows", len(todo), "endpoint", ep.String(), "region", region,
		"credentials", creds.Source, "access_key_id", creds.AccessKeyID, "qps", o.qps, "workers", len(clients))
	prog := newProgress(o.progress, stderrTTY(stderr), o.progressEvery, o.term, log, len(todo))
	var notDone []plan.Row
	stats := apply.Run(ctx, todo, assigners, cfg, func(out apply.Outcome) error {
		if out.Status != apply.Succeeded {
			notDone = append(notDone, out.Row)
		}
		if out.Status == apply.Failed {
			log.Warn("row failed", "line", out.Row.Line, "id", out.Row.ID, "code", out.Err.Code, "message", out.Err.Message, "attempts", out.Attempts)
		}
		prog.add(out)
		return w.Write(reportRow(out))
	})
	prog.finish()
	if err := w.Close(); err != nil && stats.Fatal == nil {
		stats.Fatal = &cas.Error{Class: cas.Fatal, Code: "ReportWriteFailed", Message: err.Error()}
		stats.Stop = apply.ErrFatal
	}
	ferr := report.WriteFailures(o.failuresPath, failureRows(notDone), o.private)

	sum := newSummary(ctx, o, stats, len(rows), skipped, len(unchanged))
	sum.print(stdout)
	if ferr != nil {
		log.Error("could not write the failures file", "error", ferr)
	}
	if o.summaryPath != "" {
		if err := sum.writeJSON(o.summaryPath, o.private); err != nil {
			log.Error("could not write the summary", "error", err)
		}
	}
	if o.metricsPath != "" {
		if err := sum.writeMetrics(o.metricsPath, o.private); err != nil {
			log.Error("could not write the metrics file", "error", err)
		}
	}
	return sum.exit()
}

// failureRows lists rows in plan order, which is how operators read them.
func failureRows(rows []plan.Row) []report.FailureRow {
	sort.Slice(rows, func(i, j int) bool { return rows[i].Line < rows[j].Line })
	out := make([]report.FailureRow, len(rows))
	for i, r := range rows {
		out[i] = report.FailureRow{ID: r.ID, CertTotalCount: r.CertTotalCount}
	}
	return out
}

// selectRows drops rows already done (resume) or unchanged (baseline).
func selectRows(rows []plan.Row, done map[int64]int32, base baseline) (todo []plan.Row, skipped int, unchanged []plan.Row) {
	todo = make([]plan.Row, 0, len(rows))
	for _, r := range rows {
		if n, ok := done[r.ID]; ok && n == r.CertTotalCount {
			skipped++
			continue
		}
		if base != nil && base.classify(r) == "unchanged" {
			unchanged = append(unchanged, r)
			continue
		}
		todo = append(todo, r)
	}
	return todo, skipped, unchanged
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
// sent, without leaving them behind.
func checkWritable(paths ...string) error {
	for _, p := range paths {
		if p == "" {
			continue
		}
		f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".check*")
		if err != nil {
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
