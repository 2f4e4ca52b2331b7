// Command certalloc applies certificate-quota allocation plans to Alibaba
// Cloud. All of it lives in pkg/cli; main only wires signals to exit codes.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/certalloc/certalloc/pkg/cli"
)

func main() {
	os.Exit(run())
}

func run() int {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal drains: no new request, in-flight ones finish,
		// the report and failures file are completed. The second exits at
		// once; every report row already written is whole.
		sig := <-sigs
		cancel(cli.SignalError{Signal: sig})
		sig = <-sigs
		os.Exit(cli.ExitCodeFor(sig))
	}()
	return cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
}
