package cas

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp/syntax"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
)

// serverErr builds the SDK's error for an answer, through the SDK's own
// constructor, as ProcessCommonRequest does.
func serverErr(status int, code string, headers map[string][]string) error {
	return serverBody(status, fmt.Sprintf(`{"RequestId":"R1","Code":%q,"Message":"m"}`, code), headers)
}

func serverBody(status int, body string, headers map[string][]string) error {
	e := sdkerrors.NewServerError(status, body, "").(*sdkerrors.ServerError)
	h := http.Header{}
	for k, v := range headers {
		h[http.CanonicalHeaderKey(k)] = v
	}
	e.RespHeaders = h
	return e
}

func urlErr(err error) error {
	return &url.Error{Op: "Post", URL: "http://x/?SecurityToken=secret", Err: err}
}

type hdr = map[string][]string

// badRegexp is the error the SDK gets compiling a NO_PROXY entry such as
// "+x".
func badRegexp() error {
	_, err := syntax.Parse("+x", syntax.Perl)
	return err
}

func TestClassify(t *testing.T) {
	const (
		n = false
		y = true
	)
	tests := []struct {
		name       string
		err        error
		class      Class
		code       string
		throttled  bool
		retryAfter time.Duration
		maybe      bool
	}{
		// throttling, in every shape
		{"throttling user retry-after", serverErr(400, "Throttling.User", hdr{"x-acs-retry-after": {"250"}}), Retryable, "Throttling.User", y, 250 * time.Millisecond, n},
		{"throttling", serverErr(400, "Throttling", nil), Retryable, "Throttling", y, 0, n},
		{"throttling api", serverErr(400, "Throttling.Api", nil), Retryable, "Throttling.Api", y, 0, n},
		{"rejected throttling", serverErr(400, "Rejected.Throttling", nil), Retryable, "Rejected.Throttling", y, 0, n},
		{"429 json", serverErr(429, "Throttling.User", nil), Retryable, "Throttling.User", y, 0, n},
		{"429 other code", serverErr(429, "TooManyRequests", nil), Retryable, "TooManyRequests", y, 0, n},
		{"429 bare text", serverBody(429, "Too Many Requests", nil), Retryable, "HTTP429", y, 0, n},
		{"429 html", serverBody(429, "<html><body><h1>429</h1></body></html>", nil), Retryable, "HTTP429", y, 0, n},
		{"429 retry-after seconds", serverBody(429, "slow down", hdr{"Retry-After": {"3"}}), Retryable, "HTTP429", y, 3 * time.Second, n},
		{"retry-after on other code", serverErr(400, "InvalidParameter", hdr{"x-acs-retry-after": {"1500"}}), Retryable, "InvalidParameter", y, 1500 * time.Millisecond, n},
		{"retry-after on 503", serverErr(503, "ServiceUnavailable", hdr{"x-acs-retry-after": {"40"}}), Retryable, "ServiceUnavailable", y, 40 * time.Millisecond, n},
		{"retry-after fraction", serverErr(400, "Throttling", hdr{"x-acs-retry-after": {"12.5"}}), Retryable, "Throttling", y, 12500 * time.Microsecond, n},
		{"retry-after capped", serverErr(400, "Throttling", hdr{"x-acs-retry-after": {"600000"}}), Retryable, "Throttling", y, MaxRetryAfter, n},
		{"retry-after huge", serverErr(400, "Throttling", hdr{"x-acs-retry-after": {"1e300"}}), Retryable, "Throttling", y, MaxRetryAfter, n},
		{"retry-after garbage", serverErr(400, "InvalidParameter", hdr{"x-acs-retry-after": {"soon"}}), Retryable, "InvalidParameter", y, 0, n},
		{"ratelimit user", serverErr(400, "Throttling.User", hdr{"x-ratelimit-user": {"Limit:1,Remain:0,TimeLeft:2000,Reset:1700000000"}}), Retryable, "Throttling.User", y, 2 * time.Second, n},
		{"ratelimit user-api", serverErr(400, "Throttling.Api", hdr{"x-ratelimit-user-api": {"Limit:10,Remain:0,TimeLeft:350,Reset:1"}}), Retryable, "Throttling.Api", y, 350 * time.Millisecond, n},
		{"ratelimit exhausted one wins", serverErr(400, "Throttling", hdr{"x-ratelimit-user": {"Limit:100,Remain:40,TimeLeft:9000"}, "x-ratelimit-user-api": {"Limit:10,Remain:0,TimeLeft:700"}}), Retryable, "Throttling", y, 700 * time.Millisecond, n},
		{"ratelimit capped", serverErr(400, "Throttling", hdr{"x-ratelimit-user": {"Remain:0,TimeLeft:99999999"}}), Retryable, "Throttling", y, MaxRetryAfter, n},
		{"retry-after beats ratelimit", serverErr(400, "Throttling", hdr{"x-acs-retry-after": {"100"}, "x-ratelimit-user": {"Remain:0,TimeLeft:2000"}}), Retryable, "Throttling", y, 100 * time.Millisecond, n},
		{"ratelimit on a non-throttled answer", serverErr(400, "InvalidParameter", hdr{"x-ratelimit-user": {"Remain:0,TimeLeft:2000"}}), RowFinal, "InvalidParameter", n, 0, n},
		// server errors
		{"503", serverErr(503, "ServiceUnavailable", nil), Retryable, "ServiceUnavailable", n, 0, n},
		{"500", serverErr(500, "InternalError", nil), Retryable, "InternalError", n, 0, n},
		{"502 no code", serverErr(502, "", nil), Retryable, "HTTP502", n, 0, n},
		{"502 html", serverBody(502, "<html>bad gateway</html>", nil), Retryable, "HTTP502", n, 0, n},
		// row-final
		{"invalid parameter", serverErr(400, "InvalidParameter", nil), RowFinal, "InvalidParameter", n, 0, n},
		{"invalid id", serverErr(400, "InvalidId", nil), RowFinal, "InvalidId", n, 0, n},
		{"missing parameter", serverErr(400, "MissingParameter", nil), RowFinal, "MissingParameter", n, 0, n},
		{"unknown instance", serverErr(400, "NotFound", nil), RowFinal, "NotFound", n, 0, n},
		{"not found business", serverErr(404, "InvalidInstance.NotFound", nil), RowFinal, "InvalidInstance.NotFound", n, 0, n},
		// run-fatal
		{"signature", serverErr(400, "SignatureDoesNotMatch", nil), Fatal, "SignatureDoesNotMatch", n, 0, n},
		{"incomplete signature", serverErr(400, "IncompleteSignature", nil), Fatal, "IncompleteSignature", n, 0, n},
		{"ak not found", serverErr(404, "InvalidAccessKeyId.NotFound", nil), Fatal, "InvalidAccessKeyId.NotFound", n, 0, n},
		{"ak inactive", serverErr(400, "InvalidAccessKeyId.Inactive", nil), Fatal, "InvalidAccessKeyId.Inactive", n, 0, n},
		{"ram", serverErr(403, "Forbidden.RAM", nil), Fatal, "Forbidden.RAM", n, 0, n},
		{"no permission", serverErr(403, "NoPermission", nil), Fatal, "NoPermission", n, 0, n},
		{"any 403", serverErr(403, "Whatever", nil), Fatal, "Whatever", n, 0, n},
		{"401", serverErr(401, "", nil), Fatal, "HTTP401", n, 0, n},
		{"sts", serverErr(400, "InvalidSecurityToken.Expired", nil), Fatal, "InvalidSecurityToken.Expired", n, 0, n},
		{"sts mismatch", serverErr(400, "InvalidSecurityToken.MismatchWithAccessKey", nil), Fatal, "InvalidSecurityToken.MismatchWithAccessKey", n, 0, n},
		{"nonce", serverErr(400, "SignatureNonceUsed", nil), Fatal, "SignatureNonceUsed", n, 0, n},
		{"timestamp", serverErr(400, "InvalidTimeStamp.Expired", nil), Fatal, "InvalidTimeStamp.Expired", n, 0, n},
		{"illegal timestamp", serverErr(400, "IllegalTimestamp", nil), Fatal, "IllegalTimestamp", n, 0, n},
		{"action", serverErr(404, "InvalidAction.NotFound", nil), Fatal, "InvalidAction.NotFound", n, 0, n},
		{"api", serverErr(404, "InvalidApi.NotFound", nil), Fatal, "InvalidApi.NotFound", n, 0, n},
		{"region", serverErr(404, "InvalidRegion.NotFound", nil), Fatal, "InvalidRegion.NotFound", n, 0, n},
		{"product", serverErr(404, "InvalidProduct.NotFound", nil), Fatal, "InvalidProduct.NotFound", n, 0, n},
		{"need ssl", serverErr(400, "InvalidProtocol.NeedSsl", nil), Fatal, "InvalidProtocol.NeedSsl", n, 0, n},
		{"method", serverErr(403, "UnsupportedHTTPMethod", nil), Fatal, "UnsupportedHTTPMethod", n, 0, n},
		{"version", serverErr(400, "InvalidVersion", nil), Fatal, "InvalidVersion", n, 0, n},
		// no answer
		{"timeout", urlErr(context.DeadlineExceeded), Retryable, CodeClientTimeout, n, 0, y},
		{"net timeout", urlErr(&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}), Retryable, CodeClientTimeout, n, 0, y},
		{"eof", urlErr(io.EOF), Retryable, CodeConnectionLost, n, 0, y},
		{"unexpected eof", urlErr(io.ErrUnexpectedEOF), Retryable, CodeConnectionLost, n, 0, y},
		{"reset", urlErr(&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), Retryable, CodeConnectionLost, n, 0, y},
		{"refused", urlErr(&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), Retryable, CodeConnectionRefused, n, 0, n},
		{"dns", urlErr(&net.OpError{Op: "dial", Err: &net.DNSError{Name: "nope.invalid", IsNotFound: true}}), Fatal, CodeEndpointNotFound, n, 0, n},
		{"x509", urlErr(x509.UnknownAuthorityError{}), Fatal, CodeTLS, n, 0, n},
		{"sdk client error with timeout", sdkerrors.NewClientError("SDK.TimeoutError", "m", urlErr(context.DeadlineExceeded)), Retryable, CodeClientTimeout, n, 0, y},
		{"sdk client error", sdkerrors.NewClientError("SDK.CanNotResolveEndpoint", "m", nil), Fatal, CodeClient, n, 0, n},
		{"other", urlErr(fmt.Errorf("weird")), Retryable, CodeTransport, n, 0, y},
		// answers the transport refused or capped
		{"redirect", urlErr(&redirectError{status: 302}), Retryable, CodeRedirected, n, 0, n},
		{"too large 200", &tooLargeError{status: 200}, Retryable, CodeResponseTooLarge, n, 0, y},
		{"too large 400", &tooLargeError{status: 400}, Retryable, CodeResponseTooLarge, n, 0, n},
		{"too large 429", &tooLargeError{status: 429}, Retryable, CodeResponseTooLarge, y, 0, n},
		{"too large retry-after", &tooLargeError{status: 200, header: http.Header{"X-Acs-Retry-After": {"90"}}}, Retryable, CodeResponseTooLarge, y, 90 * time.Millisecond, n},
		// failures before anything was sent
		{"proxy func", urlErr(&proxyError{variable: "HTTPS_PROXY"}), Fatal, CodeBadProxy, n, 0, n},
		{"sdk proxy parse", &url.Error{Op: "parse", URL: "http://u:pw@proxy:bad", Err: fmt.Errorf("invalid port")}, Fatal, CodeBadProxy, n, 0, n},
		{"sdk no_proxy regexp", badRegexp(), Fatal, CodeBadProxy, n, 0, n},
		{"credentials", &credentialsError{provider: "ecs_ram_role"}, Retryable, CodeCredentials, n, 0, n},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Classify(tt.err)
			if e.Class != tt.class || e.Code != tt.code || e.Throttled() != tt.throttled || e.RetryAfter != tt.retryAfter || e.MaybeApplied != tt.maybe {
				t.Errorf("Classify(%s) = %v, %s, throttled %v, retry-after %v, maybe %v; want %v, %s, %v, %v, %v",
					tt.name, e.Class, e.Code, e.Throttled(), e.RetryAfter, e.MaybeApplied, tt.class, tt.code, tt.throttled, tt.retryAfter, tt.maybe)
			}
			if tt.throttled && e.Class != Retryable {
				t.Errorf("Classify(%s): a throttled answer is %v; want retryable", tt.name, e.Class)
			}
			if s := e.Error(); strings.Contains(s, "secret") || strings.Contains(s, "pw@") || strings.Contains(s, "\n") {
				t.Errorf("Classify(%s).Error() = %q leaks the URL or spans lines", tt.name, s)
			}
		})
	}
}

