package csvguard

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReader(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		line int // 0: no error
	}{
		{"ab\ncd\n", 2, 0},
		{"ab\ncde\n", 2, 2},
		{"abc", 2, 1},
		{"a\nb\n\nccc", 2, 4},
		{"", 0, 0},
	}
	for _, tt := range tests {
		for _, r := range []io.Reader{strings.NewReader(tt.in), iotest.OneByteReader(strings.NewReader(tt.in))} {
			b, err := io.ReadAll(NewReader(r, tt.max))
			var le *LineTooLongError
			switch {
			case tt.line == 0 && (err != nil || string(b) != tt.in):
				t.Errorf("ReadAll(%q, %d) = %q, %v; want it all", tt.in, tt.max, b, err)
			case tt.line != 0 && (!errors.As(err, &le) || le.Line != tt.line):
				t.Errorf("ReadAll(%q, %d) error = %v; want line %d too long", tt.in, tt.max, err, tt.line)
			}
		}
	}
}
