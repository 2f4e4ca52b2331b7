package cli

import (
	"errors"
	"os"

	"github.com/spf13/cobra"

	"github.com/certalloc/certalloc/pkg/bench"
)

const benchLong = `Measures certalloc against its emulator over loopback HTTP, with the real
SDK, each run in its own process, and prints the figures next to their
targets. Exits 1 if a target is missed.

Scenarios:
`

func (e *env) benchCmd() *cobra.Command {
	var scenarios []string
	var bin string
	cmd := &cobra.Command{
		Use:   "bench [flags]",
		Short: "Measure pacing and throughput against the emulator",
		Long:  benchLong + bench.Targets(),
		Example: `  certalloc bench
  certalloc bench --scenario pace,dryrun`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if e.checkOnly {
				return nil
			}
			if bin == "" {
				var err error
				if bin, err = os.Executable(); err != nil {
					return err
				}
			}
			err := bench.Run(e.ctx, bench.Options{Bin: bin, Scenarios: scenarios, Version: version(), Out: e.stdout})
			var unknown *bench.UnknownScenarioError
			if errors.As(err, &unknown) {
				return usageError{err.Error()}
			}
			return err
		},
	}
	cmd.Flags().StringSliceVar(&scenarios, "scenario", bench.Scenarios(), "comma-separated scenarios to run")
	cmd.Flags().StringVar(&bin, "bin", "", "certalloc `binary` to measure (default: this one)")
	cmd.RegisterFlagCompletionFunc("scenario", cobra.FixedCompletions(bench.Scenarios(), cobra.ShellCompDirectiveNoFileComp))
	return cmd
}
