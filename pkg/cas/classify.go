package cas

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"regexp/syntax"
	"strconv"
	"strings"
	"syscall"
	"time"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
)

// Class says what a failed attempt means for the row and for the run.
type Class int

const (
	// Retryable: try the row again later (throttling, 5xx, lost answers).
	Retryable Class = iota + 1
	// RowFinal: this row cannot succeed as written; record it and go on.
	RowFinal
	// Fatal: no row can succeed (credentials, permission, signing, clock,
	// a gateway that does not know the API); stop sending.
	Fatal
)

func (c Class) String() string {
	switch c {
	case Retryable:
		return "retryable"
	case RowFinal:
		return "row-final"
	case Fatal:
		return "run-fatal"
	}
	return "unknown"
}

// Codes certalloc gives to failures that have no service error code.
const (
	CodeClientTimeout     = "ClientTimeout"     // no answer within --timeout; the call may have taken effect
	CodeConnectionLost    = "ConnectionLost"    // connection closed before the answer; the call may have taken effect
	CodeConnectionRefused = "ConnectionRefused" // nothing listening; the call did not leave
	CodeEndpointNotFound  = "EndpointNotFound"  // the endpoint's host name does not resolve
	CodeTLS               = "TLSError"          // certificate verification or TLS handshake failed
	CodeTransport         = "TransportError"    // any other network failure
	CodeBadResponse       = "BadResponse"       // an answer that is not the documented JSON (or a 2xx carrying an error)
	CodeResponseTooLarge  = "ResponseTooLarge"  // an answer body past MaxResponseBytes
	CodeRedirected        = "Redirected"        // a 3xx answer; never followed
	CodeBadProxy          = "BadProxy"          // a proxy environment variable no request can get past
	CodeProxyRefused      = "ProxyRefused"      // the proxy refused the tunnel to the endpoint; nothing was sent
	CodeCredentials       = "CredentialsUnavailable"
	CodeClient            = "ClientError" // the SDK could not build or sign the request
)

// RAMAction is the RAM action a policy must allow for AssignCertificateCount.
const RAMAction = "yundun-cert:AssignCertificateCount"

// MaxRetryAfter caps a server's wait hint, so that a bogus header cannot
// stall a row for minutes (the aliyun CLI caps at the same 60 s).
const MaxRetryAfter = 60 * time.Second

// AccessDenied is the service's account of a RAM refusal (the
// AccessDeniedDetail object of a NoPermission or Forbidden.RAM answer).
type AccessDenied struct {
	AuthAction               string // the RAM action checked, e.g. yundun-cert:AssignCertificateCount
	AuthPrincipalType        string // SubUser, AssumedRoleUser, Federated
	AuthPrincipalDisplayName string
	NoPermissionType         string // ImplicitDeny (no Allow) or ExplicitDeny (a Deny matched)
	PolicyType               string // which kind of policy refused: AccountLevelIdentityBasedPolicy, ControlPolicy, ...
	// EncodedDiagnosticMessage decodes, with RAM's DecodeDiagnosticMessage
	// API, into the policy that matched. It is long, so it stays out of
	// Error.Message.
	EncodedDiagnosticMessage string
}

// Error is a failed attempt, classified. Its text is built from the code,
// the status and the message only: never from an SDK error string, which
// embeds the signed URL (and with it any STS token). Message is one line of
// at most MaxMessageBytes, scrubbed of secrets.
type Error struct {
	Class      Class
	Code       string
	HTTPStatus int // 0 when no answer came
	Message    string
	RequestID  string
	// RetryAfter is the server's wait hint (x-acs-retry-after, else the
	// TimeLeft of x-ratelimit-user), 0 when absent, at most MaxRetryAfter.
	RetryAfter time.Duration
	// MaybeApplied is set when the request may have reached the service but
	// its answer was lost or unreadable. It is never set for a request that
	// did not leave (no connection, bad proxy, DNS).
	MaybeApplied bool
	// AccessDenied is set for a RAM refusal that came with details.
	AccessDenied *AccessDenied

	throttled bool // an answer shape that says throttled without a code
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Code)
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.HTTPStatus)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " [RequestId %s]", e.RequestID)
	}
	return b.String()
}

// Throttled reports whether the service said the account is over its rate,
// in any of its shapes: a code containing Throttling (Throttling.User,
// Throttling.Api, Rejected.Throttling), HTTP 429 whatever the body, or an
// x-acs-retry-after header whatever the code.
func (e *Error) Throttled() bool {
	return e.throttled || isThrottleCode(e.Code) || e.HTTPStatus == http.StatusTooManyRequests
}

func isThrottleCode(code string) bool { return strings.Contains(strings.ToLower(code), "throttling") }

