package casemu

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// API facts the emulator enforces.
const (
	Action  = "AssignCertificateCount"
	Version = "2020-06-30"
	// HostID is what the real service puts in error bodies.
	HostID = "cas.aliyuncs.com"
	// MaxSkew is how far a request's Timestamp may be from the server clock.
	MaxSkew = 15 * time.Minute
	// DefaultRateLimit is the documented per-user limit per sliding second.
	DefaultRateLimit = 10
)

// Key is one AccessKey the emulator accepts.
type Key struct {
	Secret string
	// SecurityToken, when set, makes this an STS key: requests must carry it.
	SecurityToken string
	// Account is the Alibaba Cloud account (UID) the key belongs to. The
	// service counts its rate limit per account, so every key and STS
	// session of one account shares one window. Empty means the key is an
	// account of its own.
	Account   string
	Inactive  bool // answers InvalidAccessKeyId.Inactive
	Forbidden bool // answers Forbidden.RAM: the key lacks the RAM action
	// TokenExpired answers InvalidSecurityToken.Expired for an STS key.
	TokenExpired bool
}

// Instance is one subordinate CA instance the emulated account owns.
type Instance struct {
	// Quota is the most certificates the instance may be given; a larger
	// CertTotalCount fails the call. 0 means no limit.
	Quota int64
}

// Config sets up a Server. The zero value accepts no key.
type Config struct {
	Keys map[string]Key // by AccessKeyId
	// RateLimit is the per-account limit in any sliding Window; 0 means
	// DefaultRateLimit and a negative value turns the limit off.
	RateLimit int
	Window    time.Duration // default 1s
	// Throttle429 makes the limit answer HTTP 429 rather than 400, with the
	// same JSON body and x-acs-retry-after.
	Throttle429 bool
	// CountRefusals makes the limit count the requests it throttles as
	// well as those it admits, as some gateways do: each refusal takes a
	// slot of the sliding window like an admitted call.
	CountRefusals bool
	// Region, when set, is the region the endpoint serves: a request whose
	// RegionId names another answers InvalidRegion.NotFound.
	Region string
	// Instances, when set, are the only Ids that exist; any other Id
	// answers NotFound.
	Instances map[int64]Instance
	Faults    Faults
	Seed      uint64 // for the fault dice; 0 picks one at random
	Now       func() time.Time
	// Log, when set, gets one line per request (never a secret).
	Log func(format string, args ...any)
}

// Server is the emulated endpoint. Create it with New.
type Server struct {
	cfg        Config
	tokenOwner map[string]string // STS token -> the AccessKeyId it was issued with

	mu       sync.Mutex
	rng      *mrand.Rand
	nonces   map[string]time.Time
	nonceGC  time.Time
	windows  map[string]*window // by account
	state    map[int64]*Assignment
	stats    Stats
	inFlight int
}

// Assignment is the emulated state of one Id.
type Assignment struct {
	CertTotalCount int32
	// CaIdentifier is the one the last applied call carried, if any.
	CaIdentifier string
	// Applied counts the calls that took effect, lost answers included.
	Applied int
}

// Stats counts what the server saw.
type Stats struct {
	Requests int            // every request
	Applied  int            // calls that took effect
	ByCode   map[string]int // answers by error code; "" is success
	// Limited counts the answers of the rate limit itself, whatever their
	// shape; spurious throttles from Faults are not in it.
	Limited int
	// MaxInWindow is the most arrivals of one account, admitted or
	// throttled by the limit, seen in any sliding window. With arrival
	// jitter it is counted on the delayed arrival times.
	MaxInWindow int
	// MaxInFlight is the most requests being handled at once.
	MaxInFlight int
	// RedirectsFollowed counts requests that came back to a redirect's
	// target: a client that follows redirects sends a call twice.
	RedirectsFollowed int
}

