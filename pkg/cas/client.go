package cas

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/responses"
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

// Config sets up the clients of one run.
type Config struct {
	// Endpoint is where calls go; the zero value means the region's host
	// (see ResolveEndpoint).
	Endpoint       Endpoint
	Region         string
	Timeout        time.Duration // per attempt: connecting, sending and reading the whole answer
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
// credentials provider. It fails, with a Fatal *Error, when a proxy
// environment variable would fail every call.
func NewClients(cfg Config, n int) ([]*Client, error) {
	f, err := NewFactory(cfg, n)
	if err != nil {
		return nil, err
	}
	out := make([]*Client, n)
	for i := range out {
		if out[i], err = f.New(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Factory makes up to n clients, as they are needed, that share one
// connection pool (sized for n) and one credentials provider: a run whose
// calls in flight stay few makes few, where --workers may allow 2048.
type Factory struct {
	cfg    Config
	shared *http.Transport
	mu     sync.Mutex
	left   int
}

// NewFactory checks cfg, makes the shared connection pool and one client
// (so that a setup error shows before any call), and returns a factory
// for n clients. It fails, with a Fatal *Error, when a proxy environment
// variable would fail every call.
func NewFactory(cfg Config, n int) (*Factory, error) {
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
	if !ValidRegion(cfg.Region) {
		return nil, fmt.Errorf("region %q: want a region id such as cn-hangzhou", cfg.Region)
	}
	if cfg.Endpoint.Host == "" {
		cfg.Endpoint = Endpoint{Scheme: "https", Host: RegionalHost(cfg.Region, false)}
	}
	shared := newTransport(cfg.Endpoint, cfg.ConnectTimeout, n)
	if e := checkProxyEnv(cfg.Endpoint, shared.Proxy); e != nil {
		return nil, e
	}
	f := &Factory{cfg: cfg, shared: shared, left: n}
	if _, err := f.client(); err != nil {
		return nil, err
	}
	return f, nil
}

// New returns a new client, or an error once n have been made.
func (f *Factory) New() (*Client, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.left <= 0 {
		return nil, errors.New("more clients than the factory was made for")
	}
	c, err := f.client()
	if err == nil {
		f.left--
	}
	return c, err
}

func (f *Factory) client() (*Client, error) {
	rt := &roundTripper{t: f.shared}
	sc := sdk.NewConfig()
	sc.AutoRetry = false // retries, with backoff and throttling, are the runner's
	sc.Transport = rt
	sc.Scheme = strings.ToUpper(f.cfg.Endpoint.Scheme)
	sc.UserAgent = f.cfg.UserAgent
	c, err := sdk.NewClientWithOptions(f.cfg.Region, sc, f.cfg.Credentials)
	if err != nil {
		return nil, fmt.Errorf("set up the SDK client: %s", f.cfg.Credentials.Redact(err.Error()))
	}
	c.SetReadTimeout(f.cfg.Timeout)
	c.SetConnectTimeout(f.cfg.ConnectTimeout)
	return &Client{sdk: c, rt: rt, cfg: &f.cfg, creds: f.cfg.Credentials}, nil
}

// Assign makes one call. Every call builds a fresh request: the SDK mutates
// the one it sends, and re-signs with a new nonce and timestamp.
//
// onWire, if not nil, is called once when the request has a connection and
// is about to be written, after any dial and TLS handshake: the moment the
// service's rate limit will count. It is not called if no connection is
// made.
func (c *Client) Assign(r Request, onWire func()) (Result, *Error) {
	at := c.rt.begin(onWire)
	defer func() { c.rt.cur = nil }()

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

	var (
		res Result
		e   *Error
	)
	resp, err, panicked := c.process(req)
	switch {
	case panicked:
		// The SDK asserts that an error body's RequestId, Code and
		// AccessDeniedDetail have the documented types, and panics if not.
		e = unreadable(CodeBadResponse, "the error answer does not have the documented JSON shape", at.status, at.header)
	case err != nil:
		e = classify(err)
		if !at.called && e.Code != CodeCredentials {
			// It failed inside the SDK, before the transport: the SDK reads
			// the proxy variables on every call.
			if pe := checkProxyEnv(c.cfg.Endpoint, nil); pe != nil {
				e = pe
			} else if e.Code == CodeBadProxy {
				e = &Error{Class: Fatal, Code: CodeClient, Message: "the SDK could not build the request URL"}
			}
		}
		if !at.wrote.Load() {
			notSent(e)
		}
	default:
		res, e = decodeResult(resp)
	}
	if e != nil {
		finish(e, c.creds)
		return Result{}, e
	}
	return res, nil
}

// process is the one SDK call, with its panics turned into an answer.
func (c *Client) process(req *requests.CommonRequest) (resp *responses.CommonResponse, err error, panicked bool) {
	defer func() {
		if recover() != nil {
			panicked = true
		}
	}()
	resp, err = c.sdk.ProcessCommonRequest(req)
	return resp, err, false
}

// decodeResult reads a 2xx answer. Only the documented success shape is a
// success: a gateway's 200 with an error Code, or a body without RequestId,
// may or may not have been applied, so it is retried and flagged.
func decodeResult(resp *responses.CommonResponse) (Result, *Error) {
	var body struct {
		Result
		Code string `json:"Code"`
	}
	status, header := resp.GetHttpStatus(), resp.GetHttpHeaders()
	bad := func(msg string) (Result, *Error) {
		e := unreadable(CodeBadResponse, msg, status, header)
		if isThrottleCode(body.Code) {
			e.throttled, e.MaybeApplied = true, false
		}
		return Result{}, e
	}
	if err := json.Unmarshal(resp.GetHttpContentBytes(), &body); err != nil {
		return bad("the answer is not the documented JSON")
	}
	switch strings.ToLower(body.Code) {
	case "", "200", "ok", "success":
	default:
		return bad("a 2xx answer carries error code " + strconv.Quote(body.Code))
	}
	if body.RequestID == "" {
		return bad("the answer has no RequestId")
	}
	return body.Result, nil
}
