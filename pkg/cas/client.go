package cas

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
)

// API facts the client relies on (see ../shared/API.md).
const (
	Product         = "cas"
	APIVersion      = "2020-06-30"
	ActionName      = "AssignCertificateCount"
	DefaultEndpoint = "https://cas.aliyuncs.com"
	DefaultRegion   = "cn-hangzhou"
	DefaultTimeout  = 10 * time.Second
	// DefaultConnectTimeout matches the SDK's own default.
	DefaultConnectTimeout = 5 * time.Second
)

// Endpoint is where calls go.
type Endpoint struct {
	Scheme   string // "https" or "http"
	Host     string // host[:port]
	Loopback bool
}

func (e Endpoint) String() string { return e.Scheme + "://" + e.Host }

// ParseEndpoint reads --endpoint. A bare host means https. Plain http is
// refused unless the host is loopback or allowInsecure is set, in which case
// warn is non-empty and should be shown to the operator.
func ParseEndpoint(s string, allowInsecure bool) (ep Endpoint, warn string, err error) {
	if s == "" {
		s = DefaultEndpoint
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return Endpoint{}, "", fmt.Errorf("endpoint %q: %v", s, err)
	}
	if u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return Endpoint{}, "", fmt.Errorf("endpoint %q: want scheme://host[:port] and nothing else", s)
	}
	ep = Endpoint{Scheme: strings.ToLower(u.Scheme), Host: u.Host, Loopback: isLoopback(u.Hostname())}
	switch ep.Scheme {
	case "https":
	case "http":
		if !ep.Loopback {
			if !allowInsecure {
				return Endpoint{}, "", fmt.Errorf("endpoint %q: plain http is only allowed to loopback addresses; use https, or pass --insecure-endpoint if you really mean it", s)
			}
			warn = fmt.Sprintf("endpoint %s is plain http to a non-loopback host: requests and their signatures travel unencrypted", ep)
		}
	default:
		return Endpoint{}, "", fmt.Errorf("endpoint %q: scheme must be https or http", s)
	}
	return ep, warn, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Config sets up the clients of one run.
type Config struct {
	Endpoint       Endpoint
	Region         string
	Timeout        time.Duration // per attempt, the whole request
	ConnectTimeout time.Duration
	Credentials    *Credentials // resolved, see ResolveCredentials
	UserAgent      string
}

// Request is one AssignCertificateCount call's business parameters.
type Request struct {
	ID             int64
	CertTotalCount int32
	// CaIdentifier is optional (since October 2026); empty sends nothing.
	CaIdentifier string
}

// Result is a successful answer.
type Result struct {
	RequestID                string `json:"RequestId"`
	CertCount                int64  `json:"CertCount"`
	CurrentYearFreeCertCount int64  `json:"CurrentYearFreeCertCount"`
}

// Client makes AssignCertificateCount calls. A Client is not safe for
// concurrent use (the SDK client under it writes its own fields on every
// call): give each worker its own, from NewClients.
type Client struct {
	sdk   *sdk.Client
	rt    *roundTripper // this client's own; the transport under it is shared
	cfg   *Config
	creds *Credentials
}

// NewClients returns n clients that share one connection pool and one
// credentials provider.
func NewClients(cfg Config, n int) ([]*Client, error) {
	if cfg.Credentials == nil {
		return nil, errors.New("no credentials")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	shared := newTransport(cfg.Endpoint, cfg.ConnectTimeout, n)
	out := make([]*Client, n)
	for i := range out {
		rt := &roundTripper{t: shared}
		sc := sdk.NewConfig()
		sc.AutoRetry = false // retries, with backoff and throttling, are the runner's
		sc.Transport = rt
		sc.Scheme = strings.ToUpper(cfg.Endpoint.Scheme)
		sc.UserAgent = cfg.UserAgent
		c, err := sdk.NewClientWithOptions(cfg.Region, sc, cfg.Credentials)
		if err != nil {
			return nil, fmt.Errorf("set up the SDK client: %s", cfg.Credentials.Redact(err.Error()))
		}
		c.SetReadTimeout(cfg.Timeout)
		c.SetConnectTimeout(cfg.ConnectTimeout)
		out[i] = &Client{sdk: c, rt: rt, cfg: &cfg, creds: cfg.Credentials}
	}
	return out, nil
}

// Assign makes one call. Every call builds a fresh request: the SDK mutates
// the one it sends, and re-signs with a new nonce and timestamp.
//
// onWire, if not nil, is called once when the request has a connection and
// is about to be written, after any dial and TLS handshake: the moment the
// service's rate limit will count. It is not called if no connection is
// made.
func (c *Client) Assign(r Request, onWire func()) (Result, *Error) {
	c.rt.onWire = onWire
	defer func() { c.rt.onWire = nil }()

	req := requests.NewCommonRequest()
	req.Method = requests.POST // a CommonRequest defaults to GET
	req.Scheme = c.cfg.Endpoint.Scheme
	req.Domain = c.cfg.Endpoint.Host
	req.Product = Product
	req.Version = APIVersion
	req.ApiName = ActionName
	req.QueryParams["Id"] = strconv.FormatInt(r.ID, 10)
	req.QueryParams["CertTotalCount"] = strconv.FormatInt(int64(r.CertTotalCount), 10)
	if r.CaIdentifier != "" {
		req.QueryParams["CaIdentifier"] = r.CaIdentifier
	}
	req.SetReadTimeout(c.cfg.Timeout)
	req.SetConnectTimeout(c.cfg.ConnectTimeout)

	resp, err := c.sdk.ProcessCommonRequest(req)
	if err != nil {
		e := Classify(err)
		e.Message = c.creds.Redact(e.Message)
		return Result{}, e
	}
	var res Result
	if err := json.Unmarshal(resp.GetHttpContentBytes(), &res); err != nil || res.RequestID == "" {
		return Result{}, &Error{Class: Retryable, Code: CodeBadResponse, HTTPStatus: resp.GetHttpStatus(),
			Message: "the answer is not the documented JSON", MaybeApplied: true}
	}
	return res, nil
}

// roundTripper hides the shared *http.Transport from the SDK: given one,
// the SDK rewrites its dialer, TLS config and proxy on every call, which
// races when clients share it (API.md; upstream issue #538). Each Client
// has its own roundTripper, so onWire needs no lock: a Client serves one
// goroutine at a time.
type roundTripper struct {
	t      *http.Transport
	onWire func()
}

func (r *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	if r.onWire != nil {
		var once sync.Once
		hook := r.onWire
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(httptrace.GotConnInfo) { once.Do(hook) },
		}))
	}
	return r.t.RoundTrip(req)
}

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
		t.Proxy = http.ProxyFromEnvironment
	}
	return t
}
