package plan

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Delimiters a plan may use. Detection tries the first three; '|' is
// accepted only when asked for, because a pipe in a header is more often
// part of a name than a separator.
var (
	detected  = []rune{',', ';', '\t'}
	supported = []rune{',', ';', '\t', '|'}
)

// ParseDelimiter reads a delimiter as an operator types it: "," or
// "comma", ";" or "semicolon", "tab", `\t` or a tab character, "|" or
// "pipe". Names are case-insensitive.
func ParseDelimiter(s string) (rune, error) {
	switch strings.ToLower(s) {
	case ",", "comma":
		return ',', nil
	case ";", "semicolon":
		return ';', nil
	case "tab", `\t`, "\t":
		return '\t', nil
	case "|", "pipe":
		return '|', nil
	}
	return 0, fmt.Errorf("delimiter %q: want one of , ; tab |", s)
}

// DelimiterName renders a delimiter for messages: ',' ';' '|' or tab.
func DelimiterName(d rune) string {
	if d == '\t' {
		return "tab"
	}
	return "'" + string(d) + "'"
}

// delimiterArg is the delimiter as it is passed on a shell command line.
func delimiterArg(d rune) string {
	switch d {
	case ',':
		return ","
	case '\t':
		return "tab"
	}
	return "'" + string(d) + "'"
}

func checkDelimiter(d rune) error {
	for _, s := range supported {
		if d == s {
			return nil
		}
	}
	return fmt.Errorf("delimiter %q: want one of , ; tab |", d)
}

// dialect is what sniff learns from the start of a plan.
type dialect struct {
	delim rune
	// crOnly: the header ends with a lone CR, as in old Mac exports, so
	// every lone CR is a line end.
	crOnly bool
}

var (
	utf8BOM    = []byte("\xEF\xBB\xBF")
	utf16LEBOM = []byte("\xFF\xFE")
	utf16BEBOM = []byte("\xFE\xFF")
)

// sniff looks at the header line without consuming it (only a UTF-8 BOM
// is discarded, before encoding/csv sees it: after it, a quoted header
// would be a bare quote). want, when not 0, is the delimiter the caller
// chose. A non-nil *Error is a plan problem; a plain error is a read error.
func sniff(br *bufio.Reader, want rune) (dialect, *Error, error) {
	head, err := br.Peek(br.Size())
	atEOF := errors.Is(err, io.EOF)
	if err != nil && !atEOF && !errors.Is(err, bufio.ErrBufferFull) {
		return dialect{}, nil, err
	}
	switch {
	case bytes.HasPrefix(head, utf8BOM):
		br.Discard(len(utf8BOM))
		head = head[len(utf8BOM):]
	case bytes.HasPrefix(head, utf16LEBOM), bytes.HasPrefix(head, utf16BEBOM):
		return dialect{}, &Error{Line: 1, Msg: fmt.Sprintf(
			"the file is UTF-16 (it starts with the byte order mark % X); save it as CSV UTF-8", head[:2])}, nil
	}
	d := dialect{delim: want}
	if want == 0 {
		d.delim = detect(head, atEOF)
	}
	_, eol := splitHeader(head, byte(d.delim), atEOF)
	d.crOnly = eol == "\r"
	return d, nil, nil
}

// detect picks the delimiter under which the header names both required
// columns; failing that, the one that splits it into most fields, so an
// error about a missing column lists the columns the operator meant.
// Ties go to the comma.
func detect(head []byte, atEOF bool) rune {
	best, bestNamed, bestN := ',', false, 0
	for _, d := range detected {
		fields, _ := splitHeader(head, byte(d), atEOF)
		named := column(fields, ColID) >= 0 && column(fields, ColCount) >= 0
		if named && !bestNamed || named == bestNamed && len(fields) > bestN {
			best, bestNamed, bestN = d, named, len(fields)
		}
	}
	return best
}

func column(fields []string, name string) int {
	for i, f := range fields {
		if strings.EqualFold(strings.TrimSpace(f), name) {
			return i
		}
	}
	return -1
}

// splitHeader splits the first record of head on d as encoding/csv would
// (a quote opens a quoted field only at the start of a field) and returns
// its fields and the line end that closes it: "\n", "\r\n", "\r", or ""
// when head holds no complete first line. Malformed quoting is left for
// encoding/csv to report.
func splitHeader(head []byte, d byte, atEOF bool) (fields []string, eol string) {
	var f []byte
	for i := 0; ; {
		f = f[:0]
		if i < len(head) && head[i] == '"' {
			for i++; i < len(head); i++ {
				if head[i] != '"' {
					f = append(f, head[i])
				} else if i+1 < len(head) && head[i+1] == '"' {
					f = append(f, '"')
					i++
				} else {
					i++
					break
				}
			}
		}
		for ; i < len(head) && head[i] != d && head[i] != '\n' && head[i] != '\r'; i++ {
			f = append(f, head[i])
		}
		fields = append(fields, string(f))
		if i >= len(head) {
			return fields, ""
		}
		switch head[i] {
		case d:
			i++
			continue
		case '\n':
			return fields, "\n"
		}
		// A CR: a CRLF, a lone CR, or a CR at the end of what was peeked.
		switch {
		case i+1 < len(head) && head[i+1] == '\n':
			return fields, "\r\n"
		case i+1 < len(head) || atEOF:
			return fields, "\r"
		}
		return fields, ""
	}
}

// crReader turns every lone CR into an LF, so that encoding/csv (which
// ends lines only at LF) and csvguard see the lines an editor shows. The
// LF of a CRLF is dropped, so a stray CRLF stays one line end. It is used
// only for files whose header ends with a lone CR: in other files a lone
// CR is data, as encoding/csv has always read it.
type crReader struct {
	r  io.Reader
	cr bool // the last byte passed on was a CR turned into an LF
}

func (c *crReader) Read(p []byte) (int, error) {
	for {
		n, err := c.r.Read(p)
		w := 0
		for _, b := range p[:n] {
			if b == '\n' && c.cr {
				c.cr = false
				continue
			}
			c.cr = b == '\r'
			if c.cr {
				b = '\n'
			}
			p[w] = b
			w++
		}
		// Only a buffer holding nothing but the LF of a CRLF comes out
		// empty; read on rather than return 0, nil.
		if w > 0 || n == 0 || err != nil {
			return w, err
		}
	}
}

// separatorHint explains a header that lacks a required column when the
// cause is likely the separator: a header cell holds another candidate.
func separatorHint(rec []string, delim rune) string {
	for _, s := range supported {
		if s == delim {
			continue
		}
		for _, cell := range rec {
			if !strings.ContainsRune(cell, s) {
				continue
			}
			if len(rec) == 1 {
				return fmt.Sprintf("; the header is one column that contains %s: if that is the separator, pass --delimiter %s",
					DelimiterName(s), delimiterArg(s))
			}
			return fmt.Sprintf("; the header is split on %s but also contains %s: use one separator throughout, and pass it with --delimiter if it is not found",
				DelimiterName(delim), DelimiterName(s))
		}
	}
	return ""
}

// rowSeparatorHint explains a record with too few fields whose cells hold
// another separator than the header's.
func rowSeparatorHint(rec []string, delim rune) string {
	for _, s := range supported {
		if s == delim {
			continue
		}
		for _, cell := range rec {
			if strings.ContainsRune(cell, s) {
				return fmt.Sprintf("; the record contains %s, the header is split on %s", DelimiterName(s), DelimiterName(delim))
			}
		}
	}
	return ""
}
