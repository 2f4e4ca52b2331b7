package report

import (
	"io"
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

// writeJournal writes rows to a new journal at path.
func writeJournal(t testing.TB, path string, rows []Row) {
	t.Helper()
	j, err := OpenJournal(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Load(func(*Columns, *Record) error { return nil }); err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		if _, _, err := j.Append(&rows[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

// AppendRow is hand-written, not gocsv, because it runs once per row on
// the hot path of a million-row report; it must render exactly what gocsv
// (and encoding/csv) would, and read back through both Scan and gocsv.
func TestAppendRowMatchesGocsv(t *testing.T) {
	want, err := gocsv.MarshalString(sample)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "r.csv")
	writeJournal(t, path, sample)
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
	var scanned []Row
	f, _ := os.Open(path)
	defer f.Close()
	err = Scan(f, path, func(c *Columns, rec *Record) error {
		if !c.Current {
			t.Errorf("Scan: header not seen as current")
		}
		scanned = append(scanned, c.Row(rec))
		// The offsets are the record's bytes, newline included.
		raw := make([]byte, rec.Len)
		f.ReadAt(raw, rec.Off)
		if again := AppendRow(nil, &scanned[len(scanned)-1]); string(again) != string(raw) {
			t.Errorf("record at %d = %q; AppendRow of its parse = %q", rec.Off, raw, again)
		}
		return nil
	})
	if err != nil || !reflect.DeepEqual(scanned, sample) {
		t.Errorf("Scan = %+v, %v; want %+v", scanned, err, sample)
	}
}

func TestJournalRefusesSymlink(t *testing.T) {
	link, victimIntact := symlinkToVictim(t)
	if _, err := OpenJournal(link, false); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("OpenJournal(symlink) = %v; want a refusal", err)
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
		j, err := OpenJournal(path+".journal", private)
		if err != nil {
			t.Fatal(err)
		}
		j.Close()
		if err := WriteAtomic(path, private, func(io.Writer) error { return nil }); err != nil {
			t.Fatal(err)
		}
		fpath := path + ".failures"
		if err := WriteFailures(fpath, nil, FailuresOptions{Private: private}); err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o644)
		if private {
			want = 0o600
		}
		for _, p := range []string{path, path + ".journal", fpath} {
			fi, _ := os.Stat(p)
			if fi.Mode().Perm() != want {
				t.Errorf("%s mode = %v; want %v", p, fi.Mode().Perm(), want)
			}
		}
	}
}

func TestJournalCutsTornLineAfterReading(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.csv.journal")
	writeJournal(t, path, sample[:1])
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("3,7,0,succ")
	f.Close()

	j, err := OpenJournal(path, false)
	if err != nil {
		t.Fatal(err)
	}
	var seen []int64
	torn, err := j.Load(func(_ *Columns, r *Record) error { seen = append(seen, r.ID); return nil })
	if err != nil || !torn || !reflect.DeepEqual(seen, []int64{33285}) {
		t.Fatalf("Load = %v, torn %v, ids %v; want the torn line cut and one row", err, torn, seen)
	}
	off, n, err := j.Append(&sample[1])
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	b, _ := os.ReadFile(path)
	if int64(len(b)) != off+n || !strings.HasSuffix(string(b[:off]), "\n") || strings.Contains(string(b), "succ\n") {
		t.Errorf("journal after the cut and one append = %q (append at %d+%d)", b, off, n)
	}
}

// A journal that does not read is left as it is: a run must check a file
// fully before it changes a byte of it.
func TestJournalLoadChangesNothingOnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.csv.journal")
	orig := strings.Join(Header, ",") + "\n2,x,1,succeeded,1,,,,,,,,\n3,4,1,succ"
	os.WriteFile(path, []byte(orig), 0o644)
	j, err := OpenJournal(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if _, err := j.Load(func(*Columns, *Record) error { return nil }); err == nil || !strings.Contains(err.Error(), ":2: Id") {
		t.Errorf("Load = %v; want an error naming line 2's Id", err)
	}
	if b, _ := os.ReadFile(path); string(b) != orig {
		t.Errorf("journal changed by a failed Load: %q", b)
	}
}

func TestScanErrors(t *testing.T) {
	h := strings.Join(Header, ",") + "\n"
	tests := []struct{ in, want string }{
		{"", "empty file"},
		{"Id,CertTotalCount\n1,2\n", "not a certalloc report"},
		{h + "2,1,1,succeeded,1,R,1,0,,,5,T,\n2,1,-1,succeeded,1,,,,,,,,\n", "f.csv:3: CertTotalCount"},
		{h + "2,1,1,maybe,1,,,,,,,,\n", `f.csv:2: unknown Status "maybe"`},
		{h + "2,1,1,succeeded\n", "f.csv:2: 4 fields, but the header has 13"},
		{h + "2,1,1,succeeded,x,,,,,,,,\n", "f.csv:2: Attempts"},
		{h + "2,1,1,\"succ\n", "f.csv:2: extraneous or missing \" in quoted-field"},
	}
	for _, tt := range tests {
		err := Scan(strings.NewReader(tt.in), "f.csv", func(*Columns, *Record) error { return nil })
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Scan(%q) = %v; want %q", tt.in, err, tt.want)
		}
	}
}

func TestCopyRecord(t *testing.T) {
	legacy := "Line,Id,CertTotalCount,Status,Attempts,RequestId,CertCount,CurrentYearFreeCertCount,ErrorCode,ErrorMessage,LatencyMs,FinishedAt\n" +
		"7,33285,5,succeeded,1,R-1,5,0,,\"a, b\",41,2026-11-27T10:00:00Z\n"
	current := strings.Join(Header, ",") + "\n7,33285,5,succeeded,1,R-1,5,0,,\"a, b\",41,2026-11-27T10:00:00Z,CA1\n"
	tests := []struct{ name, in, want string }{
		{"current header: bytes copied", current, "2,33285,5,succeeded,1,R-1,5,0,,\"a, b\",41,2026-11-27T10:00:00Z,CA1\n"},
		{"earlier version: re-rendered", legacy, "2,33285,5,succeeded,1,R-1,5,0,,\"a, b\",41,2026-11-27T10:00:00Z,\n"},
	}
	for _, tt := range tests {
		err := Scan(strings.NewReader(tt.in), "f.csv", func(c *Columns, rec *Record) error {
			got, err := CopyRecord(nil, c, []byte(tt.in[rec.Off:rec.Off+rec.Len]), 2)
			if err != nil || string(got) != tt.want {
				t.Errorf("%s: CopyRecord = %q, %v; want %q", tt.name, got, err, tt.want)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
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
	if err := WriteFailures(path, []FailureRow{{ID: 7}, {ID: 9, CertTotalCount: 3}}, FailuresOptions{}); err != nil {
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
	if err := WriteFailures(link, []FailureRow{{ID: 1, CertTotalCount: 1}}, FailuresOptions{}); err != nil {
		t.Fatal(err)
	}
	victimIntact()
	if fi, _ := os.Lstat(link); fi.Mode()&os.ModeSymlink != 0 {
		t.Errorf("%s is still a symlink", link)
	}
}

func BenchmarkJournalAppend(b *testing.B) {
	j, err := OpenJournal(filepath.Join(b.TempDir(), "r.csv.journal"), false)
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	r := sample[0]
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := j.Append(&r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendRow(b *testing.B) {
	r := sample[0]
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendRow(buf[:0], &r)
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

// WriteAtomic's errors name the user's path, never the temporary file.
func TestWriteAtomicErrorsNameThePath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "failures.csv")
	for name, tc := range map[string]struct {
		path string
		fn   func(io.Writer) error
		want string
	}{
		"write": {path, func(w io.Writer) error {
			w.(*os.File).Close() // the write fails as on a full disk: a *PathError naming the file
			_, err := w.Write([]byte("x"))
			return err
		}, "write " + path + ": file already closed"},
		"create": {filepath.Join(dir, "missing", "f.csv"), func(io.Writer) error { return nil },
			"write " + filepath.Join(dir, "missing", "f.csv") + ": no such file or directory"},
	} {
		err := WriteAtomic(tc.path, false, tc.fn)
		if err == nil || err.Error() != tc.want || strings.Contains(err.Error(), ".tmp") {
			t.Errorf("%s: WriteAtomic = %v; want %q", name, err, tc.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}
