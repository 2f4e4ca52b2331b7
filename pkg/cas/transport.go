package cas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MaxResponseBytes bounds an answer's body. The SDK reads the whole body
// into memory with no limit; the documented answers are under 1 KB.
const MaxResponseBytes = 1 << 20

// roundTripper hides the shared *http.Transport from the SDK: given one,
// the SDK rewrites its dialer, TLS config and proxy on every call, which
// races when clients share it (API.md; upstream issue #538). Each Client
// has its own roundTripper, so cur needs no lock: a Client serves one
// goroutine at a time.
//
// It is also where an answer is made harmless before the SDK sees it: a
// redirect becomes an error (the SDK's http.Client would follow it with the
// same nonce, unpaced), and the body is capped. And it records what it
// knows about the attempt, for Assign to classify with.
type roundTripper struct {
	t   *http.Transport
	cur *attempt
}

// attempt is what the transport saw of one Assign. Each Assign gets a new
// one, so that a late callback of an earlier attempt cannot mark this one.
type attempt struct {
	onWire func()
	called bool        // the SDK got as far as sending
	wrote  atomic.Bool // the request was written to a connection (set from the transport's writer goroutine)
	status int         // of the answer, if one came
	header http.Header
}

func (r *roundTripper) begin(onWire func()) *attempt {
	r.cur = &attempt{onWire: onWire}
	return r.cur
}

func (r *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	a := r.cur
	if a == nil {
		a = &attempt{}
	}
	a.called = true
	var once sync.Once
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) {
			if a.onWire != nil {
				once.Do(a.onWire)
			}
		},
		// Called once the request is flushed, or failed part-way: either
		// way the service may have it.
		WroteRequest: func(httptrace.WroteRequestInfo) { a.wrote.Store(true) },
	}))
	resp, err := r.t.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	a.status, a.header = resp.StatusCode, resp.Header
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		resp.Body.Close()
		return nil, &redirectError{status: resp.StatusCode}
	}
	resp.Body = &cappedBody{rc: resp.Body, status: resp.StatusCode, header: resp.Header}
	return resp, nil
}

// redirectError is a 3xx answer, refused.
type redirectError struct{ status int }

func (e *redirectError) Error() string {
	return "redirect refused (HTTP " + strconv.Itoa(e.status) + ")"
}

// tooLargeError is a body past MaxResponseBytes.
type tooLargeError struct {
	status int
	header http.Header
}

func (e *tooLargeError) Error() string { return "answer body too large" }

// cappedBody fails a read past MaxResponseBytes. The read time is bounded
// by the SDK's http.Client.Timeout, which it sets to the read timeout: Go
// applies that to the whole exchange, body included.
type cappedBody struct {
	rc     io.ReadCloser
	n      int
	status int
	header http.Header
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.n > MaxResponseBytes {
		return 0, &tooLargeError{status: b.status, header: b.header}
	}
	if room := MaxResponseBytes + 1 - b.n; len(p) > room {
		p = p[:room]
	}
	n, err := b.rc.Read(p)
	b.n += n
	if b.n > MaxResponseBytes {
		return n, &tooLargeError{status: b.status, header: b.header}
	}
	return n, err
}

func (b *cappedBody) Close() error { return b.rc.Close() }

func newTransport(ep Endpoint, connectTimeout time.Duration, conns int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}).DialContext
	// One idle connection per worker, or Go's default of 2 churns them.
	t.MaxIdleConns = conns + 4
	t.MaxIdleConnsPerHost = conns + 4
	t.IdleConnTimeout = 90 * time.Second
	t.TLSHandshakeTimeout = connectTimeout
	t.TLSClientConfig = nil // the default: verify certificates
	if ep.Loopback {
		t.Proxy = nil // a proxy for loopback would send local traffic away
	} else {
		name, _ := proxyVar(ep.Scheme)
		t.Proxy = func(r *http.Request) (*url.URL, error) {
			u, err := http.ProxyFromEnvironment(r)
			if err != nil {
				return nil, &proxyError{variable: name}
			}
			return u, nil
		}
		// net/http reports a refused tunnel as an untyped error holding
		// the proxy's status text; this keeps the status, typed.
		t.OnProxyConnectResponse = func(_ context.Context, _ *url.URL, req *http.Request, resp *http.Response) error {
			if resp.StatusCode != http.StatusOK {
				return &proxyRefusedError{variable: name, target: req.Host, status: resp.StatusCode}
			}
			return nil
		}
	}
	return t
}

