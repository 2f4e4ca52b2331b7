package cas

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
)

func serverErr(status int, code string, headers map[string][]string) error {
	e := sdkerrors.NewServerError(status, fmt.Sprintf(`{"RequestId":"R1","Code":%q,"Message":"m"}`, code), "").(*sdkerrors.ServerError)
	e.RespHeaders = headers
	return e
}

func urlErr(err error) error {
	return &url.Error{Op: "Post", URL: "http://x/?SecurityToken=secret", Err: err}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		class      Class
		code       string
		retryAfter time.Duration
		maybe      bool
	}{
		{"throttling user", serverErr(400, "Throttling.User", map[string][]string{"X-Acs-Retry-After": {"250"}}), Retryable, "Throttling.User", 250 * time.Millisecond, false},
		{"throttling", serverErr(400, "Throttling", nil), Retryable, "Throttling", 0, false},
		{"throttling api", serverErr(400, "Throttling.Api", nil), Retryable, "Throttling.Api", 0, false},
		{"503", serverErr(503, "ServiceUnavailable", nil), Retryable, "ServiceUnavailable", 0, false},
		{"500", serverErr(500, "InternalError", nil), Retryable, "InternalError", 0, false},
		{"502 no code", serverErr(502, "", nil), Retryable, "HTTP502", 0, false},
		{"invalid parameter", serverErr(400, "InvalidParameter", nil), RowFinal, "InvalidParameter", 0, false},
		{"invalid id", serverErr(400, "InvalidId", nil), RowFinal, "InvalidId", 0, false},
		{"missing parameter", serverErr(400, "MissingParameter", nil), RowFinal, "MissingParameter", 0, false},
		{"not found business", serverErr(404, "InvalidInstance.NotFound", nil), RowFinal, "InvalidInstance.NotFound", 0, false},
		{"signature", serverErr(400, "SignatureDoesNotMatch", nil), Fatal, "SignatureDoesNotMatch", 0, false},
		{"incomplete signature", serverErr(400, "IncompleteSignature", nil), Fatal, "IncompleteSignature", 0, false},
		{"ak not found", serverErr(404, "InvalidAccessKeyId.NotFound", nil), Fatal, "InvalidAccessKeyId.NotFound", 0, false},
		{"ak inactive", serverErr(400, "InvalidAccessKeyId.Inactive", nil), Fatal, "InvalidAccessKeyId.Inactive", 0, false},
		{"ram", serverErr(403, "Forbidden.RAM", nil), Fatal, "Forbidden.RAM", 0, false},
		{"no permission", serverErr(403, "NoPermission", nil), Fatal, "NoPermission", 0, false},
		{"any 403", serverErr(403, "Whatever", nil), Fatal, "Whatever", 0, false},
		{"sts", serverErr(400, "InvalidSecurityToken.Expired", nil), Fatal, "InvalidSecurityToken.Expired", 0, false},
		{"nonce", serverErr(400, "SignatureNonceUsed", nil), Fatal, "SignatureNonceUsed", 0, false},
		{"timestamp", serverErr(400, "InvalidTimeStamp.Expired", nil), Fatal, "InvalidTimeStamp.Expired", 0, false},
		{"action", serverErr(404, "InvalidAction.NotFound", nil), Fatal, "InvalidAction.NotFound", 0, false},
		{"version", serverErr(400, "InvalidVersion", nil), Fatal, "InvalidVersion", 0, false},
		{"timeout", urlErr(context.DeadlineExceeded), Retryable, CodeClientTimeout, 0, true},
		{"net timeout", urlErr(&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}), Retryable, CodeClientTimeout, 0, true},
		{"eof", urlErr(io.EOF), Retryable, CodeConnectionLost, 0, true},
		{"unexpected eof", urlErr(io.ErrUnexpectedEOF), Retryable, CodeConnectionLost, 0, true},
		{"reset", urlErr(&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), Retryable, CodeConnectionLost, 0, true},
		{"refused", urlErr(&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), Retryable, CodeConnectionRefused, 0, false},
		{"dns", urlErr(&net.OpError{Op: "dial", Err: &net.DNSError{Name: "nope.invalid", IsNotFound: true}}), Fatal, CodeEndpointNotFound, 0, false},
		{"x509", urlErr(x509.UnknownAuthorityError{}), Fatal, CodeTLS, 0, false},
		{"sdk client error with timeout", sdkerrors.NewClientError("SDK.TimeoutError", "m", urlErr(context.DeadlineExceeded)), Retryable, CodeClientTimeout, 0, true},
		{"sdk client error", sdkerrors.NewClientError("SDK.CanNotResolveEndpoint", "m", nil), Fatal, CodeClient, 0, false},
		{"other", urlErr(fmt.Errorf("weird")), Retryable, CodeTransport, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Classify(tt.err)
			if e.Class != tt.class || e.Code != tt.code || e.RetryAfter != tt.retryAfter || e.MaybeApplied != tt.maybe {
				t.Errorf("Classify(%s) = %v, %s, retry-after %v, maybe %v; want %v, %s, %v, %v",
					tt.name, e.Class, e.Code, e.RetryAfter, e.MaybeApplied, tt.class, tt.code, tt.retryAfter, tt.maybe)
			}
			if strings.Contains(e.Error(), "secret") {
				t.Errorf("Classify(%s).Error() = %q leaks the URL", tt.name, e.Error())
			}
		})
	}
}

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		in       string
		insecure bool
		want     string
		loopback bool
		warn     bool
		err      bool
	}{
		{"", false, "https://cas.aliyuncs.com", false, false, false},
		{"cas.aliyuncs.com", false, "https://cas.aliyuncs.com", false, false, false},
		{"http://127.0.0.1:8080", false, "http://127.0.0.1:8080", true, false, false},
		{"http://localhost:8080/", false, "http://localhost:8080", true, false, false},
		{"http://[::1]:9", false, "http://[::1]:9", true, false, false},
		{"http://10.0.0.1:8080", false, "", false, false, true},
		{"http://10.0.0.1:8080", true, "http://10.0.0.1:8080", false, true, false},
		{"ftp://x", false, "", false, false, true},
		{"https://x/path", false, "", false, false, true},
		{"https://user:pw@x", false, "", false, false, true},
	}
	for _, tt := range tests {
		ep, warn, err := ParseEndpoint(tt.in, tt.insecure)
		if (err != nil) != tt.err || (!tt.err && (ep.String() != tt.want || ep.Loopback != tt.loopback || (warn != "") != tt.warn)) {
			t.Errorf("ParseEndpoint(%q, %v) = %v, %q, %v; want %s loopback=%v warn=%v err=%v", tt.in, tt.insecure, ep, warn, err, tt.want, tt.loopback, tt.warn, tt.err)
		}
	}
}

func TestRedact(t *testing.T) {
	c, err := StaticCredentials("AKID", "s3cr+t/value", "tok=en+1", "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{
		"x s3cr+t/value y",
		"SecurityToken=" + url.QueryEscape("tok=en+1"),
		"a%26SecurityToken%3D" + url.QueryEscape(url.QueryEscape("tok=en+1")),
		"Specified signature is not matched with our calculation. server string to sign is:POST&%2F&tok=en+1",
	} {
		got := c.Redact(in)
		if strings.Contains(got, "s3cr") || strings.Contains(got, "tok") {
			t.Errorf("Redact(%q) = %q; a secret is left", in, got)
		}
	}
}
