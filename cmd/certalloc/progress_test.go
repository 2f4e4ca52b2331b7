package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/certalloc/certalloc/pkg/casemu"
)

// openPTY opens a pseudo-terminal pair. creack/pty does it on Linux, macOS
// and the BSDs (the hand-written /dev/ptmx ioctls it replaced were
// Linux-only, and kept this package's tests from building elsewhere).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// On a terminal, stderr shows a live bar: rows done of the total, the
// succeeded and failed counts, the rate and an ETA; the rate only once
// there is one (not "0 rows/hr" at the start, nor the first second's burst).
func TestProgressBarOnATerminal(t *testing.T) {
	_, url := startEmulator(t, casemu.Config{Faults: casemu.Faults{FailIDs: map[int64]bool{1003: true}}})
	dir := t.TempDir()
	plan, _ := writePlan(t, dir, 30)
	master, slave := openPTY(t)

	cmd := certallocCmd(t, nil, "apply", "--endpoint", url, "--qps", "10", plan)
	cmd.Stdout = io.Discard
	cmd.Stderr = slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var screen bytes.Buffer
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			mu.Lock()
			screen.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	if err := cmd.Wait(); err == nil {
		t.Fatal("exit 0; want 3 for the failed row")
	}
	slave.Close()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	mu.Lock()
	out := screen.String()
	mu.Unlock()

	// The bar redraws in place with carriage returns.
	frames := strings.Split(out, "\r")
	if len(frames) < 5 {
		t.Fatalf("%d frames; want a live bar redrawn in place:\n%q", len(frames), out)
	}
	for _, re := range []string{
		`\r +\d+% \|[^|]*\| \(\d+/30\) \[0s\] \d+ ok, \d+ failed \r`,                       // the first second: no rate yet
		`\d+% \|[^|]*\| \(\d+/30\) \[\d+s\] \d+ ok, \d+ failed, \d+\.\d+ rows/s, ETA \d+s`, // a frame mid-run, with ETA
		`100% \|[^|]*\| \(30/30\) \[\d+s\] 29 ok, 1 failed, \d+\.\d+ rows/s, ETA 0s \r?\n`, // the last frame
		`\r *\r+time=\S+ level=WARN msg="row failed" line=4 id=1003`,                       // a log line clears the bar first
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("no frame matches %s in:\n%q", re, out)
		}
	}
	if strings.Contains(out, "rows/hr") || strings.Contains(out, "rows/min") {
		t.Errorf("the bar shows a rate in rows/hr or rows/min at 10 rows/s:\n%q", out)
	}
}

// Without a terminal there is no bar, only a log line now and then.
func TestProgressLogLinesWithoutATerminal(t *testing.T) {
	_, url := startEmulator(t, casemu.Config{})
	dir := t.TempDir()
	plan, _ := writePlan(t, dir, 25)
	p := certalloc(t, nil, "apply", "--endpoint", url, "--qps", "10", "--progress-interval", "1s", plan)
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d: %s", code, p.stderr.String())
	}
	errOut := p.stderr.String()
	if strings.Contains(errOut, "\r") || strings.Contains(errOut, "|") {
		t.Errorf("a bar was drawn without a terminal:\n%q", errOut)
	}
	lines := regexp.MustCompile(`level=INFO msg=progress done=(\d+) total=25 succeeded=\d+ failed=0 rows_per_second=[\d.]+ eta_seconds=\d+`).FindAllStringSubmatch(errOut, -1)
	if len(lines) < 1 {
		t.Errorf("no progress lines in:\n%s", errOut)
	}
}

// With --log-format json there is never a bar, on a terminal and with
// --progress always too: the progress is records, like every other line.
func TestProgressWithJSONLogsIsRecords(t *testing.T) {
	_, url := startEmulator(t, casemu.Config{})
	for _, mode := range []string{"always", "auto"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			plan, _ := writePlan(t, dir, 25)
			master, slave := openPTY(t)
			cmd := certallocCmd(t, nil, "apply", "--endpoint", url, "--log-format", "json", "--progress", mode, "--progress-interval", "500ms", plan)
			var stdout bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, slave
			var screen bytes.Buffer
			done := make(chan struct{})
			go func() {
				defer close(done)
				io.Copy(&screen, master)
			}()
			if err := cmd.Run(); err != nil {
				t.Fatal(err)
			}
			slave.Close()
			select {
			case <-done:
			case <-time.After(2 * time.Second):
			}
			out := strings.ReplaceAll(screen.String(), "\r\n", "\n") // the terminal's line ends
			if strings.Contains(out, "\r") || strings.Contains(out, "|") {
				t.Errorf("a bar was drawn:\n%q", out)
			}
			progress := 0
			for _, line := range strings.Split(strings.TrimSpace(out)+"\n"+strings.TrimSpace(stdout.String()), "\n") {
				var rec struct{ Msg string }
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Errorf("line %q is not JSON: %v", line, err)
				}
				if rec.Msg == "progress" {
					progress++
				}
			}
			if progress == 0 {
				t.Errorf("no progress records in:\n%s", out)
			}
		})
	}
}
