// Package bench measures certalloc against its emulator over loopback
// HTTP, through the real SDK, each apply in its own process, and holds the
// figures to their targets. It is what 'certalloc bench' runs.
package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/certalloc/certalloc/pkg/casemu"
	"github.com/certalloc/certalloc/pkg/job"
)

// Scenarios are the names Run knows, in the order they run by default.
var Scenarios = []string{"pace", "slow", "throttle", "dryrun"}

// ErrMissed means at least one figure missed its target.
var ErrMissed = errors.New("a scenario missed its target")

// UnknownScenarioError names a scenario Run does not know.
type UnknownScenarioError struct{ Name string }

func (e *UnknownScenarioError) Error() string {
	return fmt.Sprintf("unknown scenario %q (have %s)", e.Name, strings.Join(Scenarios, ", "))
}

// Options tune Run.
type Options struct {
	Bin       string   // the certalloc binary to measure
	Scenarios []string // default: all
	Version   string   // printed in the header
	Out       io.Writer
}

type result struct {
	name    string
	figures string
	pass    bool
}

// Run runs the scenarios and prints a line per scenario: its figures and
// PASS or FAIL against the target.
func Run(ctx context.Context, o Options) error {
	names := o.Scenarios
	if len(names) == 0 {
		names = Scenarios
	}
	dir, err := os.MkdirTemp("", "certalloc-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	b := &bench{bin: o.Bin, dir: dir}
	all := map[string]func(context.Context) (result, error){
		"pace": b.pace, "slow": b.slow, "throttle": b.throttle, "dryrun": b.dryrun,
	}
	for _, name := range names {
		if all[strings.TrimSpace(name)] == nil {
			return &UnknownScenarioError{name}
		}
	}
	failed := 0
	fmt.Fprintf(o.Out, "certalloc bench (%s), figures measured now against the emulator on loopback\n", o.Version)
	for _, name := range names {
		r, err := all[strings.TrimSpace(name)](ctx)
		if err != nil {
			return fmt.Errorf("bench %s: %v", name, err)
		}
		verdict := "PASS"
		if !r.pass {
			verdict = "FAIL"
			failed++
		}
		fmt.Fprintf(o.Out, "%-9s %s  %s\n", r.name, verdict, r.figures)
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d scenario(s)", ErrMissed, failed)
	}
	return nil
}

type bench struct {
	bin, dir string
}

// applyRun runs one apply in its own process against a fresh emulator.
func (b *bench) applyRun(ctx context.Context, name string, rows int, faults casemu.Faults, args ...string) (job.Summary, casemu.Stats, error) {
	emu := casemu.New(casemu.Config{Keys: map[string]casemu.Key{casemu.DemoKeyID: {Secret: casemu.DemoSecret}}, Faults: faults})
	srv := httptest.NewServer(emu)
	defer srv.Close()

	planPath := filepath.Join(b.dir, name+".csv")
	if err := WritePlan(planPath, rows); err != nil {
		return job.Summary{}, casemu.Stats{}, err
	}
	sumPath := filepath.Join(b.dir, name+".summary.json")
	cmd := exec.CommandContext(ctx, b.bin, append([]string{"apply", "--endpoint", srv.URL, "--progress", "never",
		"--log-level", "warn", "--summary", sumPath}, append(args, planPath)...)...)
	cmd.Env = append(os.Environ(), "ALIBABA_CLOUD_ACCESS_KEY_ID="+casemu.DemoKeyID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET="+casemu.DemoSecret,
		"ALIBABA_CLOUD_SECURITY_TOKEN=", "ALIBABA_CLOUD_ECS_METADATA_DISABLED=true")
	var errOut strings.Builder
	cmd.Stderr = &errOut
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			return job.Summary{}, casemu.Stats{}, err
		}
	}
	var s job.Summary
	data, err := os.ReadFile(sumPath)
	if err != nil {
		return job.Summary{}, casemu.Stats{}, fmt.Errorf("no summary (%v); stderr: %s", err, errOut.String())
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return job.Summary{}, casemu.Stats{}, err
	}
	return s, emu.Stats(), nil
}

