// Package csvguard bounds what a CSV file from elsewhere can cost:
// encoding/csv buffers a whole record, so a file without newlines would
// otherwise be read into memory whole.
package csvguard

import (
	"bytes"
	"fmt"
	"io"
)

// LineTooLongError reports the first physical line longer than the limit.
type LineTooLongError struct {
	Line int // 1-based
	Max  int
}

func (e *LineTooLongError) Error() string {
	return fmt.Sprintf("line %d is longer than %d bytes", e.Line, e.Max)
}

// Reader passes bytes through until a physical line grows past Max bytes,
// then fails every read with *LineTooLongError.
type Reader struct {
	r    io.Reader
	max  int
	cur  int // bytes of the current line so far
	line int // 1-based number of the current line
	err  error
}

// NewReader returns a Reader over r allowing lines of up to max bytes.
func NewReader(r io.Reader, max int) *Reader {
	return &Reader{r: r, max: max, line: 1}
}

func (l *Reader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.r.Read(p)
	for i := 0; i < n; {
		j := bytes.IndexByte(p[i:n], '\n')
		if j < 0 {
			l.cur += n - i
			break
		}
		l.cur += j
		if l.cur > l.max {
			break
		}
		l.cur = 0
		l.line++
		i += j + 1
	}
	if l.cur > l.max {
		l.err = &LineTooLongError{Line: l.line, Max: l.max}
		return 0, l.err
	}
	return n, err
}
