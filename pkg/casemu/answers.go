package casemu

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// apiError is an answer in the service's error format.
type apiError struct {
	status     int
	code, msg  string
	retryAfter time.Duration // sent as x-acs-retry-after, in ms
	header     http.Header   // any other headers to send
	key        Key           // for the AccessDeniedDetail of permission errors
}

func (s *Server) answerError(w http.ResponseWriter, requestID string, params url.Values, e *apiError) {
	s.count(e.code)
	s.logf("%s Id=%s %d %s", params.Get("AccessKeyId"), params.Get("Id"), e.status, e.code)
	for k, v := range e.header {
		w.Header()[k] = v
	}
	if e.retryAfter > 0 {
		ms := int64(math.Ceil(float64(e.retryAfter) / float64(time.Millisecond)))
		w.Header().Set("x-acs-retry-after", strconv.FormatInt(ms, 10))
	}
	body := map[string]any{
		"RequestId": requestID,
		"HostId":    HostID,
		"Code":      e.code,
		"Message":   e.msg,
		"Recommend": "https://api.aliyun.com/troubleshoot?q=" + url.QueryEscape(e.code),
	}
	if e.code == "Forbidden.RAM" || e.code == "NoPermission" {
		body["AccessDeniedDetail"] = accessDenied(e.key)
	}
	writeJSON(w, e.status, body)
}

// accessDenied is the detail the service adds to permission errors, which
// tells the operator which RAM policy to fix.
func accessDenied(k Key) map[string]any {
	principal := "SubUser"
	if k.SecurityToken != "" {
		principal = "AssumedRoleUser"
	}
	return map[string]any{
		"AuthAction":               "yundun-cert:" + Action,
		"AuthPrincipalType":        principal,
		"AuthPrincipalOwnerId":     k.Account,
		"AuthPrincipalDisplayName": "casemu-user",
		"NoPermissionType":         "ImplicitDeny",
		"PolicyType":               "AccountLevelIdentityBasedPolicy",
		"EncodedDiagnosticMessage": base64.StdEncoding.EncodeToString([]byte("casemu: the key lacks yundun-cert:" + Action)),
	}
}

// answerBefore throws the dice of the faults that answer before the call
// takes effect, and answers if one hits.
func (s *Server) answerBefore(w http.ResponseWriter, r *http.Request, f Faults, requestID string, params url.Values) bool {
	var e *apiError
	switch {
	case s.roll(f.ThrottleRate):
		shape := ShapeThrottlingUser
		if n := len(f.ThrottleShapes); n > 0 {
			shape = f.ThrottleShapes[s.intN(n)]
		}
		if shape == Shape429Bare {
			s.count("(429-bare)")
			s.logf("%s Id=%s 429 bare page", params.Get("AccessKeyId"), params.Get("Id"))
			writeBody(w, http.StatusTooManyRequests, "text/html", []byte("<html><head><title>429 Too Many Requests</title></head>\n<body><h1>429 Too Many Requests</h1></body></html>\n"))
			return true
		}
		e = spuriousThrottle(shape, s.cfg.Now())
	case s.roll(f.Error503Rate):
		e = &apiError{status: http.StatusServiceUnavailable, code: "ServiceUnavailable", msg: "The request has failed due to a temporary failure of the server."}
	case s.roll(f.Error500Rate):
		e = &apiError{status: http.StatusInternalServerError, code: "InternalError", msg: "The request processing has failed due to some unknown error, exception or failure."}
	case s.roll(f.NumericJSONRate):
		status := http.StatusInternalServerError
		if s.intN(2) == 0 {
			status = http.StatusBadRequest
		}
		s.count("(numeric-json)")
		s.logf("%s Id=%s %d numeric JSON fields", params.Get("AccessKeyId"), params.Get("Id"), status)
		writeBody(w, status, "application/json", []byte(`{"RequestId":12345,"HostId":"`+HostID+`","Code":500,"Message":"upstream error"}`))
		return true
	case s.roll(f.RedirectRate):
		s.count("(redirect)")
		s.logf("%s Id=%s 302 redirect", params.Get("AccessKeyId"), params.Get("Id"))
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		w.Header().Set("Location", scheme+"://"+r.Host+redirectPath+"?"+r.URL.RawQuery)
		writeBody(w, http.StatusFound, "text/html", []byte("<html><body>302 Found</body></html>\n"))
		return true
	case s.roll(f.OKErrorRate):
		s.count("(200-error)")
		s.logf("%s Id=%s 200 with an error body", params.Get("AccessKeyId"), params.Get("Id"))
		writeJSON(w, http.StatusOK, map[string]any{"RequestId": requestID, "HostId": HostID, "Code": "InternalError",
			"Message": "The request processing has failed due to some unknown error, exception or failure."})
		return true
	}
	if e == nil {
		return false
	}
	s.answerError(w, requestID, params, e)
	return true
}

