package job

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestParseMaxFailures(t *testing.T) {
	tests := []struct {
		in    string
		rows  int
		limit bool
		n     int
		err   bool
	}{
		{"", 100, false, 0, false},
		{"0", 100, true, 0, false},
		{"5", 100, true, 5, false},
		{"5%", 200, true, 10, false},
		{"2.5%", 100, true, 2, false},
		{"101%", 100, false, 0, true},
		{"-1", 100, false, 0, true},
		{"x", 100, false, 0, true},
	}
	for _, tt := range tests {
		limit, n, err := parseMaxFailures(tt.in, tt.rows)
		if limit != tt.limit || n != tt.n || (err != nil) != tt.err {
			t.Errorf("parseMaxFailures(%q, %d) = %v, %d, %v; want %v, %d, err %v", tt.in, tt.rows, limit, n, err, tt.limit, tt.n, tt.err)
		}
	}
}

func TestCheckPaths(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "p.csv")
	tests := []struct {
		paths    map[string]string
		baseline string
		want     string
	}{
		{map[string]string{"plan": p, "--report": p + ".r"}, "", ""},
		{map[string]string{"plan": p, "--report": p}, "", "plan and --report are the same file"},
		{map[string]string{"plan": p, "--report": "x.csv", "--failures": "./x.csv"}, "", "--report and --failures are the same file"},
		{map[string]string{"plan": p, "--report": "r.csv", "--summary": "r.csv"}, "", "--report and --summary are the same file"},
		{map[string]string{"plan": p, "--report": "r.csv"}, "r.csv", ""},
		{map[string]string{"plan": p, "--report": "r.csv", "--failures": "f.csv"}, "f.csv", "--baseline and --failures are the same file"},
	}
	for _, tt := range tests {
		err := checkPaths(tt.paths, tt.baseline)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if !strings.HasPrefix(got, tt.want) || (tt.want == "") != (err == nil) {
			t.Errorf("checkPaths(%v, %q) = %v; want %q", tt.paths, tt.baseline, err, tt.want)
		}
	}
}
