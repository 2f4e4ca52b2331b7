// Package cli is certalloc's command line: it parses flags (spf13/cobra,
// GNU style), builds a job.Config, prints what the job returns, and maps
// outcomes to exit codes. The running of a job lives in pkg/job.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

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

// exitCodeFor maps a signal to its conventional exit code.
func exitCodeFor(sig os.Signal) int { return job.Interrupted{Signal: sig}.ExitCode() }

// Abandon reports a second signal, which ends the process at once, in
// the run's log format (read from args, as a usage error's is), and
// returns the exit code. Without it the log would end at the run's start,
// with no word of why or of what it left.
func Abandon(args []string, stderr io.Writer, sig os.Signal) int {
	code := exitCodeFor(sig)
	name := "certalloc"
	if w := firstWord(args); w != "" {
		name += " " + w
	}
	msg := fmt.Sprintf("stopped at once by a second %v: answers in flight were not waited for, and the report and failures file not written; "+
		"the journal beside the report holds every row answered, and the next run reads it", sig)
	if jsonLogsAsked(args) {
		slog.New(slog.NewJSONHandler(stderr, nil)).Error(msg, "command", name, "exit_code", code)
	} else {
		fmt.Fprintf(stderr, "%s: %s\n", name, msg)
	}
	return code
}

// usageError is a problem with the command line: it is reported in one
// line, followed by the command's usage line.
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

// env is what the commands share: where output goes, and whether to stop
// after parsing (for tests that hold documented examples to the flags).
type env struct {
	ctx            context.Context
	stdout, stderr io.Writer
	checkOnly      bool
	// errLog, when set (--log-format json), writes the final error line as
	// a log record, so that a log shipper parses every line of stderr.
	errLog *slog.Logger
}

// Run runs certalloc with args (without the program name) and returns the
// process exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr}
	cmd, err := e.root().ExecuteC(args)
	code, msg := exitCode(cmd, err)
	if msg == "" {
		return code
	}
	name := cmdName(cmd)
	if e.errLog == nil && jsonLogsAsked(args) {
		// A usage error comes before the flags are parsed, or before the
		// logger exists; with --log-format json it too is a record.
		e.errLog = slog.New(slog.NewJSONHandler(stderr, nil))
	}
	if e.errLog == nil {
		fmt.Fprintf(stderr, "%s: %s\n", name, msg)
		return code
	}
	// One record: the message's first line, and a usage error's usage and
	// help lines as fields of their own.
	first, rest, _ := strings.Cut(msg, "\n")
	attrs := []any{"command", name, "exit_code", code}
	if usage, help, ok := strings.Cut(rest, "\n"); ok && strings.HasPrefix(usage, "Usage: ") {
		attrs = append(attrs, "usage", strings.TrimPrefix(usage, "Usage: "), "help", help)
	} else if rest != "" {
		first = msg
	}
	e.errLog.Error(first, attrs...)
	return code
}

// jsonLogsAsked reports whether the raw command line asks for JSON logs,
// read before cobra parses it, so that a mistyped flag or a missing
// argument still gets a record.
func jsonLogsAsked(args []string) bool {
	for i, a := range args {
		switch {
		case a == "--":
			return false
		case a == "--log-format=json":
			return true
		case a == "--log-format" && i+1 < len(args) && args[i+1] == "json":
			return true
		}
	}
	return false
}

func cmdName(cmd *cobra.Command) string {
	if cmd == nil {
		return "certalloc"
	}
	return cmd.CommandPath()
}

// checkArgs parses a command line as Run would, and validates it, without
// running it.
func checkArgs(args []string) error {
	e := &env{ctx: context.Background(), stdout: io.Discard, stderr: io.Discard, checkOnly: true}
	_, err := e.root().ExecuteC(args)
	return err
}

