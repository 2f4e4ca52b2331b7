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
