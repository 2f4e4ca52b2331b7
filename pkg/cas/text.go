package cas

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxMessageBytes bounds Error.Message: it goes into one cell of the report
// and one log line, and a server's answer can be a 100 KB HTML page.
const MaxMessageBytes = 512

const (
	maxCodeBytes       = 64
	maxRequestIDBytes  = 64
	maxDiagnosticBytes = 4 << 10
	// rawTextCap is how much of a server's text is kept before redaction.
	// Only the first MaxMessageBytes survive; the margin lets a secret that
	// straddles that point still be found whole, and keeps redaction cheap
	// on a 1 MiB body.
	rawTextCap = 8 << 10
)

// oneLine makes s fit one line of a log or a CSV cell: valid UTF-8, no
// control characters, no markup if it is an HTML page, runs of white space
// folded into one space.
func oneLine(s string) string {
	if len(s) > rawTextCap {
		s = s[:rawTextCap]
	}
	s = strings.ToValidUTF8(s, "?")
	if strings.HasPrefix(strings.TrimSpace(s), "<") {
		s = stripTags(s)
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// stripTags keeps the text of an HTML page: a gateway's error page then
// reads "502 Bad Gateway nginx" instead of its first 500 bytes of markup.
func stripTags(s string) string {
	var b strings.Builder
	in := false
	for _, r := range s {
		switch {
		case r == '<':
			in = true
		case r == '>' && in:
			in = false
			b.WriteByte(' ')
		case !in:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// clip cuts s to at most n bytes on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "..."
	if n < len(mark) {
		return mark[:max(n, 0)]
	}
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
