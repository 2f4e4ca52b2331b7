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
			// The rate and the ETA are in the description, from
			// rateETA: the bar's own would say "0 rows/hr" and an ETA of
			// 0s before the first row finishes, and whole rows a second
			// after.
			progressbar.OptionSetPredictTime(false),
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
		desc := fmt.Sprintf("%d ok, %d failed", p.ok, p.fail)
		if rate, eta, ok := p.rateETA(); ok {
			desc += fmt.Sprintf(", %.1f rows/s, ETA %s", rate, eta)
		}
		p.bar.Describe(desc)
		p.bar.Add(1)
	}
}

// rateETA is the rows finished per second since the start, to two
// decimals, and the time the rest take at that rate. ok is false in the
// first second: the pacer lets up to ceil(qps) requests go at once, so
// the first rows finish in a burst (the first one after a single round
// trip, hundreds "a second"), and before the first row there is no rate.
// Callers hold term.mu.
func (p *progress) rateETA() (rate float64, eta time.Duration, ok bool) {
	elapsed := time.Since(p.start)
	if p.done == 0 || elapsed < time.Second {
		return 0, 0, false
	}
	rate = math.Round(float64(p.done)/elapsed.Seconds()*100) / 100
	return rate, time.Duration(float64(p.total-p.done) / rate * float64(time.Second)).Round(time.Second), true
}

func (p *progress) logLine() {
	p.term.mu.Lock()
	done, ok, fail, total := p.done, p.ok, p.fail, p.total
	rate, eta, known := p.rateETA()
	p.term.mu.Unlock()
	// Numbers with their unit in the key, so a JSON log is read by
	// machines without guessing (slog would print a Duration as ns).
	attrs := []any{"done", done, "total", total, "succeeded", ok, "failed", fail, "rows_per_second", rate}
	if known {
		attrs = append(attrs, "eta_seconds", eta.Seconds())
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
