package casemu

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
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
	Inactive      bool // answers InvalidAccessKeyId.Inactive
	Forbidden     bool // answers Forbidden.RAM: the key lacks the RAM action
}

// Faults are injected after a request has passed authentication and the rate
// limit, so it has used the caller's quota, as on the real service. Rates are
// probabilities from 0 to 1, drawn independently in the order listed.
type Faults struct {
	LatencyMin, LatencyMax time.Duration // processing time, uniform
	ThrottleRate           float64       // spurious Throttling.User, no retry-after
	Error503Rate           float64       // ServiceUnavailable
	Error500Rate           float64       // InternalError
	// DropRate closes the connection without an answer after the call took
	// effect: the client cannot tell whether it did.
	DropRate float64
	// HangRate takes effect, then answers only after HangFor (or when the
	// client gives up), which a client sees as a read timeout.
	HangRate float64
	HangFor  time.Duration // default 30s
	// FailIDs always fail with InvalidParameter: the row-final case.
	FailIDs map[int64]bool
}

// Config sets up a Server. The zero value accepts no key.
type Config struct {
	Keys map[string]Key // by AccessKeyId
	// RateLimit is the per-AccessKey limit in any sliding Window; 0 means
	// DefaultRateLimit and a negative value turns the limit off.
	RateLimit int
	Window    time.Duration // default 1s
	Faults    Faults
	Seed      uint64 // for the fault dice; 0 picks one at random
	Now       func() time.Time
	// Log, when set, gets one line per request (never a secret).
	Log func(format string, args ...any)
}

// Server is the emulated endpoint. Create it with New.
type Server struct {
	cfg Config

	mu       sync.Mutex
	rng      *mrand.Rand
	nonces   map[string]time.Time
	nonceGC  time.Time
	windows  map[string]*window
	state    map[int64]*Assignment
	stats    Stats
	inFlight int
}

// Assignment is the emulated state of one Id.
type Assignment struct {
	CertTotalCount int32
	// Applied counts the calls that took effect, lost answers included.
	Applied int
}

// Stats counts what the server saw.
type Stats struct {
	Requests int            // every request
	Applied  int            // calls that took effect
	ByCode   map[string]int // answers by error code; "" is success
	// MaxInWindow is the most arrivals of one AccessKey, admitted or
	// throttled by the limit, seen in any sliding window.
	MaxInWindow int
	// MaxInFlight is the most requests being handled at once.
	MaxInFlight int
}

// window tracks one AccessKey's recent arrivals.
type window struct {
	admitted []time.Time // admitted calls inside the window, oldest first
	arrivals []time.Time // all arrivals inside the window, for MaxInWindow
}

// New returns a Server for cfg.
func New(cfg Config) *Server {
	if cfg.RateLimit == 0 {
		cfg.RateLimit = DefaultRateLimit
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Second
	}
	if cfg.Faults.HangFor <= 0 {
		cfg.Faults.HangFor = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = mrand.Uint64()
	}
	return &Server{
		cfg:     cfg,
		rng:     mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		nonces:  make(map[string]time.Time),
		windows: make(map[string]*window),
		state:   make(map[int64]*Assignment),
		stats:   Stats{ByCode: make(map[string]int)},
	}
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
	if f.HangFor <= 0 {
		f.HangFor = 30 * time.Second
	}
	s.cfg.Faults = f
}

// apiError is an answer in the service's error format.
type apiError struct {
	status     int
	code, msg  string
	retryAfter time.Duration
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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

	requestID := newRequestID()
	params, e := s.authenticate(r)
	if e == nil {
		e = s.admit(params.Get("AccessKeyId"))
	}
	if e != nil {
		s.answerError(w, requestID, params, e)
		return
	}

	f := s.faults()
	if d := s.latency(f); d > 0 {
		sleep(r.Context(), d)
	}
	switch {
	case s.roll(f.ThrottleRate):
		e = &apiError{http.StatusBadRequest, "Throttling.User", "Request was denied due to user flow control.", 0}
	case s.roll(f.Error503Rate):
		e = &apiError{http.StatusServiceUnavailable, "ServiceUnavailable", "The request has failed due to a temporary failure of the server.", 0}
	case s.roll(f.Error500Rate):
		e = &apiError{http.StatusInternalServerError, "InternalError", "The request processing has failed due to some unknown error, exception or failure.", 0}
	}
	if e != nil {
		s.answerError(w, requestID, params, e)
		return
	}

	id, count, e := businessParams(params)
	if e == nil && f.FailIDs[id] {
		e = &apiError{http.StatusBadRequest, "InvalidParameter", fmt.Sprintf("The specified parameter Id %d is not valid.", id), 0}
	}
	if e != nil {
		s.answerError(w, requestID, params, e)
		return
	}

	a := s.apply(id, count)
	switch {
	case s.roll(f.DropRate):
		s.count("(dropped)")
		s.logf("%s Id=%d CertTotalCount=%d applied, connection dropped", params.Get("AccessKeyId"), id, count)
		drop(w)
		return
	case s.roll(f.HangRate):
		s.count("(hung)")
		s.logf("%s Id=%d CertTotalCount=%d applied, hanging %s", params.Get("AccessKeyId"), id, count, f.HangFor)
		sleep(r.Context(), f.HangFor)
	}
	s.count("")
	s.logf("%s Id=%d CertTotalCount=%d ok", params.Get("AccessKeyId"), id, count)
	writeJSON(w, http.StatusOK, map[string]any{
		"RequestId":                requestID,
		"CertCount":                a.CertTotalCount,
		"CurrentYearFreeCertCount": 0,
	})
}

