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
	"syscall"
)

// Exit codes, documented in the README for the scripts and cron jobs that
// call certalloc. This is the only place they are decided.
const (
	ExitOK          = 0   // every row succeeded (dry run: the plan is valid)
	ExitFatal       = 1   // stopped by a run-fatal error or the failure limit
	ExitUsage       = 2   // bad flags or an invalid plan; nothing was sent
	ExitPartial     = 3   // finished, but some rows failed or the deadline cut the run
	ExitLocked      = 4   // another run holds the report; nothing was sent
	ExitInterrupted = 130 // SIGINT
	ExitTerminated  = 143 // SIGTERM
)

// SignalError is the cancellation cause main gives the context on SIGINT
// or SIGTERM.
type SignalError struct{ Signal os.Signal }

func (e SignalError) Error() string { return "interrupted by " + e.Signal.String() }

// ExitCodeFor maps a signal to its conventional exit code.
func ExitCodeFor(sig os.Signal) int {
	if sig == syscall.SIGTERM {
		return ExitTerminated
	}
	return ExitInterrupted
}

// usageError is a problem with the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// exitError carries an exit code decided deep in a command.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

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
		fs, _, _ := benchFlags(stderr)
		_, err := parseFlags(fs, args[1:])
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
		ee exitError
		se SignalError
	)
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "certalloc: %v\n", err)
		return ExitUsage
	case errors.As(err, &ee):
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintf(stderr, "certalloc: %v\n", ee.err)
		}
		return ee.code
	case errors.As(err, &se):
		return ExitCodeFor(se.Signal)
	}
	fmt.Fprintf(stderr, "certalloc: %v\n", err)
	return ExitFatal
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