// fatalCodes stop the run: no other row can succeed either. Matched as
// exact codes or as prefixes ending in ".".
var fatalCodes = []string{
	// credentials and signing
	"SignatureDoesNotMatch", "IncompleteSignature", "InvalidSignatureMethod",
	"InvalidAccessKeyId", "InvalidAccessKeyId.", "InvalidSecurityToken.", "MissingSecurityToken",
	"SignatureNonceUsed", "InvalidTimeStamp.", "IllegalTimestamp",
	// permission
	"Forbidden", "Forbidden.", "NoPermission",
	// a gateway or region that does not serve this API
	"InvalidAction.", "InvalidApi.", "InvalidVersion", "InvalidProduct.", "InvalidRegion.", "InvalidRegionId",
	"InvalidProtocol.", "UnsupportedHTTPMethod",
}

func isFatalCode(code string) bool {
	for _, c := range fatalCodes {
		if code == c || strings.HasSuffix(c, ".") && strings.HasPrefix(code, c) {
			return true
		}
	}
	return false
}

// classifyServer classifies an answer the service gave.
func classifyServer(status int, code, msg, requestID string, header http.Header, detail map[string]any) *Error {
	e := &Error{Code: code, HTTPStatus: status, Message: msg, RequestID: requestID}
	if e.Code == "" {
		e.Code = "HTTP" + strconv.Itoa(status)
	}
	e.throttled = hasRetryAfter(header)
	switch {
	case e.Throttled():
		e.Class = Retryable
		e.RetryAfter = throttleWait(header)
	case code == "ServiceUnavailable" || status >= 500:
		e.Class = Retryable
	case isFatalCode(code), status == http.StatusUnauthorized, status == http.StatusForbidden:
		e.Class = Fatal
	default:
		e.Class = RowFinal
	}
	e.AccessDenied = accessDenied(detail)
	return e
}

// unreadable classifies an answer whose body could not be read or parsed.
// Its status and headers still say whether it was throttled; a 4xx was
// refused, anything else may have taken effect.
func unreadable(code, msg string, status int, header http.Header) *Error {
	e := &Error{Class: Retryable, Code: code, HTTPStatus: status, Message: msg}
	e.throttled = status == http.StatusTooManyRequests || hasRetryAfter(header)
	if e.throttled {
		e.RetryAfter = throttleWait(header)
	} else {
		e.MaybeApplied = status < 400 || status >= 500
	}
	return e
}

func accessDenied(detail map[string]any) *AccessDenied {
	if len(detail) == 0 {
		return nil
	}
	str := func(k string) string { s, _ := detail[k].(string); return s }
	return &AccessDenied{
		AuthAction: str("AuthAction"), AuthPrincipalType: str("AuthPrincipalType"),
		AuthPrincipalDisplayName: str("AuthPrincipalDisplayName"), NoPermissionType: str("NoPermissionType"),
		PolicyType: str("PolicyType"), EncodedDiagnosticMessage: str("EncodedDiagnosticMessage"),
	}
}

func hasRetryAfter(h http.Header) bool { return len(h.Values("x-acs-retry-after")) > 0 }

// throttleWait reads a throttled answer's wait hint: x-acs-retry-after in
// milliseconds; else the TimeLeft, in milliseconds, of the exhausted one of
// x-ratelimit-user and x-ratelimit-user-api; else Retry-After in seconds.
func throttleWait(h http.Header) time.Duration {
	if ms, ok := parseMillis(h.Get("x-acs-retry-after")); ok {
		return ms
	}
	var wait time.Duration
	for _, name := range []string{"x-ratelimit-user", "x-ratelimit-user-api"} {
		for _, v := range h.Values(name) {
			if d, ok := rateLimitWait(v); ok {
				wait = max(wait, d)
			}
		}
	}
	if wait > 0 {
		return wait
	}
	if s, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After"))); err == nil && s > 0 {
		return min(time.Duration(s)*time.Second, MaxRetryAfter)
	}
	return 0
}

func parseMillis(v string) (time.Duration, bool) {
	ms, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(ms) || ms <= 0 {
		return 0, false
	}
	if ms >= float64(MaxRetryAfter/time.Millisecond) {
		return MaxRetryAfter, true
	}
	return time.Duration(ms * float64(time.Millisecond)), true
}

// rateLimitWait reads "Limit:1,Remain:0,TimeLeft:2000,Reset:...". A limit
// with calls left is not the one that throttled, so it gives no wait.
func rateLimitWait(v string) (time.Duration, bool) {
	var left time.Duration
	found := false
	for _, field := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(field, ":")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "remain":
			if n, err := strconv.Atoi(strings.TrimSpace(val)); err == nil && n > 0 {
				return 0, false
			}
		case "timeleft":
			left, found = parseMillis(val)
		}
	}
	return left, found
}

// Classify turns any error from one SDK call into *Error, its Message one
// line and bounded (but not scrubbed of secrets: Client.Assign does that).
// It looks at types, codes, statuses and headers only, never at message
// text.
func Classify(err error) *Error {
	e := classify(err)
	if e != nil {
		finish(e, nil)
	}
	return e
}

