package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certalloc/certalloc/pkg/casemu"
	"github.com/certalloc/certalloc/pkg/cli"
	"github.com/certalloc/certalloc/pkg/report"
)

// SIGTERM and SIGHUP drain: no new request, in-flight ones finish and are
// reported, the failures file lists the rest, the summary and the metrics
// are written, and the exit code is 128 + the signal.
func TestSignalsDrain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
		name string
	}{
		{syscall.SIGTERM, cli.ExitTerminated, "terminated"},
		{syscall.SIGHUP, 129, "hangup"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			emu, url := startEmulator(t, casemu.Config{Faults: casemu.Faults{LatencyMin: 400 * time.Millisecond, LatencyMax: 400 * time.Millisecond}})
			dir := t.TempDir()
			plan, want := writePlan(t, dir, 60)
			summary, metrics := filepath.Join(dir, "s.json"), filepath.Join(dir, "m.prom")
			p := certalloc(t, nil, "apply", "--endpoint", url, "--qps", "10", "--summary", summary, "--metrics-file", metrics, plan)
			waitForLines(t, filepath.Join(dir, "plan.report.csv.journal"), 4)
			p.cmd.Process.Signal(tc.sig)
			start := time.Now()
			if code := p.wait(t); code != tc.code {
				t.Fatalf("exit %d; want %d\n%s", code, tc.code, p.stderr.String())
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("drain took %v", d)
			}
			if !strings.Contains(p.stdout.String(), "stopped:     interrupted: interrupted by "+tc.name) {
				t.Errorf("summary does not say why it stopped:\n%s", p.stdout.String())
			}
			rows := readReport(t, filepath.Join(dir, "plan.report.csv"))
			if len(rows) != len(want) {
				t.Errorf("report has %d rows; want all %d", len(rows), len(want))
			}
			reported := map[int64]bool{}
			var notDone []int64
			for _, r := range rows {
				if r.Status == report.Succeeded {
					reported[r.ID] = true
				} else {
					notDone = append(notDone, r.ID)
				}
			}
			waitIdle(t, emu)
			applied := emu.States()
			for id := range applied {
				if !reported[id] {
					t.Errorf("Id %d was applied but the report does not say it succeeded", id)
				}
			}
			if len(applied) != len(reported) || len(applied) == 0 || len(notDone) == 0 {
				t.Errorf("applied %d, reported succeeded %d, not done %d", len(applied), len(reported), len(notDone))
			}
			if got := failuresIDs(t, filepath.Join(dir, "plan.failures.csv")); !slices.Equal(got, notDone) {
				t.Errorf("failures file lists %d rows; want the %d not done", len(got), len(notDone))
			}
			checkSummaryFiles(t, summary, metrics, tc.code)
		})
	}
}

// checkSummaryFiles checks that the JSON summary and the metrics were
// written, with the exit code the run ended with.
func checkSummaryFiles(t *testing.T, summary, metrics string, code int) {
	t.Helper()
	var s struct {
		ExitCode *int `json:"exit_code"`
	}
	if b, err := os.ReadFile(summary); err != nil || json.Unmarshal(b, &s) != nil || s.ExitCode == nil || *s.ExitCode != code {
		t.Errorf("summary %s: %v, exit code %v; want %d", summary, err, s.ExitCode, code)
	}
	if b, err := os.ReadFile(metrics); err != nil || !strings.Contains(string(b), fmt.Sprintf("\ncertalloc_last_run_exit_code %d\n", code)) {
		t.Errorf("metrics %s: %v\n%s\nwant certalloc_last_run_exit_code %d", metrics, err, b, code)
	}
}

// A closed stdout or stderr (a pager quit, a log pipe gone) never kills the
// run: the report, the failures file, the summary file and the metrics are
// written, and the exit code is what the rows decide (3: two rows fail).
func TestClosedOutputs(t *testing.T) {
	t.Parallel()
	for _, closed := range []string{"stdout", "stderr", "both"} {
		t.Run(closed, func(t *testing.T) {
			t.Parallel()
			emu, url := startEmulator(t, casemu.Config{RateLimit: -1, Faults: casemu.Faults{FailIDs: map[int64]bool{1003: true, 1007: true}}})
			dir := t.TempDir()
			plan, want := writePlan(t, dir, 30)
			summary, metrics := filepath.Join(dir, "s.json"), filepath.Join(dir, "m.prom")
			cmd := certallocCmd(t, nil, "apply", "--endpoint", url, "--qps", "100", "--log-level", "debug", "--progress", "always",
				"--summary", summary, "--metrics-file", metrics, plan)
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			r.Close() // nobody reads: every write gets EPIPE (and SIGPIPE, unless ignored)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if closed != "stderr" {
				cmd.Stdout = w
			}
			if closed != "stdout" {
				cmd.Stderr = w
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			w.Close()
			code := (&proc{cmd: cmd}).wait(t)
			if code != cli.ExitPartial {
				t.Fatalf("exit %d; want %d (two rows failed)\n%s", code, cli.ExitPartial, out.String())
			}
			if st := emu.Stats(); st.Applied != len(want)-2 {
				t.Errorf("%d applied; want %d", st.Applied, len(want)-2)
			}
			if rows := readReport(t, filepath.Join(dir, "plan.report.csv")); len(rows) != len(want) {
				t.Errorf("report has %d rows; want %d", len(rows), len(want))
			}
			if got := failuresIDs(t, filepath.Join(dir, "plan.failures.csv")); !slices.Equal(got, []int64{1003, 1007}) {
				t.Errorf("failures file lists %v; want 1003 and 1007", got)
			}
			checkSummaryFiles(t, summary, metrics, cli.ExitPartial)
		})
	}
}