// The SDK's answer texts are the server's: bounded and made one line, an
// HTML page reduced to its text.
func TestClassifyBoundsTheMessage(t *testing.T) {
	page := "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body>" +
		strings.Repeat("<p>filler ünïcödé text</p>\n", 4000) + "</body></html>"
	tests := []struct {
		name, body, want string
	}{
		{"html page", page, "502 Bad Gateway filler ünïcödé text filler"},
		{"json message", `{"RequestId":"R","Code":"InternalError","Message":"line one\nline two\r\n\tend"}`, "line one line two end"},
		{"bad utf-8", "\xff\xfe broken \x00 bytes", "? broken bytes"},
	}
	for _, tt := range tests {
		e := Classify(serverBody(502, tt.body, nil))
		if len(e.Message) > MaxMessageBytes || !utf8.ValidString(e.Message) || strings.ContainsAny(e.Message, "\r\n\t\x00") {
			t.Errorf("%s: Message is %d bytes, valid UTF-8 %v: %q", tt.name, len(e.Message), utf8.ValidString(e.Message), e.Message)
		}
		if !strings.HasPrefix(e.Message, tt.want) {
			t.Errorf("%s: Message = %.80q; want it to start %q", tt.name, e.Message, tt.want)
		}
	}
	long := Classify(serverBody(400, `{"RequestId":"`+strings.Repeat("R", 5000)+`","Code":"`+strings.Repeat("C", 5000)+`"}`, nil))
	if len(long.RequestID) > maxRequestIDBytes || len(long.Code) > maxCodeBytes {
		t.Errorf("RequestId %d bytes, Code %d bytes; want them bounded", len(long.RequestID), len(long.Code))
	}
}

