package casemu

import (
	"net/http"
	"time"
)

// Faults are injected after a request has passed authentication and the rate
// limit, so it has used the caller's quota, as on the real service. Rates are
// probabilities from 0 to 1. The dice are thrown in the order of the fields,
// first those that answer before the call takes effect, then those that
// answer after it; the first that hits gives the answer.
type Faults struct {
	LatencyMin, LatencyMax time.Duration // processing time, uniform

	// JitterMean and JitterStdDev are a one-way network delay drawn for
	// each request from a normal distribution (a negative draw is no
	// delay). The request reaches the service, and its flow control, that
	// much later than it was sent, so evenly paced sends can arrive
	// bunched, as on a real network.
	JitterMean, JitterStdDev time.Duration

	// AnswerCode, when set, answers every authenticated request with this
	// error code and AnswerStatus: a run-wide error such as
	// InvalidApi.NotFound, or any code at all. Nothing is applied.
	AnswerCode   string
	AnswerStatus int // default: the code's usual status (see ParseAnswer), else 400

	// Before the call takes effect (nothing applied):
	ThrottleRate float64 // a spurious throttle, with no retry-after
	// ThrottleShapes are the answers a spurious throttle takes, one drawn
	// at random for each; empty means Throttling.User. See ThrottleShapes.
	ThrottleShapes []string
	Error503Rate   float64 // ServiceUnavailable
	Error500Rate   float64 // InternalError
	// NumericJSONRate answers HTTP 500 or 400 with a JSON error body whose
	// RequestId and Code are numbers, as a broken proxy may: the v1 SDK
	// panics on it.
	NumericJSONRate float64
	// RedirectRate answers 302 to another path of this server, carrying the
	// whole signed query. A client that follows it sends the call again,
	// which Stats.RedirectsFollowed counts.
	RedirectRate float64
	// OKErrorRate answers HTTP 200 with an error body (Code InternalError).
	OKErrorRate float64

	// After the call takes effect (applied, whatever the client sees):
	// DropRate closes the connection without an answer: the client cannot
	// tell whether the call took effect.
	DropRate float64
	// HangRate answers only after HangFor (or when the client gives up),
	// which a client sees as a read timeout.
	HangRate float64
	HangFor  time.Duration // default 30s
	// HTMLRate answers 502 with a ~100 KB HTML page, as a load balancer
	// does when it loses the backend's answer.
	HTMLRate float64
	// EndlessRate answers 200 with a body that never ends: it streams at a
	// bounded pace until the client goes away (or 10 GiB).
	EndlessRate float64
	// NoRequestIDRate answers 200 with the success body minus RequestId.
	NoRequestIDRate float64

	// FailIDs always fail with InvalidParameter: the row-final case.
	FailIDs map[int64]bool
}

func (f Faults) withDefaults() Faults {
	if f.HangFor <= 0 {
		f.HangFor = 30 * time.Second
	}
	if f.AnswerCode != "" && f.AnswerStatus == 0 {
		f.AnswerStatus = codeStatus(f.AnswerCode)
	}
	return f
}

// Spurious throttle shapes, for Faults.ThrottleShapes.
const (
	ShapeThrottling     = "Throttling"          // 400 JSON
	ShapeThrottlingUser = "Throttling.User"     // 400 JSON
	ShapeThrottlingAPI  = "Throttling.Api"      // 400 JSON
	ShapeRejected       = "Rejected.Throttling" // 400 JSON
	Shape429            = "429"                 // 429 JSON, Code Throttling.User
	Shape429Bare        = "429-bare"            // 429 text/html, no Code at all
	// Shape429Wait is 429 Throttling.User naming a wait the service might
	// name for a full window, x-acs-retry-after: 300 (ms), though the
	// window is not full: the shape whose wait a client must not pay for
	// every send.
	Shape429Wait = "429-wait"
	// ShapeRetryAfter is 503 ServiceUnavailable carrying x-acs-retry-after:
	// clients since mid-2026 treat any answer with that header as throttling.
	ShapeRetryAfter = "retry-after"
	// ShapeRateLimitHeader is 400 Throttling.User whose wait comes only in
	// the older gateways' x-ratelimit-user header.
	ShapeRateLimitHeader = "x-ratelimit"
)

// ThrottleShapes lists every spurious throttle shape.
var ThrottleShapes = []string{ShapeThrottling, ShapeThrottlingUser, ShapeThrottlingAPI, ShapeRejected,
	Shape429, Shape429Bare, Shape429Wait, ShapeRetryAfter, ShapeRateLimitHeader}

// spuriousWait is the wait the throttle shapes that carry one announce.
const spuriousWait = 200 * time.Millisecond

// spurious429Wait is Shape429Wait's wait.
const spurious429Wait = 300 * time.Millisecond

// gatewayStatus is the HTTP status the gateway gives each run-wide code.
var gatewayStatus = map[string]int{
	"InvalidApi.NotFound":     http.StatusNotFound,
	"InvalidProduct.NotFound": http.StatusNotFound,
	"InvalidRegion.NotFound":  http.StatusNotFound,
	"InvalidAction.NotFound":  http.StatusNotFound,
	"InvalidProtocol.NeedSsl": http.StatusBadRequest,
	"IllegalTimestamp":        http.StatusBadRequest,
	"UnsupportedHTTPMethod":   http.StatusForbidden,
	"InvalidVersion":          http.StatusBadRequest,
	"Forbidden.RAM":           http.StatusForbidden,
	"NoPermission":            http.StatusForbidden,
	"ServiceUnavailable":      http.StatusServiceUnavailable,
	"InternalError":           http.StatusInternalServerError,
}

func codeStatus(code string) int {
	if st, ok := gatewayStatus[code]; ok {
		return st
	}
	return http.StatusBadRequest
}