// SIGTERM before the first request: while a 1.5-million-row plan is read,
// or while a 300,000-row report is read for --resume and --baseline. The
// run exits within a second or two, with 143, and changes no file: the
// report, its journal, the failures file, the summary and the metrics stay
// byte for byte.
func TestSIGTERMWhileReading(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("watches the read offset in /proc")
	}
	for _, tc := range []struct {
		name       string
		planRows   int
		reportRows int
	}{
		{"plan", 1_500_000, 1},
		{"report", 300_000, 300_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			emu, url := startEmulator(t, casemu.Config{})
			dir := t.TempDir()
			planPath := filepath.Join(dir, "plan.csv")
			buf := make([]byte, 0, 16*tc.planRows)
			buf = append(buf, "Id,CertTotalCount\n"...)
			for i := 1; i <= tc.planRows; i++ {
				buf = strconv.AppendInt(buf, int64(100000+i), 10)
				buf = append(buf, ',')
				buf = strconv.AppendInt(buf, int64(i%50), 10)
				buf = append(buf, '\n')
			}
			if err := os.WriteFile(planPath, buf, 0o644); err != nil {
				t.Fatal(err)
			}
			planSize := int64(len(buf))
			R := filepath.Join(dir, "report.csv")
			buf = append(buf[:0], report.HeaderLine()...)
			for i := 1; i <= tc.reportRows; i++ {
				buf = fmt.Appendf(buf, "%d,%d,%d,succeeded,1,REQ-%d,%d,0,,,41,2026-11-27T02:00:01Z,\n", i+1, 100000+i, i%50, i, i%50)
			}
			reportSize := int64(len(buf))
			files := map[string][]byte{
				R:                                  buf,
				report.JournalPath(R):              fmt.Appendf(report.HeaderLine(), "3,100002,2,sending,0,,,,,,0,2026-11-28T02:00:00Z,\n"),
				filepath.Join(dir, "failures.csv"): []byte("Id,CertTotalCount\n100003,3\n"),
				filepath.Join(dir, "s.json"):       []byte("{\"exit_code\": 3}\n"),
				filepath.Join(dir, "m.prom"):       []byte("certalloc_last_success_timestamp_seconds 1764208800\n"),
			}
			for p, b := range files {
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			p := certalloc(t, nil, "apply", "--endpoint", url, "--resume", "--baseline", R, "--report", R, "--failures", filepath.Join(dir, "failures.csv"),
				"--summary", filepath.Join(dir, "s.json"), "--metrics-file", filepath.Join(dir, "m.prom"), planPath)
			var pos int64
			if tc.name == "plan" {
				pos = waitReading(t, p.cmd.Process.Pid, planPath, planSize)
			} else {
				pos = waitReading(t, p.cmd.Process.Pid, R, reportSize)
			}
			p.cmd.Process.Signal(syscall.SIGTERM)
			start := time.Now()
			code := p.wait(t)
			took := time.Since(start)
			t.Logf("SIGTERM at byte %d of the %s; exit %d after %v", pos, tc.name, code, took)
			if code != cli.ExitTerminated {
				t.Fatalf("exit %d; want %d\nstdout: %s\nstderr: %s", code, cli.ExitTerminated, p.stdout.String(), p.stderr.String())
			}
			if took > 2*time.Second {
				t.Errorf("took %v to exit; want at most 2s", took)
			}
			for path, b := range files {
				if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, b) {
					t.Errorf("%s changed (%d bytes, %v; was %d)", filepath.Base(path), len(got), err, len(b))
				}
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				// The lock file is made when the report is locked, before
				// it is read; it is empty and never removed.
				if _, ok := files[filepath.Join(dir, e.Name())]; !ok && e.Name() != "plan.csv" && e.Name() != "report.csv.lock" {
					t.Errorf("a new file in the folder: %s", e.Name())
				}
			}
			if n := emu.Stats().Requests; n != 0 {
				t.Errorf("%d requests sent", n)
			}
		})
	}
}

// waitReading waits until process pid has path open and has read a tenth
// of its size bytes since it was first seen open, and returns the bytes
// read by then. It counts the process's reads (rchar in /proc/PID/io),
// which pread(2) moves too, unlike the file's offset.
func waitReading(t *testing.T, pid int, path string, size int64) int64 {
	t.Helper()
	rchar := func() int64 {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "rchar:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				return n
			}
		}
		return -1
	}
	isOpen := func() bool {
		fdDir := fmt.Sprintf("/proc/%d/fd", pid)
		fds, _ := os.ReadDir(fdDir)
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join(fdDir, fd.Name())); err == nil && target == path {
				return true
			}
		}
		return false
	}
	base := int64(-1)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if !isOpen() {
			if base >= 0 {
				t.Fatalf("%s was read whole before the test saw a tenth of it read; the machine is too fast for this test", path)
			}
			continue
		}
		n := rchar()
		if base < 0 {
			base = n
		}
		if n-base >= size/10 {
			return n - base
		}
	}
	t.Fatalf("the process never read %s", path)
	return 0
}
