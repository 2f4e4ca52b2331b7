package cli

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"

	"github.com/certalloc/certalloc/pkg/bench"
)

const benchUsage = `
Usage: certalloc bench [flags]

Measures certalloc against its emulator over loopback HTTP, with the real
SDK, each apply in its own process, and prints the figures next to their
targets. Exits 1 if a target is missed.

Scenarios:
  pace      250 rows, --qps 10, limit 10/s, 20-80ms latency: >= 9.8 requests/s,
            never more than 10 arrivals in any second, 0 throttled
  slow      300 rows, default flags, 1.5s latency: >= 9.5 requests/s
  throttle  300 rows, --qps 10, 5% spurious throttles: >= 9.0 rows/s, 0 failed
  dryrun    a 1,000,000-row plan: <= 3s wall, <= 100 MiB peak RSS

Examples:
  certalloc bench
  certalloc bench --scenario pace,dryrun
`

func parseBench(args []string, stderr io.Writer) (bench.Options, error) {
	fs := newFlagSet("bench", benchUsage, stderr)
	scenarios := fs.String("scenario", strings.Join(bench.Scenarios, ","), "comma-separated scenarios to run")
	bin := fs.String("bin", "", "certalloc binary to measure (default: this one)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return bench.Options{}, err
	}
	if len(pos) != 0 {
		return bench.Options{}, usagef("bench takes no arguments")
	}
	return bench.Options{Bin: *bin, Scenarios: strings.Split(*scenarios, ","), Version: version()}, nil
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseBench(args, stderr)
	if err != nil {
		return err
	}
	if o.Bin == "" {
		if o.Bin, err = os.Executable(); err != nil {
			return err
		}
	}
	o.Out = stdout
	err = bench.Run(ctx, o)
	var unknown *bench.UnknownScenarioError
	if errors.As(err, &unknown) {
		return usagef("bench: %v", err)
	}
	return err
}
