package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certalloc/certalloc/pkg/casemu"
	"github.com/certalloc/certalloc/pkg/report"
)

// mountTmpfs mounts a tmpfs of size bytes at a new folder, or skips the
// test: it takes root (CAP_SYS_ADMIN) and a kernel that allows it here.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a full disk is a small tmpfs, and mounting one takes root")
	}
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("cannot mount a tmpfs (%v): a full disk is not tested here", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillTo writes a filler file so that only about free bytes stay free
// on the file system of dir, and returns its path.
func fillTo(t *testing.T, dir string, free int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	avail := int64(st.Bavail) * st.Bsize
	if avail <= free {
		t.Fatalf("only %d bytes free; want more than %d", avail, free)
	}
	path := filepath.Join(dir, "filler")
	if err := os.WriteFile(path, make([]byte, avail-free), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// A disk that fills while the nightly run goes: the journal is cut back to
// its last whole row, the run stops sending and exits 1, stderr lists the
// Ids answered but not recorded, the previous report is intact, and once
// space is freed the next run sends exactly what the record does not have
// as done.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	const workers = 4
	state := mountTmpfs(t, 512<<10)
	emu, url := startEmulator(t, casemu.Config{RateLimit: -1,
		Faults: casemu.Faults{LatencyMin: 30 * time.Millisecond, LatencyMax: 60 * time.Millisecond, FailIDs: map[int64]bool{7001: true}}})
	dir := t.TempDir()
	R := filepath.Join(state, "report.csv")
	failures := filepath.Join(state, "failures.csv")
	planPath := filepath.Join(dir, "plan.csv")
	nightly := func() *proc {
		return certalloc(t, nil, "apply", "--endpoint", url, "--qps", "100", "--workers", fmt.Sprint(workers),
			"--baseline", R, "--report", R, "--failures", failures, planPath)
	}
	night1 := seqPlan(7001, 200)
	writePlanRows(t, planPath, night1)
	if p := nightly(); p.wait(t) != 3 {
		t.Fatalf("first night: %s\n%s", p.stdout.String(), p.stderr.String())
	}
	emu.SetFaults(casemu.Faults{LatencyMin: 30 * time.Millisecond, LatencyMax: 60 * time.Millisecond})
	prevReport, err := os.ReadFile(R)
	if err != nil {
		t.Fatal(err)
	}

	// The second night changes every row; the disk has room for the
	// journal of about a third of them.
	night2 := seqPlan(7001, 200)
	for i := range night2 {
		night2[i].Count += 10
	}
	writePlanRows(t, planPath, night2)
	filler := fillTo(t, state, 12<<10)
	applied := appliedCounts(emu)
	p := nightly()
	if code := p.wait(t); code != 1 {
		t.Fatalf("on a full disk: exit %d; want 1\n%s\n%s", code, p.stdout.String(), p.stderr.String())
	}
	waitIdle(t, emu)
	stderr := p.stderr.String()
	t.Logf("stderr:\n%s", stderr)
	if cur, _ := os.ReadFile(R); !bytes.Equal(cur, prevReport) {
		t.Errorf("the previous report changed on a full disk")
	}
	if !strings.Contains(stderr, "the previous report is unchanged and this run's rows are in "+report.JournalPath(R)) {
		t.Errorf("stderr does not say where the run's rows are")
	}
	if strings.Contains(stderr, ".tmp") {
		t.Errorf("stderr names a temporary file")
	}
	// The journal holds whole rows only, and says "sending" before every
	// row the emulator applied tonight.
	j, err := os.ReadFile(report.JournalPath(R))
	if err != nil {
		t.Fatal(err)
	}
	if len(j) == 0 || j[len(j)-1] != '\n' {
		t.Errorf("the journal ends in a torn row: %q", j[max(0, len(j)-80):])
	}
	record := readRecord(t, R)
	sendingNoted := map[int64]bool{}
	for _, line := range strings.Split(string(j), "\n") {
		if f := strings.Split(line, ","); len(f) > 3 && f[3] == report.Sending {
			id, _ := strconv.ParseInt(f[1], 10, 64)
			sendingNoted[id] = true
		}
	}
	sent := map[int64]bool{}
	for id, n := range appliedCounts(emu) {
		if n > applied[id] {
			sent[id] = true
			if !sendingNoted[id] {
				t.Errorf("Id %d was sent with no sending record in the journal", id)
			}
		}
	}
	if len(sent) == 0 || len(sent) >= len(night2) {
		t.Fatalf("%d of %d rows sent; the disk should have filled part-way", len(sent), len(night2))
	}
	// The Ids answered but not recorded are listed, and were answered.
	var unrecorded []int64
	if m := regexp.MustCompile(`answered rows could not be journaled: Ids ([0-9, ]+)`).FindStringSubmatch(stderr); m != nil {
		for _, s := range strings.Split(m[1], ", ") {
			id, _ := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
			unrecorded = append(unrecorded, id)
			if !sent[id] {
				t.Errorf("Id %d is listed as answered but not recorded, and was not sent", id)
			}
			if record[id].done(night2[id-7001].Count) {
				t.Errorf("Id %d is listed as not recorded, but the journal has it done", id)
			}
		}
	}
	// After the first failed write no row is sent (the journal refuses
	// every later write, "sending" rows included). Rows sent before it and
	// answered after it are at most those in flight, one a worker, plus
	// the answers already handed over and not yet journaled, one a worker.
	if len(unrecorded) > 2*workers {
		t.Errorf("%d rows answered but not recorded; at most %d (twice the workers) may be", len(unrecorded), 2*workers)
	}
	// The failures file never holds the previous run's rows.
	if ids := failuresIDs(t, failures); ids != nil {
		b, _ := os.ReadFile(failures)
		if !strings.Contains(string(b), "\n7001,11\n") {
			t.Errorf("failures file after a full disk: %q", b)
		}
	}
	t.Logf("full disk: %d sent, %d journaled done, %d listed as not recorded", len(sent), countDone(record, night2), len(unrecorded))

	// Space freed, the next run sends exactly what the record does not
	// have as done.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	applied = appliedCounts(emu)
	if p := nightly(); p.wait(t) != 0 {
		t.Fatalf("after space was freed: %s\n%s", p.stdout.String(), p.stderr.String())
	}
	checkSentOnce(t, "after space was freed", night2, record, applied, appliedCounts(emu))
	twice := 0
	for _, r := range night2 {
		if !record[r.ID].done(r.Count) && sent[r.ID] {
			twice++
		}
		if a, _ := emu.State(r.ID); a.CertTotalCount != r.Count {
			t.Errorf("Id %d at %d; want %d", r.ID, a.CertTotalCount, r.Count)
		}
	}
	if twice > 2*workers {
		t.Errorf("%d rows applied twice; at most %d (twice the workers) may be", twice, 2*workers)
	}
	checkFinalReport(t, R, night2, true)
}

func countDone(record map[int64]recState, plan []planRow) int {
	n := 0
	for _, r := range plan {
		if record[r.ID].done(r.Count) {
			n++
		}
	}
	return n
}
