package cas

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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
	// Fatal: no row can succeed (credentials, permission, signing, clock);
	// stop sending.
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
	CodeBadResponse       = "BadResponse"       // a 2xx answer whose body is not the documented JSON
	CodeClient            = "ClientError"       // the SDK could not build or sign the request
)

// Error is a failed attempt, classified. Its text is built from the code,
// the status and the message only: never from an SDK error string, which
// embeds the signed URL (and with it any STS token).
type Error struct {
	Class      Class
	Code       string
	HTTPStatus int // 0 when no answer came
	Message    string
	RequestID  string
	// RetryAfter is the server's x-acs-retry-after hint, 0 when absent.
	RetryAfter time.Duration
	// MaybeApplied is set when the request may have reached the service but
	// its answer was lost.
	MaybeApplied bool
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

// Throttled reports whether the service said the account is over its rate.
func (e *Error) Throttled() bool { return strings.HasPrefix(e.Code, "Throttling") }

// fatalCodes stop the run: no other row can succeed either. Matched as
// exact codes or as prefixes ending in ".".
var fatalCodes = []string{
	"SignatureDoesNotMatch", "IncompleteSignature", "InvalidSignatureMethod",
	"InvalidAccessKeyId.", "Forbidden", "Forbidden.", "NoPermission",
	"InvalidSecurityToken.", "MissingSecurityToken",
	"SignatureNonceUsed", "InvalidTimeStamp.",
	"InvalidAction.", "InvalidVersion", "UnsupportedHTTPMethod",
	"InvalidRegionId", "InvalidAccessKeyId",
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
func classifyServer(status int, code, msg, requestID string, header http.Header) *Error {
	e := &Error{Code: code, HTTPStatus: status, Message: msg, RequestID: requestID}
	if e.Code == "" {
		e.Code = "HTTP" + strconv.Itoa(status)
	}
	switch {
	case e.Throttled():
		e.Class = Retryable
		e.RetryAfter = retryAfter(header)
	case code == "ServiceUnavailable" || status >= 500:
		e.Class = Retryable
		e.RetryAfter = retryAfter(header)
	case isFatalCode(code), status == http.StatusUnauthorized, status == http.StatusForbidden:
		e.Class = Fatal
	default:
		e.Class = RowFinal
	}
	return e
}

// retryAfter reads x-acs-retry-after, which Alibaba Cloud gives in
// milliseconds.
func retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("x-acs-retry-after"))
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms <= 0 {
		return 0
	}
	return min(time.Duration(ms)*time.Millisecond, 10*time.Minute)
}

// Classify turns any error from one SDK call into *Error. It looks at types
// and codes only, never at message text.
func Classify(err error) *Error {
	if err == nil {
		return nil
	}
	var ce *Error
	if errors.As(err, &ce) {
		return ce
	}
	var se *sdkerrors.ServerError
	if errors.As(err, &se) {
		return classifyServer(se.HttpStatus(), se.ErrorCode(), se.Message(), se.RequestId(), http.Header(se.RespHeaders))
	}
	var cle *sdkerrors.ClientError
	if errors.As(err, &cle) {
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
	)
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
