package report

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/certalloc/certalloc/pkg/csvguard"
)

// Sending is a journal-only status: the row was handed to the service and
// its outcome has not been recorded. A crash leaves it as the row's last
// record, which makes the row's state unknown.
const Sending = "sending"

// Record is one row of a report or journal as Scan sees it: where it is,
// and the fields a run needs to decide what to send. Fields are only valid
// during the callback.
type Record struct {
	Off, Len       int64 // the record's bytes in the input, newline included
	FileLine       int   // 1-based physical line where it starts
	ID             int64
	CertTotalCount int32
	Status         string
	Attempts       int
	Fields         []string // all fields, in the file's column order
}

// Columns maps a file's header to field positions.
type Columns struct {
	Header []string
	index  map[string]int
	// Current is set when the header is exactly today's Header, so a
	// record's bytes can be copied as they are.
	Current bool
}

// CurrentColumns are the columns of a file written by this version.
func CurrentColumns() *Columns { return newColumns(Header) }

func newColumns(hdr []string) *Columns {
	c := &Columns{Header: slices.Clone(hdr), index: make(map[string]int, len(hdr)), Current: slices.Equal(hdr, Header)}
	for i, h := range hdr {
		c.index[h] = i
	}
	return c
}

// Get returns the named field of rec, or "" when the file lacks the column.
func (c *Columns) Get(rec *Record, name string) string {
	if i, ok := c.index[name]; ok && i < len(rec.Fields) {
		return rec.Fields[i]
	}
	return ""
}

// Row parses every field of rec, for the rare record that cannot be
// copied as it is (a report written by an earlier version).
func (c *Columns) Row(rec *Record) Row {
	opt := func(s string) *int64 {
		if s == "" {
			return nil
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil
		}
		return &v
	}
	line, _ := strconv.Atoi(c.Get(rec, "Line"))
	latency, _ := strconv.ParseInt(c.Get(rec, "LatencyMs"), 10, 64)
	return Row{
		Line: line, ID: rec.ID, CertTotalCount: rec.CertTotalCount, Status: rec.Status, Attempts: rec.Attempts,
		RequestID: c.Get(rec, "RequestId"), CertCount: opt(c.Get(rec, "CertCount")),
		CurrentYearFreeCertCount: opt(c.Get(rec, "CurrentYearFreeCertCount")),
		ErrorCode:                c.Get(rec, "ErrorCode"), ErrorMessage: c.Get(rec, "ErrorMessage"),
		LatencyMs: latency, FinishedAt: c.Get(rec, "FinishedAt"), CaIdentifier: c.Get(rec, "CaIdentifier"),
	}
}

// MaxRecordBytes bounds one record (a row of a report or journal, quoted
// line ends included). A row certalloc writes is well under 2 KiB.
const MaxRecordBytes = 1 << 20

// ErrNotReport means the input does not start with a certalloc report
// header.
var ErrNotReport = errors.New("not a certalloc report (want a header with Line, Id, CertTotalCount and Status)")

