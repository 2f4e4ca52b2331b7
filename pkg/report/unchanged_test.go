package report

import (
	"strings"
	"testing"
)

// An unchanged row made from a baseline's record keeps the success's
// RequestId, counts and FinishedAt, drops the attempt and any message, and
// takes the plan's line and CaIdentifier; the byte-copying path for
// today's columns gives what parsing the record gives, quoted fields
// included, and a report of an earlier layout (no CaIdentifier column)
// reads the same.
func TestAppendUnchanged(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"a success", "2,7,10,succeeded,1,REQ-A,10,3,,,41,2026-11-27T10:00:00Z,\n",
			"9,7,10,unchanged,0,REQ-A,10,3,,,0,2026-11-27T10:00:00Z,ca-1\n"},
		{"a success after a lost answer, its message quoted",
			`2,7,10,succeeded,2,REQ-A,10,3,,"sent again, ""twice""",41,2026-11-27T10:00:00Z,old` + "\n",
			"9,7,10,unchanged,0,REQ-A,10,3,,,0,2026-11-27T10:00:00Z,ca-1\n"},
		{"an unchanged row", "5,7,10,unchanged,0,REQ-A,10,3,,,0,2026-11-27T10:00:00Z,\n",
			"9,7,10,unchanged,0,REQ-A,10,3,,,0,2026-11-27T10:00:00Z,ca-1\n"},
		{"an unchanged row of an earlier version", "2,7,10,succeeded,0,,,,,unchanged since baseline mon.csv; not sent,0,2026-11-28T02:00:00Z,\n",
			"9,7,10,unchanged,0,,,,,,0,2026-11-28T02:00:00Z,ca-1\n"},
		{"CRLF", "2,7,10,succeeded,1,REQ-A,10,3,,,41,2026-11-27T10:00:00Z,\r\n",
			"9,7,10,unchanged,0,REQ-A,10,3,,,0,2026-11-27T10:00:00Z,ca-1\n"},
	}
	current := CurrentColumns()
	parsed := CurrentColumns()
	parsed.Current = false // the same header, read field by field
	for _, tt := range tests {
		for _, cols := range []*Columns{current, parsed} {
			got, err := AppendUnchanged(nil, cols, []byte(tt.raw), 9, "ca-1")
			if err != nil || string(got) != tt.want {
				t.Errorf("%s (current %v): AppendUnchanged(%q) = %q, %v; want %q", tt.name, cols.Current, tt.raw, got, err, tt.want)
			}
		}
	}
	// A report without the CaIdentifier column (before it came).
	old := newColumns(Header[:len(Header)-1])
	got, err := AppendUnchanged(nil, old, []byte("2,7,10,succeeded,1,REQ-A,10,3,,,41,2026-11-27T10:00:00Z\n"), 9, "")
	if want := "9,7,10,unchanged,0,REQ-A,10,3,,,0,2026-11-27T10:00:00Z,\n"; err != nil || string(got) != want {
		t.Errorf("earlier layout: AppendUnchanged = %q, %v; want %q", got, err, want)
	}
}

func TestSplitRecord(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"a,b,c\n", []string{"a", "b", "c"}},
		{"a,,\n", []string{"a", "", ""}},
		{`"x, y",2` + "\n", []string{"x, y", "2"}},
		{`"say ""hi""",` + "\n", []string{`say "hi"`, ""}},
		{"\"two\nlines\",z\r\n", []string{"two\nlines", "z"}},
	}
	for _, tt := range tests {
		got, err := splitRecord(tt.in)
		if err != nil || strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
			t.Errorf("splitRecord(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{`"open` + "\n", `"a"b,c` + "\n"} {
		if _, err := splitRecord(bad); err == nil {
			t.Errorf("splitRecord(%q) = nil error; want one", bad)
		}
	}
}