// spuriousThrottle is a throttling answer of the given shape (not bare).
func spuriousThrottle(shape string, now time.Time) *apiError {
	const msg = "Request was denied due to user flow control."
	switch shape {
	case Shape429:
		return &apiError{status: http.StatusTooManyRequests, code: "Throttling.User", msg: msg}
	case Shape429Wait:
		return &apiError{status: http.StatusTooManyRequests, code: "Throttling.User", msg: msg, retryAfter: spurious429Wait}
	case ShapeRetryAfter:
		return &apiError{status: http.StatusServiceUnavailable, code: "ServiceUnavailable", msg: "The request has failed due to a temporary failure of the server.", retryAfter: spuriousWait}
	case ShapeRateLimitHeader:
		reset := now.Add(spuriousWait).UnixMilli()
		h := http.Header{"X-Ratelimit-User": {fmt.Sprintf("Limit:%d,Remain:0,TimeLeft:%d,Reset:%d", DefaultRateLimit, spuriousWait.Milliseconds(), reset)}}
		return &apiError{status: http.StatusBadRequest, code: "Throttling.User", msg: msg, header: h}
	case ShapeThrottlingAPI:
		return &apiError{status: http.StatusBadRequest, code: shape, msg: "Request was denied due to api flow control."}
	}
	return &apiError{status: http.StatusBadRequest, code: shape, msg: msg}
}

// answerAfter throws the dice of the faults that answer after the call took
// effect, and answers if one hits.
func (s *Server) answerAfter(w http.ResponseWriter, r *http.Request, f Faults, requestID string, params url.Values, c assign, a Assignment) bool {
	ak := params.Get("AccessKeyId")
	switch {
	case s.roll(f.DropRate):
		s.count("(dropped)")
		s.logf("%s %s applied, connection dropped", ak, c)
		drop(w)
		return true
	case s.roll(f.HangRate):
		s.count("(hung)")
		s.logf("%s %s applied, hanging %s", ak, c, f.HangFor)
		sleep(r.Context(), f.HangFor)
		return false // then the usual answer, if anyone still listens
	case s.roll(f.HTMLRate):
		s.count("(html)")
		s.logf("%s %s applied, answered a 502 HTML page", ak, c)
		writeBody(w, http.StatusBadGateway, "text/html; charset=utf-8", badGatewayPage)
		return true
	case s.roll(f.EndlessRate):
		s.count("(endless)")
		s.logf("%s %s applied, answering an endless body", ak, c)
		endless(w, r, fmt.Sprintf(`{"RequestId":%q,"CertCount":%d,"CurrentYearFreeCertCount":0,"Padding":"`, requestID, a.CertTotalCount))
		return true
	case s.roll(f.NoRequestIDRate):
		s.count("(no-requestid)")
		s.logf("%s %s applied, answered without RequestId", ak, c)
		writeJSON(w, http.StatusOK, map[string]any{"CertCount": a.CertTotalCount, "CurrentYearFreeCertCount": 0})
		return true
	}
	return false
}

// redirectPath is where redirect faults point. Whatever arrives there came
// from a client that followed a redirect.
const redirectPath = "/casemu-redirected"

func (s *Server) followedRedirect(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.RedirectsFollowed++
	s.stats.ByCode["(redirect followed)"]++
	s.mu.Unlock()
	s.logf("%s followed a redirect (%s)", r.URL.Query().Get("AccessKeyId"), r.Method)
	writeBody(w, http.StatusNotFound, "text/plain; charset=utf-8", []byte("casemu: this request followed a redirect\n"))
}

// badGatewayPage is a load balancer's error page padded to about 100 KB,
// with line breaks and markup a report must not take in whole.
var badGatewayPage = func() []byte {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n<center><h1>502 Bad Gateway</h1></center>\n")
	for b.Len() < 100_000 {
		b.WriteString("<!-- a padding comment, as some proxies add to defeat browsers' friendly error pages -->\n")
	}
	b.WriteString("<hr><center>Tengine</center>\n</body>\n</html>\n")
	return []byte(b.String())
}()

// Endless bodies stream one shared chunk per tick: a bounded pace, so a
// client that reads without limit grows slowly and the server spends
// almost nothing, and a fixed allocation whatever the length.
const (
	endlessChunk = 64 << 10
	endlessTick  = 5 * time.Millisecond // 64 KiB per 5 ms, about 13 MB/s
	endlessMax   = 10 << 30
	// endlessStall gives up on a client that stopped reading but keeps
	// the connection open.
	endlessStall = 10 * time.Second
)

var endlessPadding = []byte(strings.Repeat("x", endlessChunk))

func endless(w http.ResponseWriter, r *http.Request, head string) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	defer rc.SetWriteDeadline(time.Time{}) // the connection may serve again
	if _, err := w.Write([]byte(head)); err != nil {
		return
	}
	tick := time.NewTicker(endlessTick)
	defer tick.Stop()
	for sent := 0; sent < endlessMax; sent += endlessChunk {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
		rc.SetWriteDeadline(time.Now().Add(endlessStall)) // unsupported by some writers; then a stall waits for the client
		if _, err := w.Write(endlessPadding); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	b, _ := json.Marshal(body)
	writeBody(w, status, "application/json;charset=utf-8", b)
}

func writeBody(w http.ResponseWriter, status int, contentType string, b []byte) {
	w.Header().Set("Content-Type", contentType)
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

func (s *Server) intN(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.IntN(n)
}

// newRequestID returns an id shaped like the service's.
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return strings.ToUpper(fmt.Sprintf("%s-%s-%s-%s-%s", h[:8], h[8:12], h[12:16], h[16:20], h[20:]))
}