// Scan reads a report or journal from r, checking every record, and calls
// fn for each in file order. It is encoding/csv with positions, not gocsv:
// a run reads a million-row report in about a second this way, and needs
// each record's offset to copy it into the next report. name is used in
// errors. An empty input (no header) gives ErrNotReport.
func Scan(r io.Reader, name string, fn func(*Columns, *Record) error) error {
	guard := csvguard.NewReader(bufio.NewReaderSize(r, 64<<10), maxLineBytes)
	cr := csv.NewReader(guard)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	hdr, err := cr.Read()
	if err != nil {
		return scanError(name, err)
	}
	cols := newColumns(hdr)
	for _, want := range []string{"Line", "Id", "CertTotalCount", "Status"} {
		if _, ok := cols.index[want]; !ok {
			return fmt.Errorf("report %s: %w", name, ErrNotReport)
		}
	}
	iLine, iID, iCount, iStatus := cols.index["Line"], cols.index["Id"], cols.index["CertTotalCount"], cols.index["Status"]
	iAttempts, hasAttempts := cols.index["Attempts"]
	var rec Record
	off := cr.InputOffset()
	for {
		fields, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return scanError(name, err)
		}
		line, _ := cr.FieldPos(0)
		end := cr.InputOffset()
		rec = Record{Off: off, Len: end - off, FileLine: line, Fields: fields}
		off = end
		if rec.Len > MaxRecordBytes {
			return fmt.Errorf("report %s:%d: a record longer than %d bytes; not a certalloc report", name, line, MaxRecordBytes)
		}
		if len(fields) < len(hdr) {
			return fmt.Errorf("report %s:%d: %d fields, but the header has %d", name, line, len(fields), len(hdr))
		}
		// Line is checked although no run needs it: CopyRecord relies on it
		// being a plain number.
		if n, err := strconv.Atoi(fields[iLine]); err != nil || n < 0 {
			return fmt.Errorf("report %s:%d: Line %q is not a line number", name, line, fields[iLine])
		}
		if rec.ID, err = strconv.ParseInt(fields[iID], 10, 64); err != nil || rec.ID <= 0 {
			return fmt.Errorf("report %s:%d: Id %q is not a positive integer", name, line, fields[iID])
		}
		n, err := strconv.ParseInt(fields[iCount], 10, 32)
		if err != nil || n < 0 {
			return fmt.Errorf("report %s:%d: CertTotalCount %q is not an integer from 0 to 2147483647", name, line, fields[iCount])
		}
		rec.CertTotalCount = int32(n)
		switch rec.Status = fields[iStatus]; rec.Status {
		case Succeeded, Failed, Planned, Sending, Unchanged:
		default:
			return fmt.Errorf("report %s:%d: unknown Status %q", name, line, rec.Status)
		}
		if hasAttempts && fields[iAttempts] != "" {
			if rec.Attempts, err = strconv.Atoi(fields[iAttempts]); err != nil || rec.Attempts < 0 {
				return fmt.Errorf("report %s:%d: Attempts %q is not a count", name, line, fields[iAttempts])
			}
		}
		if err := fn(cols, &rec); err != nil {
			return err
		}
	}
}

func scanError(name string, err error) error {
	var pe *csv.ParseError
	var le *csvguard.LineTooLongError
	switch {
	case err == io.EOF:
		return fmt.Errorf("report %s: empty file: %w", name, ErrNotReport)
	case errors.As(err, &le):
		return fmt.Errorf("report %s:%d: longer than %d bytes; not a certalloc report", name, le.Line, maxLineBytes)
	case errors.As(err, &pe):
		return fmt.Errorf("report %s:%d: %v", name, pe.Line, pe.Err)
	}
	return fmt.Errorf("report %s: %w", name, err)
}

// CopyRecord appends the record at rec to dst with its Line field set to
// line: a row carried from one report into the next keeps everything but
// where it sits in today's plan. raw holds the record's bytes.
func CopyRecord(dst []byte, cols *Columns, raw []byte, line int) ([]byte, error) {
	if cols.Current && cols.index["Line"] == 0 {
		// Line is the first field and always a bare integer.
		i := strings.IndexByte(string(raw), ',')
		if i < 0 {
			return dst, errors.New("record without fields")
		}
		dst = strconv.AppendInt(dst, int64(line), 10)
		return append(dst, raw[i:]...), nil
	}
	r, err := cols.Parse(raw)
	if err != nil {
		return dst, err
	}
	r.Line = line
	return AppendRow(dst, &r), nil
}

// Parse parses every field of one record's bytes, written under cols: for
// the records that cannot be copied as they are (another version's, or an
// unchanged row made from a baseline's). It is a field splitter, not
// encoding/csv, whose reader would cost a buffer per record on a
// million-row baseline; Scan has checked the record already.
func (c *Columns) Parse(raw []byte) (Row, error) {
	fields, err := splitRecord(string(raw))
	if err != nil {
		return Row{}, err
	}
	rec := Record{Fields: fields}
	get := func(name string) string { return c.Get(&rec, name) }
	var n int64
	if rec.ID, err = strconv.ParseInt(get("Id"), 10, 64); err == nil {
		n, err = strconv.ParseInt(get("CertTotalCount"), 10, 32)
	}
	if err != nil {
		return Row{}, fmt.Errorf("record %q: %w", raw, err)
	}
	rec.CertTotalCount, rec.Status = int32(n), get("Status")
	rec.Attempts, _ = strconv.Atoi(get("Attempts"))
	return c.Row(&rec), nil
}