// New returns a Server for cfg.
func New(cfg Config) *Server {
	if cfg.RateLimit == 0 {
		cfg.RateLimit = DefaultRateLimit
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Second
	}
	cfg.Faults = cfg.Faults.withDefaults()
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = mrand.Uint64()
	}
	owners := make(map[string]string)
	for id, k := range cfg.Keys {
		if k.SecurityToken != "" {
			owners[k.SecurityToken] = id
		}
	}
	return &Server{
		cfg:        cfg,
		tokenOwner: owners,
		rng:        newRNG(seed),
		nonces:     make(map[string]time.Time),
		windows:    make(map[string]*window),
		state:      make(map[int64]*Assignment),
		stats:      Stats{ByCode: make(map[string]int)},
	}
}

func newRNG(seed uint64) *mrand.Rand {
	return mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// State returns the emulated state of id.
func (s *Server) State(id int64) (Assignment, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.state[id]
	if !ok {
		return Assignment{}, false
	}
	return *a, true
}

// States returns a copy of the state of every Id that was assigned.
func (s *Server) States() map[int64]Assignment {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[int64]Assignment, len(s.state))
	for id, a := range s.state {
		m[id] = *a
	}
	return m
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ByCode = make(map[string]int, len(s.stats.ByCode))
	for k, v := range s.stats.ByCode {
		st.ByCode[k] = v
	}
	return st
}

// SetFaults replaces the fault settings of a running server.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.Faults = f.withDefaults()
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	entry := s.cfg.Now()
	f := s.faults()
	// The one-way delay is spent before the service sees the request, as
	// on a network; a client that gives up meanwhile does not recall it.
	delay := s.arrivalDelay(f)
	if delay > 0 {
		sleep(context.Background(), delay)
	}
	arrival := entry.Add(delay)

	s.mu.Lock()
	s.stats.Requests++
	s.inFlight++
	s.stats.MaxInFlight = max(s.stats.MaxInFlight, s.inFlight)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()

	if r.URL.Path == redirectPath {
		s.followedRedirect(w, r)
		return
	}
	requestID := newRequestID()
	params, key, e := s.authenticate(r)
	if e == nil {
		e = s.admit(key, params.Get("AccessKeyId"), arrival)
	}
	if e != nil {
		s.answerError(w, requestID, params, e)
		return
	}

	if d := s.latency(f); d > 0 {
		sleep(r.Context(), d)
	}
	if f.AnswerCode != "" {
		s.answerError(w, requestID, params, &apiError{status: f.AnswerStatus, code: f.AnswerCode, msg: "Emulated run-wide error.", key: key})
		return
	}
	// Faults that answer before the action runs: nothing is applied.
	if s.answerBefore(w, r, f, requestID, params) {
		return
	}

	c, e := s.businessParams(params)
	if e == nil && f.FailIDs[c.id] {
		e = &apiError{status: http.StatusBadRequest, code: "InvalidParameter", msg: fmt.Sprintf("The specified parameter Id %d is not valid.", c.id)}
	}
	if e != nil {
		s.answerError(w, requestID, params, e)
		return
	}

	a := s.apply(c)
	// Faults that answer after the action ran: the call took effect.
	if s.answerAfter(w, r, f, requestID, params, c, a) {
		return
	}
	s.count("")
	s.logf("%s %s ok", params.Get("AccessKeyId"), c)
	writeJSON(w, http.StatusOK, map[string]any{
		"RequestId":                requestID,
		"CertCount":                a.CertTotalCount,
		"CurrentYearFreeCertCount": 0,
	})
}

