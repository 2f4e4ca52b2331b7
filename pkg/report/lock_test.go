package report

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.lock")
	unlock, err := Lock(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(path); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Lock = %v; want ErrLocked naming %s", err, path)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	unlock, err = Lock(path)
	if err != nil {
		t.Fatalf("Lock after unlock = %v", err)
	}
	unlock()
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Errorf("lock file after unlock: %v, %v; want it left in place, empty", fi, err)
	}
}

func TestLockRefusesSymlink(t *testing.T) {
	link, victimIntact := symlinkToVictim(t)
	if _, err := Lock(link); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("Lock(symlink) = %v; want a refusal", err)
	}
	victimIntact()
	// The refusal left the victim unlocked.
	unlock, err := Lock(filepath.Join(filepath.Dir(link), "victim"))
	if err != nil {
		t.Fatalf("Lock(victim) after the refusal = %v", err)
	}
	unlock()
}

func TestLockRefusesDanglingSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "created-through-the-link")
	link := filepath.Join(dir, "run.lock")
	symlinkOrSkip(t, target, link)
	if _, err := Lock(link); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("Lock(dangling symlink) = %v; want a refusal", err)
	}
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Lock created the link's target: %v", err)
	}
}

// The lock holds against another process, and dies with the process that
// holds it, even killed: no stale lock to clean up after a crash.
func TestLockAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.lock")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$")
	cmd.Env = append(os.Environ(), "CERTALLOC_LOCK_HELPER="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "locked\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper said %q, %v; want locked", line, err)
	}
	if _, err := Lock(path); !errors.Is(err, ErrLocked) {
		t.Errorf("Lock while another process holds it = %v; want ErrLocked", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	unlock, err := Lock(path)
	if err != nil {
		t.Fatalf("Lock after the holder was killed = %v", err)
	}
	unlock()
}

// TestLockHelperProcess is TestLockAcrossProcesses's other process: it
// takes the lock, says so, and holds it until killed.
func TestLockHelperProcess(t *testing.T) {
	path := os.Getenv("CERTALLOC_LOCK_HELPER")
	if path == "" {
		t.Skip("helper for TestLockAcrossProcesses")
	}
	if _, err := Lock(path); err != nil {
		os.Stdout.WriteString("error: " + err.Error() + "\n")
		os.Exit(1)
	}
	os.Stdout.WriteString("locked\n")
	os.Stdin.Read(make([]byte, 1)) // until killed, or the test closes stdin
	os.Exit(0)
}

func TestJournalRefusesDanglingSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "created-through-the-link")
	link := filepath.Join(dir, "r.csv.journal")
	symlinkOrSkip(t, target, link)
	if _, err := OpenJournal(link, false); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("OpenJournal(dangling symlink) = %v; want a refusal", err)
	}
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenJournal created the link's target: %v", err)
	}
}
