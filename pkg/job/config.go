package job

import (
	"cmp"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/certalloc/certalloc/pkg/apply"
	"github.com/certalloc/certalloc/pkg/cas"
	"github.com/certalloc/certalloc/pkg/report"
)

// Config is one job. The CLI fills it from flags; tests fill it directly.
// Check fills in the defaults and must be called before Run or Plan.
type Config struct {
	PlanPath     string
	ReportPath   string // default PLAN.report.csv; PLAN.planned.csv for a dry run
	FailuresPath string // default PLAN.failures.csv
	SummaryPath  string // optional JSON summary
	MetricsPath  string // optional Prometheus textfile
	BaselinePath string // optional earlier report

	// Delimiter is the plan's field separator; 0 detects it.
	Delimiter rune

	DryRun bool
	// Resume carries on from the report (and its journal): rows whose last
	// record is a success with today's total are not sent again.
	Resume bool
	// RetryFailed finishes the job the record at ReportPath describes:
	// as Resume, but the record must exist, and the plan may not give a
	// row the record has as done another total (that is a new plan, for
	// Resume or Baseline).
	RetryFailed bool
	// Overwrite lets a run replace a report that records rows an earlier
	// run sent; without it (and without Resume, or the report being the
	// baseline) such a run refuses to start.
	Overwrite bool
	Private   bool // output files 0600 instead of 0644

	QPS float64
	// Workers caps the calls in flight; the pool grows with latency up to
	// it. 0 means apply.DefaultWorkers.
	Workers     int
	MaxAttempts int
	// BreakerRows stops the run when the first BreakerRows finished rows
	// all failed with one code and none succeeded; 0 turns it off.
	BreakerRows int
	Timeout     time.Duration
	Deadline    time.Duration // from Started; 0 means none
	MaxFailures string        // "N" or "N%" of the rows to send; "" means no limit

	// EndpointURL overrides the endpoint the region implies; VPC picks
	// the region's VPC endpoint instead; Insecure allows plain http to a
	// host that is not loopback. Check resolves them into Endpoint.
	EndpointURL string
	VPC         bool
	Insecure    bool
	Endpoint    cas.Endpoint
	// Region "" resolves from the environment, then the profile, then
	// cas.DefaultRegion.
	Region  string
	Profile string
	// Credentials, when nil, are resolved the way the aliyun tools do.
	Credentials *cas.Credentials

	UserAgent string
	// Started is when the job began, for --deadline; zero means now.
	Started time.Time

	Log      *slog.Logger // nil discards
	Progress Progress     // nil shows nothing
}

// Progress is told how the run goes, for a bar or periodic log lines.
type Progress interface {
	Start(total int)
	Add(apply.Outcome)
	Finish()
}

// InputError means the job could not start because of what it was given:
// an invalid plan, a bad flag value, an unreadable baseline. Nothing was
// sent.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

func inputErrorf(format string, args ...any) error {
	return &InputError{fmt.Errorf(format, args...)}
}

// ErrLocked means another run holds the report; nothing was sent.
var ErrLocked = report.ErrLocked

