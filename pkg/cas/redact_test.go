package cas

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// rfc3986 encodes as the signer does: unreserved characters stay, the rest
// become %XX in upper case.
func rfc3986(s string) string {
	return strings.NewReplacer("+", "%20", "*", "%2A", "%7E", "~").Replace(url.QueryEscape(s))
}

func TestRedact(t *testing.T) {
	const (
		secret = "s3cr+t/value=="
		token  = "CAIS+tok/en=1*x~y"
	)
	c, err := StaticCredentials("AKID", secret, token, "test")
	if err != nil {
		t.Fatal(err)
	}
	jsonOf := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	tests := []struct{ name, in string }{
		{"plain", "x " + secret + " y"},
		{"query escape", "SecurityToken=" + url.QueryEscape(token)},
		{"path escape", "/" + url.PathEscape(token) + "/"},
		{"rfc 3986", "SecurityToken=" + rfc3986(token)},
		{"lower-case hex", "SecurityToken=" + lowerHex(rfc3986(token))},
		{"mixed-case hex", "SecurityToken=CAIS%2btok%2Fen%3d1%2Ax~y"},
		{"hex-encoded letters", "SecurityToken=%43%41%49%53%2btok%2fen%3d1*x~y"},
		{"double", "a%26SecurityToken%3D" + url.QueryEscape(url.QueryEscape(token))},
		{"double lower", "a%26SecurityToken%3d" + lowerHex(url.QueryEscape(url.QueryEscape(token)))},
		{"triple", url.QueryEscape(url.QueryEscape(url.QueryEscape(token)))},
		{"json", `{"Message":` + jsonOf("token "+token+" echoed") + `}`},
		{"json escaped slash", `{"Message":"CAIS+tok\/en=1*x~y"}`},
		{"json unicode escapes", `{"Message":"CAIS\u002btok\u002Fen\u003d1*x~y"}`},
		{"json of a query", jsonOf("SecurityToken=" + lowerHex(rfc3986(token)))},
		{"base64 alone", base64.StdEncoding.EncodeToString([]byte(token))},
		{"base64 offset 1", base64.StdEncoding.EncodeToString([]byte("a" + token + "tail"))},
		{"base64 offset 2", base64.URLEncoding.EncodeToString([]byte("ab" + secret + "tail bytes"))},
		{"string to sign", "Specified signature is not matched with our calculation. server string to sign is:POST&%2F&tok=en+1"},
	}
	for _, tt := range tests {
		got := c.Redact(tt.in)
		if strings.Contains(got, "CAIS") || strings.Contains(got, "s3cr") {
			t.Errorf("%s: Redact(%q) = %q; a secret is left", tt.name, tt.in, got)
		}
		if tt.name != "string to sign" && (!strings.Contains(got, "***") || got == tt.in) {
			t.Errorf("%s: Redact(%q) = %q; want a *** where the secret was", tt.name, tt.in, got)
		}
	}
}

// lowerHex writes the hex digits of percent-escapes in lower case, as some
// servers echo them.
func lowerHex(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1], b[i+2] = toLower(b[i+1]), toLower(b[i+2])
		}
	}
	return string(b)
}

func toLower(c byte) byte {
	if 'A' <= c && c <= 'F' {
		return c + 'a' - 'A'
	}
	return c
}

// Text around a secret is kept as it was, byte for byte.
func TestRedactKeepsTheRest(t *testing.T) {
	c, err := StaticCredentials("AKID", "abcd1234efgh", "", "test")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ in, want string }{
		{"no secret here %41 \\u0041 100%", "no secret here %41 \\u0041 100%"},
		{"k=abcd1234efgh&x=%41", "k=***&x=%41"},
		{"k=%61bcd1234efgh;", "k=***;"},
		{"abcd1234efghabcd1234efgh", "******"},
		{"abcd1234efgh", "***"},
		{"x%2561bcd1234efgh", "x***"},
		{"trailing %", "trailing %"},
		{"trailing \\", "trailing \\"},
		{"%zz and %2", "%zz and %2"},
	}
	for _, tt := range tests {
		if got := c.Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestRedactShortSecretsIgnored(t *testing.T) {
	var s secrets
	s.add("abc")
	if got := s.redact("abc abc"); got != "abc abc" {
		t.Errorf("redact with a 3-byte secret = %q; want the text as is", got)
	}
}

// The cost of scrubbing one error message at its largest (rawTextCap) with
// an STS token of typical length remembered.
func BenchmarkRedact(b *testing.B) {
	token := strings.Repeat("CAIS+tok/en=", 80) // about 1 KB, like a real STS token
	c, err := StaticCredentials("AKID", "abcdefghijklmnopqrstuvwxyz0123", token, "bench")
	if err != nil {
		b.Fatal(err)
	}
	text := strings.Repeat("<p>upstream %2F error \\u0041</p>", rawTextCap/32)[:rawTextCap-len(token)] + url.QueryEscape(token)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if got := c.Redact(text); !strings.HasSuffix(got, "***") {
			b.Fatalf("the token is left: %.40q", got[len(got)-40:])
		}
	}
}
