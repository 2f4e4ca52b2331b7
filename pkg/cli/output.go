package cli

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/certalloc/certalloc/pkg/apply"
)

// termWriter lets log lines and the progress bar share stderr: with a bar
// up, a log line first clears it, and the bar's next update redraws it
// below. mu also guards every use of the bar.
type termWriter struct {
	mu    sync.Mutex
	w     io.Writer
	clear func() // set while a bar is shown
}

func (t *termWriter) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.clear != nil {
		t.clear()
	}
	return t.w.Write(b)
}

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
// every interval otherwise (cron mails and CI logs stay short). It is the
// job's Progress.
type progress struct {
	mode     string
	tty      bool
	interval time.Duration
	term     *termWriter
	bar      *progressbar.ProgressBar
	log      *slog.Logger
	total    int
	done     int
	ok, fail int
	start    time.Time
	stop     chan struct{}
	wg       sync.WaitGroup
}

func newProgress(mode string, tty bool, interval time.Duration, term *termWriter, log *slog.Logger) *progress {
	return &progress{mode: mode, tty: tty, interval: interval, term: term, log: log}
}

// Start shows the bar, or starts the periodic log line, for total rows.
func (p *progress) Start(total int) {
	p.total, p.start = total, time.Now()
	term := p.term
	if p.mode == "always" || p.mode == "auto" && p.tty {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(term.w),
			progressbar.OptionSetDescription("0 ok, 0 failed"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("rows"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(term.w) }),
		)
		term.mu.Lock()
		term.clear = func() { p.bar.Clear() }
		term.mu.Unlock()
		return
	}
	if p.mode == "never" || total == 0 {
		return
	}
	p.stop = make(chan struct{})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(p.interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.logLine()
			case <-p.stop:
				return
			}
		}
	}()
}

// Add counts one finished row.
func (p *progress) Add(o apply.Outcome) {
	p.term.mu.Lock()
	defer p.term.mu.Unlock()
	p.done++
	switch o.Status {
	case apply.Succeeded:
		p.ok++
	case apply.Failed:
		p.fail++
	}
	if p.bar != nil {
		// Each call redraws (rows finish at --qps, a few a second): the
		// description first, so that the count's redraw, the one that
		// stays on screen, shows both up to date; the last one also
		// completes the bar.
		p.bar.Describe(fmt.Sprintf("%d ok, %d failed", p.ok, p.fail))
		p.bar.Add(1)
	}
}

func (p *progress) logLine() {
	p.term.mu.Lock()
	done, ok, fail, total := p.done, p.ok, p.fail, p.total
	elapsed := time.Since(p.start)
	p.term.mu.Unlock()
	// Numbers with their unit in the key, so a JSON log is read by
	// machines without guessing (slog would print a Duration as ns).
	rate := math.Round(float64(done)/elapsed.Seconds()*100) / 100
	attrs := []any{"done", done, "total", total, "succeeded", ok, "failed", fail, "rows_per_second", rate}
	if rate > 0 {
		attrs = append(attrs, "eta_seconds", math.Round(float64(total-done)/rate))
	}
	p.log.Info("progress", attrs...)
}

// Finish stops the log line and completes the bar.
func (p *progress) Finish() {
	if p.stop != nil {
		close(p.stop)
		p.wg.Wait()
	}
	if p.bar != nil {
		p.term.mu.Lock()
		p.bar.Finish()
		p.term.clear = nil
		p.term.mu.Unlock()
	}
}