// authenticate checks the request as the gateway does before the action
// runs, and returns its decoded parameters.
func (s *Server) authenticate(r *http.Request) (url.Values, *apiError) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return nil, &apiError{http.StatusMethodNotAllowed, "UnsupportedHTTPMethod", "This http method is not supported.", 0}
	}
	// The body is bounded: an RPC call has at most a few form params.
	r.Body = http.MaxBytesReader(nil, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		return nil, &apiError{http.StatusBadRequest, "InvalidParameter", "The request body or query string could not be parsed.", 0}
	}
	params := r.Form // query and form, decoded
	for _, p := range []string{"Action", "Version", "AccessKeyId", "Signature", "SignatureMethod", "SignatureVersion", "SignatureNonce", "Timestamp", "Format"} {
		if params.Get(p) == "" {
			code := "MissingParameter"
			if p == "Signature" {
				code = "IncompleteSignature"
			}
			return params, &apiError{http.StatusBadRequest, code, fmt.Sprintf("The input parameter %q that is mandatory for processing this request is not supplied.", p), 0}
		}
	}
	if v := params.Get("Version"); v != Version {
		return params, &apiError{http.StatusBadRequest, "InvalidVersion", fmt.Sprintf("Specified parameter Version is not valid: %q.", v), 0}
	}
	if a := params.Get("Action"); a != Action {
		return params, &apiError{http.StatusNotFound, "InvalidAction.NotFound", fmt.Sprintf("Specified api is not found, please check your url and method: %q.", a), 0}
	}
	if f := params.Get("Format"); f != "JSON" && f != "XML" {
		return params, &apiError{http.StatusBadRequest, "InvalidParameter", "The specified parameter Format is not valid.", 0}
	}
	key, ok := s.cfg.Keys[params.Get("AccessKeyId")]
	if !ok {
		return params, &apiError{http.StatusNotFound, "InvalidAccessKeyId.NotFound", "Specified access key is not found.", 0}
	}
	if key.Inactive {
		return params, &apiError{http.StatusBadRequest, "InvalidAccessKeyId.Inactive", "Specified access key is disabled.", 0}
	}
	if params.Get("SignatureMethod") != "HMAC-SHA1" || params.Get("SignatureVersion") != "1.0" {
		return params, &apiError{http.StatusBadRequest, "IncompleteSignature", "The request signature does not conform to Aliyun standards: unsupported SignatureMethod or SignatureVersion.", 0}
	}
	ts, err := time.Parse("2006-01-02T15:04:05Z", params.Get("Timestamp"))
	if err != nil {
		return params, &apiError{http.StatusBadRequest, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted.", 0}
	}
	if d := s.cfg.Now().Sub(ts); d > MaxSkew || d < -MaxSkew {
		return params, &apiError{http.StatusBadRequest, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.", 0}
	}
	sts := StringToSign(r.Method, params)
	if Sign(sts, key.Secret) != params.Get("Signature") {
		// The real service echoes its string to sign; it holds no secret.
		return params, &apiError{http.StatusBadRequest, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation. server string to sign is:" + sts, 0}
	}
	if e := s.useNonce(params.Get("SignatureNonce")); e != nil {
		return params, e
	}
	if key.SecurityToken != "" {
		switch tok := params.Get("SecurityToken"); {
		case tok == "":
			return params, &apiError{http.StatusBadRequest, "InvalidSecurityToken.Malformed", "The security token you provided is malformed: missing.", 0}
		case tok != key.SecurityToken:
			return params, &apiError{http.StatusBadRequest, "InvalidSecurityToken.Mismatch", "The security token you provided does not match the AccessKeyId.", 0}
		}
	}
	if key.Forbidden {
		return params, &apiError{http.StatusForbidden, "Forbidden.RAM", "User not authorized to operate on the specified resource, or this API doesn't support RAM.", 0}
	}
	return params, nil
}

func (s *Server) useNonce(nonce string) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	// Nonces only need remembering while their timestamp could still pass.
	if now.Sub(s.nonceGC) > time.Minute {
		for n, t := range s.nonces {
			if now.Sub(t) > 2*MaxSkew {
				delete(s.nonces, n)
			}
		}
		s.nonceGC = now
	}
	if _, used := s.nonces[nonce]; used {
		return &apiError{http.StatusBadRequest, "SignatureNonceUsed", "Specified signature nonce was used already.", 0}
	}
	s.nonces[nonce] = now
	return nil
}

// admit applies the per-AccessKey sliding-window limit.
func (s *Server) admit(ak string) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	w := s.windows[ak]
	if w == nil {
		w = &window{}
		s.windows[ak] = w
	}
	cut := now.Add(-s.cfg.Window)
	w.admitted = trim(w.admitted, cut)
	w.arrivals = append(trim(w.arrivals, cut), now)
	s.stats.MaxInWindow = max(s.stats.MaxInWindow, len(w.arrivals))
	if s.cfg.RateLimit > 0 && len(w.admitted) >= s.cfg.RateLimit {
		wait := w.admitted[0].Add(s.cfg.Window).Sub(now)
		return &apiError{http.StatusBadRequest, "Throttling.User", "Request was denied due to user flow control.", max(wait, time.Millisecond)}
	}
	w.admitted = append(w.admitted, now)
	return nil
}

