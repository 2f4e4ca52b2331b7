package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/certalloc/certalloc/pkg/casemu"
	"github.com/certalloc/certalloc/pkg/job"
	"github.com/certalloc/certalloc/pkg/report"
)

type scenario struct {
	name, target string
	run          func(*bench, context.Context) (result, error)
}

// Scenarios names the scenarios, in the order Run runs them by default.
func Scenarios() []string {
	names := make([]string, len(scenarios))
	for i, s := range scenarios {
		names[i] = s.name
	}
	return names
}

// Targets describes each scenario and its target, for --help.
func Targets() string {
	var b []byte
	for _, s := range scenarios {
		b = fmt.Appendf(b, "  %-10s %s\n", s.name, s.target)
	}
	return string(b)
}

var clean = casemu.Faults{LatencyMin: 20 * time.Millisecond, LatencyMax: 80 * time.Millisecond}

// The targets are issue 11's. Throttles are counted where the service
// counts them: the emulator's limit (Stats.Limited), not spurious ones.
var scenarios = []scenario{
	{"pace", "200 rows, --qps 10, limit 10/s, 20-80ms latency, loopback: goodput >= 9.85 rows/s, never more than 10 arrivals in any second, 0 throttled",
		func(b *bench, ctx context.Context) (result, error) {
			s, st, _, err := b.applyRun(ctx, "pace", 200, casemu.Config{Faults: clean}, "--qps", "10")
			return result{
				fmt.Sprintf("goodput %.2f rows/s, %.2f requests/s sent, most arrivals in any 1s window %d, throttled %d, guard %.0fms, succeeded %d of 200",
					s.Goodput, s.RequestRate, st.MaxInWindow, st.Limited, 1000*s.WidestGuard, s.Succeeded),
				s.Goodput >= 9.85 && st.MaxInWindow <= 10 && st.Limited == 0 && s.Succeeded == 200,
			}, err
		}},
	{"fractional", "250 rows, --qps 9.5, 20-80ms latency: 9.35 to 9.5 requests/s, never more than 10 (ceil 9.5) in any second, 0 throttled",
		func(b *bench, ctx context.Context) (result, error) {
			s, st, _, err := b.applyRun(ctx, "fractional", 250, casemu.Config{Faults: clean}, "--qps", "9.5")
			return result{
				fmt.Sprintf("%.3f requests/s sent, most arrivals in any 1s window %d, throttled %d, succeeded %d of 250",
					s.RequestRate, st.MaxInWindow, st.Limited, s.Succeeded),
				s.RequestRate >= 9.35 && s.RequestRate <= 9.5+0.01 && st.MaxInWindow <= 10 && st.Limited == 0 && s.Succeeded == 250,
			}, err
		}},
	{"jitter", "300 rows, default flags, 20-80ms answers, 40±30ms one way through the TCP proxy: goodput >= 9.2 rows/s, <= 2% of requests throttled, 0 failed (the emulator's --arrival-jitter model is run and printed too)",
		func(b *bench, ctx context.Context) (result, error) {
			return b.pathPair(ctx, "jitter", 300, casemu.Config{Faults: clean}, 9.2, 0.02)
		}},
	{"refusals", "200 rows, default flags, 20-80ms answers, 40±30ms through the TCP proxy, the limit counting its refusals (--count-refusals): exit 0, goodput >= 9 rows/s, <= 5% throttled (the model is printed too)",
		func(b *bench, ctx context.Context) (result, error) {
			return b.pathPair(ctx, "refusals", 200, casemu.Config{Faults: clean, CountRefusals: true}, 9, 0.05)
		}},
	{"slow", "300 rows, default flags, 1.5s latency: >= 9.5 requests/s",
		func(b *bench, ctx context.Context) (result, error) {
			s, st, _, err := b.applyRun(ctx, "slow", 300, casemu.Config{Faults: casemu.Faults{LatencyMin: 1500 * time.Millisecond, LatencyMax: 1500 * time.Millisecond}})
			return result{
				fmt.Sprintf("%.2f requests/s sent, goodput %.2f rows/s, most in flight %d (pool limit %d), most arrivals in any 1s window %d, throttled %d, succeeded %d of 300",
					s.RequestRate, s.Goodput, st.MaxInFlight, s.PoolLimit, st.MaxInWindow, st.Limited, s.Succeeded),
				s.RequestRate >= 9.5 && st.MaxInWindow <= 10 && s.Succeeded == 300,
			}, err
		}},
	{"slow5", "150 rows, default flags, 5s latency: >= 9.5 requests/s, never more than 10 in any second, 0 throttled",
		func(b *bench, ctx context.Context) (result, error) {
			s, st, _, err := b.applyRun(ctx, "slow5", 150, casemu.Config{Faults: casemu.Faults{LatencyMin: 5 * time.Second, LatencyMax: 5 * time.Second}})
			return result{
				fmt.Sprintf("%.2f requests/s sent, most in flight %d (pool limit %d), most arrivals in any 1s window %d, throttled %d, succeeded %d of 150",
					s.RequestRate, st.MaxInFlight, s.PoolLimit, st.MaxInWindow, st.Limited, s.Succeeded),
				s.RequestRate >= 9.5 && st.MaxInWindow <= 10 && st.Limited == 0 && s.Succeeded == 150,
			}, err
		}},
	{"throttle", "300 rows, --qps 10, 5% spurious throttles: goodput >= 9.0 rows/s, 0 failed",
		func(b *bench, ctx context.Context) (result, error) {
			f := clean
			f.ThrottleRate = 0.05
			s, st, _, err := b.applyRun(ctx, "throttle", 300, casemu.Config{Faults: f, Seed: 11}, "--qps", "10")
			return result{
				fmt.Sprintf("goodput %.2f rows/s, failed %d, throttled %d of %d requests (%.1f%%), lowest pace %.2f/s, %.2f requests/s sent, most arrivals in any 1s window %d",
					s.Goodput, s.Failed+s.NotAttempted, s.Throttled, s.Requests, 100*float64(s.Throttled)/float64(max(1, s.Requests)), s.MinRate, s.RequestRate, st.MaxInWindow),
				s.Goodput >= 9.0 && s.Failed+s.NotAttempted == 0 && s.Succeeded == 300,
			}, err
		}},
	{"shapes", "100 rows x 4 throttle shapes, --qps 40 --max-attempts 10, limit 50/s, 12% spurious throttles: every row assigned, each shape within 1.5x the fastest's time",
		func(b *bench, ctx context.Context) (result, error) { return b.shapes(ctx) }},
	{"memory", "300,000 rows, --qps 10000, emulator limit off: <= 48 MiB peak RSS",
		func(b *bench, ctx context.Context) (result, error) {
			s, _, rss, err := b.applyRun(ctx, "memory", 300_000, casemu.Config{RateLimit: -1}, "--qps", "10000")
			return result{
				fmt.Sprintf("%s, %d succeeded in %.1fs (%.0f requests/s, pool limit %d)", rssFigure(rss, 48), s.Succeeded, s.ElapsedSec, s.RequestRate, s.PoolLimit),
				rss > 0 && rss <= 48 && s.Succeeded == 300_000,
			}, err
		}},
	{"dryrun", "a 1,000,000-row plan: <= 3s wall, <= 100 MiB peak RSS",
		func(b *bench, ctx context.Context) (result, error) {
			plan := filepath.Join(b.dir, "million.csv")
			if err := WritePlan(plan, 1_000_000); err != nil {
				return result{}, err
			}
			wall, rss, ok, out, err := b.timed(ctx, "plan", plan)
			valid := err == nil && strings.Contains(out, "1000000 rows")
			return result{
				fmt.Sprintf("1,000,000 rows: %.2fs wall, %s", wall.Seconds(), rssFigure(rss, 100)),
				valid && wall <= 3*time.Second && ok && rss <= 100,
			}, err
		}},
	{"resume", "apply --resume over a 1,000,000-row report with every row done: <= 3s wall, <= 150 MiB peak RSS",
		func(b *bench, ctx context.Context) (result, error) { return b.bigReport(ctx, "--resume") }},
	{"baseline", "apply --baseline a 1,000,000-row report with every row unchanged: <= 3s wall, <= 150 MiB peak RSS",
		func(b *bench, ctx context.Context) (result, error) { return b.bigReport(ctx, "--baseline") }},
}

