package job

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/certalloc/certalloc/pkg/apply"
	"github.com/certalloc/certalloc/pkg/report"
)

// Exit codes of a run, documented in the README for the scripts and cron
// jobs that call certalloc. The metrics record them too, which is why they
// are decided here and not only by the command line.
const (
	ExitOK          = 0   // every row succeeded (dry run: the plan is valid)
	ExitFatal       = 1   // stopped by a run-fatal error or the failure limit
	ExitUsage       = 2   // bad flags or an invalid plan; nothing was sent
	ExitPartial     = 3   // finished, but some rows failed or the deadline cut the run
	ExitLocked      = 4   // another run holds the report; nothing was sent
	ExitInterrupted = 130 // SIGINT
	ExitTerminated  = 143 // SIGTERM
)

// Interrupted is the cancellation cause the caller gives the job's context
// when a signal asks it to stop.
type Interrupted struct{ Signal os.Signal }

func (e Interrupted) Error() string { return "interrupted by " + e.Signal.String() }

// ExitCode is the shell's convention for the signal: 128 + its number
// (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP).
func (e Interrupted) ExitCode() int {
	if s, ok := e.Signal.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return ExitInterrupted
}

// Summary is the end-of-run account: the same numbers for people, for
// machines (the JSON summary) and for monitoring (the metrics).
type Summary struct {
	Plan     string `json:"plan"`
	Report   string `json:"report"`
	Failures string `json:"failures"`
	// Finish is the command that finishes the job, when rows are not
	// done: the text summary's "to finish" line.
	Finish       string `json:"finish_command,omitempty"`
	Endpoint     string `json:"endpoint"`
	Region       string `json:"region"`
	PlanRows     int    `json:"plan_rows"`
	Skipped      int    `json:"skipped_already_done"`
	Unchanged    int    `json:"unchanged_since_baseline"`
	Rows         int    `json:"rows"`
	Succeeded    int    `json:"succeeded"`
	Failed       int    `json:"failed"`
	NotAttempted int    `json:"not_attempted"`
	CutShort     int    `json:"cut_short"` // rows the stop kept from finishing
	Requests     int    `json:"requests"`
	Retries      int    `json:"retries"`
	Throttled    int    `json:"throttled"`
	// ThrottledShare is Throttled over Requests: what the pacing wasted.
	ThrottledShare float64 `json:"throttled_share"`
	LostAnswers    int     `json:"lost_answers"`
	ElapsedSec     float64 `json:"elapsed_seconds"`
	RequestRate    float64 `json:"requests_per_second"`
	// Goodput is rows succeeded per second between the first success and
	// the last; RowRate over the whole run, start-up and tail included.
	Goodput float64 `json:"goodput_rows_per_second"`
	RowRate float64 `json:"rows_per_second"`
	// Guard is the margin the pacer learned for the one-second window
	// (see pkg/apply), at the end and at its widest; PoolLimit the most
	// calls in flight the pool allowed, MaxInFlight the most there were.
	Guard       float64 `json:"guard_seconds"`
	WidestGuard float64 `json:"widest_guard_seconds"`
	PoolLimit   int     `json:"pool_limit"`
	MaxInFlight int     `json:"max_in_flight"`
	QPS         float64 `json:"qps"`
	MinRate     float64 `json:"lowest_rate_per_second"`
	// Latencies in seconds, as every duration a machine reads here.
	LatencyP50 float64 `json:"latency_p50_seconds"`
	LatencyP95 float64 `json:"latency_p95_seconds"`
	LatencyMax float64 `json:"latency_max_seconds"`
	Stopped    string  `json:"stopped,omitempty"`
	StopReason string  `json:"stop_reason,omitempty"`
	// RecordErrors are failures to write the run's record (report,
	// failures file): the run then exits 1 whatever its rows did.
	RecordErrors []string `json:"record_errors,omitempty"`
	ExitCode     int      `json:"exit_code"`
	StartedAt    string   `json:"started_at"`
	FinishedAt   string   `json:"finished_at"`

	// Untouched is set when a signal stopped the run before anything was
	// sent: no file was changed, not even the summary's or the metrics'.
	Untouched bool `json:"-"`

	end time.Time
}