// fieldStarts sets f[i] to where field i of the record raw starts, and
// the entry after the last field to one past its end (where its comma or
// line end is), and returns the number of fields, or -1 when there are
// more than len(f)-1.
func fieldStarts(raw []byte, f []int) int {
	raw = bytes.TrimSuffix(bytes.TrimSuffix(raw, []byte("\n")), []byte("\r"))
	n, quoted := 0, false
	f[0] = 0
	for i, c := range raw {
		switch {
		case c == '"':
			quoted = !quoted // a doubled quote toggles twice
		case c == ',' && !quoted:
			if n++; n >= len(f)-1 {
				return -1
			}
			f[n] = i + 1
		}
	}
	n++
	f[n] = len(raw) + 1
	return n
}

// splitRecord splits one CSV record (its line end included), quoted
// fields as encoding/csv writes them.
func splitRecord(s string) ([]string, error) {
	s = strings.TrimSuffix(strings.TrimSuffix(s, "\n"), "\r")
	fields := make([]string, 0, len(Header))
	for {
		if !strings.HasPrefix(s, `"`) {
			i := strings.IndexByte(s, ',')
			if i < 0 {
				return append(fields, s), nil
			}
			fields, s = append(fields, s[:i]), s[i+1:]
			continue
		}
		var b strings.Builder
		s = s[1:]
		for {
			i := strings.IndexByte(s, '"')
			if i < 0 {
				return nil, errors.New("unterminated quoted field")
			}
			b.WriteString(s[:i])
			if s = s[i+1:]; strings.HasPrefix(s, `"`) {
				b.WriteByte('"')
				s = s[1:]
				continue
			}
			break
		}
		fields = append(fields, b.String())
		switch {
		case s == "":
			return fields, nil
		case s[0] != ',':
			return nil, errors.New("text after a quoted field")
		}
		s = s[1:]
	}
}

// AppendUnchanged appends, on plan line line, the unchanged row made from
// raw, a baseline's record of the row's success (or of an unchanged row,
// which carries one): the success's RequestId, counts and FinishedAt, no
// attempt and no error, since nothing was sent. caID is the plan's.
func AppendUnchanged(dst []byte, cols *Columns, raw []byte, line int, caID string) ([]byte, error) {
	if cols.Current {
		// Today's columns: the kept fields are copied as bytes, as
		// CopyRecord does, which keeps a million-row night as fast.
		var f [14]int // field i is raw[f[i]:f[i+1]-1]
		if n := fieldStarts(raw, f[:]); n == len(Header) {
			field := func(i int) []byte { return raw[f[i] : f[i+1]-1] }
			dst = strconv.AppendInt(dst, int64(line), 10)
			dst = append(dst, ',')
			dst = append(dst, raw[f[1]:f[3]]...) // Id,CertTotalCount,
			dst = append(dst, Unchanged+",0,"...)
			dst = append(dst, raw[f[5]:f[8]]...) // RequestId,CertCount,CurrentYearFreeCertCount,
			dst = append(dst, ",,0,"...)
			dst = append(dst, field(11)...)
			dst = append(dst, ',')
			dst = appendField(dst, caID)
			return append(dst, '\n'), nil
		}
	}
	r, err := cols.Parse(raw)
	if err != nil {
		return dst, err
	}
	r.Line, r.Status, r.Attempts, r.LatencyMs, r.CaIdentifier = line, Unchanged, 0, 0, caID
	r.ErrorCode, r.ErrorMessage = "", ""
	return AppendRow(dst, &r), nil
}
