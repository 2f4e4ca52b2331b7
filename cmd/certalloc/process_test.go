package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certalloc/certalloc/pkg/cas"
	"github.com/certalloc/certalloc/pkg/casemu"
	"github.com/certalloc/certalloc/pkg/cli"
	"github.com/certalloc/certalloc/pkg/report"
)

// These tests run certalloc as a real process (this test binary, through
// testscript.Main) against an in-process emulator on loopback, for what
// needs a process: signals, SIGKILL, and two runs at once.

func startEmulator(t *testing.T, cfg casemu.Config) (*casemu.Server, string) {
	t.Helper()
	if cfg.Keys == nil {
		cfg.Keys = map[string]casemu.Key{
			cli.EmulatorKeyID: {Secret: cli.EmulatorSecret},
			testKeyID:         {Secret: testSecret, SecurityToken: testToken},
		}
	}
	emu := casemu.New(cfg)
	h := &countingHandler{h: emu}
	handlers.Store(emu, h)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return emu, srv.URL
}

// countingHandler counts the requests the emulator is handling, so that a
// test can wait for those a killed client left: the service (and the
// emulator) applies a call whose client went away.
type countingHandler struct {
	h        http.Handler
	inFlight atomic.Int64
}

func (c *countingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	c.h.ServeHTTP(w, r)
}

var handlers sync.Map // *casemu.Server -> *countingHandler

// waitIdle waits until the emulator has answered every request it got.
func waitIdle(t *testing.T, emu *casemu.Server) {
	t.Helper()
	v, ok := handlers.Load(emu)
	if !ok {
		t.Fatal("waitIdle: emulator not started by startEmulator")
	}
	h := v.(*countingHandler)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if h.inFlight.Load() == 0 {
			return
		}
	}
	t.Fatalf("the emulator still handles %d requests", h.inFlight.Load())
}

// writePlan writes n rows (Ids 1000+i) and returns its path and the rows.
func writePlan(t *testing.T, dir string, n int) (string, map[int64]int32) {
	t.Helper()
	rows := map[int64]int32{}
	var b strings.Builder
	b.WriteString("Id,CertTotalCount\n")
	for i := 1; i <= n; i++ {
		id, count := int64(1000+i), int32(i%13)
		rows[id] = count
		fmt.Fprintf(&b, "%d,%d\n", id, count)
	}
	path := filepath.Join(dir, "plan.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, rows
}

type proc struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
}

// certallocCmd returns the command, not started, with the emulator's
// credentials and a HOME of its own.
func certallocCmd(t *testing.T, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("certalloc", args...)
	cmd.Env = append(os.Environ(),
		"ALIBABA_CLOUD_ACCESS_KEY_ID="+cli.EmulatorKeyID,
		"ALIBABA_CLOUD_ACCESS_KEY_SECRET="+cli.EmulatorSecret,
		"ALIBABA_CLOUD_SECURITY_TOKEN=",
		"ALIBABA_CLOUD_ECS_METADATA_DISABLED=true",
		"HOME="+t.TempDir())
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// certalloc starts the command, capturing its output.
func certalloc(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: certallocCmd(t, env, args...)}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return p
}

// wait returns the exit code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	err := p.cmd.Wait()
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -int(ws.Signal())
		}
		return ee.ExitCode()
	}
	t.Fatal(err)
	return 0
}

func readReport(t *testing.T, path string) []report.Row {
	t.Helper()
	var rows []report.Row
	if err := report.ReadFile(path, func(r report.Row) error { rows = append(rows, r); return nil }); err != nil {
		t.Fatalf("report does not parse: %v", err)
	}
	return rows
}

// checkRecord checks what a killed run leaves: the report, if there is
// one, and its journal, if there is one, both read whole (readRecord).
func checkRecord(t *testing.T, reportPath string) {
	t.Helper()
	readRecord(t, reportPath)
}

// waitForLines waits until path has at least n lines.
func waitForLines(t *testing.T, path string, n int) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(path); err == nil && bytes.Count(b, []byte("\n")) >= n {
			return
		}
	}
	t.Fatalf("%s never reached %d lines", path, n)
}

