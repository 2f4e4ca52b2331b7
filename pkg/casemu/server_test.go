package casemu

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

var testKeys = map[string]Key{
	"ak":        {Secret: "sk"},
	"sts":       {Secret: "sts-sk", SecurityToken: "tok"},
	"sts2":      {Secret: "sts2-sk", SecurityToken: "tok2"},
	"stale":     {Secret: "stale-sk", SecurityToken: "stale-tok", TokenExpired: true},
	"off":       {Secret: "x", Inactive: true},
	"forbidden": {Secret: "f", Forbidden: true},
}

var nonceSeq int

// signed returns the parameters the SDK sends, changed by mutate and signed
// for method with secret (unless mutate set a Signature).
func signed(method string, mutate func(url.Values), secret string) url.Values {
	nonceSeq++
	p := url.Values{
		"Action": {Action}, "Version": {Version}, "Format": {"JSON"},
		"AccessKeyId": {"ak"}, "RegionId": {"cn-hangzhou"},
		"SignatureMethod": {"HMAC-SHA1"}, "SignatureVersion": {"1.0"}, "SignatureType": {""},
		"SignatureNonce": {fmt.Sprintf("%032x", nonceSeq)},
		"Timestamp":      {time.Now().UTC().Format("2006-01-02T15:04:05Z")},
		"Id":             {"33285"}, "CertTotalCount": {"5"},
	}
	if mutate != nil {
		mutate(p)
	}
	if p.Get("Signature") == "" {
		p.Set("Signature", Sign(StringToSign(method, p), secret))
	}
	return p
}

// send signs params like the SDK does and sends them to s.
func send(s *Server, method string, mutate func(url.Values), secret string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/?"+signed(method, mutate, secret).Encode(), nil)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

// call sends a POST and decodes its JSON answer.
func call(t *testing.T, s *Server, mutate func(url.Values), secret string) (int, map[string]any, http.Header) {
	t.Helper()
	rec := send(s, "POST", mutate, secret)
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("answer is not JSON: %q", rec.Body.String())
	}
	return rec.Code, body, rec.Header()
}

func TestServerRejects(t *testing.T) {
	old := time.Now().Add(-16 * time.Minute).UTC().Format("2006-01-02T15:04:05Z")
	tests := []struct {
		name   string
		mutate func(url.Values)
		secret string
		status int
		code   string
	}{
		{"ok", nil, "sk", 200, ""},
		{"missing nonce", func(p url.Values) { p.Del("SignatureNonce") }, "sk", 400, "MissingParameter"},
		{"wrong version", func(p url.Values) { p.Set("Version", "2020-04-07") }, "sk", 400, "InvalidVersion"},
		{"wrong action", func(p url.Values) { p.Set("Action", "Nope") }, "sk", 404, "InvalidAction.NotFound"},
		{"unknown key", func(p url.Values) { p.Set("AccessKeyId", "who") }, "sk", 404, "InvalidAccessKeyId.NotFound"},
		{"inactive key", func(p url.Values) { p.Set("AccessKeyId", "off") }, "x", 400, "InvalidAccessKeyId.Inactive"},
		{"bad signature", nil, "wrong", 400, "SignatureDoesNotMatch"},
		{"stale timestamp", func(p url.Values) { p.Set("Timestamp", old) }, "sk", 400, "InvalidTimeStamp.Expired"},
		{"bad timestamp", func(p url.Values) { p.Set("Timestamp", "yesterday") }, "sk", 400, "InvalidTimeStamp.Format"},
		{"sts without token", func(p url.Values) { p.Set("AccessKeyId", "sts") }, "sts-sk", 400, "InvalidSecurityToken.Malformed"},
		{"sts wrong token", func(p url.Values) { p.Set("AccessKeyId", "sts"); p.Set("SecurityToken", "bad") }, "sts-sk", 400, "InvalidSecurityToken.MismatchWithAccessKey"},
		{"sts token of another key", func(p url.Values) { p.Set("AccessKeyId", "sts"); p.Set("SecurityToken", "tok2") }, "sts-sk", 400, "InvalidSecurityToken.MismatchWithAccessKey"},
		{"permanent key with an sts token", func(p url.Values) { p.Set("SecurityToken", "tok") }, "sk", 400, "InvalidSecurityToken.MismatchWithAccessKey"},
		{"sts expired", func(p url.Values) { p.Set("AccessKeyId", "stale"); p.Set("SecurityToken", "stale-tok") }, "stale-sk", 400, "InvalidSecurityToken.Expired"},
		{"signature over the wrong method", func(p url.Values) { p.Set("Signature", Sign(StringToSign("GET", p), "sk")) }, "sk", 400, "SignatureDoesNotMatch"},
		{"unsupported signature method", func(p url.Values) { p.Set("SignatureMethod", "HMAC-SHA256") }, "sk", 400, "IncompleteSignature"},
		{"future timestamp", func(p url.Values) {
			p.Set("Timestamp", time.Now().Add(16*time.Minute).UTC().Format("2006-01-02T15:04:05Z"))
		}, "sk", 400, "InvalidTimeStamp.Expired"},
		{"ca identifier", func(p url.Values) { p.Set("CaIdentifier", "1f2e3d4c") }, "sk", 200, ""},
		{"sts ok", func(p url.Values) { p.Set("AccessKeyId", "sts"); p.Set("SecurityToken", "tok") }, "sts-sk", 200, ""},
		{"forbidden", func(p url.Values) { p.Set("AccessKeyId", "forbidden") }, "f", 403, "Forbidden.RAM"},
		{"bad id", func(p url.Values) { p.Set("Id", "-3") }, "sk", 400, "InvalidParameter"},
		{"missing count", func(p url.Values) { p.Del("CertTotalCount") }, "sk", 400, "MissingParameter"},
		{"failing id", func(p url.Values) { p.Set("Id", "666") }, "sk", 400, "InvalidParameter"},
	}
	s := New(Config{Keys: testKeys, RateLimit: -1, Faults: Faults{FailIDs: map[int64]bool{666: true}}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, _ := call(t, s, tt.mutate, tt.secret)
			code, _ := body["Code"].(string)
			if status != tt.status || code != tt.code {
				t.Errorf("status, code = %d, %q; want %d, %q (body %v)", status, code, tt.status, tt.code, body)
			}
			if tt.code != "" && (body["RequestId"] == "" || body["HostId"] != HostID) {
				t.Errorf("error body %v lacks RequestId or HostId", body)
			}
		})
	}
}