// classify is Classify without the final trimming of the texts, which must
// come after redaction.
func classify(err error) *Error {
	if err == nil {
		return nil
	}
	var (
		ce   *Error
		se   *sdkerrors.ServerError
		re   *redirectError
		tl   *tooLargeError
		pe   *proxyError
		pre  *proxyRefusedError
		cre  *credentialsError
		cle  *sdkerrors.ClientError
		ue   *url.Error
		synE *syntax.Error
	)
	switch {
	case errors.As(err, &ce):
		return ce
	case errors.As(err, &se):
		return classifyServer(se.HttpStatus(), se.ErrorCode(), se.Message(), se.RequestId(), http.Header(se.RespHeaders), se.AccessDeniedDetail())
	case errors.As(err, &re):
		return &Error{Class: Retryable, Code: CodeRedirected, HTTPStatus: re.status,
			Message: "the endpoint answered with a redirect, which certalloc never follows; check --endpoint"}
	case errors.As(err, &tl):
		return unreadable(CodeResponseTooLarge, fmt.Sprintf("the answer's body is larger than %d bytes", MaxResponseBytes), tl.status, tl.header)
	case errors.As(err, &pe):
		return pe.classified()
	case errors.As(err, &pre):
		return pre.classified()
	case errors.As(err, &cre):
		return &Error{Class: Retryable, Code: CodeCredentials, Message: "the credentials provider (" + cre.provider + ") gave no credentials; nothing was sent"}
	case errors.As(err, &ue) && ue.Op == "parse":
		// The SDK parses HTTP(S)_PROXY itself, before anything is sent.
		return &Error{Class: Fatal, Code: CodeBadProxy, Message: "a proxy environment variable (HTTPS_PROXY or HTTP_PROXY) is not a valid URL; fix or unset it"}
	case errors.As(err, &synE):
		// ... and compiles each NO_PROXY entry as a regular expression.
		return &Error{Class: Fatal, Code: CodeBadProxy, Message: "NO_PROXY holds an entry the SDK cannot read; fix or unset it"}
	case errors.As(err, &cle):
		if inner := cle.OriginError(); inner != nil {
			if e := classifyTransport(inner); e.Code != CodeTransport {
				return e
			}
		}
		return &Error{Class: Fatal, Code: CodeClient, Message: "the SDK could not build or sign the request (" + cle.ErrorCode() + ")"}
	}
	return classifyTransport(err)
}

// classifyTransport classifies a failure to get any answer.
func classifyTransport(err error) *Error {
	var (
		dnsErr  *net.DNSError
		uaErr   x509.UnknownAuthorityError
		hostErr x509.HostnameError
		invErr  x509.CertificateInvalidError
		recErr  tls.RecordHeaderError
		certErr *tls.CertificateVerificationError
		netErr  net.Error
		opErr   *net.OpError
	)
	// net/http marks a failure to reach the proxy itself: the messages
	// must not blame the endpoint, which was never contacted.
	if errors.As(err, &opErr) && opErr.Op == "proxyconnect" {
		switch {
		case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
			return &Error{Class: Fatal, Code: CodeEndpointNotFound, Message: "the proxy host " + strconv.Quote(dnsErr.Name) + " (HTTPS_PROXY or HTTP_PROXY) does not resolve"}
		case errors.Is(err, syscall.ECONNREFUSED):
			return &Error{Class: Retryable, Code: CodeConnectionRefused, Message: "connection refused by the proxy (HTTPS_PROXY or HTTP_PROXY); nothing was sent"}
		}
	}
	switch {
	case errors.As(err, &certErr), errors.As(err, &uaErr), errors.As(err, &hostErr), errors.As(err, &invErr):
		return &Error{Class: Fatal, Code: CodeTLS, Message: "the endpoint's certificate could not be verified"}
	case errors.As(err, &recErr):
		return &Error{Class: Fatal, Code: CodeTLS, Message: "the endpoint did not answer TLS; is it plain http?"}
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return &Error{Class: Fatal, Code: CodeEndpointNotFound, Message: "the endpoint host " + strconv.Quote(dnsErr.Name) + " does not resolve"}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &Error{Class: Retryable, Code: CodeConnectionRefused, Message: "connection refused: nothing listening at the endpoint"}
	case errors.As(err, &netErr) && netErr.Timeout():
		return &Error{Class: Retryable, Code: CodeClientTimeout, Message: "no answer within the timeout; the call may have taken effect", MaybeApplied: true}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return &Error{Class: Retryable, Code: CodeConnectionLost, Message: "connection closed before the answer; the call may have taken effect", MaybeApplied: true}
	}
	return &Error{Class: Retryable, Code: CodeTransport, Message: "network error", MaybeApplied: true}
}

// notSent corrects a transport failure that happened before the request
// was written: whatever the error says, the service cannot have seen it.
func notSent(e *Error) {
	if !e.MaybeApplied {
		return
	}
	e.MaybeApplied = false
	switch e.Code {
	case CodeClientTimeout:
		e.Message = "timed out before the request was sent (connecting, TLS or proxy)"
	case CodeConnectionLost:
		e.Message = "connection closed before the request was sent"
	default:
		e.Message = "network error before the request was sent"
	}
}