// Kill at random moments, then resume: every Id ends applied, none more
// than twice, no more twice than there are workers, the record parses
// after every kill, and no Id the record has as done is sent again.
// CERTALLOC_KILL_TRIALS raises the number of trials (the figure is
// 20).
func TestKillAndResume(t *testing.T) {
	t.Parallel()
	const rowsN, workers = 60, 6
	trials := killTrials(t, 5)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	midRun, maxTwice, totalTwice := 0, 0, 0 // midRun: trials whose kill left rows for the resume to send
	for trial := 0; trial < trials; trial++ {
		t.Run(fmt.Sprint(trial), func(t *testing.T) {
			emu, url := startEmulator(t, casemu.Config{RateLimit: 60,
				Faults: casemu.Faults{LatencyMin: 20 * time.Millisecond, LatencyMax: 80 * time.Millisecond}})
			dir := t.TempDir()
			plan, want := writePlan(t, dir, rowsN)
			reportPath := filepath.Join(dir, "plan.report.csv")
			args := []string{"apply", "--endpoint", url, "--qps", "50", "--workers", fmt.Sprint(workers), "--resume", plan}

			p := certalloc(t, nil, args...)
			time.Sleep(time.Duration(100+rng.IntN(1000)) * time.Millisecond)
			p.cmd.Process.Kill()
			p.wait(t)
			waitIdle(t, emu) // calls in flight at the kill still land
			record := readRecord(t, reportPath)
			before := appliedCounts(emu)
			requests := emu.Stats().Requests

			p = certalloc(t, nil, args...)
			if code := p.wait(t); code != 0 {
				t.Fatalf("resume exit %d\n%s\n%s", code, p.stdout.String(), p.stderr.String())
			}
			if emu.Stats().Requests > requests {
				midRun++
			}
			after := appliedCounts(emu)
			twice := 0
			for id, n := range want {
				a, ok := emu.State(id)
				switch {
				case !ok || a.CertTotalCount != n:
					t.Errorf("Id %d: state %+v; want total %d", id, a, n)
				case a.Applied > 2:
					t.Errorf("Id %d applied %d times", id, a.Applied)
				case a.Applied == 2:
					twice++
				}
				if record[id].done(n) && after[id] != before[id] {
					t.Errorf("Id %d: the record had it done, and the resume sent it again", id)
				}
			}
			if twice > workers {
				t.Errorf("%d Ids applied twice; at most %d (the workers) may be", twice, workers)
			}
			maxTwice, totalTwice = max(maxTwice, twice), totalTwice+twice
			done := map[int64]bool{}
			for _, r := range readReport(t, reportPath) {
				if r.Status == report.Succeeded {
					done[r.ID] = true
				}
			}
			if len(done) != rowsN {
				t.Errorf("report shows %d Ids succeeded; want %d", len(done), rowsN)
			}
		})
	}
	if midRun < (trials+1)/2 {
		t.Errorf("only %d of %d kills landed mid-run; the test proves little", midRun, trials)
	}
	t.Logf("%d trials, %d killed mid-run; twice-applied rows: at most %d in a trial (workers %d), %d in all", trials, midRun, maxTwice, workers, totalTwice)
}

// A second signal exits at once, and the report is still whole. Its last
// line says so, and where the rows answered are: with --log-format json,
// as a record, like every other line.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			_, url := startEmulator(t, casemu.Config{Faults: casemu.Faults{LatencyMin: 3 * time.Second, LatencyMax: 3 * time.Second}})
			dir := t.TempDir()
			plan, _ := writePlan(t, dir, 30)
			p := certalloc(t, nil, "apply", "--endpoint", url, "--qps", "10", "--log-format", format, plan)
			waitForLines(t, filepath.Join(dir, "plan.report.csv.journal"), 1)
			time.Sleep(500 * time.Millisecond) // requests in flight, answers 3s away
			p.cmd.Process.Signal(syscall.SIGINT)
			time.Sleep(100 * time.Millisecond)
			p.cmd.Process.Signal(syscall.SIGINT)
			start := time.Now()
			if code := p.wait(t); code != cli.ExitInterrupted {
				t.Fatalf("exit %d; want %d", code, cli.ExitInterrupted)
			}
			if d := time.Since(start); d > 1500*time.Millisecond {
				t.Errorf("second signal took %v to exit", d)
			}
			checkRecord(t, filepath.Join(dir, "plan.report.csv"))
			lines := strings.Split(strings.TrimSuffix(p.stderr.String(), "\n"), "\n")
			last := lines[len(lines)-1]
			const want = "stopped at once by a second interrupt"
			if format == "json" {
				for i, l := range lines {
					if !json.Valid([]byte(l)) {
						t.Errorf("stderr line %d is not JSON: %q", i+1, l)
					}
				}
				var rec struct {
					Level, Msg string
					ExitCode   int `json:"exit_code"`
				}
				if json.Unmarshal([]byte(last), &rec) != nil || rec.Level != "ERROR" || !strings.HasPrefix(rec.Msg, want) || rec.ExitCode != cli.ExitInterrupted {
					t.Errorf("last stderr line %q; want an ERROR record %q..., exit_code %d", last, want, cli.ExitInterrupted)
				}
			} else if !strings.HasPrefix(last, "certalloc apply: "+want) || !strings.Contains(last, "journal") {
				t.Errorf("last stderr line %q; want %q and where the rows answered are", last, want)
			}
		})
	}
}

