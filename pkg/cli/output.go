package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/certalloc/certalloc/pkg/apply"
)

// newLogger returns the run's logger on stderr. Nothing secret is ever
// passed to it: errors reach it as code and message, built by pkg/cas.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level must be debug, info, warn or error, got %q", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format must be text or json, got %q", format)
}

func stderrTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress shows how a run is going: a live bar on a terminal, a log line
// every interval otherwise (cron mails and CI logs stay short).
type progress struct {
	mu        sync.Mutex
	bar       *progressbar.ProgressBar
	log       *slog.Logger
	total     int
	done      int
	ok, fail  int
	start     time.Time
	stopTimer chan struct{}
	wg        sync.WaitGroup
}

func newProgress(mode string, tty bool, interval time.Duration, w io.Writer, log *slog.Logger, total int) *progress {
	p := &progress{log: log, total: total, start: time.Now()}
	if mode == "always" || mode == "auto" && tty {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("applying"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("rows"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
		return p
	}
	if mode == "never" || total == 0 {
		return p
	}
	p.stopTimer = make(chan struct{})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.logLine()
			case <-p.stopTimer:
				return
			}
		}
	}()
	return p
}

func (p *progress) add(o apply.Outcome) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	switch o.Status {
	case apply.Succeeded:
		p.ok++
	case apply.Failed:
		p.fail++
	}
	if p.bar != nil {
		p.bar.Describe(fmt.Sprintf("%d ok, %d failed", p.ok, p.fail))
		p.bar.Add(1)
	}
}

func (p *progress) logLine() {
	p.mu.Lock()
	done, ok, fail, total := p.done, p.ok, p.fail, p.total
	elapsed := time.Since(p.start)
	p.mu.Unlock()
	rate := float64(done) / elapsed.Seconds()
	attrs := []any{"done", done, "total", total, "succeeded", ok, "failed", fail, "rows_per_second", fmt.Sprintf("%.2f", rate)}
	if rate > 0 {
		attrs = append(attrs, "eta", time.Duration(float64(total-done)/rate*float64(time.Second)).Round(time.Second))
	}
	p.log.Info("progress", attrs...)
}

func (p *progress) finish() {
	if p.stopTimer != nil {
		close(p.stopTimer)
		p.wg.Wait()
	}
	if p.bar != nil {
		p.mu.Lock()
		p.bar.Finish()
		p.mu.Unlock()
	}
}
