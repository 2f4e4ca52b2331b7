package cli

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
		"README.md":    examples(string(readme), true),
		"systemd unit": examples("```\n"+string(unit)+"\n```", true),
	}
	for _, c := range (&env{}).root().Commands() {
		if c.Example != "" {
			sources[c.Name()+" --help"] = examples("Examples:\n"+c.Example, false)
		}
	}
	total := 0
	for src, exs := range sources {
		for _, args := range exs {
			total++
			if err := checkArgs(args); err != nil {
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

func TestCompletion(t *testing.T) {
	var out, errOut strings.Builder
	if code := Run(t.Context(), []string{"completion", "bash"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "__start_certalloc") {
		t.Fatalf("completion bash = %d, %q", code, errOut.String())
	}
	if bash, err := exec.LookPath("bash"); err == nil {
		cmd := exec.Command(bash, "-n")
		cmd.Stdin = strings.NewReader(out.String())
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("bash -n on the completion script: %v\n%s", err, b)
		}
	}
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", "ap"}, []string{"apply"}},
		{[]string{"__complete", "apply", "--progress", ""}, []string{"auto", "always", "never"}},
		{[]string{"__complete", "plan", "--log-format", ""}, []string{"text", "json"}},
		{[]string{"__complete", "apply", "--re"}, []string{"--report", "--resume", "--region"}},
	}
	for _, tt := range tests {
		out.Reset()
		if code := Run(t.Context(), tt.args, &out, io.Discard); code != 0 {
			t.Errorf("Run(%q) = %d", tt.args, code)
		}
		for _, w := range tt.want {
			if !strings.Contains(out.String(), w+"\n") && !strings.Contains(out.String(), w+"\t") {
				t.Errorf("Run(%q) completes %q; want %q among them", tt.args, out.String(), w)
			}
		}
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string // the first line of stderr
	}{
		{[]string{"apply", "--nope", "p.csv"}, "certalloc apply: unknown flag: --nope"},
		{[]string{"plan"}, "certalloc plan: takes one plan file (PLAN.csv), got 0 arguments"},
		{[]string{"version", "--x"}, "certalloc version: unknown flag: --x"},
		{[]string{"nosuch"}, `certalloc: unknown command "nosuch"`},
		// A mistyped command is named as such, whatever flags follow it
		// (cobra would first refuse them, as the root's).
		{[]string{"aply", "--qps", "3", "p.csv"}, `certalloc: unknown command "aply"`},
		{[]string{"--qps", "3", "aply", "p.csv"}, `certalloc: unknown command "aply"`},
		{[]string{"--nope"}, "certalloc: unknown flag: --nope"},
		{[]string{"apply", "--qps", "0", "p.csv"}, "certalloc apply: --qps must be a positive number, got 0"},
		{[]string{"completion", "tcsh"}, `certalloc completion: unknown command "tcsh"`},
	}
	for _, tt := range tests {
		var errOut strings.Builder
		code := Run(t.Context(), tt.args, io.Discard, &errOut)
		lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
		if code != ExitUsage || lines[0] != tt.want || len(lines) != 3 || !strings.HasPrefix(lines[1], "Usage: ") {
			t.Errorf("Run(%q) = %d, stderr %q; want exit 2, %q, a usage line and a pointer to --help", tt.args, code, errOut.String(), tt.want)
		}
	}
}

// With --log-format json anywhere on the line (before a "--"), a usage
// error is one JSON record, even when cobra refuses the line before any
// flag is parsed; without it, it stays the three text lines above.
func TestUsageErrorsAsJSON(t *testing.T) {
	tests := []struct {
		args    []string
		command string
		msg     string // "" when the line is refused for --log-format itself
	}{
		{[]string{"apply", "--nope", "p.csv", "--log-format", "json"}, "certalloc apply", "unknown flag: --nope"},
		{[]string{"apply", "--log-format=json", "--nope", "p.csv"}, "certalloc apply", "unknown flag: --nope"},
		{[]string{"plan", "--log-format", "json"}, "certalloc plan", "takes one plan file (PLAN.csv), got 0 arguments"},
		{[]string{"apply", "--log-format", "json", "--qps", "0", "p.csv"}, "certalloc apply", "--qps must be a positive number, got 0"},
		{[]string{"apply", "--log-format", "json", "--progress", "sometimes", "p.csv"}, "certalloc apply", `--progress must be auto, always or never, got "sometimes"`},
		{[]string{"nosuch", "--log-format", "json"}, "certalloc", `unknown command "nosuch"`},
		{[]string{"--log-format", "json", "aply", "p.csv"}, "certalloc", `unknown command "aply"`},
		{[]string{"version", "--log-format=json"}, "certalloc version", ""},
	}
	for _, tt := range tests {
		var errOut strings.Builder
		code := Run(t.Context(), tt.args, io.Discard, &errOut)
		lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
		var rec struct {
			Level, Msg, Command, Usage, Help string
			ExitCode                         int `json:"exit_code"`
		}
		if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &rec) != nil {
			t.Errorf("Run(%q): stderr %q; want one JSON record", tt.args, errOut.String())
			continue
		}
		if code != ExitUsage || rec.Level != "ERROR" || rec.ExitCode != ExitUsage || rec.Command != tt.command ||
			tt.msg != "" && rec.Msg != tt.msg || rec.Msg == "" || rec.Usage == "" || !strings.HasPrefix(rec.Help, "Run '") {
			t.Errorf("Run(%q) = %d, record %+v; want exit 2, an ERROR of %s saying %q, with its usage and help", tt.args, code, rec, tt.command, tt.msg)
		}
	}
	// After "--" it is an argument, not the flag.
	var errOut strings.Builder
	Run(t.Context(), []string{"apply", "--", "--log-format", "json"}, io.Discard, &errOut)
	if !strings.HasPrefix(errOut.String(), "certalloc apply: takes one plan file") {
		t.Errorf("apply -- --log-format json: stderr %q; want the text usage error", errOut.String())
	}
}

func TestHelpGoesToStdout(t *testing.T) {
	for _, args := range [][]string{{"apply", "--help"}, {"help", "plan"}, {"--help"}, {"emulator", "-h"}} {
		var out, errOut strings.Builder
		if code := Run(t.Context(), args, &out, &errOut); code != 0 || errOut.Len() != 0 || !strings.Contains(out.String(), "Usage:") {
			t.Errorf("Run(%q) = %d, stdout %d bytes, stderr %q", args, code, out.Len(), errOut.String())
		}
	}
	var out strings.Builder
	Run(t.Context(), []string{"apply", "--help"}, &out, io.Discard)
	if !strings.Contains(out.String(), "      --baseline string") || strings.Contains(out.String(), "  -baseline") {
		t.Errorf("apply --help does not list --flags with two dashes:\n%s", out.String())
	}
}

// With --log-format json every line on stderr is a JSON record, the final
// error included: a log shipper must not drop the one line that says why
// the run failed.
func TestJSONLogErrorLine(t *testing.T) {
	dir := t.TempDir()
	plan := filepath.Join(dir, "dup.csv")
	if err := os.WriteFile(plan, []byte("Id,CertTotalCount\n1,2\n1,3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAI5tExample")
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "not-a-secret")
	var errOut strings.Builder
	code := Run(t.Context(), []string{"apply", "--log-format", "json", "--endpoint", "http://127.0.0.1:9", plan}, io.Discard, &errOut)
	lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
	var last struct{ Level, Msg, Command string }
	for _, line := range lines {
		if err := json.Unmarshal([]byte(line), &last); err != nil {
			t.Errorf("stderr line %q is not JSON: %v", line, err)
		}
	}
	if code != ExitUsage || last.Level != "ERROR" || last.Command != "certalloc apply" || !strings.Contains(last.Msg, "dup.csv:3") {
		t.Errorf("exit %d, last record %+v; want %d, an ERROR of certalloc apply naming dup.csv:3", code, last, ExitUsage)
	}
}

// The emulator's exit line names its answers in words, successes first,
// then the codes by count.
func TestAnswersByCode(t *testing.T) {
	tests := []struct {
		in   map[string]int
		want string
	}{
		{map[string]int{}, "none"},
		{map[string]int{"": 2}, "2 succeeded"},
		{map[string]int{"Throttling.User": 3, "": 20, "(dropped)": 1, "InvalidParameter": 3}, "20 succeeded, 3 InvalidParameter, 3 Throttling.User, 1 (dropped)"},
	}
	for _, tt := range tests {
		if got := answersByCode(tt.in); got != tt.want {
			t.Errorf("answersByCode(%v) = %q; want %q", tt.in, got, tt.want)
		}
	}
}
