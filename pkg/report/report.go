package report

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/gocarina/gocsv"

	"github.com/certalloc/certalloc/pkg/csvguard"
)

// Row statuses.
const (
	Succeeded = "succeeded"
	Failed    = "failed"
	Planned   = "planned"
)

// Row is one line of the report. The csv tags are the header, in order.
type Row struct {
	Line                     int    `csv:"Line"`
	ID                       int64  `csv:"Id"`
	CertTotalCount           int32  `csv:"CertTotalCount"`
	Status                   string `csv:"Status"`
	Attempts                 int    `csv:"Attempts"`
	RequestID                string `csv:"RequestId"`
	CertCount                *int64 `csv:"CertCount"`
	CurrentYearFreeCertCount *int64 `csv:"CurrentYearFreeCertCount"`
	ErrorCode                string `csv:"ErrorCode"`
	ErrorMessage             string `csv:"ErrorMessage"`
	LatencyMs                int64  `csv:"LatencyMs"`
	FinishedAt               string `csv:"FinishedAt"`
	// CaIdentifier came later than the other columns, so it is last: a
	// script that reads the report by position keeps working.
	CaIdentifier string `csv:"CaIdentifier"`
}

// Header is the report's header row.
var Header = []string{"Line", "Id", "CertTotalCount", "Status", "Attempts", "RequestId", "CertCount",
	"CurrentYearFreeCertCount", "ErrorCode", "ErrorMessage", "LatencyMs", "FinishedAt", "CaIdentifier"}

// record renders r in Header order. It is hand-written, not gocsv, because
// it runs once per row on the hot path of a million-row dry run; a test
// checks it against gocsv's rendering of the same struct.
func (r *Row) record(rec []string) []string {
	opt := func(p *int64) string {
		if p == nil {
			return ""
		}
		return strconv.FormatInt(*p, 10)
	}
	latency := ""
	if r.Status != Planned {
		latency = strconv.FormatInt(r.LatencyMs, 10)
	}
	return append(rec[:0],
		strconv.Itoa(r.Line), strconv.FormatInt(r.ID, 10), strconv.FormatInt(int64(r.CertTotalCount), 10),
		r.Status, strconv.Itoa(r.Attempts), r.RequestID, opt(r.CertCount), opt(r.CurrentYearFreeCertCount),
		r.ErrorCode, r.ErrorMessage, latency, r.FinishedAt, r.CaIdentifier)
}

// maxLineBytes bounds a report line read back: a row is a few hundred
// bytes, and an error message is short.
const maxLineBytes = 64 << 10

// Options tunes Open.
type Options struct {
	// Resume keeps the existing rows, calls Existing for each, and appends.
	// Without it the file is emptied once the lock is held.
	Resume   bool
	Existing func(Row) error
	// Private creates the file 0600 instead of 0644.
	Private bool
	// Buffered batches writes for speed and gives up the one-write-per-row
	// guarantee; for dry runs, whose rows are cheap to recompute.
	Buffered bool
}

// Writer appends rows to a locked report.
type Writer struct {
	f        *os.File
	path     string
	buf      bytes.Buffer
	cw       *csv.Writer
	rec      []string
	buffered bool
	unlock   func() error
	// Torn is set when Open cut off an incomplete last line.
	Torn bool
}

