package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/certalloc/certalloc/pkg/apply"
	"github.com/certalloc/certalloc/pkg/cas"
	"github.com/certalloc/certalloc/pkg/job"
	"github.com/certalloc/certalloc/pkg/plan"
)

const applyLong = `Applies an allocation plan: one AssignCertificateCount call per row, paced
to --qps, with retries, and a report row per plan row as results arrive.`

const planLong = `Checks and prices a plan, the same as 'apply --dry-run': validates every row,
compares the plan with --baseline if given, and writes the rows it would send
to PLAN.planned.csv. It sends nothing and needs no credentials.`

const applyExamples = `  # check and price a plan; sends nothing, needs no credentials
  certalloc plan plans/example.csv

  # apply it with the credentials of the aliyun CLI's default profile
  certalloc apply plans/example.csv

  # nightly from cron: send only what changed since the last run, stop
  # before the next run starts, JSON logs and a metric for monitoring
  certalloc apply --baseline last.report.csv --report tonight.report.csv \
      --deadline 50m --log-format json --metrics-file /var/lib/node_exporter/certalloc.prom plan.csv

  # carry on after a crash or Ctrl-C, skipping rows already applied
  certalloc apply --resume plans/example.csv

  # finish the job: re-send the rows that failed last time, and update the
  # plan's own report and failures file
  certalloc apply --retry-failed plans/example.csv

  # try it against the bundled emulator (run 'certalloc emulator' first)
  certalloc apply --endpoint http://127.0.0.1:8080 plans/example.csv`

// applyFlags are the apply command's flags: the job's Config, and what
// the command line checks or turns into it.
type applyFlags struct {
	job                 job.Config
	delimiter           string
	progress            string
	progressEvery       time.Duration
	logFormat, logLevel string
}

