package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/certalloc/certalloc/pkg/casemu"
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

func benchFlags(stderr io.Writer) (fs *flag.FlagSet, scenarios, bin *string) {
	fs = newFlagSet("bench", benchUsage, stderr)
	scenarios = fs.String("scenario", "pace,slow,throttle,dryrun", "comma-separated scenarios to run")
	bin = fs.String("bin", "", "certalloc binary to measure (default: this one)")
	return fs, scenarios, bin
}

type benchResult struct {
	name    string
	figures string
	pass    bool
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, scenarios, bin := benchFlags(stderr)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return exitError{ExitFatal, err}
		}
		*bin = exe
	}
	dir, err := os.MkdirTemp("", "certalloc-bench")
	if err != nil {
		return exitError{ExitFatal, err}
	}
	defer os.RemoveAll(dir)

	b := &bench{bin: *bin, dir: dir, out: stdout}
	all := map[string]func(context.Context) (benchResult, error){
		"pace": b.pace, "slow": b.slow, "throttle": b.throttle, "dryrun": b.dryrun,
	}
	failed := 0
	fmt.Fprintf(stdout, "certalloc bench (%s), figures measured now against the emulator on loopback\n", version())
	for _, name := range strings.Split(*scenarios, ",") {
		fn := all[strings.TrimSpace(name)]
		if fn == nil {
			return usagef("bench: unknown scenario %q", name)
		}
		r, err := fn(ctx)
		if err != nil {
			return exitError{ExitFatal, fmt.Errorf("bench %s: %v", name, err)}
		}
		verdict := "PASS"
		if !r.pass {
			verdict = "FAIL"
			failed++
		}
		fmt.Fprintf(stdout, "%-9s %s  %s\n", r.name, verdict, r.figures)
	}
	if failed > 0 {
		return exitError{ExitFatal, fmt.Errorf("bench: %d scenario(s) missed their target", failed)}
	}
	return nil
}

type bench struct {
	bin, dir string
	out      io.Writer
}

// applyRun runs one apply in its own process against a fresh emulator.
func (b *bench) applyRun(ctx context.Context, name string, rows int, faults casemu.Faults, args ...string) (summary, casemu.Stats, error) {
	emu := casemu.New(casemu.Config{Keys: map[string]casemu.Key{EmulatorKeyID: {Secret: EmulatorSecret}}, Faults: faults})
	srv := httptest.NewServer(emu)
	defer srv.Close()

	planPath := filepath.Join(b.dir, name+".csv")
	if err := writePlan(planPath, rows); err != nil {
		return summary{}, casemu.Stats{}, err
	}
	sumPath := filepath.Join(b.dir, name+".summary.json")
	cmd := exec.CommandContext(ctx, b.bin, append([]string{"apply", "--endpoint", srv.URL, "--progress", "never",
		"--log-level", "warn", "--summary", sumPath}, append(args, planPath)...)...)
	cmd.Env = append(os.Environ(), "ALIBABA_CLOUD_ACCESS_KEY_ID="+EmulatorKeyID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET="+EmulatorSecret,
		"ALIBABA_CLOUD_SECURITY_TOKEN=", "ALIBABA_CLOUD_ECS_METADATA_DISABLED=true")
	var errOut strings.Builder
	cmd.Stderr = &errOut
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			return summary{}, casemu.Stats{}, err
		}
	}
	var s summary
	data, err := os.ReadFile(sumPath)
	if err != nil {
		return summary{}, casemu.Stats{}, fmt.Errorf("no summary (%v); stderr: %s", err, errOut.String())
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return summary{}, casemu.Stats{}, err
	}
	return s, emu.Stats(), nil
}