// Open opens the report at path for writing, taking the exclusive lock at
// LockPath(path), held until Close. It never follows a symlink at path.
// ErrLocked (wrapped) means another run has it.
func Open(path string, o Options) (*Writer, error) {
	perm := os.FileMode(0o644)
	if o.Private {
		perm = 0o600
	}
	f, err := openNoFollow(path, perm)
	if err != nil {
		if errors.Is(err, errSymlink) {
			return nil, fmt.Errorf("report %s: is a symlink; refusing to write through it", path)
		}
		return nil, fmt.Errorf("report %s: %w", path, err)
	}
	unlock, err := Lock(LockPath(path))
	if err != nil {
		f.Close()
		if errors.Is(err, ErrLocked) {
			return nil, fmt.Errorf("report %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("report %s: %w", path, err)
	}
	w := &Writer{f: f, path: path, buffered: o.Buffered, unlock: unlock}
	w.cw = csv.NewWriter(&w.buf)
	fi, err := f.Stat()
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("report %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		w.Close()
		return nil, fmt.Errorf("report %s: not a regular file", path)
	}
	if o.Resume && fi.Size() > 0 {
		if err := w.loadExisting(fi.Size(), o.Existing); err != nil {
			w.Close()
			return nil, err
		}
		return w, nil
	}
	if err := f.Truncate(0); err != nil {
		w.Close()
		return nil, fmt.Errorf("report %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		w.Close()
		return nil, fmt.Errorf("report %s: %w", path, err)
	}
	if err := w.writeRecord(Header); err != nil {
		w.Close()
		return nil, err
	}
	return w, w.flush()
}

// loadExisting reads the rows already in the report, cuts off a torn last
// line and leaves the offset at the end for appending.
func (w *Writer) loadExisting(size int64, fn func(Row) error) error {
	end, err := completeLength(w.f, size)
	if err != nil {
		return fmt.Errorf("report %s: %w", w.path, err)
	}
	if end < size {
		w.Torn = true
		if err := w.f.Truncate(end); err != nil {
			return fmt.Errorf("report %s: cut torn last line: %w", w.path, err)
		}
	}
	if err := ReadFrom(io.NewSectionReader(w.f, 0, end), w.path, fn); err != nil {
		return err
	}
	if _, err := w.f.Seek(end, io.SeekStart); err != nil {
		return fmt.Errorf("report %s: %w", w.path, err)
	}
	return nil
}

// completeLength returns the length of f up to and including its last
// newline: what follows is a line whose write was cut short.
func completeLength(f io.ReaderAt, size int64) (int64, error) {
	buf := make([]byte, 4096)
	for end := size; end > 0; {
		start := max(0, end-int64(len(buf)))
		n, err := f.ReadAt(buf[:end-start], start)
		if err != nil && err != io.EOF {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return start + int64(i) + 1, nil
		}
		end = start
	}
	return 0, nil
}

// Write appends one row. Unless the report is Buffered, the row reaches the
// file in a single write before Write returns.
func (w *Writer) Write(r Row) error {
	w.rec = r.record(w.rec)
	if err := w.writeRecord(w.rec); err != nil {
		return err
	}
	if w.buffered && w.buf.Len() < 256<<10 {
		return nil
	}
	return w.flush()
}

func (w *Writer) writeRecord(rec []string) error {
	if err := w.cw.Write(rec); err != nil {
		return fmt.Errorf("report %s: %w", w.path, err)
	}
	w.cw.Flush()
	return w.cw.Error()
}

func (w *Writer) flush() error {
	if w.buf.Len() == 0 {
		return nil
	}
	_, err := w.f.Write(w.buf.Bytes())
	w.buf.Reset()
	if err != nil {
		return fmt.Errorf("report %s: %w", w.path, err)
	}
	return nil
}

// Close flushes, syncs and releases the lock.
func (w *Writer) Close() error {
	if w.f == nil {
		return nil
	}
	err := w.flush()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	// Released last: until the report is closed, no other run may open it.
	if uerr := w.unlock(); err == nil && uerr != nil {
		err = fmt.Errorf("report %s: unlock: %w", w.path, uerr)
	}
	return err
}

// ReadFile reads a report without locking or changing it, skipping a torn
// last line. It is what --baseline uses.
func ReadFile(path string, fn func(Row) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("report %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("report %s: %w", path, err)
	}
	end, err := completeLength(f, fi.Size())
	if err != nil {
		return fmt.Errorf("report %s: %w", path, err)
	}
	return ReadFrom(io.NewSectionReader(f, 0, end), path, fn)
}

// ReadFrom parses report rows from r. name is used in errors.
func ReadFrom(r io.Reader, name string, fn func(Row) error) error {
	// gocsv maps columns by header name and ignores unknown ones, so a
	// report from a later version with more columns still reads.
	br := bufio.NewReaderSize(r, maxLineBytes)
	head, err := br.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull:
		return fmt.Errorf("report %s: header line too long", name)
	case err == io.EOF && len(head) == 0:
		return fmt.Errorf("report %s: empty file", name)
	case err != nil && err != io.EOF:
		return fmt.Errorf("report %s: %w", name, err)
	}
	head = append([]byte(nil), head...) // ReadSlice's bytes are only lent
	hdr, err := csv.NewReader(bytes.NewReader(head)).Read()
	if err != nil || !hasColumns(hdr, "Line", "Id", "CertTotalCount", "Status") {
		return fmt.Errorf("report %s: not a certalloc report (want a header with Line, Id, CertTotalCount and Status)", name)
	}
	body := csvguard.NewReader(io.MultiReader(bytes.NewReader(head), br), maxLineBytes)
	err = gocsv.UnmarshalToCallbackWithError(body, func(row Row) error {
		if fn == nil {
			return nil
		}
		return fn(row)
	})
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return fmt.Errorf("report %s:%d: %v", name, pe.Line, pe.Err)
		}
		var le *csvguard.LineTooLongError
		if errors.As(err, &le) {
			return fmt.Errorf("report %s:%d: longer than %d bytes; not a certalloc report", name, le.Line, maxLineBytes)
		}
		return fmt.Errorf("report %s: %w", name, err)
	}
	return nil
}

