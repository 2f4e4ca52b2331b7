package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certalloc/certalloc/pkg/casemu"
	"github.com/certalloc/certalloc/pkg/report"
)

// A run leaves half its rows failed; --retry-failed is killed (SIGKILL) at
// a random moment while it re-sends them; --retry-failed again finishes the
// job. After it: one record, the plan's own report with every row
// succeeded and its failures file the header alone; the second retry sent
// exactly the rows the record did not have as done, and no row the first
// run had done was ever sent again.
func TestRetryFailedKilled(t *testing.T) {
	t.Parallel()
	trials := killTrials(t, 3)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 16))
	killedMidRun := 0
	for trial := range trials {
		t.Run(fmt.Sprint(trial), func(t *testing.T) {
			plan := seqPlan(3001, 80)
			fail := map[int64]bool{}
			for _, r := range plan {
				if r.ID%2 == 0 {
					fail[r.ID] = true
				}
			}
			emu, url := startEmulator(t, casemu.Config{RateLimit: 60, Faults: casemu.Faults{FailIDs: fail}})
			dir := t.TempDir()
			planPath := filepath.Join(dir, "plan.csv")
			writePlanRows(t, planPath, plan)
			R := filepath.Join(dir, "plan.report.csv")
			failures := filepath.Join(dir, "plan.failures.csv")
			if p := certalloc(t, nil, "apply", "--endpoint", url, "--qps", "50", planPath); p.wait(t) != 3 {
				t.Fatalf("first run: want exit 3\n%s", p.stderr.String())
			}
			if n := len(failuresIDs(t, failures)); n != len(fail) {
				t.Fatalf("failures file lists %d rows; want %d", n, len(fail))
			}
			firstDone := appliedCounts(emu)

			emu.SetFaults(casemu.Faults{LatencyMin: 50 * time.Millisecond, LatencyMax: 150 * time.Millisecond})
			retry := []string{"apply", "--endpoint", url, "--qps", "20", "--workers", "4", "--retry-failed", planPath}
			p := certalloc(t, nil, retry...)
			// The journal's header, then a "sending" line and an outcome
			// a row: kill somewhere in the 40 rows.
			waitForLines(t, report.JournalPath(R), 2+rng.IntN(60))
			p.cmd.Process.Kill()
			code := p.wait(t)
			waitIdle(t, emu)
			record := readRecord(t, R)
			before := appliedCounts(emu)
			if code == -9 {
				killedMidRun++
			}

			p = certalloc(t, nil, retry...)
			if code := p.wait(t); code != 0 {
				t.Fatalf("second --retry-failed: exit %d\n%s\n%s", code, p.stdout.String(), p.stderr.String())
			}
			after := appliedCounts(emu)
			checkSentOnce(t, "second --retry-failed", plan, record, before, after)
			checkFinalReport(t, R, plan, true)
			if b, err := os.ReadFile(failures); err != nil || string(b) != "Id,CertTotalCount\n" {
				t.Errorf("failures file %q, %v; want the header alone", b, err)
			}
			for _, r := range plan {
				if !fail[r.ID] && after[r.ID] != firstDone[r.ID] {
					t.Errorf("Id %d, done by the first run, was sent again (%d times in all)", r.ID, after[r.ID])
				}
				if a, _ := emu.State(r.ID); a.CertTotalCount != r.Count {
					t.Errorf("Id %d at %+v; want %d", r.ID, a, r.Count)
				}
			}
			for _, f := range []string{report.JournalPath(R), filepath.Join(dir, "plan.failures.report.csv")} {
				if _, err := os.Stat(f); !os.IsNotExist(err) {
					t.Errorf("%s exists after the job finished: one record per plan", f)
				}
			}
		})
	}
	t.Logf("%d of %d kills landed mid-run", killedMidRun, trials)
	if trials >= 3 && killedMidRun == 0 {
		t.Errorf("no kill landed mid-run; the test proves little")
	}
}
