package cas

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// answering starts a server that answers every request with h, and
// returns a client for it, through the real SDK, and the request count.
func answering(t *testing.T, timeout time.Duration, h http.HandlerFunc) (*Client, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	t.Cleanup(ts.Close)
	ep, _, err := ParseEndpoint(ts.URL, false)
	if err != nil {
		t.Fatal(err)
	}
	return clients(t, ep, "AKID", "sekret", "", 1, timeout)[0], &n
}

func reply(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// Answers a broken gateway, proxy or server can give: none may crash the
// run, stall it past --timeout, be followed, or pass for a success.
func TestHostileAnswers(t *testing.T) {
	htmlPage := "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>" +
		strings.Repeat("<p>the upstream is having a bad day</p>\n", 2600) + "</body></html>" // about 100 KB
	endless := func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		chunk := []byte(strings.Repeat("x", 64<<10))
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}
	trickle := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.WriteHeader(200)
		for {
			if _, err := w.Write([]byte("{")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	tests := []struct {
		name       string
		h          http.HandlerFunc
		code       string
		class      Class
		status     int
		throttled  bool
		maybe      bool
		retryAfter time.Duration
		msg        string // the message contains it
	}{
		{"numeric RequestId", reply(400, `{"RequestId":12345,"Code":"InvalidParameter"}`), CodeBadResponse, Retryable, 400, false, false, 0, "documented JSON"},
		{"numeric Code", reply(500, `{"RequestId":"R","Code":500}`), CodeBadResponse, Retryable, 500, false, true, 0, "documented JSON"},
		{"detail not an object", reply(403, `{"RequestId":"R","Code":"NoPermission","AccessDeniedDetail":"no"}`), CodeBadResponse, Retryable, 403, false, false, 0, ""},
		{"numeric RequestId on 429", reply(429, `{"RequestId":1}`, "x-acs-retry-after", "300"), CodeBadResponse, Retryable, 429, true, false, 300 * time.Millisecond, ""},
		{"100 KB HTML 502", reply(502, htmlPage, "Content-Type", "text/html"), "HTTP502", Retryable, 502, false, false, 0, "502 Bad Gateway the upstream"},
		{"redirect 302", reply(302, "", "Location", "/elsewhere"), CodeRedirected, Retryable, 302, false, false, 0, "--endpoint"},
		{"redirect 307", reply(307, "", "Location", "https://evil.example/"), CodeRedirected, Retryable, 307, false, false, 0, ""},
		{"endless body", endless, CodeResponseTooLarge, Retryable, 200, false, true, 0, "larger than"},
		{"trickled body", trickle, CodeClientTimeout, Retryable, 0, false, true, 0, ""},
		{"200 with an error code", reply(200, `{"RequestId":"R","Code":"InternalError","Message":"oops"}`), CodeBadResponse, Retryable, 200, false, true, 0, `"InternalError"`},
		{"200 with a throttling code", reply(200, `{"RequestId":"R","Code":"Throttling.User"}`), CodeBadResponse, Retryable, 200, true, false, 0, ""},
		{"200 without RequestId", reply(200, `{"CertCount":5}`), CodeBadResponse, Retryable, 200, false, true, 0, "no RequestId"},
		{"200 not JSON", reply(200, `<html>hello</html>`), CodeBadResponse, Retryable, 200, false, true, 0, ""},
		{"429 bare", reply(429, "Too Many Requests", "Content-Type", "text/plain"), "HTTP429", Retryable, 429, true, false, 0, "Too Many Requests"},
		{"429 JSON", reply(429, `{"RequestId":"R","Code":"Throttling.User","Message":"slow"}`, "x-acs-retry-after", "200"), "Throttling.User", Retryable, 429, true, false, 200 * time.Millisecond, ""},
		{"400 ratelimit header", reply(400, `{"RequestId":"R","Code":"Throttling.Api"}`, "x-ratelimit-user-api", "Limit:10,Remain:0,TimeLeft:800,Reset:1"), "Throttling.Api", Retryable, 400, true, false, 800 * time.Millisecond, ""},
		{"RAM detail", reply(403, `{"RequestId":"R","Code":"NoPermission","Message":"denied","AccessDeniedDetail":{"AuthAction":"yundun-cert:AssignCertificateCount","NoPermissionType":"ImplicitDeny","PolicyType":"AccountLevelIdentityBasedPolicy"}}`), "NoPermission", Fatal, 403, false, false, 0, "RAM denied yundun-cert:AssignCertificateCount (NoPermissionType ImplicitDeny, PolicyType AccountLevelIdentityBasedPolicy)"},
		{"gateway code", reply(404, `{"RequestId":"R","Code":"InvalidApi.NotFound"}`), "InvalidApi.NotFound", Fatal, 404, false, false, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, n := answering(t, 400*time.Millisecond, tt.h)
			start := time.Now()
			_, e := c.Assign(Request{ID: 1, CertTotalCount: 1}, nil)
			took := time.Since(start)
			if e == nil {
				t.Fatalf("Assign succeeded; want %s", tt.code)
			}
			if e.Code != tt.code || e.Class != tt.class || e.HTTPStatus != tt.status || e.Throttled() != tt.throttled ||
				e.MaybeApplied != tt.maybe || e.RetryAfter != tt.retryAfter {
				t.Errorf("Assign = %v: class %v status %d throttled %v maybe %v retry-after %v; want %s %v %d %v %v %v",
					e, e.Class, e.HTTPStatus, e.Throttled(), e.MaybeApplied, e.RetryAfter, tt.code, tt.class, tt.status, tt.throttled, tt.maybe, tt.retryAfter)
			}
			if !strings.Contains(e.Message, tt.msg) {
				t.Errorf("Message = %q; want it to contain %q", e.Message, tt.msg)
			}
			if len(e.Message) > MaxMessageBytes || strings.ContainsAny(e.Message, "\r\n") {
				t.Errorf("Message is %d bytes or spans lines: %.100q", len(e.Message), e.Message)
			}
			if got := n.Load(); got != 1 {
				t.Errorf("the server saw %d requests; want exactly 1", got)
			}
			// The whole attempt, body included, is bounded by the timeout
			// (400ms); the margin is for a loaded machine.
			if took > 5*time.Second {
				t.Errorf("Assign took %v", took)
			}
		})
	}
}

func TestAssignAcceptsTheDocumentedAnswer(t *testing.T) {
	c, _ := answering(t, time.Second, reply(200, `{"RequestId":"E77C4794-F24F-58CB-9929-F0F0C0EDE7B2","CertCount":2,"CurrentYearFreeCertCount":0}`))
	r, e := c.Assign(Request{ID: 1, CertTotalCount: 2}, nil)
	if e != nil || r.RequestID != "E77C4794-F24F-58CB-9929-F0F0C0EDE7B2" || r.CertCount != 2 {
		t.Errorf("Assign = %+v, %v", r, e)
	}
}

// A server that echoes the request's SecurityToken in its message, in any
// encoding, gets it scrubbed from the error.
func TestEchoedTokenRedacted(t *testing.T) {
	const token = "CAIS+sts/token=value*1"
	for name, echo := range map[string]func(string) string{
		"lower-case percent":  func(s string) string { return lowerHex(rfc3986(s)) },
		"double percent":      func(s string) string { return url.QueryEscape(url.QueryEscape(s)) },
		"json escaped":        func(s string) string { return strings.ReplaceAll(s, "/", `\/`) },
		"json unicode escape": func(s string) string { return strings.ReplaceAll(s, "+", `\u002b`) },
	} {
		t.Run(name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got := r.URL.Query().Get("SecurityToken")
				w.WriteHeader(400)
				io.WriteString(w, `{"RequestId":"R","Code":"InvalidSecurityToken.Malformed","Message":"bad token `+echo(got)+` in `+echo(r.URL.RawQuery)+`"}`)
			}))
			defer ts.Close()
			ep, _, _ := ParseEndpoint(ts.URL, false)
			c := clients(t, ep, "STSID", "sts-secret-value", token, 1, time.Second)[0]
			_, e := c.Assign(Request{ID: 1, CertTotalCount: 1}, nil)
			if e == nil || e.Code != "InvalidSecurityToken.Malformed" || e.Class != Fatal {
				t.Fatalf("Assign = %v", e)
			}
			if strings.Contains(e.Message, "CAIS") || strings.Contains(strings.ToLower(e.Message), "sts%2ftoken") || !strings.Contains(e.Message, "bad token ***") {
				t.Errorf("Message = %q; the token is not scrubbed", e.Message)
			}
		})
	}
}