// jitterPath is the network the jitter scenarios cross: 40±30ms one way.
var jitterPath = path{40 * time.Millisecond, 30 * time.Millisecond}

// pathPair runs a plan through the TCP proxy at jitterPath, which the
// targets judge, and then through the emulator's own model of the same
// jitter (Faults.JitterMean), which is printed beside it: the proxy is
// what a network does, and the model should agree with it (see pkg/apply's
// doc, "Through a real network path").
func (b *bench) pathPair(ctx context.Context, name string, rows int, cfg casemu.Config, goodput, throttled float64, args ...string) (result, error) {
	s, st, ps, _, err := b.applyVia(ctx, name, rows, cfg, &jitterPath, args...)
	if err != nil {
		return result{}, err
	}
	pass := s.ExitCode == 0 && s.Goodput >= goodput && limitedShare(s, st) <= throttled && s.Succeeded == rows
	figures := fmt.Sprintf("through the proxy (%s, %d connections, %d chunks, %d held behind an earlier one): %s",
		jitterPath, ps.Conns, ps.Chunks, ps.Blocked, pacingFigures(s, st))
	model := cfg
	model.Faults.JitterMean, model.Faults.JitterStdDev = jitterPath.mean, jitterPath.sd
	ms, mst, _, err := b.applyRun(ctx, name+"-model", rows, model, args...)
	figures += fmt.Sprintf("\n%-16s model (--arrival-jitter %s): %s", "", jitterPath, pacingFigures(ms, mst))
	return result{figures, pass}, err
}