// proxyRefusedError is a proxy's refusal of the tunnel to the endpoint: the
// request never reached the service.
type proxyRefusedError struct {
	variable, target string
	status           int
}

func (e *proxyRefusedError) Error() string { return e.classified().Message }

// classified makes a refusal that will repeat for every row run-fatal: a
// proxy that does not allow the host (403, or 405 for CONNECT itself) or
// wants credentials (407). Any other status (502, 503, 504: the proxy
// could not reach the endpoint) is retried.
func (e *proxyRefusedError) classified() *Error {
	msg := fmt.Sprintf("the proxy in %s refused the tunnel to %s (HTTP %d)", e.variable, e.target, e.status)
	switch e.status {
	case http.StatusProxyAuthRequired:
		return &Error{Class: Fatal, Code: CodeProxyRefused, Message: msg + "; it wants credentials, which go in " + e.variable}
	case http.StatusForbidden, http.StatusMethodNotAllowed, http.StatusBadRequest, http.StatusUnauthorized:
		return &Error{Class: Fatal, Code: CodeProxyRefused, Message: msg + "; allow that host in the proxy, or list it in NO_PROXY"}
	}
	return &Error{Class: Retryable, Code: CodeProxyRefused, Message: msg + "; nothing was sent"}
}

// proxyError is a proxy variable no request can get past. Its text never
// holds the value, which may carry the proxy's credentials.
type proxyError struct {
	variable string
	what     string
}

func (e *proxyError) Error() string { return e.classified().Message }

func (e *proxyError) classified() *Error {
	what := e.what
	if what == "" {
		what = "is not a usable proxy URL (want http://host:port)"
	}
	return &Error{Class: Fatal, Code: CodeBadProxy, Message: "environment variable " + e.variable + " " + what + "; fix or unset it"}
}

// proxyVar returns the variable that names the proxy for a scheme, as both
// the SDK (client.getHttpProxy) and net/http read it: upper case first.
func proxyVar(scheme string) (name, value string) {
	names := []string{"HTTPS_PROXY", "https_proxy"}
	if scheme == "http" {
		names = []string{"HTTP_PROXY", "http_proxy"}
	}
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return n, v
		}
	}
	return names[0], ""
}

// checkProxyEnv finds, before the first call, a proxy setting that would
// fail every call: the SDK parses the proxy variable with url.Parse and
// compiles each NO_PROXY entry as a regular expression on every call,
// loopback endpoints included, and net/http rejects what it cannot read.
// proxy, if not nil, is the transport's proxy function.
func checkProxyEnv(ep Endpoint, proxy func(*http.Request) (*url.URL, error)) *Error {
	name, v := proxyVar(ep.Scheme)
	if v != "" {
		if _, err := url.Parse(v); err != nil {
			return (&proxyError{variable: name}).classified()
		}
	}
	for _, n := range []string{"NO_PROXY", "no_proxy"} {
		nv := os.Getenv(n)
		if nv == "" {
			continue
		}
		for _, entry := range strings.Split(nv, ",") {
			if strings.HasPrefix(entry, "*") {
				entry = "." + entry // as the SDK does
			}
			if _, err := regexp.Compile(entry); err != nil {
				return (&proxyError{variable: n, what: "holds an entry the SDK cannot read"}).classified()
			}
		}
		break // the SDK reads the first one set
	}
	if proxy == nil {
		return nil
	}
	u, err := proxy(&http.Request{Method: http.MethodPost, URL: &url.URL{Scheme: ep.Scheme, Host: ep.Host}, Header: http.Header{}})
	var pe *proxyError
	switch {
	case errors.As(err, &pe):
		return pe.classified()
	case err != nil:
		return (&proxyError{variable: name}).classified()
	case u != nil && u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "socks5" && u.Scheme != "socks5h":
		return (&proxyError{variable: name, what: "names a proxy scheme Go cannot use (want http, https or socks5)"}).classified()
	}
	return nil
}
