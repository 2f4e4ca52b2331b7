package plan

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/certalloc/certalloc/pkg/csvguard"
)

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