// pacingFigures is one run's pacing story: what got through, what it cost,
// and the guard it took, as the summary gives them, with the limit's own
// count of throttles and the busiest second the emulator saw.
func pacingFigures(s job.Summary, st casemu.Stats) string {
	return fmt.Sprintf("goodput %.2f rows/s, %.2f requests/s sent, throttled %d of %d requests (%.1f%%), guard %.0fms (widest %.0fms), most arrivals in any 1s window %d, failed %d, exit %d",
		s.Goodput, s.RequestRate, st.Limited, s.Requests, 100*limitedShare(s, st),
		1000*s.Guard, 1000*s.WidestGuard, st.MaxInWindow, s.Failed+s.NotAttempted, s.ExitCode)
}

// limitedShare is the share of a run's requests that the emulator's limit
// itself refused (spurious throttles are not in it).
func limitedShare(s job.Summary, st casemu.Stats) float64 {
	return float64(st.Limited) / float64(max(1, s.Requests))
}

// bigReport applies a million-row plan that a report already has done,
// with --resume (the report is this run's) or --baseline (an earlier
// run's): nothing is sent, and the run rewrites a million-row report.
func (b *bench) bigReport(ctx context.Context, mode string) (result, error) {
	plan := filepath.Join(b.dir, "million.csv")
	done := filepath.Join(b.dir, "million.done.csv")
	if err := WritePlan(plan, 1_000_000); err != nil {
		return result{}, err
	}
	err := writeRows(done, string(report.HeaderLine()), 1_000_000, func(buf []byte, i int) []byte {
		n := int64(i % 1000)
		r := report.Row{Line: i + 1, ID: int64(100000 + i), CertTotalCount: int32(n), Status: report.Succeeded, Attempts: 1,
			RequestID: "E77C4794-F24F-58CB-9929-" + fmt.Sprintf("%012X", i), CertCount: &n, CurrentYearFreeCertCount: new(int64),
			LatencyMs: 41, FinishedAt: "2026-11-27T10:00:00Z"}
		buf = report.AppendRow(buf, &r)
		return buf[:len(buf)-1] // writeRows ends the line
	})
	if err != nil {
		return result{}, err
	}
	_, srv := emulator(casemu.Config{})
	defer srv.Close()
	out := filepath.Join(b.dir, "million"+mode+".csv")
	args := []string{"apply", "--endpoint", srv.URL, "--progress", "never", "--failures", filepath.Join(b.dir, "million.failures.csv")}
	if mode == "--resume" {
		if err := copyFile(done, out); err != nil {
			return result{}, err
		}
		args = append(args, "--resume", "--report", out, plan)
	} else {
		args = append(args, "--baseline", done, "--report", out, "--overwrite", plan)
	}
	wall, rss, ok, outText, err := b.timed(ctx, args...)
	sent := !strings.Contains(outText, "requests:    0 sent,")
	return result{
		fmt.Sprintf("1,000,000 rows, none sent: %.2fs wall, %s", wall.Seconds(), rssFigure(rss, 150)),
		err == nil && !sent && wall <= 3*time.Second && ok && rss <= 150,
	}, err
}

func rssFigure(mib, target float64) string {
	if mib <= 0 {
		return "peak RSS not measurable on this platform"
	}
	return fmt.Sprintf("%.1f MiB peak RSS (target <= %s)", mib, strconv.FormatFloat(target, 'f', -1, 64))
}

// copyFile streams, to keep the bench small beside what it measures.
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// shapes runs the same share of spurious throttles in each shape the
// service sends: one that names a wait (429 with x-acs-retry-after) must
// cost what one that does not costs.
func (b *bench) shapes(ctx context.Context) (result, error) {
	shapes := []string{casemu.Shape429Wait, casemu.Shape429Bare, casemu.ShapeThrottling, casemu.ShapeThrottlingAPI}
	var figures []string
	var fastest, slowest float64
	ok := true
	for _, shape := range shapes {
		f := clean
		f.ThrottleRate, f.ThrottleShapes = 0.12, []string{shape}
		s, st, _, err := b.applyRun(ctx, "shapes-"+shape, 100, casemu.Config{RateLimit: 50, Faults: f}, "--qps", "40", "--max-attempts", "10")
		if err != nil {
			return result{}, err
		}
		figures = append(figures, fmt.Sprintf("%s %.2fs, throttled %.1f%%, %.1f arrivals/s, most in any 1s %d, succeeded %d",
			shape, s.ElapsedSec, 100*float64(s.Throttled)/float64(max(1, s.Requests)), float64(s.Requests)/max(s.ElapsedSec, 1e-9), st.MaxInWindow, s.Succeeded))
		ok = ok && s.Succeeded == 100 && s.Failed+s.NotAttempted == 0 && st.MaxInWindow <= 50
		if fastest == 0 || s.ElapsedSec < fastest {
			fastest = s.ElapsedSec
		}
		slowest = max(slowest, s.ElapsedSec)
	}
	ratio := slowest / max(fastest, 1e-9)
	return result{fmt.Sprintf("%s; slowest %.2fx the fastest", strings.Join(figures, "; "), ratio), ok && ratio <= 1.5}, nil
}
