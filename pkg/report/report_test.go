package report

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/gocarina/gocsv"
)

func i64(v int64) *int64 { return &v }

var sample = []Row{
	{Line: 2, ID: 33285, CertTotalCount: 5, Status: Succeeded, Attempts: 2, RequestID: "R-1", CertCount: i64(5), CurrentYearFreeCertCount: i64(0), LatencyMs: 41, FinishedAt: "2026-11-27T10:00:00Z"},
	{Line: 3, ID: 7, CertTotalCount: 0, Status: Failed, Attempts: 1, RequestID: "R-2", ErrorCode: "InvalidParameter", ErrorMessage: `bad, "quoted"` + "\nline", LatencyMs: 12, FinishedAt: "2026-11-27T10:00:01Z"},
	{Line: 4, ID: 8, CertTotalCount: 1, Status: Planned},
}

func TestRecordMatchesGocsv(t *testing.T) {
	want, err := gocsv.MarshalString(sample)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "r.csv")
	w, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range sample {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	got, _ := os.ReadFile(path)
	// gocsv writes 0 for a planned row's latency; the report leaves it blank.
	want = strings.Replace(want, "planned,0,,,,,,0,", "planned,0,,,,,,,", 1)
	if string(got) != want {
		t.Errorf("report =\n%s\nwant (gocsv)\n%s", got, want)
	}
	var back []Row
	if err := ReadFile(path, func(r Row) error { back = append(back, r); return nil }); err != nil {
		t.Fatal(err)
	}
	// gocsv reads a blank optional number as a pointer to 0.
	norm := func(rows []Row) []Row {
		out := append([]Row(nil), rows...)
		for i := range out {
			if out[i].CertCount != nil && *out[i].CertCount == 0 && out[i].Status != Succeeded {
				out[i].CertCount, out[i].CurrentYearFreeCertCount = nil, nil
			}
		}
		return out
	}
	if !reflect.DeepEqual(norm(back), sample) {
		t.Errorf("ReadFile = %+v; want %+v", back, sample)
	}
}

func TestOpenLocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.csv")
	w, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(sample[0])
	if _, err := Open(path, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v; want ErrLocked", err)
	}
	// The refused Open must not have emptied the first run's file.
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), "33285") {
		t.Errorf("report after refused Open = %q", b)
	}
	w.Close()
	w2, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open after Close = %v", err)
	}
	w2.Close()
}

func TestOpenRefusesSymlink(t *testing.T) {
	link, victimIntact := symlinkToVictim(t)
	if _, err := Open(link, Options{}); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("Open(symlink) = %v; want a refusal", err)
	}
	victimIntact()
}

func TestPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows files have no Unix permissions")
	}
	dir := t.TempDir()
	for _, private := range []bool{false, true} {
		path := filepath.Join(dir, "r"+map[bool]string{false: "pub", true: "priv"}[private])
		w, err := Open(path, Options{Private: private})
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
		fpath := path + ".failures"
		if err := WriteFailures(fpath, nil, private); err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o644)
		if private {
			want = 0o600
		}
		for _, p := range []string{path, fpath} {
			fi, _ := os.Stat(p)
			if fi.Mode().Perm() != want {
				t.Errorf("%s mode = %v; want %v", p, fi.Mode().Perm(), want)
			}
		}
	}
}

func TestResumeCutsTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.csv")
	w, _ := Open(path, Options{})
	w.Write(sample[0])
	w.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("3,7,0,succ")
	f.Close()

	var seen []Row
	w, err := Open(path, Options{Resume: true, Existing: func(r Row) error { seen = append(seen, r); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if !w.Torn || len(seen) != 1 || seen[0].ID != 33285 {
		t.Fatalf("resume: torn=%v rows=%+v; want the torn line cut and one row", w.Torn, seen)
	}
	w.Write(sample[1])
	w.Close()
	var n int
	if err := ReadFile(path, func(Row) error { n++; return nil }); err != nil || n != 2 {
		t.Errorf("after resume: %d rows, %v; want 2", n, err)
	}
}

func TestReadRejectsOtherFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plan.csv")
	os.WriteFile(path, []byte("Id,CertTotalCount\n1,2\n"), 0o644)
	if err := ReadFile(path, nil); err == nil || !strings.Contains(err.Error(), "not a certalloc report") {
		t.Errorf("ReadFile(plan) = %v", err)
	}
}

func TestWriteFailuresIsAPlan(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.csv")
	if err := WriteFailures(path, []FailureRow{{ID: 7}, {ID: 9, CertTotalCount: 3}}, false); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != "Id,CertTotalCount\n7,0\n9,3\n" {
		t.Errorf("failures = %q", b)
	}
}

func TestReadRejectsHugeLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.csv")
	os.WriteFile(path, []byte(strings.Join(Header, ",")+"\n2,1,1,succeeded,1,"+strings.Repeat("x", maxLineBytes)+"\n"), 0o644)
	if err := ReadFile(path, nil); err == nil || !strings.Contains(err.Error(), "r.csv:2: longer than") {
		t.Errorf("ReadFile(huge line) = %v", err)
	}
}

// The failures file is replaced by rename: a symlink left at its path is
// replaced, and the file it pointed to is untouched.
func TestWriteFailuresReplacesSymlink(t *testing.T) {
	link, victimIntact := symlinkToVictim(t)
	if err := WriteFailures(link, []FailureRow{{ID: 1, CertTotalCount: 1}}, false); err != nil {
		t.Fatal(err)
	}
	victimIntact()
	if fi, _ := os.Lstat(link); fi.Mode()&os.ModeSymlink != 0 {
		t.Errorf("%s is still a symlink", link)
	}
}

func BenchmarkWriteBuffered(b *testing.B) {
	w, err := Open(filepath.Join(b.TempDir(), "r.csv"), Options{Buffered: true})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	r := Row{Line: 2, ID: 33285, CertTotalCount: 5, Status: Planned}
	b.ReportAllocs()
	for b.Loop() {
		r.Line++
		if err := w.Write(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteRowPerWrite(b *testing.B) {
	w, err := Open(filepath.Join(b.TempDir(), "r.csv"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	r := sample[0]
	b.ReportAllocs()
	for b.Loop() {
		if err := w.Write(r); err != nil {
			b.Fatal(err)
		}
	}
}

// symlinkToVictim leaves a symlink where an output goes, pointing at a file
// certalloc must not touch; the func checks it was not.
func symlinkToVictim(t *testing.T) (link string, victimIntact func()) {
	t.Helper()
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("keep me"), 0o644)
	link = filepath.Join(dir, "out.csv")
	symlinkOrSkip(t, victim, link)
	return link, func() {
		t.Helper()
		if b, _ := os.ReadFile(victim); string(b) != "keep me" {
			t.Errorf("the symlink's target was changed: %q", b)
		}
	}
}

// symlinkOrSkip makes a symlink, or skips the test where there are none:
// Windows without the privilege, or wine, whose links are not reparse
// points.
func symlinkOrSkip(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Skipf("no symlinks here: %v", err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Skipf("os.Symlink made no symlink here: %v, %v", fi, err)
	}
}
