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
	"strings"

	"github.com/gocarina/gocsv"

	"github.com/certalloc/certalloc/pkg/csvguard"
)

// Row statuses.
const (
	Succeeded = "succeeded"
	Failed    = "failed"
	Planned   = "planned"
	// Unchanged is a row --baseline found set to today's total, so not
	// sent: it carries the baseline's success (RequestId, counts,
	// FinishedAt), with no attempt of its own. It is done, as a success
	// is, for --resume, --retry-failed and the next --baseline.
	Unchanged = "unchanged"
)

// legacyUnchanged starts the ErrorMessage versions before 16 gave an
// unchanged row, which they wrote as a success with no attempt.
const legacyUnchanged = "unchanged since baseline "

// IsLegacyUnchanged reports whether a record is an unchanged row as
// earlier versions wrote it (succeeded, 0 attempts, that message). It
// means what Unchanged means.
func IsLegacyUnchanged(status string, attempts int, message string) bool {
	return status == Succeeded && attempts == 0 && strings.HasPrefix(message, legacyUnchanged)
}

// Done reports whether a record's status is a success: succeeded, or
// unchanged since a baseline where it succeeded.
func Done(status string) bool { return status == Succeeded || status == Unchanged }

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

// maxLineBytes bounds a report line read back: a row is a few hundred
// bytes, and an error message is short.
const maxLineBytes = 64 << 10

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
	end, err := CompleteLength(f, fi.Size())
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
	ID             int64  `csv:"Id"`
	CertTotalCount int32  `csv:"CertTotalCount"`
	CaIdentifier   string `csv:"CaIdentifier"`
}

// failureRowNoCA is a FailureRow of a plan without the CaIdentifier column.
type failureRowNoCA struct {
	ID             int64 `csv:"Id"`
	CertTotalCount int32 `csv:"CertTotalCount"`
}

// FailuresOptions tunes WriteFailures.
type FailuresOptions struct {
	// Private creates the file 0600 instead of 0644.
	Private bool
	// CaIdentifier writes the CaIdentifier column even when no row has a
	// value: set it when the plan had the column, so that the failures
	// file has the plan's columns.
	CaIdentifier bool
}

// WriteFailures writes rows as a plan to path, atomically: a temporary
// file in the same folder is renamed over path, so a symlink at path is
// replaced, never followed, and readers never see half a file. The
// columns are Id,CertTotalCount, then CaIdentifier when asked for or when
// a row has one (a value is never dropped). The separator is always a
// comma, whatever the plan's. gocsv renders it, from the tags above.
func WriteFailures(path string, rows []FailureRow, o FailuresOptions) error {
	withCA := o.CaIdentifier
	for _, r := range rows {
		withCA = withCA || r.CaIdentifier != ""
	}
	return WriteAtomic(path, o.Private, func(w io.Writer) error {
		if withCA {
			return gocsv.Marshal(rows, w) // the header alone for no rows
		}
		short := make([]failureRowNoCA, len(rows))
		for i, r := range rows {
			short[i] = failureRowNoCA{r.ID, r.CertTotalCount}
		}
		return gocsv.Marshal(short, w)
	})
}

// WriteAtomic writes a file through fn into a temporary file beside path,
// then renames it over path. Its errors name path, never the temporary
// file, which the user never asked for and which is gone by then.
func WriteAtomic(path string, private bool, fn func(io.Writer) error) error {
	perm := os.FileMode(0o644)
	if private {
		perm = 0o600
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return atomicError(path, "", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if err := fn(tmp); err != nil {
		tmp.Close()
		return atomicError(path, tmp.Name(), err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return atomicError(path, tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return atomicError(path, tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return atomicError(path, tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return atomicError(path, tmp.Name(), err)
	}
	return nil
}

// atomicError is "write PATH: CAUSE", with the cause stripped of the
// temporary file's name (or, for CreateTemp, of its pattern).
func atomicError(path, tmp string, err error) error {
	var pe *os.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe) && (pe.Path == tmp || tmp == ""):
		err = pe.Err
	case errors.As(err, &le) && le.Old == tmp:
		err = le.Err
	}
	return fmt.Errorf("write %s: %w", path, err)
}