// Two runs on one report: the second exits 4 at once and sends nothing.
func TestLockedReport(t *testing.T) {
	emu1, url1 := startEmulator(t, casemu.Config{Faults: casemu.Faults{LatencyMin: 200 * time.Millisecond, LatencyMax: 200 * time.Millisecond}})
	emu2, url2 := startEmulator(t, casemu.Config{})
	dir := t.TempDir()
	plan, want := writePlan(t, dir, 20)
	first := certalloc(t, nil, "apply", "--endpoint", url1, "--qps", "10", plan)
	waitForLines(t, filepath.Join(dir, "plan.report.csv.journal"), 2)

	second := certalloc(t, nil, "apply", "--endpoint", url2, plan)
	if code := second.wait(t); code != cli.ExitLocked {
		t.Fatalf("second run exit %d; want %d\n%s", code, cli.ExitLocked, second.stderr.String())
	}
	if !strings.Contains(second.stderr.String(), "another certalloc run holds this report") {
		t.Errorf("second run said: %s", second.stderr.String())
	}
	if n := emu2.Stats().Requests; n != 0 {
		t.Errorf("second run sent %d requests", n)
	}
	if code := first.wait(t); code != 0 {
		t.Fatalf("first run exit %d\n%s", code, first.stderr.String())
	}
	if rows := readReport(t, filepath.Join(dir, "plan.report.csv")); len(rows) != len(want) || emu1.Stats().Applied != len(want) {
		t.Errorf("first run: %d report rows, %d applied; want %d", len(rows), emu1.Stats().Applied, len(want))
	}
}

// Mixed faults: every row succeeds, no nonce is reused, and the report
// agrees with the emulator row by row, down to the number of requests.
func TestMixedFaults(t *testing.T) {
	emu, url := startEmulator(t, casemu.Config{RateLimit: 100, Faults: casemu.Faults{
		LatencyMin: 5 * time.Millisecond, LatencyMax: 40 * time.Millisecond,
		Error503Rate: 0.08, Error500Rate: 0.04, DropRate: 0.04, ThrottleRate: 0.04,
		HangRate: 0.02, HangFor: 3 * time.Second,
	}})
	dir := t.TempDir()
	plan, want := writePlan(t, dir, 200)
	p := certalloc(t, nil, "apply", "--endpoint", url, "--qps", "80", "--timeout", "1s", "--max-attempts", "10", plan)
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, p.stdout.String(), p.stderr.String())
	}
	st := emu.Stats()
	if st.ByCode["SignatureNonceUsed"] != 0 {
		t.Errorf("%d SignatureNonceUsed", st.ByCode["SignatureNonceUsed"])
	}
	attempts, lost := 0, 0
	for _, r := range readReport(t, filepath.Join(dir, "plan.report.csv")) {
		a, _ := emu.State(r.ID)
		if r.Status != report.Succeeded || a.CertTotalCount != want[r.ID] || r.CertTotalCount != want[r.ID] {
			t.Errorf("Id %d: report %s total %d, emulator %+v, plan %d", r.ID, r.Status, r.CertTotalCount, a, want[r.ID])
		}
		if r.CertCount == nil || *r.CertCount != int64(want[r.ID]) || r.RequestID == "" {
			t.Errorf("Id %d: answer fields %v %q", r.ID, r.CertCount, r.RequestID)
		}
		if strings.Contains(r.ErrorMessage, "lost answer") {
			lost++
		}
		attempts += r.Attempts
	}
	if attempts != st.Requests {
		t.Errorf("report counts %d attempts; the emulator saw %d requests", attempts, st.Requests)
	}
	if lost == 0 || st.ByCode["(dropped)"]+st.ByCode["(hung)"] == 0 {
		t.Errorf("no lost answer was exercised: %v", st.ByCode)
	}
	t.Logf("emulator: %d requests for %d rows: %v", st.Requests, len(want), st.ByCode)
}