func hasColumns(hdr []string, want ...string) bool {
	have := map[string]bool{}
	for _, h := range hdr {
		have[h] = true
	}
	for _, w := range want {
		if !have[w] {
			return false
		}
	}
	return true
}

// FailureRow is one line of the failures file: a plan row.
type FailureRow struct {
	ID             int64
	CertTotalCount int32
	CaIdentifier   string
}

// FailuresOptions tunes WriteFailuresWith.
type FailuresOptions struct {
	// Private creates the file 0600 instead of 0644.
	Private bool
	// CaIdentifier writes the CaIdentifier column even when no row has a
	// value: set it when the plan had the column, so that the failures
	// file has the plan's columns.
	CaIdentifier bool
}

// WriteFailures is WriteFailuresWith with only Private set.
func WriteFailures(path string, rows []FailureRow, private bool) error {
	return WriteFailuresWith(path, rows, FailuresOptions{Private: private})
}

// WriteFailuresWith writes rows as a plan to path, atomically: a temporary
// file in the same folder is renamed over path, so a symlink at path is
// replaced, never followed, and readers never see half a file. The
// columns are Id,CertTotalCount, then CaIdentifier when asked for or when
// a row has one (a value is never dropped). The separator is always a
// comma, whatever the plan's.
func WriteFailuresWith(path string, rows []FailureRow, o FailuresOptions) error {
	withCA := o.CaIdentifier
	for _, r := range rows {
		withCA = withCA || r.CaIdentifier != ""
	}
	return WriteAtomic(path, o.Private, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		rec := []string{"Id", "CertTotalCount", "CaIdentifier"}
		if !withCA {
			rec = rec[:2]
		}
		cw.Write(rec)
		for _, r := range rows {
			rec[0] = strconv.FormatInt(r.ID, 10)
			rec[1] = strconv.FormatInt(int64(r.CertTotalCount), 10)
			if withCA {
				rec[2] = r.CaIdentifier
			}
			cw.Write(rec)
		}
		cw.Flush()
		return cw.Error()
	})
}

// WriteAtomic writes a file through fn into a temporary file beside path,
// then renames it over path.
func WriteAtomic(path string, private bool, fn func(io.Writer) error) error {
	perm := os.FileMode(0o644)
	if private {
		perm = 0o600
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if err := fn(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
