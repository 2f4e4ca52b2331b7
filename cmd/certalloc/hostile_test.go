package main

import (
	"bufio"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certalloc/certalloc/pkg/casemu"
	"github.com/certalloc/certalloc/pkg/report"
)

// Hostile answers, one attempt per row so that they land in the record:
// numeric JSON fields (the SDK panics on them), a 100 KB HTML page, a
// redirect, an endless body, a 200 with an error Code, a 200 without
// RequestId. The run does not crash, records every row, keeps every
// ErrorMessage (in the report and in the logs) to one line of at most 512
// bytes, never follows a redirect, never takes a broken 200 for a success,
// and its report reads back with --resume, which finishes the job.
func TestHostileAnswers(t *testing.T) {
	t.Parallel()
	const maxMessage = 512
	// A fixed seed: the dice fall the same way each run (whichever request
	// gets them), so every hostile answer is exercised every time.
	emu, url := startEmulator(t, casemu.Config{RateLimit: -1, Seed: 11, Faults: casemu.Faults{
		NumericJSONRate: 0.1, HTMLRate: 0.1, RedirectRate: 0.1, EndlessRate: 0.1, OKErrorRate: 0.1, NoRequestIDRate: 0.1,
	}})
	dir := t.TempDir()
	planPath := filepath.Join(dir, "plan.csv")
	plan := seqPlan(3001, 80)
	writePlanRows(t, planPath, plan)
	reportPath := filepath.Join(dir, "plan.report.csv")

	p := certalloc(t, nil, "apply", "--endpoint", url, "--qps", "100", "--max-attempts", "1", "--timeout", "2s",
		"--log-format", "json", "--log-level", "debug", "--progress", "never", planPath)
	code := p.wait(t)
	waitIdle(t, emu)
	st := emu.Stats()
	t.Logf("exit %d; emulator: %d requests, %v", code, st.Requests, st.ByCode)
	if code != 3 {
		t.Fatalf("exit %d; want 3 (rows failed, nothing crashed)\n%s\n%s", code, p.stdout.String(), p.stderr.String())
	}
	for _, k := range []string{"(numeric-json)", "(html)", "(redirect)", "(endless)", "(200-error)", "(no-requestid)"} {
		if st.ByCode[k] == 0 {
			t.Errorf("no %s answer was exercised", k)
		}
	}
	if st.RedirectsFollowed != 0 {
		t.Errorf("%d redirects followed", st.RedirectsFollowed)
	}
	if strings.Contains(p.stderr.String(), "panic") {
		t.Errorf("stderr mentions a panic:\n%s", p.stderr.String())
	}

	failed := 0
	for _, r := range checkReportShape(t, reportPath, plan) {
		if strings.ContainsAny(r.ErrorMessage, "\r\n") || len(r.ErrorMessage) > maxMessage {
			t.Errorf("Id %d: ErrorMessage of %d bytes, one line: %v", r.ID, len(r.ErrorMessage), !strings.ContainsAny(r.ErrorMessage, "\r\n"))
		}
		switch r.Status {
		case report.Succeeded:
			// A success is one the service applied, with its answer's fields.
			if a, ok := emu.State(r.ID); !ok || a.CertTotalCount != r.CertTotalCount || r.RequestID == "" || r.CertCount == nil {
				t.Errorf("Id %d recorded succeeded (RequestId %q), emulator %+v", r.ID, r.RequestID, a)
			}
		case report.Failed:
			failed++
			if r.ErrorCode == "" || r.ErrorMessage == "" {
				t.Errorf("Id %d failed with no code or message", r.ID)
			}
		default:
			t.Errorf("Id %d: status %s", r.ID, r.Status)
		}
	}
	if n := len(failuresIDs(t, filepath.Join(dir, "plan.failures.csv"))); n != failed || failed == 0 {
		t.Errorf("%d rows failed, %d in the failures file", failed, n)
	}
	// Every log line is JSON, and every value in it one line of bounded
	// length (the message of an error above all).
	sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "certalloc apply: ") {
			// The closing error line is plain text whatever the log
			// format (pkg/cli prints it); it is one line too.
			if len(sc.Text()) > 1024 {
				t.Errorf("closing line of %d bytes", len(sc.Text()))
			}
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("a log line is not JSON (%v): %.200s", err, sc.Text())
			continue
		}
		for k, v := range rec {
			if s, ok := v.(string); ok && (strings.ContainsAny(s, "\r\n") || len(s) > maxMessage+200) {
				t.Errorf("log %q: a value of %d bytes: %.200q", k, len(s), s)
			}
		}
	}

	// The report reads back: --resume sends what is not done, and only that.
	emu.SetFaults(casemu.Faults{})
	record := readRecord(t, reportPath)
	applied := appliedCounts(emu)
	p = certalloc(t, nil, "apply", "--endpoint", url, "--qps", "100", "--resume", planPath)
	if code := p.wait(t); code != 0 {
		t.Fatalf("--resume: exit %d\n%s\n%s", code, p.stdout.String(), p.stderr.String())
	}
	checkSentOnce(t, "--resume", plan, record, applied, appliedCounts(emu))
	checkFinalReport(t, reportPath, plan, true)
}