// Check validates the job and fills in defaults. Its errors are
// *InputError.
func (c *Config) Check() error {
	if c.PlanPath == "" {
		return inputErrorf("no plan file")
	}
	if c.QPS <= 0 || math.IsInf(c.QPS, 0) || math.IsNaN(c.QPS) {
		return inputErrorf("--qps must be a positive number, got %v", c.QPS)
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = apply.DefaultMaxAttempts
	}
	if c.Timeout == 0 {
		c.Timeout = cas.DefaultTimeout
	}
	if c.Workers == 0 {
		c.Workers = apply.DefaultWorkers(c.QPS, c.Timeout)
	}
	if c.Started.IsZero() {
		c.Started = time.Now()
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.QPS > apply.MaxQPS {
		return inputErrorf("--qps %g is more than certalloc allows (%d): the service's documented limit is %d per account", c.QPS, apply.MaxQPS, apply.DefaultQPS)
	}
	if c.Region == "" {
		env, _ := cas.EnvRegion()
		c.Region = cmp.Or(env, cas.ProfileRegion(c.Profile), cas.DefaultRegion)
	}
	ep, warning, err := cas.ResolveEndpoint(c.EndpointURL, c.Region, c.VPC, c.Insecure)
	if err != nil {
		return &InputError{err}
	}
	if warning != "" {
		c.Log.Warn(warning)
	}
	c.Endpoint = ep
	if c.QPS > apply.DefaultQPS && !ep.Loopback {
		// Allowed: Quota Center can raise the limit. But said, because the
		// quota is the whole account's, shared with every other tool on it.
		c.Log.Warn("--qps is above the service's documented limit of 10 per account; unless Quota Center raised it, the service will throttle", "qps", c.QPS)
	}
	if _, _, err := parseMaxFailures(c.MaxFailures, 0); err != nil {
		return err
	}
	if c.Resume && c.Overwrite {
		return inputErrorf("--resume and --overwrite do not go together: one keeps the report, the other replaces it")
	}
	if c.DryRun && c.Resume {
		return inputErrorf("--resume does not go with a dry run")
	}
	if c.RetryFailed {
		switch {
		case c.Resume:
			return inputErrorf("--retry-failed and --resume do not go together: --retry-failed carries on from the record as --resume does, and also checks that the record exists and matches the plan")
		case c.Overwrite:
			return inputErrorf("--retry-failed and --overwrite do not go together: one finishes the report, the other replaces it")
		case c.DryRun:
			return inputErrorf("--retry-failed does not go with a dry run")
		case c.BaselinePath != "":
			return inputErrorf("--retry-failed takes no --baseline: it finishes the record at --report, whose done and unchanged rows it keeps")
		}
	}
	if fi, err := os.Stat(c.PlanPath); err == nil && !fi.Mode().IsRegular() && (c.ReportPath == "" || c.FailuresPath == "" && !c.DryRun) {
		// Beside /dev/stdin is no place for a report.
		return inputErrorf("plan %s is not a regular file (a pipe?): give --report and --failures a path", c.PlanPath)
	}
	base := strings.TrimSuffix(c.PlanPath, filepath.Ext(c.PlanPath))
	if c.ReportPath == "" {
		c.ReportPath = base + ".report.csv"
		if c.DryRun {
			// Not the apply report: a dry run must not replace the record
			// of what was applied, which --resume and --baseline read.
			c.ReportPath = base + ".planned.csv"
		}
	}
	if c.FailuresPath == "" {
		c.FailuresPath = base + ".failures.csv"
	}
	return checkPaths(map[string]string{
		"plan": c.PlanPath, "--report": c.ReportPath, "--failures": c.FailuresPath,
		"--summary": c.SummaryPath, "--metrics-file": c.MetricsPath,
		roleJournal: report.JournalPath(c.ReportPath), roleLock: report.LockPath(c.ReportPath),
	}, c.BaselinePath)
}

// The files a run keeps beside its report, which no other role may take:
// a failures file renamed over the lock would let a second run in; one
// written where the journal goes would stop every later run.
const (
	roleJournal = "the report's journal"
	roleLock    = "the report's lock"
)

// checkPaths refuses two roles on one file (a report written over its own
// plan loses the plan), and an output that exists but is not a regular
// file: outputs are replaced by renaming a new file over their path, which
// for --report /dev/null, run as root, would replace the device itself.
func checkPaths(paths map[string]string, baseline string) error {
	type seen struct{ role, path string }
	var all []seen
	for _, role := range []string{"plan", "--report", roleJournal, roleLock, "--failures", "--summary", "--metrics-file"} {
		p := paths[role]
		if p == "" {
			continue
		}
		for _, s := range all {
			if samePath(s.path, p) {
				return inputErrorf("%s and %s are the same file (%s)", s.role, role, p)
			}
		}
		all = append(all, seen{role, p})
		if !strings.HasPrefix(role, "--") {
			continue
		}
		if p == "-" {
			// Taken for stdout, as other tools do, it would be a file
			// named "-" beside the plan.
			hint := ""
			if role == "--summary" {
				hint = "; for the summary as JSON on stdout, use --log-format json"
			}
			return inputErrorf("%s -: outputs are files, written whole%s", role, hint)
		}
		if fi, err := os.Stat(p); err == nil && !fi.Mode().IsRegular() {
			return inputErrorf("%s %s is not a regular file (%s): certalloc replaces its outputs whole, by renaming a new file over the path; give the path of a file", role, p, fileKind(fi.Mode()))
		}
	}
	if baseline != "" {
		for _, s := range all[1:] { // the baseline may well be an old report, but not an output
			if s.role != "--report" && samePath(s.path, baseline) {
				return inputErrorf("--baseline and %s are the same file (%s)", s.role, baseline)
			}
		}
	}
	return nil
}

func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return "not a plain file"
}