// WritePlan writes a plan of rows rows, Ids from 100001.
func WritePlan(path string, rows int) error {
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

func (b *bench) pace(ctx context.Context) (result, error) {
	s, st, err := b.applyRun(ctx, "pace", 250, casemu.Faults{LatencyMin: 20 * time.Millisecond, LatencyMax: 80 * time.Millisecond}, "--qps", "10")
	if err != nil {
		return result{}, err
	}
	throttled := st.Limited
	return result{
		name: "pace",
		figures: fmt.Sprintf("250 rows, 20-80ms: %.2f requests/s sent (target >= 9.8), %.2f rows/s wall, most arrivals in any 1s window %d (target <= 10), throttled %d (target 0), succeeded %d",
			s.RequestRate, s.RowRate, st.MaxInWindow, throttled, s.Succeeded),
		pass: s.RequestRate >= 9.8 && st.MaxInWindow <= 10 && throttled == 0 && s.Succeeded == 250,
	}, nil
}

func (b *bench) slow(ctx context.Context) (result, error) {
	s, st, err := b.applyRun(ctx, "slow", 300, casemu.Faults{LatencyMin: 1500 * time.Millisecond, LatencyMax: 1500 * time.Millisecond})
	if err != nil {
		return result{}, err
	}
	throttled := st.Limited
	return result{
		name: "slow",
		figures: fmt.Sprintf("300 rows, 1.5s latency, default flags: %.2f requests/s sent (target >= 9.5), %.2f rows/s wall, most in flight %d, most arrivals in any 1s window %d, throttled %d, succeeded %d",
			s.RequestRate, s.RowRate, st.MaxInFlight, st.MaxInWindow, throttled, s.Succeeded),
		pass: s.RequestRate >= 9.5 && st.MaxInWindow <= 10 && s.Succeeded == 300,
	}, nil
}

func (b *bench) throttle(ctx context.Context) (result, error) {
	s, st, err := b.applyRun(ctx, "throttle", 300, casemu.Faults{LatencyMin: 20 * time.Millisecond, LatencyMax: 80 * time.Millisecond, ThrottleRate: 0.05}, "--qps", "10")
	if err != nil {
		return result{}, err
	}
	return result{
		name: "throttle",
		figures: fmt.Sprintf("300 rows, 5%% spurious throttles: goodput %.2f rows/s (target >= 9.0), failed %d (target 0), throttled %d of %d requests (%.1f%%), lowest pace %.2f/s, %.2f requests/s sent, most arrivals in any 1s window %d",
			s.RowRate, s.Failed+s.NotAttempted, s.Throttled, s.Requests, 100*float64(s.Throttled)/float64(max(1, s.Requests)), s.MinRate, s.RequestRate, st.MaxInWindow),
		pass: s.RowRate >= 9.0 && s.Failed+s.NotAttempted == 0 && s.Succeeded == 300,
	}, nil
}

func (b *bench) dryrun(ctx context.Context) (result, error) {
	const rows = 1_000_000
	planPath := filepath.Join(b.dir, "million.csv")
	if err := WritePlan(planPath, rows); err != nil {
		return result{}, err
	}
	cmd := exec.CommandContext(ctx, b.bin, "plan", planPath)
	cmd.Env = append(os.Environ(), "ALIBABA_CLOUD_ECS_METADATA_DISABLED=true")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("%v: %s", err, out.String())
	}
	wall := time.Since(start)
	rssMiB, measured := peakRSSMiB(cmd.ProcessState)
	valid := strings.Contains(out.String(), fmt.Sprintf("%d rows", rows))
	rss := "peak RSS not measurable on this platform"
	if measured {
		rss = fmt.Sprintf("%.1f MiB peak RSS (target <= 100)", rssMiB)
	}
	return result{
		name:    "dryrun",
		figures: fmt.Sprintf("1,000,000 rows: %.2fs wall (target <= 3s), %s", wall.Seconds(), rss),
		pass:    valid && wall <= 3*time.Second && measured && rssMiB <= 100,
	}, nil
}