func writePlan(path string, rows int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("Id,CertTotalCount\n")
	var buf []byte
	for i := 1; i <= rows; i++ {
		buf = strconv.AppendInt(buf[:0], int64(100000+i), 10)
		buf = append(buf, ',')
		buf = strconv.AppendInt(buf, int64(i%1000), 10)
		buf = append(buf, '\n')
		w.Write(buf)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (b *bench) pace(ctx context.Context) (benchResult, error) {
	s, st, err := b.applyRun(ctx, "pace", 250, casemu.Faults{LatencyMin: 20 * time.Millisecond, LatencyMax: 80 * time.Millisecond}, "--qps", "10")
	if err != nil {
		return benchResult{}, err
	}
	throttled := st.ByCode["Throttling.User"]
	return benchResult{
		name: "pace",
		figures: fmt.Sprintf("250 rows, 20-80ms: %.2f requests/s sent (target >= 9.8), %.2f rows/s wall, most arrivals in any 1s window %d (target <= 10), throttled %d (target 0), succeeded %d",
			s.RequestRate, s.RowRate, st.MaxInWindow, throttled, s.Succeeded),
		pass: s.RequestRate >= 9.8 && st.MaxInWindow <= 10 && throttled == 0 && s.Succeeded == 250,
	}, nil
}

func (b *bench) slow(ctx context.Context) (benchResult, error) {
	s, st, err := b.applyRun(ctx, "slow", 300, casemu.Faults{LatencyMin: 1500 * time.Millisecond, LatencyMax: 1500 * time.Millisecond})
	if err != nil {
		return benchResult{}, err
	}
	throttled := st.ByCode["Throttling.User"]
	return benchResult{
		name: "slow",
		figures: fmt.Sprintf("300 rows, 1.5s latency, default flags: %.2f requests/s sent (target >= 9.5), %.2f rows/s wall, most in flight %d, most arrivals in any 1s window %d, throttled %d, succeeded %d",
			s.RequestRate, s.RowRate, st.MaxInFlight, st.MaxInWindow, throttled, s.Succeeded),
		pass: s.RequestRate >= 9.5 && st.MaxInWindow <= 10 && s.Succeeded == 300,
	}, nil
}

func (b *bench) throttle(ctx context.Context) (benchResult, error) {
	s, st, err := b.applyRun(ctx, "throttle", 300, casemu.Faults{LatencyMin: 20 * time.Millisecond, LatencyMax: 80 * time.Millisecond, ThrottleRate: 0.05}, "--qps", "10")
	if err != nil {
		return benchResult{}, err
	}
	return benchResult{
		name: "throttle",
		figures: fmt.Sprintf("300 rows, 5%% spurious throttles: goodput %.2f rows/s (target >= 9.0), failed %d (target 0), throttled %d of %d requests (%.1f%%), lowest pace %.2f/s, %.2f requests/s sent, most arrivals in any 1s window %d",
			s.RowRate, s.Failed+s.NotAttempted, s.Throttled, s.Requests, 100*float64(s.Throttled)/float64(max(1, s.Requests)), s.MinRate, s.RequestRate, st.MaxInWindow),
		pass: s.RowRate >= 9.0 && s.Failed+s.NotAttempted == 0 && s.Succeeded == 300,
	}, nil
}

func (b *bench) dryrun(ctx context.Context) (benchResult, error) {
	const rows = 1_000_000
	planPath := filepath.Join(b.dir, "million.csv")
	if err := writePlan(planPath, rows); err != nil {
		return benchResult{}, err
	}
	cmd := exec.CommandContext(ctx, b.bin, "plan", planPath)
	cmd.Env = append(os.Environ(), "ALIBABA_CLOUD_ECS_METADATA_DISABLED=true")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return benchResult{}, fmt.Errorf("%v: %s", err, out.String())
	}
	wall := time.Since(start)
	var rssMiB float64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rssMiB = float64(ru.Maxrss) / 1024 // KiB on Linux
	}
	valid := strings.Contains(out.String(), fmt.Sprintf("%d rows", rows))
	return benchResult{
		name:    "dryrun",
		figures: fmt.Sprintf("1,000,000 rows: %.2fs wall (target <= 3s), %.1f MiB peak RSS (target <= 100)", wall.Seconds(), rssMiB),
		pass:    valid && wall <= 3*time.Second && rssMiB > 0 && rssMiB <= 100,
	}, nil
}