// carries says the run carries on from its report: the rows the record
// has as done are kept, not sent.
func (c *Config) carries() bool { return c.Resume || c.RetryFailed }

// RetryCommand is the command line that finishes the job of a run whose
// record is at report and failures: --retry-failed, with where the run
// went and how it read the plan and wrote its files, and --report and
// --failures when they are not the plan's defaults.
func (c *Config) RetryCommand(planPath, reportPath, failuresPath string) string {
	return c.command([]string{"--retry-failed"}, planPath, reportPath, failuresPath)
}

// command is an apply command line for the operator to run next: mode's
// flags, then those of this job that say where it sends (another profile
// is another account, another region another endpoint), how it reads
// the plan and what it writes, then the record's paths, then the plan.
func (c *Config) command(mode []string, planPath, reportPath, failuresPath string) string {
	args := append([]string{"certalloc", "apply"}, mode...)
	if c.Profile != "" {
		args = append(args, "--profile", shellQuote(c.Profile))
	}
	// The default region is what a command without --region gets, unless
	// the shell it is pasted into says otherwise; any other is named.
	if c.Region != "" && c.Region != cas.DefaultRegion {
		args = append(args, "--region", shellQuote(c.Region))
	}
	if c.EndpointURL != "" {
		args = append(args, "--endpoint", shellQuote(c.EndpointURL))
	}
	if c.VPC {
		args = append(args, "--vpc")
	}
	if c.Insecure {
		args = append(args, "--insecure-endpoint")
	}
	switch c.Delimiter {
	case 0:
	case '\t':
		args = append(args, "--delimiter", "tab")
	default:
		args = append(args, "--delimiter", shellQuote(string(c.Delimiter)))
	}
	if c.Private {
		args = append(args, "--private")
	}
	// The summary and the metrics say how the last run ended: the run that
	// finishes the job is it (and clears an alert on the metrics).
	if c.SummaryPath != "" {
		args = append(args, "--summary", shellQuote(c.SummaryPath))
	}
	if c.MetricsPath != "" {
		args = append(args, "--metrics-file", shellQuote(c.MetricsPath))
	}
	base := strings.TrimSuffix(planPath, filepath.Ext(planPath))
	if reportPath != base+".report.csv" {
		args = append(args, "--report", shellQuote(reportPath))
	}
	if failuresPath != base+".failures.csv" {
		args = append(args, "--failures", shellQuote(failuresPath))
	}
	return strings.Join(append(args, shellQuote(planPath)), " ")
}

// shellQuote quotes s for a POSIX shell, when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-+:@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
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
			return false, 0, inputErrorf("--max-failures %q: want N or N%% with N from 0 to 100", s)
		}
		return true, int(math.Floor(f / 100 * float64(rows))), nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return false, 0, inputErrorf("--max-failures %q: want a count or a percentage such as 5%%", s)
	}
	return true, v, nil
}