// recordErrors notes failures to write the record; any makes the run fail.
func (s *Summary) recordErrors(errs ...error) {
	for _, err := range errs {
		if err != nil {
			s.RecordErrors = append(s.RecordErrors, err.Error())
			s.ExitCode = ExitFatal
		}
	}
}

func newSummary(c *Config, st apply.Stats, planRows, skipped, unchanged, maxFailures int) *Summary {
	s := &Summary{
		Plan: c.PlanPath, Report: c.ReportPath, Failures: c.FailuresPath, Endpoint: c.Endpoint.String(), Region: c.Region,
		PlanRows: planRows, Skipped: skipped, Unchanged: unchanged,
		Rows: st.Rows, Succeeded: st.Succeeded, Failed: st.Failed, NotAttempted: st.NotAttempted, CutShort: st.CutShort,
		Requests: st.Requests, Retries: st.Retries, Throttled: st.Throttled, LostAnswers: st.LostAnswers,
		ThrottledShare: float64(st.Throttled) / float64(max(1, st.Requests)),
		ElapsedSec:     st.End.Sub(st.Start).Seconds(),
		RequestRate:    st.RequestRate(),
		Goodput:        st.Goodput(),
		RowRate:        st.RunGoodput(),
		QPS:            c.QPS,
		MinRate:        st.MinRate,
		Guard:          st.Guard.Seconds(), WidestGuard: st.GuardMax.Seconds(),
		PoolLimit: st.Workers, MaxInFlight: st.MaxInFlight,
		LatencyP50: st.LatencyP50.Seconds(), LatencyP95: st.LatencyP95.Seconds(), LatencyMax: st.LatencyMax.Seconds(),
		StartedAt: st.Start.UTC().Format(time.RFC3339), FinishedAt: st.End.UTC().Format(time.RFC3339),
		end: st.End,
	}
	if s.Failed+s.NotAttempted > 0 {
		s.Finish = c.RetryCommand(c.PlanPath, c.ReportPath, c.FailuresPath)
	}
	// st.Stop is nil when the stop cut no row short: a signal, a deadline
	// or a limit that came after every row had finished cost nothing, and
	// the run exits as if it had not come.
	var sig Interrupted
	s.ExitCode = ExitOK
	switch {
	case errors.As(st.Stop, &sig):
		s.Stopped, s.StopReason, s.ExitCode = "interrupted", sig.Error(), sig.ExitCode()
	case errors.Is(st.Stop, apply.ErrFatal):
		s.Stopped, s.ExitCode = "fatal", ExitFatal
		if st.Fatal != nil {
			s.StopReason = st.Fatal.Error()
		}
	case errors.Is(st.Stop, apply.ErrMaxFailures) || maxFailures >= 0 && s.Failed > maxFailures:
		// The limit is what the operator asked to hear about, even when
		// the row that crossed it was the last.
		s.Stopped, s.ExitCode = "max-failures", ExitFatal
		s.StopReason = fmt.Sprintf("more than --max-failures %s rows failed", c.MaxFailures)
	case errors.Is(st.Stop, apply.ErrDeadline):
		s.Stopped, s.ExitCode = "deadline", ExitPartial
		s.StopReason = fmt.Sprintf("--deadline %s reached", c.Deadline)
	case st.Stop != nil:
		s.Stopped, s.StopReason, s.ExitCode = "interrupted", st.Stop.Error(), ExitInterrupted
	case s.Failed > 0 || s.NotAttempted > 0:
		s.ExitCode = ExitPartial
	}
	return s
}

