package report

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// On a full disk (a small tmpfs, if root can mount one here) a failed
// write is cut back to the last whole row, and every later Append fails,
// even one short enough to fit in what is left.
func TestJournalOnAFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a full disk is a small tmpfs, and mounting one takes root")
	}
	dir := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=16k"); err != nil {
		t.Skipf("cannot mount a tmpfs (%v)", err)
	}
	defer syscall.Unmount(dir, syscall.MNT_DETACH)

	path := filepath.Join(dir, "r.csv.journal")
	j, err := OpenJournal(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if _, err := j.Load(nil); err != nil {
		t.Fatal(err)
	}
	long := Row{Line: 2, ID: 1, CertTotalCount: 1, Status: Failed, Attempts: 1, ErrorCode: "InternalError",
		ErrorMessage: string(bytes.Repeat([]byte("x"), 400)), FinishedAt: "2026-11-28T02:00:00Z"}
	var appendErr error
	rows := 0
	for ; rows < 1000; rows++ {
		if _, _, appendErr = j.Append(&long); appendErr != nil {
			break
		}
	}
	if appendErr == nil {
		t.Fatal("1000 rows of 450 bytes fit in a 16 KiB tmpfs")
	}
	short := Row{Line: 2, ID: 1, CertTotalCount: 1, Status: Sending, FinishedAt: "2026-11-28T02:00:00Z"}
	if _, _, err := j.Append(&short); err == nil {
		t.Errorf("a short row was journaled after a failed write")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := len(HeaderLine()) + rows*len(AppendRow(nil, &long))
	if len(b) != want || b[len(b)-1] != '\n' {
		t.Errorf("journal of %d bytes after %d rows; want %d, ending in a whole row", len(b), rows, want)
	}
	if err := Scan(bytes.NewReader(b), path, func(*Columns, *Record) error { return nil }); err != nil {
		t.Errorf("the journal does not read back: %v", err)
	}
}