// trim drops times at or before cut from the front of ts.
func trim(ts []time.Time, cut time.Time) []time.Time {
	i := 0
	for i < len(ts) && !ts[i].After(cut) {
		i++
	}
	if i == 0 {
		return ts
	}
	return append(ts[:0], ts[i:]...)
}

func businessParams(p url.Values) (int64, int32, *apiError) {
	idStr, countStr := p.Get("Id"), p.Get("CertTotalCount")
	if idStr == "" {
		return 0, 0, &apiError{http.StatusBadRequest, "MissingParameter", `The input parameter "Id" that is mandatory for processing this request is not supplied.`, 0}
	}
	if countStr == "" {
		return 0, 0, &apiError{http.StatusBadRequest, "MissingParameter", `The input parameter "CertTotalCount" that is mandatory for processing this request is not supplied.`, 0}
	}
	id, err := strconv.ParseInt(idStr, 10, 64)
	if err != nil || id <= 0 {
		return 0, 0, &apiError{http.StatusBadRequest, "InvalidParameter", "The specified parameter Id is not valid.", 0}
	}
	n, err := strconv.ParseInt(countStr, 10, 32)
	if err != nil || n < 0 {
		return 0, 0, &apiError{http.StatusBadRequest, "InvalidParameter", "The specified parameter CertTotalCount is not valid.", 0}
	}
	return id, int32(n), nil
}

func (s *Server) apply(id int64, count int32) Assignment {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.state[id]
	if a == nil {
		a = &Assignment{}
		s.state[id] = a
	}
	a.CertTotalCount = count
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

func (s *Server) answerError(w http.ResponseWriter, requestID string, params url.Values, e *apiError) {
	s.count(e.code)
	s.logf("%s Id=%s %d %s", params.Get("AccessKeyId"), params.Get("Id"), e.status, e.code)
	if e.retryAfter > 0 {
		ms := int64(math.Ceil(float64(e.retryAfter) / float64(time.Millisecond)))
		w.Header().Set("x-acs-retry-after", strconv.FormatInt(ms, 10))
	}
	writeJSON(w, e.status, map[string]any{
		"RequestId": requestID,
		"HostId":    HostID,
		"Code":      e.code,
		"Message":   e.msg,
		"Recommend": "https://api.aliyun.com/troubleshoot?q=" + url.QueryEscape(e.code),
	})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// drop closes the connection without writing a response.
func drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0) // a reset, as when a middlebox gives up
	}
	conn.Close()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// newRequestID returns an id shaped like the service's.
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return strings.ToUpper(fmt.Sprintf("%s-%s-%s-%s-%s", h[:8], h[8:12], h[12:16], h[16:20], h[20:]))
}