// admit applies the per-account sliding-window limit to a request that
// reached the service at arrival.
func (s *Server) admit(key Key, ak string, arrival time.Time) *apiError {
	account := "key:" + ak
	if key.Account != "" {
		account = "account:" + key.Account
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.windows[account]
	if w == nil {
		w = &window{countRefusals: s.cfg.CountRefusals}
		s.windows[account] = w
	}
	// Each arrival is decided when it happens (its handler first sleeps its
	// delay), so a later verdict concerns a stamp no older than now less
	// scheduling noise, far under a window: stamps two windows old can be
	// in no window that matters again.
	w.forget(s.cfg.Now().Add(-2 * s.cfg.Window))
	ok, wait, busiest := w.arrive(arrival, s.cfg.RateLimit, s.cfg.Window)
	s.stats.MaxInWindow = max(s.stats.MaxInWindow, busiest)
	if ok {
		return nil
	}
	s.stats.Limited++
	status := http.StatusBadRequest
	if s.cfg.Throttle429 {
		status = http.StatusTooManyRequests
	}
	return &apiError{status: status, code: "Throttling.User", msg: "Request was denied due to user flow control.", retryAfter: max(wait, time.Millisecond)}
}

// assign is the business part of a request.
type assign struct {
	id           int64
	count        int32
	caIdentifier string
}

func (c assign) String() string {
	if c.caIdentifier == "" {
		return fmt.Sprintf("Id=%d CertTotalCount=%d", c.id, c.count)
	}
	return fmt.Sprintf("Id=%d CertTotalCount=%d CaIdentifier=%q", c.id, c.count, c.caIdentifier)
}

func (s *Server) businessParams(p url.Values) (assign, *apiError) {
	idStr, countStr := p.Get("Id"), p.Get("CertTotalCount")
	if idStr == "" {
		return assign{}, &apiError{status: http.StatusBadRequest, code: "MissingParameter", msg: `The input parameter "Id" that is mandatory for processing this request is not supplied.`}
	}
	if countStr == "" {
		return assign{}, &apiError{status: http.StatusBadRequest, code: "MissingParameter", msg: `The input parameter "CertTotalCount" that is mandatory for processing this request is not supplied.`}
	}
	id, err := strconv.ParseInt(idStr, 10, 64)
	if err != nil || id <= 0 {
		return assign{}, &apiError{status: http.StatusBadRequest, code: "InvalidParameter", msg: "The specified parameter Id is not valid."}
	}
	n, err := strconv.ParseInt(countStr, 10, 32)
	if err != nil || n < 0 {
		return assign{}, &apiError{status: http.StatusBadRequest, code: "InvalidParameter", msg: "The specified parameter CertTotalCount is not valid."}
	}
	c := assign{id: id, count: int32(n), caIdentifier: p.Get("CaIdentifier")}
	if s.cfg.Instances != nil {
		inst, ok := s.cfg.Instances[id]
		if !ok {
			return c, &apiError{status: http.StatusBadRequest, code: "NotFound", msg: fmt.Sprintf("The specified instance %d does not exist.", id)}
		}
		if inst.Quota > 0 && n > inst.Quota {
			return c, &apiError{status: http.StatusBadRequest, code: "InvalidParameter.CertTotalCount", msg: fmt.Sprintf("The specified CertTotalCount %d exceeds the %d certificates available to instance %d.", n, inst.Quota, id)}
		}
	}
	return c, nil
}

func (s *Server) apply(c assign) Assignment {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.state[c.id]
	if a == nil {
		a = &Assignment{}
		s.state[c.id] = a
	}
	a.CertTotalCount = c.count
	a.CaIdentifier = c.caIdentifier
	a.Applied++
	s.stats.Applied++
	return *a
}

func (s *Server) faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.Faults
}

func (s *Server) roll(p float64) bool {
	if p <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64() < p
}

func (s *Server) latency(f Faults) time.Duration {
	if f.LatencyMax <= f.LatencyMin {
		return f.LatencyMin
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return f.LatencyMin + time.Duration(s.rng.Int64N(int64(f.LatencyMax-f.LatencyMin)))
}

// arrivalDelay draws one request's one-way delay: normal, with negative
// draws taken as no delay.
func (s *Server) arrivalDelay(f Faults) time.Duration {
	if f.JitterMean <= 0 && f.JitterStdDev <= 0 {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return jitterDraw(f.JitterMean, f.JitterStdDev, s.rng.NormFloat64())
}

// jitterDraw turns a standard normal draw z into a delay of the given mean
// and standard deviation, cut at 0.
func jitterDraw(mean, sd time.Duration, z float64) time.Duration {
	return max(0, mean+time.Duration(z*float64(sd)))
}

func (s *Server) count(code string) {
	s.mu.Lock()
	s.stats.ByCode[code]++
	s.mu.Unlock()
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Log != nil {
		s.cfg.Log(format, args...)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