func TestClassifyRAMDetail(t *testing.T) {
	body := `{"RequestId":"R","Code":"NoPermission","Message":"You are not authorized to do this action.",
		"AccessDeniedDetail":{"AuthAction":"yundun-cert:AssignCertificateCount","AuthPrincipalType":"SubUser",
		"AuthPrincipalDisplayName":"batch-bot","AuthPrincipalOwnerId":"1234","NoPermissionType":"ImplicitDeny",
		"PolicyType":"AccountLevelIdentityBasedPolicy","EncodedDiagnosticMessage":"` + strings.Repeat("QUJD", 300) + `"}}`
	e := Classify(serverBody(403, body, nil))
	if e.Class != Fatal || e.AccessDenied == nil {
		t.Fatalf("Classify = %v, detail %+v; want fatal with the detail", e, e.AccessDenied)
	}
	for _, want := range []string{"not authorized", "yundun-cert:AssignCertificateCount", "ImplicitDeny", "AccountLevelIdentityBasedPolicy", "SubUser batch-bot"} {
		if !strings.Contains(e.Message, want) {
			t.Errorf("Message = %q; want it to name %q", e.Message, want)
		}
	}
	if again := Classify(e); again.Message != e.Message {
		t.Errorf("Classify twice: %q, then %q; want the same message", e.Message, again.Message)
	}
	if strings.Contains(e.Message, "QUJD") {
		t.Errorf("Message = %q; the encoded diagnostic belongs in AccessDenied only", e.Message)
	}
	if len(e.AccessDenied.EncodedDiagnosticMessage) != 1200 {
		t.Errorf("EncodedDiagnosticMessage has %d bytes; want the 1200 sent", len(e.AccessDenied.EncodedDiagnosticMessage))
	}
	// A long server message is cut, the RAM part kept.
	long := strings.Replace(body, "You are not authorized", strings.Repeat("blah ", 300), 1)
	if e := Classify(serverBody(403, long, nil)); len(e.Message) > MaxMessageBytes || !strings.Contains(e.Message, "ImplicitDeny") {
		t.Errorf("long message: %d bytes %q; want at most %d with the RAM detail", len(e.Message), e.Message, MaxMessageBytes)
	}
	// Without details, the hint still names the action to allow.
	if e := Classify(serverErr(403, "Forbidden.RAM", nil)); !strings.Contains(e.Message, RAMAction) {
		t.Errorf("Forbidden.RAM without detail: Message = %q; want it to name %s", e.Message, RAMAction)
	}
}

func TestClip(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"abcdefghijk", 10, "abcdefg..."},
		{"ééééé", 7, "éé..."}, // never half a rune
		{"éééé", 6, "é..."},
	} {
		if got := clip(tt.in, tt.n); got != tt.want || len(got) > tt.n {
			t.Errorf("clip(%q, %d) = %q; want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
