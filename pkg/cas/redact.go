package cas

import (
	"bytes"
	"encoding/base64"
	"slices"
	"strings"
)

// secrets finds secrets in text whatever encoding the text gives them. A
// secret reaches a message through a signed URL (percent-encoded once, in
// either case of hex), through a string to sign (encoded twice), through a
// JSON body that echoes either (\u00XX, \/), or base64-encoded inside a
// longer blob. Rather than listing every combination, redact decodes the
// text once, keeping where each decoded byte came from, and looks for the
// plain secret there.
type secrets struct {
	needles []string
}

// add remembers a secret. Secrets shorter than 4 bytes are ignored: they
// would mangle ordinary text and protect nothing.
func (s *secrets) add(secret string) {
	if len(secret) < 4 {
		return
	}
	s.addNeedle(secret)
	if strings.Contains(secret, " ") {
		s.addNeedle(strings.ReplaceAll(secret, " ", "+")) // form encoding
	}
	if len(secret) >= 8 {
		for _, b := range base64Needles(secret) {
			s.addNeedle(b)
		}
	}
}

func (s *secrets) addNeedle(n string) {
	if !slices.Contains(s.needles, n) {
		s.needles = append(s.needles, n)
	}
}

// base64Needles returns the parts of the secret's base64 forms that do not
// depend on the bytes around it, for each of the three alignments it can
// have inside a longer encoded blob, in the standard and URL alphabets.
func base64Needles(secret string) []string {
	var out []string
	for off := range 3 {
		src := make([]byte, off, off+len(secret))
		src = append(src, secret...)
		enc := base64.StdEncoding.EncodeToString(src)
		enc = enc[:4*(len(src)/3)] // drop the last, partial group: it mixes in what follows
		enc = enc[[3]int{0, 2, 3}[off]:]
		if len(enc) < 8 {
			continue
		}
		out = append(out, enc, strings.NewReplacer("+", "-", "/", "_").Replace(enc))
	}
	return out
}

// redact replaces every occurrence of a secret, in any of the encodings
// above, with "***".
func (s *secrets) redact(text string) string {
	if len(s.needles) == 0 || text == "" {
		return text
	}
	dec, from, to := decode(text)
	var spans [][2]int
	find := func(hay []byte, mapped bool) {
		for _, n := range s.needles {
			for off := 0; ; {
				i := bytes.Index(hay[off:], []byte(n))
				if i < 0 {
					break
				}
				a, b := off+i, off+i+len(n)
				if mapped {
					spans = append(spans, [2]int{from[a], to[b-1]})
				} else {
					spans = append(spans, [2]int{a, b})
				}
				off = b
			}
		}
	}
	find(dec, true)
	find([]byte(text), false) // a secret holding '%' or '\' is found undecoded
	if len(spans) == 0 {
		return text
	}
	slices.SortFunc(spans, func(x, y [2]int) int { return x[0] - y[0] })
	var b strings.Builder
	last := 0
	for i, sp := range spans {
		if i > 0 && sp[0] < last {
			last = max(last, sp[1]) // overlaps the cut already marked
			continue
		}
		b.WriteString(text[last:sp[0]])
		b.WriteString("***")
		last = sp[1]
	}
	b.WriteString(text[last:])
	return b.String()
}

// decode undoes percent-encoding (either hex case, any depth: %2541 is
// "A") and JSON string escapes (\u0041, \/, \", \\) in one pass. For each
// decoded byte it returns the span [from, to) of text it came from.
func decode(text string) (dec []byte, from, to []int) {
	dec = make([]byte, 0, len(text))
	from = make([]int, 0, len(text))
	to = make([]int, 0, len(text))
	for i := 0; i < len(text); {
		c, n := decodeAt(text, i)
		if n == 0 {
			c, n = text[i], 1
		}
		dec = append(dec, c)
		from = append(from, i)
		to = append(to, i+n)
		i += n
	}
	return dec, from, to
}

func decodeAt(s string, i int) (byte, int) {
	switch s[i] {
	case '%':
		// %(25)*HH: each 25 is one more layer of encoding of the '%'.
		layers := 0
		for p := i + 1; p+1 < len(s) && s[p] == '2' && s[p+1] == '5'; p += 2 {
			layers++
		}
		for k := layers; k >= 0; k-- {
			p := i + 1 + 2*k
			if p+1 < len(s) && isHex(s[p]) && isHex(s[p+1]) {
				return unhex(s[p])<<4 | unhex(s[p+1]), p + 2 - i
			}
		}
	case '\\':
		if i+1 >= len(s) {
			return 0, 0
		}
		switch s[i+1] {
		case '/', '"', '\\':
			return s[i+1], 2
		case 'u':
			if i+5 < len(s) && s[i+2] == '0' && s[i+3] == '0' && isHex(s[i+4]) && isHex(s[i+5]) {
				return unhex(s[i+4])<<4 | unhex(s[i+5]), 6
			}
		}
	}
	return 0, 0
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
