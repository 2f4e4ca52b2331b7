package plan

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/certalloc/certalloc/pkg/csvguard"
)

// Column names as they appear in a plan header and in the failures file.
const (
	ColID    = "Id"
	ColCount = "CertTotalCount"
)

// Limits that keep a hostile or broken file from costing unbounded memory.
const (
	MaxLineBytes = 64 << 10
	MaxFields    = 256
	// DefaultMaxErrors is how many problems are listed before the rest are
	// only counted: enough to see a pattern, short enough to read.
	DefaultMaxErrors = 20
)

// Row is one validated plan record.
type Row struct {
	// Line is the 1-based physical line of the record in the plan file; the
	// header is line 1. Reports and errors use the same number.
	Line           int
	ID             int64
	CertTotalCount int32
	// CaIdentifier is the optional CA certificate identifier; empty when
	// the plan has no such column or the cell is empty.
	CaIdentifier string
}

// Error is one problem found in a plan.
type Error struct {
	File   string
	Line   int
	Column int // 1-based; 0 when the problem is the whole line
	Field  string
	Value  string
	Msg    string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d", e.File, e.Line)
	if e.Column > 0 {
		fmt.Fprintf(&b, ":%d", e.Column)
	}
	b.WriteString(": ")
	if e.Field != "" {
		fmt.Fprintf(&b, "%s %q: ", e.Field, e.Value)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is the list of problems found in an invalid plan. More counts the
// problems beyond the listed ones.
type Errors struct {
	List []*Error
	More int
}

func (e *Errors) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid plan: %d problem(s)", len(e.List)+e.More)
	for _, x := range e.List {
		b.WriteString("\n  ")
		b.WriteString(x.Error())
	}
	if e.More > 0 {
		fmt.Fprintf(&b, "\n  ... and %d more", e.More)
	}
	return b.String()
}

// Stats describes a valid plan.
type Stats struct {
	Rows int
	// Sum is the sum of CertTotalCount over all rows.
	Sum int64
}

// Options tunes Read. The zero value is ready to use.
type Options struct {
	MaxErrors int // 0 means DefaultMaxErrors
}

// ReadFile opens path and calls Read. The file name in errors is path.
func ReadFile(path string, opts Options, fn func(Row) error) (Stats, error) {
	f, err := os.Open(path)
	if err != nil {
		return Stats{}, err
	}
	defer f.Close()
	return Read(f, path, opts, fn)
}

// Read validates a whole plan from r, calling fn for each valid row in file
// order. If the plan has any problem, Read returns *Errors after reading to
// the end, so fn may have seen rows of a plan that turns out invalid: callers
// must not act on rows until Read returns nil. An error from fn stops the
// read and is returned as is.
func Read(r io.Reader, name string, opts Options, fn func(Row) error) (Stats, error) {
	max := opts.MaxErrors
	if max <= 0 {
		max = DefaultMaxErrors
	}
	errs := &Errors{}
	add := func(e *Error) {
		e.File = name
		if len(errs.List) < max {
			errs.List = append(errs.List, e)
		} else {
			errs.More++
		}
	}

	cr := csv.NewReader(csvguard.NewReader(bufio.NewReaderSize(r, 64<<10), MaxLineBytes))
	cr.FieldsPerRecord = -1 // field counts are checked here, with better messages
	cr.ReuseRecord = true

	idCol, countCol, width, err := readHeader(cr, add)
	if err != nil {
		return Stats{}, err
	}
	if idCol < 0 || countCol < 0 {
		return Stats{}, errs
	}

	var st Stats
	// Duplicates are found by sorting at the end: 16 bytes a row, where a
	// map would cost three times that on a million-row plan.
	var ids []idAt
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			if e, ok := fatalReadError(err); ok {
				add(e)
				return Stats{}, errs
			}
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				add(&Error{Line: pe.Line, Column: pe.Column, Msg: pe.Err.Error()})
				continue
			}
			return Stats{}, err
		}
		line, _ := cr.FieldPos(0)
		if len(rec) > MaxFields {
			add(&Error{Line: line, Msg: fmt.Sprintf("%d fields; at most %d are allowed", len(rec), MaxFields)})
			continue
		}
		if len(rec) < width {
			add(&Error{Line: line, Msg: fmt.Sprintf("%d field(s), but the header has %d", len(rec), width)})
			continue
		}
		row := Row{Line: line}
		ok := true
		if id, e := parseID(rec[idCol]); e != "" {
			add(fieldError(cr, idCol, ColID, rec[idCol], e))
			ok = false
		} else {
			row.ID = id
		}
		if n, e := parseCount(rec[countCol]); e != "" {
			add(fieldError(cr, countCol, ColCount, rec[countCol], e))
			ok = false
		} else {
			row.CertTotalCount = n
		}
		if !ok {
			continue
		}
		_, idColumn := cr.FieldPos(idCol)
		ids = append(ids, idAt{row.ID, int32(min(line, math.MaxInt32)), int32(min(idColumn, math.MaxInt32))})
		st.Rows++
		st.Sum += int64(row.CertTotalCount)
		if len(errs.List) == 0 {
			if err := fn(row); err != nil {
				return Stats{}, err
			}
		}
	}
	if dups := duplicates(ids); len(dups) > 0 {
		// Listed in file order among the other problems.
		all := append(errs.List, dups...)
		sort.SliceStable(all, func(i, j int) bool {
			return all[i].Line < all[j].Line || all[i].Line == all[j].Line && all[i].Column < all[j].Column
		})
		errs.List = nil
		more := errs.More
		errs.More = 0
		for _, e := range all {
			add(e)
		}
		errs.More += more
	}
	if len(errs.List) > 0 {
		return Stats{}, errs
	}
	return st, nil
}

