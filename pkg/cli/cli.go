// Package cli is certalloc's command line: argument parsing, wiring of the
// plan reader, runner, client and reporter, output for people and for
// machines, and the mapping of outcomes to exit codes.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/certalloc/certalloc/pkg/job"
)

// Exit codes, documented in the README for the scripts and cron jobs that
// call certalloc. A run's own code is decided by the job (its metrics
// record it); this file maps every other error to one.
const (
	ExitOK          = job.ExitOK
	ExitFatal       = job.ExitFatal
	ExitUsage       = job.ExitUsage
	ExitPartial     = job.ExitPartial
	ExitLocked      = job.ExitLocked
	ExitInterrupted = job.ExitInterrupted
	ExitTerminated  = job.ExitTerminated
)

// SignalError is the cancellation cause main gives the context when a
// signal asks the run to stop.
type SignalError = job.Interrupted

// ExitCodeFor maps a signal to its conventional exit code.
func ExitCodeFor(sig os.Signal) int { return job.Interrupted{Signal: sig}.ExitCode() }

// usageError is a problem with the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// Version is set by the linker in release builds; otherwise the module
// version from the build info is used.
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

const mainUsage = `certalloc applies certificate-quota allocation plans to Alibaba Cloud.

Usage:
  certalloc apply [flags] PLAN.csv     apply a plan (AssignCertificateCount per row)
  certalloc plan [flags] PLAN.csv      check and price a plan: apply --dry-run
  certalloc emulator [flags]           run a local emulator of the cas endpoint
  certalloc bench [flags]              measure pacing and throughput against the emulator
  certalloc version                    print the version

Run 'certalloc COMMAND --help' for a command's flags and examples.
`

// Run runs certalloc with args (without the program name) and returns the
// process exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, mainUsage)
		return ExitUsage
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "apply":
		err = runApply(ctx, rest, false, stdout, stderr)
	case "plan":
		err = runApply(ctx, rest, true, stdout, stderr)
	case "emulator":
		err = runEmulator(ctx, rest, stdout, stderr)
	case "bench":
		err = runBench(ctx, rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "certalloc %s\n", version())
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, mainUsage)
	default:
		fmt.Fprintf(stderr, "certalloc: unknown command %q\n\n%s", cmd, mainUsage)
		return ExitUsage
	}
	return exitCode(err, stderr)
}

// checkArgs parses a command line as Run would, without running it: for
// tests that hold documented examples to the real flags.
func checkArgs(args []string, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("no command")
	}
	switch args[0] {
	case "apply", "plan":
		_, _, err := parseApply(args[1:], args[0] == "plan", stderr)
		return err
	case "emulator":
		_, _, err := parseEmulator(args[1:], stderr)
		return err
	case "bench":
		_, err := parseBench(args[1:], stderr)
		return err
	case "version", "help":
		return nil
	}
	return usagef("unknown command %q", args[0])
}

// exitCode reports err and picks the exit code for it.
func exitCode(err error, stderr io.Writer) int {
	var (
		ue usageError
		ie *job.InputError
		re *job.RunError
		se SignalError
	)
	code := ExitFatal
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &ue), errors.As(err, &ie):
		code = ExitUsage
	case errors.Is(err, job.ErrLocked):
		code = ExitLocked
	case errors.As(err, &re):
		code = re.Code
	case errors.As(err, &se):
		return se.ExitCode()
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintf(stderr, "certalloc: %v\n", msg)
	}
	return code
}

// newFlagSet returns a flag set that reports errors instead of exiting and
// prints usage with examples.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, strings.TrimLeft(usage, "\n"))
		fmt.Fprintln(stderr, "\nFlags:")
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, allowing flags after positional arguments
// ("apply plan.csv --dry-run"), as operators type them.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
