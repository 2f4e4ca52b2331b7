package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/certalloc/certalloc/pkg/apply"
	"github.com/certalloc/certalloc/pkg/report"
)

// summary is the end-of-run account, the same numbers for people (print),
// machines (writeJSON) and monitoring (writeMetrics).
type summary struct {
	Plan         string  `json:"plan"`
	Report       string  `json:"report"`
	Failures     string  `json:"failures"`
	PlanRows     int     `json:"plan_rows"`
	Skipped      int     `json:"skipped_already_done"`
	Unchanged    int     `json:"unchanged_since_baseline"`
	Rows         int     `json:"rows"`
	Succeeded    int     `json:"succeeded"`
	Failed       int     `json:"failed"`
	NotAttempted int     `json:"not_attempted"`
	Requests     int     `json:"requests"`
	Retries      int     `json:"retries"`
	Throttled    int     `json:"throttled"`
	LostAnswers  int     `json:"lost_answers"`
	ElapsedSec   float64 `json:"elapsed_seconds"`
	RequestRate  float64 `json:"requests_per_second"`
	RowRate      float64 `json:"rows_per_second"`
	QPS          float64 `json:"qps"`
	MinRate      float64 `json:"lowest_rate"`
	LatencyP50Ms float64 `json:"latency_p50_ms"`
	LatencyP95Ms float64 `json:"latency_p95_ms"`
	LatencyMaxMs float64 `json:"latency_max_ms"`
	Stopped      string  `json:"stopped,omitempty"`
	StopReason   string  `json:"stop_reason,omitempty"`
	ExitCode     int     `json:"exit_code"`
	StartedAt    string  `json:"started_at"`
	FinishedAt   string  `json:"finished_at"`

	end    time.Time
	signal *SignalError
}

func newSummary(ctx context.Context, o *applyOptions, st apply.Stats, planRows, skipped, unchanged int) *summary {
	s := &summary{
		Plan: o.planPath, Report: o.reportPath, Failures: o.failuresPath,
		PlanRows: planRows, Skipped: skipped, Unchanged: unchanged,
		Rows: st.Rows, Succeeded: st.Succeeded, Failed: st.Failed, NotAttempted: st.NotAttempted,
		Requests: st.Requests, Retries: st.Retries, Throttled: st.Throttled, LostAnswers: st.LostAnswers,
		ElapsedSec:   st.End.Sub(st.Start).Seconds(),
		RequestRate:  st.RequestRate(),
		QPS:          o.qps,
		MinRate:      st.MinRate,
		LatencyP50Ms: ms(st.LatencyP50), LatencyP95Ms: ms(st.LatencyP95), LatencyMaxMs: ms(st.LatencyMax),
		StartedAt: st.Start.UTC().Format(time.RFC3339), FinishedAt: st.End.UTC().Format(time.RFC3339),
		end: st.End,
	}
	if s.ElapsedSec > 0 {
		s.RowRate = float64(st.Succeeded) / s.ElapsedSec
	}
	var se SignalError
	switch {
	case errors.As(context.Cause(ctx), &se):
		s.signal = &se
		s.Stopped, s.StopReason = "interrupted", se.Error()
	case errors.Is(st.Stop, apply.ErrFatal):
		s.Stopped = "fatal"
		if st.Fatal != nil {
			s.StopReason = st.Fatal.Error()
		}
	case errors.Is(st.Stop, apply.ErrMaxFailures):
		s.Stopped, s.StopReason = "max-failures", fmt.Sprintf("more than --max-failures %s rows failed", o.maxFailures)
	case errors.Is(st.Stop, apply.ErrDeadline):
		s.Stopped, s.StopReason = "deadline", fmt.Sprintf("--deadline %s reached", o.deadline)
	case st.Stop != nil:
		s.Stopped, s.StopReason = "interrupted", st.Stop.Error()
	}
	s.ExitCode = s.code()
	return s
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (s *summary) code() int {
	switch s.Stopped {
	case "interrupted":
		if s.signal != nil {
			return ExitCodeFor(s.signal.Signal)
		}
		return ExitInterrupted
	case "fatal", "max-failures":
		return ExitFatal
	case "deadline":
		return ExitPartial
	}
	if s.Failed > 0 || s.NotAttempted > 0 {
		return ExitPartial
	}
	return ExitOK
}

// exit turns the summary into Run's error (nil for success).
func (s *summary) exit() error {
	if s.ExitCode == ExitOK {
		return nil
	}
	switch s.Stopped {
	case "":
		return exitError{s.ExitCode, fmt.Errorf("%d of %d rows failed; they are in %s", s.Failed+s.NotAttempted, s.Rows, s.Failures)}
	case "interrupted":
		return exitError{s.ExitCode, fmt.Errorf("%s; rows not done are in %s", s.StopReason, s.Failures)}
	}
	return exitError{s.ExitCode, fmt.Errorf("stopped (%s): %s; rows not done are in %s", s.Stopped, s.StopReason, s.Failures)}
}

func (s *summary) print(w io.Writer) {
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
	fmt.Fprintf(&b, "  requests:    %d sent, %d retries, %d throttled, %d answers lost\n", s.Requests, s.Retries, s.Throttled, s.LostAnswers)
	fmt.Fprintf(&b, "  elapsed:     %s\n", time.Duration(s.ElapsedSec*float64(time.Second)).Round(time.Millisecond))
	fmt.Fprintf(&b, "  rate:        %.2f requests/s sent (limit %g), %.2f rows/s succeeded", s.RequestRate, s.QPS, s.RowRate)
	if s.Throttled > 0 {
		fmt.Fprintf(&b, ", lowest pace %.2f/s", s.MinRate)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  latency:     p50 %.0fms, p95 %.0fms, max %.0fms\n", s.LatencyP50Ms, s.LatencyP95Ms, s.LatencyMaxMs)
	if s.Stopped != "" {
		fmt.Fprintf(&b, "  stopped:     %s: %s\n", s.Stopped, s.StopReason)
	}
	fmt.Fprintf(&b, "  report:      %s\n", s.Report)
	if s.Failed+s.NotAttempted > 0 {
		fmt.Fprintf(&b, "  failures:    %s (a plan: apply it to finish the job)\n", s.Failures)
	}
	fmt.Fprintf(&b, "  exit code:   %d\n", s.ExitCode)
	io.WriteString(w, b.String())
}

func (s *summary) writeJSON(path string, private bool) error {
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
func (s *summary) writeMetrics(path string, private bool) error {
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
		}{{"succeeded", s.Succeeded}, {"failed", s.Failed}, {"not_attempted", s.NotAttempted}, {"skipped", s.Skipped + s.Unchanged}} {
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