type idAt struct {
	id           int64
	line, column int32
}

// duplicates returns an error for every row whose Id an earlier row has.
func duplicates(ids []idAt) []*Error {
	sort.Slice(ids, func(i, j int) bool {
		return ids[i].id < ids[j].id || ids[i].id == ids[j].id && ids[i].line < ids[j].line
	})
	var errs []*Error
	first := 0 // index of the first row with the current Id
	for i := 1; i < len(ids); i++ {
		if ids[i].id != ids[first].id {
			first = i
			continue
		}
		errs = append(errs, &Error{Line: int(ids[i].line), Column: int(ids[i].column), Field: ColID,
			Value: strconv.FormatInt(ids[i].id, 10), Msg: fmt.Sprintf("duplicate Id: already on line %d", ids[first].line)})
	}
	return errs
}

func readHeader(cr *csv.Reader, add func(*Error)) (idCol, countCol, width int, err error) {
	idCol, countCol = -1, -1
	rec, err := cr.Read()
	if err == io.EOF {
		add(&Error{Line: 1, Msg: "empty plan: want a header naming Id and CertTotalCount"})
		return -1, -1, 0, nil
	}
	if err != nil {
		if e, ok := fatalReadError(err); ok {
			add(e)
			return -1, -1, 0, nil
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			add(&Error{Line: pe.Line, Column: pe.Column, Msg: "header: " + pe.Err.Error()})
			return -1, -1, 0, nil
		}
		return -1, -1, 0, err
	}
	line, _ := cr.FieldPos(0)
	if len(rec) > MaxFields {
		add(&Error{Line: line, Msg: fmt.Sprintf("header has %d fields; at most %d are allowed", len(rec), MaxFields)})
		return -1, -1, 0, nil
	}
	if len(rec) > 0 {
		rec[0] = strings.TrimPrefix(rec[0], "\uFEFF")
	}
	for i, name := range rec {
		var col *int
		switch {
		case strings.EqualFold(strings.TrimSpace(name), ColID):
			col = &idCol
		case strings.EqualFold(strings.TrimSpace(name), ColCount):
			col = &countCol
		default:
			continue
		}
		if *col >= 0 {
			_, c := cr.FieldPos(i)
			add(&Error{Line: line, Column: c, Msg: fmt.Sprintf("header names column %q twice", name)})
			return -1, -1, 0, nil
		}
		*col = i
	}
	bad := false
	for _, c := range []struct {
		col  int
		name string
	}{{idCol, ColID}, {countCol, ColCount}} {
		if c.col < 0 {
			add(&Error{Line: line, Msg: fmt.Sprintf("header has no %s column (found: %s)", c.name, strings.Join(rec, ","))})
			bad = true
		}
	}
	if bad {
		return -1, -1, 0, nil
	}
	return idCol, countCol, max(idCol, countCol) + 1, nil
}

func fieldError(cr *csv.Reader, col int, field, value, msg string) *Error {
	line, c := cr.FieldPos(col)
	if len(value) > 40 {
		value = value[:40] + "..."
	}
	return &Error{Line: line, Column: c, Field: field, Value: value, Msg: msg}
}

// fatalReadError turns errors after which the rest of the file cannot be
// trusted into a plan error.
func fatalReadError(err error) (*Error, bool) {
	var le *csvguard.LineTooLongError
	if errors.As(err, &le) {
		return &Error{Line: le.Line, Msg: fmt.Sprintf("line longer than %d bytes; is this a plan?", MaxLineBytes)}, true
	}
	return nil, false
}

func parseID(s string) (int64, string) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, "empty; want a positive integer"
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, "out of range; want a positive integer up to 9223372036854775807"
		}
		return 0, "not an integer; want a positive integer"
	}
	if n <= 0 {
		return 0, "want a positive integer"
	}
	return n, ""
}

func parseCount(s string) (int32, string) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, "empty; want an integer from 0 to 2147483647"
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, "out of range; want an integer from 0 to 2147483647"
		}
		return 0, "not an integer; want an integer from 0 to 2147483647"
	}
	if n < 0 {
		return 0, "negative; want an integer from 0 to 2147483647"
	}
	return int32(n), ""
}