// HTTPS verifies certificates: the emulator's self-signed one is refused
// as run-fatal.
func TestHTTPSVerifiesCertificates(t *testing.T) {
	emu := casemu.New(casemu.Config{Keys: map[string]casemu.Key{cli.EmulatorKeyID: {Secret: cli.EmulatorSecret}}})
	srv := httptest.NewTLSServer(emu)
	defer srv.Close()
	dir := t.TempDir()
	plan, _ := writePlan(t, dir, 3)
	p := certalloc(t, nil, "apply", "--endpoint", srv.URL, plan)
	if code := p.wait(t); code != cli.ExitFatal {
		t.Fatalf("exit %d; want %d\n%s", code, cli.ExitFatal, p.stdout.String())
	}
	if !strings.Contains(p.stdout.String(), "TLSError") || emu.Stats().Applied != 0 {
		t.Errorf("want a TLSError and nothing applied:\n%s", p.stdout.String())
	}
}

// An output file whose folder does not exist (a state folder not made
// yet, node_exporter's textfile folder on a host without it) is found
// before any request, and is a bad argument like any other: exit 2, the
// flag and the path named, nothing sent, nothing written.
func TestUnwritableOutputsSendNothing(t *testing.T) {
	emu, url := startEmulator(t, casemu.Config{})
	dir := t.TempDir()
	plan, _ := writePlan(t, dir, 3)
	missing := filepath.Join(dir, "no such", "dir")
	for _, flag := range []string{"--report", "--failures", "--summary", "--metrics-file"} {
		path := filepath.Join(missing, "x")
		p := certalloc(t, nil, "apply", "--endpoint", url, flag, path, plan)
		code := p.wait(t)
		want := fmt.Sprintf("%s %s: folder %s does not exist (create it first); nothing was sent", flag, path, missing)
		if code != cli.ExitUsage || !strings.Contains(p.stderr.String(), want) {
			t.Errorf("%s in a missing folder: exit %d, stderr %q; want %d and %q", flag, code, p.stderr.String(), cli.ExitUsage, want)
		}
	}
	if n := emu.Stats().Requests; n != 0 {
		t.Errorf("%d requests sent", n)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("files written beside the plan: %v", entries)
	}
}

// Another client on the same account takes about half the quota: the
// service throttles, certalloc slows the whole run (and honours the
// retry-after the emulator sends), and every row still succeeds.
func TestSharedQuota(t *testing.T) {
	emu, url := startEmulator(t, casemu.Config{})
	ep, _, err := cas.ParseEndpoint(url, false)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := cas.StaticCredentials(cli.EmulatorKeyID, cli.EmulatorSecret, "", "competitor")
	if err != nil {
		t.Fatal(err)
	}
	other, err := cas.NewClients(cas.Config{Endpoint: ep, Credentials: creds}, 1)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	competitorDone := make(chan int)
	go func() {
		sent := 0
		tick := time.NewTicker(200 * time.Millisecond) // 5 per second
		defer tick.Stop()
		for {
			select {
			case <-stop:
				competitorDone <- sent
				return
			case <-tick.C:
				other[0].Assign(cas.Request{ID: int64(900000 + sent), CertTotalCount: 1}, nil)
				sent++
			}
		}
	}()
	dir := t.TempDir()
	plan, want := writePlan(t, dir, 60)
	p := certalloc(t, nil, "apply", "--endpoint", url, "--qps", "10", "--summary", filepath.Join(dir, "s.json"), plan)
	code := p.wait(t)
	close(stop)
	<-competitorDone
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, p.stdout.String(), p.stderr.String())
	}
	for id, n := range want {
		if a, _ := emu.State(id); a.CertTotalCount != n {
			t.Errorf("Id %d: %+v", id, a)
		}
	}
	out := p.stdout.String()
	if !strings.Contains(out, "lowest pace") || emu.Stats().ByCode["Throttling.User"] == 0 {
		t.Errorf("no throttling seen with half the quota taken:\n%s", out)
	}
	t.Logf("%s", out)
}
