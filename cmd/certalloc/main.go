// Command certalloc applies certificate-quota allocation plans to Alibaba
// Cloud. All of it lives in pkg/cli and pkg/job; main only wires signals to
// the run and its exit code to the process.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/certalloc/certalloc/pkg/cli"
)

func main() {
	os.Exit(run())
}

func run() int {
	// A run's memory is mostly long-lived (the plan's rows and what is
	// known of each); the rest is the SDK's short-lived garbage. Go's
	// default lets the heap grow to twice the live set before collecting;
	// half again is plenty, and keeps a big plan small inside a container's
	// memory limit. The collector's extra work is nothing at 10 requests a
	// second. GOGC, when set, still decides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	// A closed stdout or stderr (a pager quit, a log pipe gone) must not
	// kill the run before its record is written: with SIGPIPE ignored, a
	// write there fails and the run goes on.
	signal.Ignore(syscall.SIGPIPE)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		// The first signal drains: no new request, in-flight ones finish,
		// the report and failures file are completed. SIGHUP (the terminal
		// or the SSH session went away) drains like SIGTERM. The second
		// signal exits at once, saying so; the journal then holds every
		// row answered, and the next run reads it.
		sig := <-sigs
		cancel(cli.SignalError{Signal: sig})
		sig = <-sigs
		os.Exit(cli.Abandon(os.Args[1:], os.Stderr, sig))
	}()
	return cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
}
