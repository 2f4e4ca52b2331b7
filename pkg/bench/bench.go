// Package bench measures certalloc against its emulator over loopback
// HTTP, through the real SDK, each run in its own process, and holds the
// figures to their targets. It is what 'certalloc bench' runs; its figures
// are measured each time, never typed in.
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
	"github.com/certalloc/certalloc/pkg/netpath"
)

// ErrMissed means at least one figure missed its target.
var ErrMissed = errors.New("a scenario missed its target")

// UnknownScenarioError names a scenario Run does not know.
type UnknownScenarioError struct{ Name string }

func (e *UnknownScenarioError) Error() string {
	return fmt.Sprintf("unknown scenario %q (have %s)", e.Name, strings.Join(Scenarios(), ", "))
}

// Options tune Run.
type Options struct {
	Bin       string   // the certalloc binary to measure
	Scenarios []string // default: all
	Version   string   // printed in the header
	Out       io.Writer
}

type result struct {
	figures string
	pass    bool
}

// Run runs the scenarios and prints a line per scenario: its figures and
// PASS or FAIL against the target.
func Run(ctx context.Context, o Options) error {
	names := o.Scenarios
	if len(names) == 0 {
		names = Scenarios()
	}
	byName := map[string]scenario{}
	for _, s := range scenarios {
		byName[s.name] = s
	}
	for i, name := range names {
		names[i] = strings.TrimSpace(name)
		if _, ok := byName[names[i]]; !ok {
			return &UnknownScenarioError{name}
		}
	}
	dir, err := os.MkdirTemp("", "certalloc-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	b := &bench{bin: o.Bin, dir: dir}
	failed := 0
	fmt.Fprintf(o.Out, "certalloc bench (%s), figures measured now against the emulator on loopback\n", o.Version)
	for _, name := range names {
		r, err := byName[name].run(b, ctx)
		if err != nil {
			return fmt.Errorf("bench %s: %v", name, err)
		}
		verdict := "PASS"
		if !r.pass {
			verdict = "FAIL"
			failed++
		}
		fmt.Fprintf(o.Out, "%-10s %s  %s\n", name, verdict, r.figures)
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d scenario(s)", ErrMissed, failed)
	}
	return nil
}

type bench struct {
	bin, dir string
}

// emulator starts an emulator on loopback for one scenario.
func emulator(cfg casemu.Config) (*casemu.Server, *httptest.Server) {
	cfg.Keys = map[string]casemu.Key{casemu.DemoKeyID: {Secret: casemu.DemoSecret}}
	emu := casemu.New(cfg)
	return emu, httptest.NewServer(emu)
}

// applyRun runs one apply of a rows-row plan in its own process against a
// fresh emulator, and returns its JSON summary, what the emulator saw,
// and the process's peak RSS in MiB (0 where it cannot be measured).
func (b *bench) applyRun(ctx context.Context, name string, rows int, cfg casemu.Config, args ...string) (job.Summary, casemu.Stats, float64, error) {
	s, st, _, rss, err := b.applyVia(ctx, name, rows, cfg, nil, args...)
	return s, st, rss, err
}

// path is a network path's one-way delay, N(mean, sd) cut at 0.
type path struct{ mean, sd time.Duration }

func (p path) String() string { return fmt.Sprintf("%v±%v", p.mean, p.sd) }

// applyVia is applyRun with the client's traffic through a delaying TCP
// proxy (pkg/netpath) in front of the emulator when via is set: the
// network path the targets are judged on. It also returns what the proxy
// carried.
func (b *bench) applyVia(ctx context.Context, name string, rows int, cfg casemu.Config, via *path, args ...string) (job.Summary, casemu.Stats, netpath.Stats, float64, error) {
	emu, srv := emulator(cfg)
	defer srv.Close()
	endpoint := srv.URL
	var px *netpath.Proxy
	if via != nil {
		var err error
		if px, err = netpath.Listen("127.0.0.1:0", srv.Listener.Addr().String(), via.mean, via.sd, 0); err != nil {
			return job.Summary{}, casemu.Stats{}, netpath.Stats{}, 0, err
		}
		defer px.Close()
		endpoint = "http://" + px.Addr().String()
	}
	planPath := filepath.Join(b.dir, name+".csv")
	if err := WritePlan(planPath, rows); err != nil {
		return job.Summary{}, casemu.Stats{}, netpath.Stats{}, 0, err
	}
	s, rss, err := b.certalloc(ctx, name, append([]string{"apply", "--endpoint", endpoint}, append(args, planPath)...)...)
	var ps netpath.Stats
	if px != nil {
		ps = px.Stats()
	}
	return s, emu.Stats(), ps, rss, err
}

// certalloc runs the binary with the emulator's credentials, and returns
// the run's JSON summary and peak RSS in MiB.
func (b *bench) certalloc(ctx context.Context, name string, args ...string) (job.Summary, float64, error) {
	sumPath := filepath.Join(b.dir, name+".summary.json")
	os.Remove(sumPath)
	args = append([]string{args[0], "--progress", "never", "--log-level", "warn", "--summary", sumPath}, args[1:]...)
	cmd := b.command(ctx, args...)
	var errOut strings.Builder
	cmd.Stderr = &errOut
	rss, _, err := run(cmd)
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			return job.Summary{}, 0, err
		}
	}
	var s job.Summary
	data, err := os.ReadFile(sumPath)
	if err != nil {
		return job.Summary{}, 0, fmt.Errorf("no summary (%v); stderr: %s", err, errOut.String())
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return job.Summary{}, 0, err
	}
	return s, rss, nil
}

// timed runs the binary and returns its wall time, peak RSS in MiB and
// whether RSS could be measured.
func (b *bench) timed(ctx context.Context, args ...string) (time.Duration, float64, bool, string, error) {
	cmd := b.command(ctx, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	rss, ok, err := run(cmd)
	wall := time.Since(start)
	if err != nil {
		return 0, 0, false, out.String(), fmt.Errorf("%v: %s", err, out.String())
	}
	return wall, rss, ok, out.String(), nil
}

// command is the binary with the emulator's credentials, ready to run and
// be measured.
func (b *bench) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, b.bin, args...)
	cmd.Env = append(os.Environ(), "ALIBABA_CLOUD_ACCESS_KEY_ID="+casemu.DemoKeyID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET="+casemu.DemoSecret,
		"ALIBABA_CLOUD_SECURITY_TOKEN=", "ALIBABA_CLOUD_ECS_METADATA_DISABLED=true")
	return cmd
}

// WritePlan writes a plan of rows rows, Ids from 100001.
func WritePlan(path string, rows int) error {
	return writeRows(path, "Id,CertTotalCount\n", rows, func(buf []byte, i int) []byte {
		buf = strconv.AppendInt(buf, int64(100000+i), 10)
		buf = append(buf, ',')
		return strconv.AppendInt(buf, int64(i%1000), 10)
	})
}

func writeRows(path, header string, rows int, row func([]byte, int) []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString(header)
	var buf []byte
	for i := 1; i <= rows; i++ {
		buf = append(row(buf[:0], i), '\n')
		w.Write(buf)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