// Proxy variables the SDK reads on every call, loopback endpoints
// included: a malformed one fails every row, so it stops the run before
// the first row, naming the variable and never its value.
func TestBadProxyVariables(t *testing.T) {
	_, ep := emulator(t, emuConfig())
	tests := []struct{ name, variable, value string }{
		{"bad port", "HTTP_PROXY", "http://user:pa55@proxy.example:bad"},
		{"bad escape", "http_proxy", "http://user:pa%zz@proxy.example:3128"},
		{"bad no_proxy", "NO_PROXY", "localhost,+x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, v := range []string{"HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"} {
				t.Setenv(v, "")
			}
			// Clients made while the variable was fine, then the call.
			c := clients(t, ep, "AKID", "sekret", "", 1, time.Second)[0]
			t.Setenv(tt.variable, tt.value)
			calls := 0
			_, e := c.Assign(Request{ID: 1, CertTotalCount: 1}, func() { calls++ })
			for _, got := range []error{e, newClientsErr(t, ep)} {
				var ce *Error
				if got == nil || !asError(got, &ce) || ce.Class != Fatal || ce.Code != CodeBadProxy || ce.MaybeApplied {
					t.Fatalf("got %v; want a run-fatal BadProxy, not maybe applied", got)
				}
				if !strings.Contains(ce.Message, tt.variable) || strings.Contains(ce.Message, "pa55") || strings.Contains(ce.Message, "proxy.example") {
					t.Errorf("Message = %q; want it to name %s and not its value", ce.Message, tt.variable)
				}
			}
			if calls != 0 {
				t.Errorf("onWire called %d times; nothing should have been sent", calls)
			}
		})
	}
}

func newClientsErr(t *testing.T, ep Endpoint) error {
	creds, err := StaticCredentials("AKID", "sekret", "", "test")
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewClients(Config{Endpoint: ep, Credentials: creds}, 1)
	return err
}

func asError(err error, target **Error) bool {
	e, ok := err.(*Error)
	*target = e
	return ok
}
