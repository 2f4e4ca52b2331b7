package apply

import (
	"errors"
	"time"

	"github.com/certalloc/certalloc/pkg/cas"
	"github.com/certalloc/certalloc/pkg/plan"
)

// Attempt is one request sent.
type Attempt struct {
	Row     plan.Row
	N       int // 1-based attempt number
	Latency time.Duration
	Err     *cas.Error // nil on success
}

// Status of a row after a run.
const (
	Succeeded    = "succeeded"
	Failed       = "failed"
	NotAttempted = "not-attempted"
)

// Outcome is what happened to one row.
type Outcome struct {
	Row      plan.Row
	Status   string
	Attempts int
	Result   cas.Result
	// Err is the last error of a failed row, and for a row not attempted
	// the reason the run stopped.
	Err *cas.Error
	// Lost is the code of the last attempt whose answer was lost, when the
	// row was retried after one: the call may have been applied twice.
	Lost string
	// CutShort is set when the run's stop kept the row from finishing: it
	// was never sent, or it failed with an attempt left that the stop
	// prevented.
	CutShort bool
	Latency  time.Duration // of the last attempt
	Finished time.Time
}

// CodeRecordFailed is the fatal code of a run that could not write its
// record (the journal or the report).
const CodeRecordFailed = "RecordWriteFailed"

// Stop reasons.
var (
	ErrFatal       = errors.New("stopped by a run-fatal error")
	ErrMaxFailures = errors.New("stopped: too many rows failed")
	ErrDeadline    = errors.New("stopped: deadline reached")
)

// Stats sums up a run.
type Stats struct {
	Rows                            int
	Succeeded, Failed, NotAttempted int
	// CutShort counts rows the stop kept from finishing (see
	// Outcome.CutShort); zero when the stop came after every row was done.
	CutShort                  int
	Requests, Retries         int
	Throttled, LostAnswers    int
	Start, End                time.Time
	FirstSend, LastSend       time.Time
	FirstSuccess, LastSuccess time.Time // answers received
	MinRate                   float64
	// Guard is the pacer's guard at the end, GuardMax the widest it was.
	Guard, GuardMax time.Duration
	// Workers is the largest in-flight limit the pool reached, MaxInFlight
	// the most requests on the wire at once, Assigners how many were made.
	Workers, MaxInFlight, Assigners int
	// Latency percentiles are within 1% (see histogram); the max is exact.
	LatencyP50, LatencyP95, LatencyMax time.Duration
	// Stop is why the run stopped early: nil, ErrFatal (with Fatal set),
	// ErrMaxFailures, ErrDeadline, or the context's cause. A stop that came
	// when every row had finished (CutShort == 0) is nil, but a fatal
	// answer always stops.
	Stop  error
	Fatal *cas.Error
}

// RequestRate is requests per second over the span in which they were sent.
func (s Stats) RequestRate() float64 {
	d := s.LastSend.Sub(s.FirstSend).Seconds()
	if s.Requests < 2 || d <= 0 {
		return 0
	}
	return float64(s.Requests-1) / d
}

// Goodput is rows succeeded per second between the first success and the
// last: what the rate limit let through, start-up and tail left out.
func (s Stats) Goodput() float64 {
	d := s.LastSuccess.Sub(s.FirstSuccess).Seconds()
	if s.Succeeded < 2 || d <= 0 {
		return 0
	}
	return float64(s.Succeeded-1) / d
}

// RunGoodput is rows succeeded per second over the whole run.
func (s Stats) RunGoodput() float64 {
	d := s.End.Sub(s.Start).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(s.Succeeded) / d
}