func (o *applyFlags) register(fs *pflag.FlagSet) {
	c := &o.job
	fs.StringVar(&c.ReportPath, "report", "", "report CSV `path` (default PLAN.report.csv beside the plan; PLAN.planned.csv for a dry run)")
	fs.StringVar(&c.FailuresPath, "failures", "", "failures CSV `path`, itself a plan of the rows not done (default PLAN.failures.csv)")
	fs.BoolVar(&c.DryRun, "dry-run", false, "validate and price the plan; send nothing, need no credentials")
	fs.BoolVar(&c.Resume, "resume", false, "carry on from the report (and the journal of a run that crashed): skip rows whose latest record is a success with the same CertTotalCount")
	fs.BoolVar(&c.RetryFailed, "retry-failed", false, "finish the job: re-send the rows whose latest record (report and journal) is not done, keep the rest, and rewrite the plan's own report and failures file; the record must exist, and the plan must not give a done row another total")
	fs.BoolVar(&c.Overwrite, "overwrite", false, "replace a report that records rows an earlier run sent (without it, such a run refuses to start)")
	fs.StringVar(&c.BaselinePath, "baseline", "", "a previous run's report: rows it shows succeeded with the same CertTotalCount are unchanged and skipped")
	fs.Float64Var(&c.QPS, "qps", apply.DefaultQPS, "requests per second on average, and never more than ceil(qps) in any sliding second (the service allows 10 per account, shared by every tool on it)")
	fs.IntVar(&c.Workers, "workers", 0, "requests in flight at most; the pool grows with measured latency up to this (default qps × timeout × 1.2)")
	fs.IntVar(&c.BreakerRows, "breaker-rows", apply.DefaultBreakerRows, "stop as run-fatal when the first N finished rows all fail with the same error code and none succeeds (0: off)")
	fs.IntVar(&c.MaxAttempts, "max-attempts", apply.DefaultMaxAttempts, "requests per row at most, throttled and timed-out ones included")
	fs.DurationVar(&c.Timeout, "timeout", cas.DefaultTimeout, "per-request timeout")
	fs.DurationVar(&c.Deadline, "deadline", 0, "stop admitting rows after this long (e.g. 50m); the rest go to the failures file")
	fs.StringVar(&c.MaxFailures, "max-failures", "", "stop once more than `N` rows (or N% of them) have failed")
	fs.StringVar(&c.Region, "region", "", "region id (default $ALIBABA_CLOUD_REGION_ID, $ALIBABACLOUD_REGION_ID, $ALICLOUD_REGION_ID, $ALICLOUD_REGION, then the profile's, then cn-hangzhou)")
	fs.StringVar(&c.EndpointURL, "endpoint", "", "endpoint `URL` (default: from the region, as the official SDKs pick it: cas.aliyuncs.com for cn-hangzhou, cn-shanghai and the other regions of their map, cas.REGION.aliyuncs.com otherwise; http only to loopback)")
	fs.BoolVar(&c.VPC, "vpc", false, "use the region's VPC endpoint, cas-vpc.REGION.aliyuncs.com")
	fs.BoolVar(&c.Insecure, "insecure-endpoint", false, "allow a plain http endpoint that is not loopback")
	fs.StringVar(&o.delimiter, "delimiter", "", "field separator of the plan: , ; tab or | (default: detected from the header: , ; or tab)")
	fs.StringVar(&c.Profile, "profile", "", "aliyun CLI profile in ~/.aliyun/config.json (default $ALIBABA_CLOUD_PROFILE, then the SDK's default chain)")
	fs.BoolVar(&c.Private, "private", false, "create output files with mode 0600 instead of 0644")
	fs.StringVar(&c.SummaryPath, "summary", "", "also write the summary as JSON to this `file`")
	fs.StringVar(&c.MetricsPath, "metrics-file", "", "write Prometheus textfile-collector metrics to this `file.prom`")
	fs.StringVar(&o.progress, "progress", "auto", "progress display: auto (a bar on a terminal, log lines otherwise), always, never")
	fs.DurationVar(&o.progressEvery, "progress-interval", 30*time.Second, "without a terminal, log a progress line this often")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format on stderr: text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

// applyCmd is "apply", or with dryRun "plan" (apply --dry-run).
func (e *env) applyCmd(dryRun bool) *cobra.Command {
	o := &applyFlags{job: job.Config{UserAgent: "certalloc/" + version()}}
	cmd := &cobra.Command{
		Use:     "apply [flags] PLAN.csv",
		Short:   "Apply a plan: one AssignCertificateCount call per row",
		Long:    applyLong,
		Example: applyExamples,
		Args:    exactlyOne("plan file (PLAN.csv)"),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return []string{"csv", "tsv", "txt"}, cobra.ShellCompDirectiveFilterFileExt
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.job.PlanPath = args[0]
			o.job.DryRun = o.job.DryRun || dryRun
			o.job.Started = time.Now()
			term, err := o.check(e.stderr)
			if err != nil || e.checkOnly {
				return err
			}
			if o.logFormat == "json" {
				e.errLog = o.job.Log // the last line too must parse
			}
			return e.runApply(o, term)
		},
	}
	if dryRun {
		cmd.Use, cmd.Short, cmd.Long = "plan [flags] PLAN.csv", "Check and price a plan; send nothing (apply --dry-run)", planLong
	}
	o.register(cmd.Flags())
	for flag, values := range map[string][]string{
		"progress":   {"auto", "always", "never"},
		"log-format": {"text", "json"},
		"log-level":  {"debug", "info", "warn", "error"},
	} {
		cmd.RegisterFlagCompletionFunc(flag, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
	}
	return cmd
}

func (e *env) runApply(o *applyFlags, term *termWriter) error {
	c := o.job
	if c.DryRun {
		res, err := job.Plan(e.ctx, c)
		if err != nil {
			return err
		}
		if o.logFormat == "json" {
			planRecord(e.stdout, res)
		} else {
			printPlan(e.stdout, res)
		}
		return nil
	}
	mode, tty := o.progress, stderrTTY(e.stderr)
	if o.logFormat == "json" {
		// Every line on stderr is a record: no bar, on a terminal or
		// with --progress always, but the progress records instead.
		tty = false
		if mode == "always" {
			mode = "auto"
		}
	}
	c.Progress = newProgress(mode, tty, o.progressEvery, term, c.Log)
	sum, err := job.Run(e.ctx, c)
	if err != nil {
		return err
	}
	if o.logFormat == "json" {
		summaryRecord(e.stdout, sum)
	} else {
		printSummary(e.stdout, sum)
	}
	return sum.Err()
}

// check validates the flags, fills in the job's config, and sets up the
// logger. Every problem here is a usage error: nothing has been read or
// sent.
func (o *applyFlags) check(stderr io.Writer) (*termWriter, error) {
	c := &o.job
	if os.Getenv("DEBUG") != "" && strings.Contains(","+os.Getenv("DEBUG")+",", ",sdk,") {
		return nil, usagef("DEBUG=sdk makes the Alibaba Cloud SDK print signed URLs, security tokens included; unset it")
	}
	switch {
	case c.Workers < 0:
		return nil, usagef("--workers must be positive, got %d", c.Workers)
	case c.BreakerRows < 0:
		return nil, usagef("--breaker-rows must be 0 (off) or more, got %d", c.BreakerRows)
	case c.MaxAttempts < 1:
		return nil, usagef("--max-attempts must be at least 1, got %d", c.MaxAttempts)
	case c.Timeout <= 0:
		return nil, usagef("--timeout must be positive, got %v", c.Timeout)
	case c.Deadline < 0:
		return nil, usagef("--deadline must be positive, got %v", c.Deadline)
	case o.progressEvery <= 0:
		return nil, usagef("--progress-interval must be positive, got %v", o.progressEvery)
	case c.Region != "" && !cas.ValidRegion(c.Region):
		return nil, usagef("--region %q: want a region id such as cn-hangzhou", c.Region)
	}
	if o.delimiter != "" {
		d, err := plan.ParseDelimiter(o.delimiter)
		if err != nil {
			return nil, usageError{"--delimiter: " + err.Error()}
		}
		c.Delimiter = d
	}
	switch o.progress {
	case "auto", "always", "never":
	default:
		return nil, usagef("--progress must be auto, always or never, got %q", o.progress)
	}
	term := &termWriter{w: stderr}
	var err error
	if c.Log, err = newLogger(term, o.logFormat, o.logLevel); err != nil {
		return nil, err
	}
	if err := c.Check(); err != nil {
		return nil, usageError{err.Error()}
	}
	return term, nil
}

func printPlan(w io.Writer, r *job.PlanResult) {
	fmt.Fprintf(w, "Plan %s is valid: %d rows, %d distinct Ids, CertTotalCount sum %d.\n", r.PlanPath, r.Rows, r.Rows, r.Sum)
	if r.HasBaseline {
		fmt.Fprintf(w, "Plan: %d to assign (%d new Ids, %d changed), %d unchanged (baseline %s).\n",
			r.ToSend, r.New, r.Changed, r.Unchanged, r.BaselinePath)
	}
	// What the pacer allows on a clean network, which is what a run gets
	// when nothing is throttled: qps on average, and at most ceil(qps)
	// sends in any window of a second plus the guard. At a whole qps the
	// window binds (10 per 1.01s is 9.9/s), which is why 20,000 requests
	// at 10/s take 2020s, not 2000s. Not counted: retries, throttles, and
	// the last answer's round trip.
	fmt.Fprintf(w, "Estimated time at %g requests/s: %s for %d requests, none retried or throttled (at most %g sent in each %v: a second and the pacer's %v guard on a clean network).\n",
		r.QPS, apply.Estimate(r.ToSend, r.QPS), r.ToSend, math.Ceil(min(r.QPS, apply.MaxQPS)), time.Second+apply.MinGuard, apply.MinGuard)
	fmt.Fprintf(w, "An apply would send to %s (region %s).\n", r.Endpoint, r.Region)
	fmt.Fprintf(w, "Dry run: nothing was sent. Report: %s\n", r.ReportPath)
}

// planRecord is the dry run's result as one JSON record on stdout, for
// --log-format json: the same fields as the text, numbers as numbers.
func planRecord(w io.Writer, r *job.PlanResult) {
	attrs := []any{"plan", r.PlanPath, "rows", r.Rows, "cert_total_count_sum", r.Sum, "to_send", r.ToSend}
	if r.HasBaseline {
		attrs = append(attrs, "new", r.New, "changed", r.Changed, "unchanged", r.Unchanged, "baseline", r.BaselinePath)
	}
	attrs = append(attrs, "qps", r.QPS, "estimate_seconds", apply.Estimate(r.ToSend, r.QPS).Seconds(),
		"endpoint", r.Endpoint, "region", r.Region, "report", r.ReportPath, "sent", 0)
	slog.New(slog.NewJSONHandler(w, nil)).Info("plan is valid; dry run: nothing was sent", attrs...)
}

// summaryRecord is the summary as one JSON record on stdout, for
// --log-format json, where the nightly recipes send stdout and stderr to
// one log: a record like the log's (time, level, msg) whose other fields
// are those of --summary FILE.
func summaryRecord(w io.Writer, s *job.Summary) {
	body, err := json.Marshal(s)
	if err != nil { // a struct of strings and numbers: cannot happen
		panic(err)
	}
	head, _ := json.Marshal(struct {
		Time  string `json:"time"`
		Level string `json:"level"`
		Msg   string `json:"msg"`
	}{time.Now().Format(time.RFC3339Nano), "INFO", "summary"})
	line := append(head[:len(head)-1], ',')
	line = append(line, body[1:]...)
	w.Write(append(line, '\n'))
}

func printSummary(w io.Writer, s *job.Summary) {
	var b strings.Builder
	fmt.Fprintf(&b, "\ncertalloc summary for %s\n", s.Plan)
	fmt.Fprintf(&b, "  rows:        %d succeeded, %d failed, %d not attempted (of %d", s.Succeeded, s.Failed, s.NotAttempted, s.Rows)
	if s.Skipped > 0 {
		fmt.Fprintf(&b, "; %d skipped as already done", s.Skipped)
	}
	if s.Unchanged > 0 {
		fmt.Fprintf(&b, "; %d unchanged since the baseline", s.Unchanged)
	}
	b.WriteString(")\n")
	fmt.Fprintf(&b, "  requests:    %d sent, %d retries, %d throttled (%.1f%%), %d answers lost\n", s.Requests, s.Retries, s.Throttled, 100*s.ThrottledShare, s.LostAnswers)
	fmt.Fprintf(&b, "  elapsed:     %s\n", time.Duration(s.ElapsedSec*float64(time.Second)).Round(time.Millisecond))
	fmt.Fprintf(&b, "  rate:        %.2f requests/s sent (limit %g); goodput %.2f rows/s succeeded (%.2f over the whole run)", s.RequestRate, s.QPS, s.Goodput, s.RowRate)
	if s.Throttled > 0 {
		fmt.Fprintf(&b, ", lowest pace %.2f/s", s.MinRate)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  pacing:      window guard %.0fms (widest %.0fms), up to %d in flight (pool limit %d)\n", 1000*s.Guard, 1000*s.WidestGuard, s.MaxInFlight, s.PoolLimit)
	fmt.Fprintf(&b, "  latency:     p50 %.0fms, p95 %.0fms, max %.0fms\n", 1000*s.LatencyP50, 1000*s.LatencyP95, 1000*s.LatencyMax)
	if s.Stopped != "" {
		fmt.Fprintf(&b, "  stopped:     %s: %s\n", s.Stopped, s.StopReason)
	}
	fmt.Fprintf(&b, "  endpoint:    %s (region %s)\n", s.Endpoint, s.Region)
	fmt.Fprintf(&b, "  report:      %s\n", s.Report)
	if s.Failed+s.NotAttempted > 0 {
		fmt.Fprintf(&b, "  failures:    %s (a plan of the rows not done)\n", s.Failures)
		fmt.Fprintf(&b, "  to finish:   %s\n", s.Finish)
	}
	fmt.Fprintf(&b, "  exit code:   %d\n", s.ExitCode)
	io.WriteString(w, b.String())
}
