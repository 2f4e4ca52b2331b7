package cli

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// examples returns the certalloc command lines in text: in code blocks
// (or, in usage text, after "Examples:"), the words from one named
// certalloc or .../bin/certalloc on, with continuations
// joined and comments and redirections dropped.
func examples(text string, codeBlocksOnly bool) [][]string {
	var out [][]string
	inBlock, inFence := false, false
	var cont string
	for _, line := range strings.Split(text, "\n") {
		if !codeBlocksOnly && strings.TrimSpace(line) == "Examples:" {
			inBlock = true
			continue
		}
		if codeBlocksOnly && strings.HasPrefix(line, "```") {
			// Blocks marked text show output, not commands.
			inFence = !inFence
			inBlock = inFence && line != "```text"
			continue
		}
		if !inBlock {
			continue
		}
		line = cont + strings.TrimSpace(line)
		cont = ""
		if strings.HasSuffix(line, "\\") {
			cont = strings.TrimSuffix(line, "\\") + " "
			continue
		}
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		for i, f := range fields {
			f = strings.TrimPrefix(f, "ExecStart=")
			if f != "certalloc" && !strings.HasSuffix(f, "bin/certalloc") {
				continue
			}
			args := fields[i+1:]
			for j, a := range args {
				if a == "&&" || a == "|" || strings.HasPrefix(a, ">") || strings.HasPrefix(a, "2>") {
					args = args[:j]
					break
				}
			}
			if len(args) > 0 {
				out = append(out, args)
			}
			break
		}
	}
	return out
}

// The README's and --help's examples must be real command lines.
func TestDocumentedExamplesParse(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile(filepath.Join("..", "..", "deploy", "systemd", "certalloc.service"))
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string][][]string{
		"README.md":       examples(string(readme), true),
		"systemd unit":    examples("```\n"+string(unit)+"\n```", true),
		"apply --help":    examples(applyUsage, false),
		"emulator --help": examples(emulatorUsage, false),
		"bench --help":    examples(benchUsage, false),
	}
	total := 0
	for src, exs := range sources {
		for _, args := range exs {
			total++
			if err := checkArgs(args, io.Discard); err != nil && err.Error() != "flag: help requested" {
				t.Errorf("%s: certalloc %s: %v", src, strings.Join(args, " "), err)
			}
		}
	}
	if len(sources["systemd unit"]) != 1 || len(sources["README.md"]) < 8 {
		t.Errorf("examples found: %d in the systemd unit, %d in the README", len(sources["systemd unit"]), len(sources["README.md"]))
	}
	if total < 15 {
		t.Errorf("found only %d examples; the extraction is broken", total)
	}
}

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

func TestEstimate(t *testing.T) {
	tests := []struct {
		rows int
		qps  float64
		want time.Duration
	}{
		{0, 10, 0},
		{1, 10, 0},
		{11, 10, time.Second},
		{1001, 10, 101 * time.Second}, // 100 windows of 1.01s
		{3, 0.5, 4 * time.Second},
	}
	for _, tt := range tests {
		if got := estimate(tt.rows, tt.qps); got != tt.want {
			t.Errorf("estimate(%d, %v) = %v; want %v", tt.rows, tt.qps, got, tt.want)
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
