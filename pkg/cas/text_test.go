package cas

import (
	"strings"
	"testing"
)

func TestDecodeCommand(t *testing.T) {
	const prefix = "aliyun ram DecodeDiagnosticMessage --EncodedDiagnosticMessage "
	tests := []struct {
		name string
		ad   *AccessDenied
		want string
	}{
		{"none", nil, ""},
		{"empty", &AccessDenied{AuthAction: RAMAction}, ""},
		{"base64", &AccessDenied{EncodedDiagnosticMessage: "AQEAAAAAZBgxr0U1MjA1+/9=="}, prefix + "AQEAAAAAZBgxr0U1MjA1+/9=="},
		{"url-safe base64", &AccessDenied{EncodedDiagnosticMessage: "AQE-_x"}, prefix + "AQE-_x"},
		{"shell metacharacters", &AccessDenied{EncodedDiagnosticMessage: "AQE;rm -rf ~"}, ""},
		{"command substitution", &AccessDenied{EncodedDiagnosticMessage: "$(id)"}, ""},
		{"clipped", &AccessDenied{EncodedDiagnosticMessage: strings.Repeat("A", 40) + "..."}, ""},
		{"quote", &AccessDenied{EncodedDiagnosticMessage: "AQE'x"}, ""},
	}
	for _, tt := range tests {
		if got := tt.ad.DecodeCommand(); got != tt.want {
			t.Errorf("%s: DecodeCommand() = %q; want %q", tt.name, got, tt.want)
		}
	}
}

// A diagnostic longer than finish keeps is clipped, and then it is not
// offered for decoding: half a diagnostic decodes to nothing.
func TestDecodeCommandAfterFinish(t *testing.T) {
	for _, n := range []int{100, maxDiagnosticBytes, maxDiagnosticBytes + 1} {
		e := &Error{Code: "NoPermission", HTTPStatus: 403, AccessDenied: &AccessDenied{EncodedDiagnosticMessage: strings.Repeat("QUJD", n/4+1)[:n]}}
		finish(e, nil)
		got := e.AccessDenied.DecodeCommand()
		if fits := n <= maxDiagnosticBytes; (got != "") != fits {
			t.Errorf("diagnostic of %d bytes: DecodeCommand() = %.60q...; want a command: %v", n, got, fits)
		}
	}
}