func TestServerNonceReuse(t *testing.T) {
	s := New(Config{Keys: testKeys, RateLimit: -1})
	fixed := func(p url.Values) { p.Set("SignatureNonce", "same-nonce") }
	if status, body, _ := call(t, s, fixed, "sk"); status != 200 {
		t.Fatalf("first call: %d %v", status, body)
	}
	if _, body, _ := call(t, s, fixed, "sk"); body["Code"] != "SignatureNonceUsed" {
		t.Errorf("second call with the same nonce: %v; want SignatureNonceUsed", body)
	}
}

func TestServerSuccessAndState(t *testing.T) {
	s := New(Config{Keys: testKeys, RateLimit: -1})
	status, body, _ := call(t, s, func(p url.Values) { p.Set("Id", "7"); p.Set("CertTotalCount", "12") }, "sk")
	if status != 200 || body["CertCount"] != 12.0 || body["CurrentYearFreeCertCount"] != 0.0 || len(body["RequestId"].(string)) != 36 {
		t.Fatalf("success body = %v", body)
	}
	call(t, s, func(p url.Values) { p.Set("Id", "7"); p.Set("CertTotalCount", "3") }, "sk")
	if a, _ := s.State(7); a.CertTotalCount != 3 || a.Applied != 2 {
		t.Errorf("State(7) = %+v; want total 3 applied twice", a)
	}
}

func TestServerRateLimit(t *testing.T) {
	now := time.Now()
	s := New(Config{Keys: testKeys, Now: func() time.Time { return now }})
	for i := 0; i < DefaultRateLimit; i++ {
		if status, body, _ := call(t, s, nil, "sk"); status != 200 {
			t.Fatalf("call %d: %v", i, body)
		}
		now = now.Add(50 * time.Millisecond)
	}
	status, body, h := call(t, s, nil, "sk")
	if status != 400 || body["Code"] != "Throttling.User" {
		t.Fatalf("11th call in a second = %d %v; want Throttling.User", status, body)
	}
	// The first admitted call was 500ms ago: the window frees in 500ms.
	if got := h.Get("x-acs-retry-after"); got != "500" {
		t.Errorf("x-acs-retry-after = %q; want 500", got)
	}
	now = now.Add(501 * time.Millisecond)
	if status, body, _ := call(t, s, nil, "sk"); status != 200 {
		t.Errorf("call after the window moved = %d %v", status, body)
	}
	if st := s.Stats(); st.MaxInWindow != 11 || st.ByCode["Throttling.User"] != 1 {
		t.Errorf("stats = %+v; want 11 arrivals in the busiest window and 1 throttle", st)
	}
}

func TestServerFaults(t *testing.T) {
	tests := []struct {
		name string
		f    Faults
		code string
	}{
		{"503", Faults{Error503Rate: 1}, "ServiceUnavailable"},
		{"500", Faults{Error500Rate: 1}, "InternalError"},
		{"throttle", Faults{ThrottleRate: 1}, "Throttling.User"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Config{Keys: testKeys, RateLimit: -1, Faults: tt.f})
			_, body, h := call(t, s, nil, "sk")
			if body["Code"] != tt.code {
				t.Errorf("code = %v; want %s", body["Code"], tt.code)
			}
			if h.Get("x-acs-retry-after") != "" {
				t.Errorf("a fault carried x-acs-retry-after")
			}
			if _, ok := s.State(33285); ok {
				t.Errorf("a failed call changed state")
			}
		})
	}
}

func TestServerDropAppliesThenCloses(t *testing.T) {
	s := New(Config{Keys: testKeys, RateLimit: -1, Faults: Faults{DropRate: 1}})
	ts := httptest.NewServer(s)
	defer ts.Close()
	nonceSeq++
	p := url.Values{
		"Action": {Action}, "Version": {Version}, "Format": {"JSON"}, "AccessKeyId": {"ak"},
		"SignatureMethod": {"HMAC-SHA1"}, "SignatureVersion": {"1.0"}, "SignatureNonce": {"drop-1"},
		"Timestamp": {time.Now().UTC().Format("2006-01-02T15:04:05Z")}, "Id": {"9"}, "CertTotalCount": {"1"},
	}
	p.Set("Signature", Sign(StringToSign("POST", p), "sk"))
	resp, err := http.Post(ts.URL+"/?"+p.Encode(), "application/x-www-form-urlencoded", strings.NewReader(""))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("dropped call got an answer: %s", resp.Status)
	}
	if a, _ := s.State(9); a.Applied != 1 {
		t.Errorf("State(9) = %+v; want the call applied before the drop", a)
	}
}