// Err is the run's outcome as an error: nil when every row succeeded.
func (s *Summary) Err() error {
	if s.ExitCode == ExitOK {
		return nil
	}
	var err error
	switch {
	case len(s.RecordErrors) > 0:
		err = errors.New(strings.Join(s.RecordErrors, "\n"))
	case s.Untouched:
		err = fmt.Errorf("%s before anything was sent; no file was changed", s.StopReason)
	case s.Stopped == "":
		err = fmt.Errorf("%d of %d rows failed; they are in %s; to finish the job: %s", s.Failed+s.NotAttempted, s.Rows, s.Failures, s.Finish)
	case s.Stopped == "interrupted":
		err = fmt.Errorf("%s; rows not done are in %s", s.StopReason, s.Failures)
	default:
		err = fmt.Errorf("stopped (%s): %s; rows not done are in %s", s.Stopped, s.StopReason, s.Failures)
	}
	return &RunError{Code: s.ExitCode, Err: err}
}

// RunError is a run that ended with a non-zero exit code.
type RunError struct {
	Code int
	Err  error
}

func (e *RunError) Error() string { return e.Err.Error() }
func (e *RunError) Unwrap() error { return e.Err }

func (s *Summary) writeJSON(path string, private bool) error {
	return report.WriteAtomic(path, private, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	})
}

// writeMetrics writes Prometheus text format for node_exporter's textfile
// collector: to a temporary file renamed over the target, so the collector
// never reads half a file. certalloc_last_success_timestamp_seconds is
// carried over from the previous file unless this run succeeded whole, so
// an alert on its age fires when runs keep failing.
func (s *Summary) writeMetrics(path string, private bool) error {
	lastSuccess := previousMetric(path, "certalloc_last_success_timestamp_seconds")
	if s.ExitCode == ExitOK {
		lastSuccess = float64(s.end.Unix())
	}
	return report.WriteAtomic(path, private, func(w io.Writer) error {
		var b strings.Builder
		metric := func(name, help, typ string) {
			fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		}
		metric("certalloc_rows", "Rows of the last run by final status.", "gauge")
		for _, kv := range []struct {
			status string
			n      int
		}{{"succeeded", s.Succeeded}, {"failed", s.Failed}, {"not_attempted", s.NotAttempted}, {"skipped", s.Skipped}, {"unchanged", s.Unchanged}} {
			fmt.Fprintf(&b, "certalloc_rows{status=%q} %d\n", kv.status, kv.n)
		}
		metric("certalloc_requests", "Requests sent by the last run.", "gauge")
		fmt.Fprintf(&b, "certalloc_requests %d\n", s.Requests)
		metric("certalloc_throttled_requests", "Requests of the last run answered with Throttling.", "gauge")
		fmt.Fprintf(&b, "certalloc_throttled_requests %d\n", s.Throttled)
		metric("certalloc_last_run_duration_seconds", "Wall time of the last run.", "gauge")
		fmt.Fprintf(&b, "certalloc_last_run_duration_seconds %g\n", s.ElapsedSec)
		metric("certalloc_last_run_exit_code", "Exit code of the last run.", "gauge")
		fmt.Fprintf(&b, "certalloc_last_run_exit_code %d\n", s.ExitCode)
		metric("certalloc_last_run_timestamp_seconds", "When the last run finished, in Unix seconds.", "gauge")
		fmt.Fprintf(&b, "certalloc_last_run_timestamp_seconds %d\n", s.end.Unix())
		if lastSuccess > 0 {
			metric("certalloc_last_success_timestamp_seconds", "When a run last finished with every row succeeded, in Unix seconds.", "gauge")
			fmt.Fprintf(&b, "certalloc_last_success_timestamp_seconds %d\n", int64(lastSuccess))
		}
		_, err := io.WriteString(w, b.String())
		return err
	})
}

// previousMetric reads an unlabelled sample from an existing metrics file,
// or 0.
func previousMetric(path, name string) float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return 0
}
