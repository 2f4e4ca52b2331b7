package cli

import (
	"io"
	"os"
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
