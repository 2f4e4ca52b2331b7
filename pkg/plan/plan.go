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
	"unicode"

	"github.com/certalloc/certalloc/pkg/csvguard"
)

// Column names as they appear in a plan header and in the failures file.
const (
	ColID           = "Id"
	ColCount        = "CertTotalCount"
	ColCaIdentifier = "CaIdentifier"
)

// Limits that keep a hostile or broken file from costing unbounded memory.
const (
	MaxLineBytes = 64 << 10
	MaxFields    = 256
	// DefaultMaxErrors is how many problems are listed before the rest are
	// only counted: enough to see a pattern, short enough to read.
	DefaultMaxErrors = 20
	// MaxCaIdentifierLen bounds a CaIdentifier. The API documents no
	// limit; real identifiers are 32 hex digits or a 36-character UUID.
	MaxCaIdentifierLen = 64
)

// Row is one validated plan record.
type Row struct {
	ID int64
	// Line is the 1-based physical line of the record in the plan file; the
	// header is line 1. Reports and errors use the same number. It is an
	// int32, like the count, so that a Row is 32 bytes: a run holds every
	// row of its plan.
	Line           int32
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
	// Delimiter is the field separator the plan was read with, detected
	// or given in Options.
	Delimiter rune
	// HasCaIdentifier says the header has a CaIdentifier column (even if
	// every cell is empty), so that a failures file can keep it.
	HasCaIdentifier bool
}