func (e *env) root() *rootCmd {
	root := &cobra.Command{
		Use:   "certalloc",
		Short: "Apply certificate-quota allocation plans to Alibaba Cloud",
		Long: `certalloc applies certificate-quota allocation plans to Alibaba Cloud: one
AssignCertificateCount call (Certificate Management Service) per plan row,
paced to the account's rate limit, with a report row per plan row.`,
		Version:       version(),
		SilenceErrors: true, // errors are printed once, by exitCode
		SilenceUsage:  true,
		Args:          noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usagef("a command is needed")
		},
	}
	root.SetVersionTemplate("certalloc {{.Version}}\n")
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	r := &rootCmd{Command: root}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		// Cobra finds a command past the flags before it parses them, so
		// a flag refused by the root means no word of the line named a
		// command: a mistyped one is what to say, not the flag it has.
		if !c.HasParent() {
			if name := firstWord(r.args); name != "" {
				return usagef("unknown command %q", name)
			}
		}
		return usageError{err.Error()}
	})
	root.AddCommand(e.applyCmd(false), e.applyCmd(true), e.emulatorCmd(), e.benchCmd(), &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !e.checkOnly {
				fmt.Fprintf(e.stdout, "certalloc %s\n", version())
			}
			return nil
		},
	})
	// Cobra's own completion command, with certalloc's usage errors: its
	// default would accept "completion nosuchshell" silently.
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Args = noArgs
			c.RunE = func(*cobra.Command, []string) error {
				return usagef("name a shell: bash, zsh, fish or powershell")
			}
		}
	}
	return r
}

// rootCmd runs the command tree with the given arguments.
type rootCmd struct {
	*cobra.Command
	args []string
}

func (r *rootCmd) ExecuteC(args []string) (*cobra.Command, error) {
	r.args = args
	r.SetArgs(args)
	return r.Command.ExecuteC()
}

// firstWord is the first argument that is neither a flag nor, as cobra
// reads a line before it knows the flags, the value after one.
func firstWord(args []string) string {
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--":
			if i+1 < len(args) {
				return args[i+1]
			}
			return ""
		case a == "-h" || a == "--help" || a == "-v" || a == "--version":
		case strings.HasPrefix(a, "--") && !strings.Contains(a, "="), len(a) == 2 && a[0] == '-':
			i++
		case strings.HasPrefix(a, "-"):
		default:
			return a
		}
	}
	return ""
}

// noArgs and exactlyOne give usage errors in certalloc's words.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		if cmd.HasSubCommands() {
			return usagef("unknown command %q", args[0])
		}
		return usagef("takes no arguments, got %q", args[0])
	}
	return nil
}

func exactlyOne(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return usagef("takes one %s, got %d arguments", what, len(args))
		}
		return nil
	}
}

// exitCode picks the exit code for err and the message that reports it,
// to follow the name of the command the user typed. A usage error gets
// one line and the usage line, not the whole help.
func exitCode(cmd *cobra.Command, err error) (code int, msg string) {
	if err == nil {
		return ExitOK, ""
	}
	var (
		ue usageError
		ie *job.InputError
		re *job.RunError
		se SignalError
	)
	code = ExitFatal
	switch {
	case errors.As(err, &ue):
		name := cmdName(cmd)
		switch {
		case cmd == nil:
			return ExitUsage, err.Error()
		case cmd.HasAvailableSubCommands():
			var names []string
			for _, c := range cmd.Commands() {
				if c.IsAvailableCommand() {
					names = append(names, c.Name())
				}
			}
			return ExitUsage, fmt.Sprintf("%v\nUsage: %s COMMAND (%s)\nRun '%s --help' for more.", err, name, strings.Join(names, ", "), name)
		default:
			return ExitUsage, fmt.Sprintf("%v\nUsage: %s\nRun '%s --help' for the flags and examples.", err, cmd.UseLine(), name)
		}
	case errors.As(err, &ie):
		code = ExitUsage
	case errors.Is(err, job.ErrLocked):
		code = ExitLocked
	case errors.As(err, &re):
		code = re.Code
	case errors.As(err, &se):
		return se.ExitCode(), fmt.Sprintf("%v before anything was sent; no file was changed", se)
	}
	return code, err.Error()
}