// Options tunes Read. The zero value is ready to use.
type Options struct {
	MaxErrors int // 0 means DefaultMaxErrors
	// Delimiter is the field separator: ',', ';', '\t' or '|' (see
	// ParseDelimiter). 0 detects ',', ';' or tab from the header line.
	Delimiter rune
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
	if opts.Delimiter != 0 {
		if err := checkDelimiter(opts.Delimiter); err != nil {
			return Stats{}, fmt.Errorf("plan %s: %w", name, err)
		}
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

	br := bufio.NewReaderSize(r, MaxLineBytes)
	d, perr, err := sniff(br, opts.Delimiter)
	if err != nil {
		return Stats{}, err
	}
	if perr != nil {
		add(perr)
		return Stats{}, errs
	}
	var src io.Reader = br
	if d.crOnly {
		src = &crReader{r: br}
	}
	cr := csv.NewReader(csvguard.NewReader(src, MaxLineBytes))
	cr.Comma = d.delim
	cr.FieldsPerRecord = -1 // field counts are checked here, with better messages
	cr.ReuseRecord = true

	h, err := readHeader(cr, d.delim, add)
	if err != nil {
		return Stats{}, err
	}
	if h.id < 0 || h.count < 0 {
		return Stats{}, errs
	}

	st := Stats{Delimiter: d.delim, HasCaIdentifier: h.ca >= 0}
	// Duplicates are found by sorting at the end: 16 bytes a row, where a
	// map would cost three times that on a million-row plan.
	var ids []idAt
	// A plan names few CAs: interned, a million rows share a few strings
	// instead of each keeping its whole record alive.
	cas := map[string]string{}
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
		if len(rec) < h.width {
			add(&Error{Line: line, Msg: fmt.Sprintf("%d field(s), but the header has %d", len(rec), h.width) +
				rowSeparatorHint(rec, d.delim)})
			continue
		}
		if line > math.MaxInt32 {
			add(&Error{Line: line, Msg: fmt.Sprintf("the plan is longer than %d lines; split it", math.MaxInt32)})
			return Stats{}, errs
		}
		row := Row{Line: int32(line)}
		ok := true
		if id, e := parseID(rec[h.id]); e != "" {
			add(fieldError(cr, h.id, ColID, rec[h.id], e))
			ok = false
		} else {
			row.ID = id
		}
		if n, e := parseCount(rec[h.count]); e != "" {
			add(fieldError(cr, h.count, ColCount, rec[h.count], e))
			ok = false
		} else {
			row.CertTotalCount = n
		}
		// The column is optional, so a record that stops short of it
		// (some exports drop an empty last cell) has none.
		if h.ca >= 0 && h.ca < len(rec) {
			// A value seen before was valid then: look it up first.
			if in, seen := cas[strings.TrimSpace(rec[h.ca])]; seen {
				row.CaIdentifier = in
			} else if ca, e := parseCaIdentifier(rec[h.ca]); e != "" {
				add(fieldError(cr, h.ca, ColCaIdentifier, rec[h.ca], e))
				ok = false
			} else if ca != "" {
				ca = strings.Clone(ca)
				if len(cas) < 1024 {
					cas[ca] = ca
				}
				row.CaIdentifier = ca
			}
		}
		if !ok {
			continue
		}
		_, idColumn := cr.FieldPos(h.id)
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

// header holds the 0-based index of each known column (-1 when absent)
// and the number of fields a record needs to reach the required ones.
type header struct {
	id, count, ca int
	width         int
}

func readHeader(cr *csv.Reader, delim rune, add func(*Error)) (header, error) {
	h := header{id: -1, count: -1, ca: -1}
	rec, err := cr.Read()
	if err == io.EOF {
		add(&Error{Line: 1, Msg: "empty plan: want a header naming Id and CertTotalCount"})
		return h, nil
	}
	if err != nil {
		if e, ok := fatalReadError(err); ok {
			add(e)
			return h, nil
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			add(&Error{Line: pe.Line, Column: pe.Column, Msg: "header: " + pe.Err.Error()})
			return h, nil
		}
		return h, err
	}
	line, _ := cr.FieldPos(0)
	if len(rec) > MaxFields {
		add(&Error{Line: line, Msg: fmt.Sprintf("header has %d fields; at most %d are allowed", len(rec), MaxFields)})
		return h, nil
	}
	for i, name := range rec {
		var col *int
		switch {
		case strings.EqualFold(strings.TrimSpace(name), ColID):
			col = &h.id
		case strings.EqualFold(strings.TrimSpace(name), ColCount):
			col = &h.count
		case strings.EqualFold(strings.TrimSpace(name), ColCaIdentifier):
			col = &h.ca
		default:
			continue
		}
		if *col >= 0 {
			_, c := cr.FieldPos(i)
			add(&Error{Line: line, Column: c, Msg: fmt.Sprintf("header names column %q twice", name)})
			h.id, h.count = -1, -1
			return h, nil
		}
		*col = i
	}
	var missing string
	switch {
	case h.id < 0 && h.count < 0:
		missing = "header has neither an Id nor a CertTotalCount column"
	case h.id < 0:
		missing = "header has no Id column"
	case h.count < 0:
		missing = "header has no CertTotalCount column"
	}
	if missing != "" {
		add(&Error{Line: line, Msg: fmt.Sprintf("%s (found: %s)", missing, strings.Join(rec, ",")) + separatorHint(rec, delim)})
		return h, nil
	}
	h.width = max(h.id, h.count) + 1
	return h, nil
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

// parseCaIdentifier accepts what real identifiers look like (32 hex
// digits, or a UUID) with room to spare: 1 to MaxCaIdentifierLen of
// A-Z a-z 0-9 . _ : -, starting with a letter or a digit. The first
// character rule also keeps the report safe to open in a spreadsheet,
// which would take a leading - as a formula. Empty means none.
func parseCaIdentifier(s string) (string, string) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", ""
	}
	const want = "want 1 to 64 of A-Z a-z 0-9 . _ : -, starting with a letter or digit"
	for _, c := range s {
		switch {
		case c == '*':
			return "", "contains '*': documentation masks identifiers with ****; give the whole identifier"
		case c > unicode.MaxASCII || !(isAlnum(byte(c)) || c == '.' || c == '_' || c == ':' || c == '-'):
			return "", fmt.Sprintf("character %q is not allowed; %s", c, want)
		}
	}
	if !isAlnum(s[0]) {
		return "", "starts with " + strconv.QuoteRune(rune(s[0])) + "; " + want
	}
	if len(s) > MaxCaIdentifierLen {
		return "", fmt.Sprintf("%d characters; %s", len(s), want)
	}
	return s, ""
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
