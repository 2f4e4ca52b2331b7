package casemu

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestUnsupportedMethod(t *testing.T) {
	s := New(Config{Keys: testKeys, RateLimit: -1})
	for _, m := range []string{"PUT", "DELETE", "PATCH", "OPTIONS"} {
		rec := send(s, m, nil, "sk")
		var body map[string]any
		json.Unmarshal(rec.Body.Bytes(), &body)
		if rec.Code != 403 || body["Code"] != "UnsupportedHTTPMethod" {
			t.Errorf("%s: %d %v; want 403 UnsupportedHTTPMethod", m, rec.Code, body)
		}
	}
	// GET is the other method RPC takes, signed as GET.
	if rec := send(s, "GET", nil, "sk"); rec.Code != 200 {
		t.Errorf("GET: %d %s", rec.Code, rec.Body)
	}
	if _, ok := s.State(33285); !ok {
		t.Error("the GET call was not applied")
	}
}

func TestRegion(t *testing.T) {
	tests := []struct {
		endpoint, request string
		status            int
		code              string
	}{
		{"cn-hangzhou", "cn-hangzhou", 200, ""},
		{"cn-hangzhou", "", 200, ""}, // RegionId is optional
		{"eu-central-1", "cn-hangzhou", 404, "InvalidRegion.NotFound"},
		{"", "ap-southeast-1", 200, ""}, // no region set: any is served
	}
	for _, tt := range tests {
		s := New(Config{Keys: testKeys, RateLimit: -1, Region: tt.endpoint})
		status, body, _ := call(t, s, func(p url.Values) {
			p.Del("RegionId")
			if tt.request != "" {
				p.Set("RegionId", tt.request)
			}
		}, "sk")
		if code, _ := body["Code"].(string); status != tt.status || code != tt.code {
			t.Errorf("endpoint %q, RegionId %q: %d %q; want %d %q", tt.endpoint, tt.request, status, code, tt.status, tt.code)
		}
	}
}

// A run-wide answer comes after authentication and changes nothing.
func TestAnswerFault(t *testing.T) {
	tests := []struct {
		spec   string
		status int
		code   string
	}{
		{"InvalidApi.NotFound", 404, "InvalidApi.NotFound"},
		{"UnsupportedHTTPMethod", 403, "UnsupportedHTTPMethod"},
		{"InvalidProtocol.NeedSsl", 400, "InvalidProtocol.NeedSsl"},
		{"Brand.New.Code", 400, "Brand.New.Code"},
		{"Weird.Code:418", 418, "Weird.Code"},
	}
	for _, tt := range tests {
		var f Faults
		if err := f.Set("answer", tt.spec); err != nil {
			t.Fatal(err)
		}
		s := New(Config{Keys: testKeys, RateLimit: -1, Faults: f})
		status, body, _ := call(t, s, nil, "sk")
		if status != tt.status || body["Code"] != tt.code {
			t.Errorf("answer=%s: %d %v; want %d %s", tt.spec, status, body, tt.status, tt.code)
		}
		if _, ok := s.State(33285); ok {
			t.Errorf("answer=%s: the call was applied", tt.spec)
		}
		if _, body, _ := call(t, s, nil, "wrong"); body["Code"] != "SignatureDoesNotMatch" {
			t.Errorf("answer=%s: a bad signature got %v; authentication comes first", tt.spec, body["Code"])
		}
	}
}

func TestInstances(t *testing.T) {
	inst, err := ParseInstances(strings.NewReader("Id,Quota\n7,100\n8,\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Keys: testKeys, RateLimit: -1, Instances: inst})
	tests := []struct {
		id, count string
		status    int
		code      string
	}{
		{"7", "100", 200, ""},
		{"7", "101", 400, "InvalidParameter.CertTotalCount"},
		{"8", "100000", 200, ""}, // no quota
		{"9", "1", 400, "NotFound"},
		{"x", "1", 400, "InvalidParameter"}, // malformed before unknown
	}
	for _, tt := range tests {
		status, body, _ := call(t, s, func(p url.Values) { p.Set("Id", tt.id); p.Set("CertTotalCount", tt.count) }, "sk")
		if code, _ := body["Code"].(string); status != tt.status || code != tt.code {
			t.Errorf("Id %s CertTotalCount %s: %d %q; want %d %q", tt.id, tt.count, status, code, tt.status, tt.code)
		}
	}
	if a, _ := s.State(7); a.CertTotalCount != 100 || a.Applied != 1 {
		t.Errorf("State(7) = %+v; the call over quota must change nothing", a)
	}
	if _, ok := s.State(9); ok {
		t.Error("an unknown instance got a state")
	}
}

func TestCaIdentifierRecordedAndLogged(t *testing.T) {
	var log []string
	s := New(Config{Keys: testKeys, RateLimit: -1, Log: func(format string, args ...any) {
		log = append(log, fmt.Sprintf(format, args...))
	}})
	call(t, s, func(p url.Values) { p.Set("Id", "5"); p.Set("CaIdentifier", "ca-1f2e 3d") }, "sk")
	if a, _ := s.State(5); a.CaIdentifier != "ca-1f2e 3d" {
		t.Errorf("State(5).CaIdentifier = %q", a.CaIdentifier)
	}
	if len(log) != 1 || !strings.Contains(log[0], `CaIdentifier="ca-1f2e 3d"`) {
		t.Errorf("log = %q", log)
	}
	// The state is the last call's: one without CaIdentifier clears it.
	call(t, s, func(p url.Values) { p.Set("Id", "5") }, "sk")
	if a, _ := s.State(5); a.CaIdentifier != "" || a.Applied != 2 {
		t.Errorf("State(5) = %+v after a call without CaIdentifier", a)
	}
	if strings.Contains(log[1], "CaIdentifier") {
		t.Errorf("log line for a call without it: %q", log[1])
	}
}

func TestPermissionErrorsCarryDetail(t *testing.T) {
	s := New(Config{Keys: testKeys, RateLimit: -1})
	_, body, _ := call(t, s, func(p url.Values) { p.Set("AccessKeyId", "forbidden") }, "f")
	d, _ := body["AccessDeniedDetail"].(map[string]any)
	if d["AuthAction"] != "yundun-cert:AssignCertificateCount" || d["NoPermissionType"] == nil || d["PolicyType"] == nil {
		t.Errorf("Forbidden.RAM body %v; want an AccessDeniedDetail naming the RAM action", body)
	}
	_, body, _ = call(t, s, func(p url.Values) { p.Set("Id", "abc") }, "sk")
	if _, ok := body["AccessDeniedDetail"]; ok {
		t.Errorf("a parameter error carries AccessDeniedDetail: %v", body)
	}
}

// Every spurious throttle shape, as the service's gateways send them.
// None carries x-acs-retry-after unless that is the shape, and none
// changes the state.
func TestThrottleShapes(t *testing.T) {
	tests := []struct {
		shape, contentType string
		status             int
		code, header       string // header: one that must be there
		byCode             string
	}{
		{ShapeThrottling, "application/json", 400, "Throttling", "", "Throttling"},
		{ShapeThrottlingUser, "application/json", 400, "Throttling.User", "", "Throttling.User"},
		{ShapeThrottlingAPI, "application/json", 400, "Throttling.Api", "", "Throttling.Api"},
		{ShapeRejected, "application/json", 400, "Rejected.Throttling", "", "Rejected.Throttling"},
		{Shape429, "application/json", 429, "Throttling.User", "", "Throttling.User"},
		{Shape429Bare, "text/html", 429, "", "", "(429-bare)"},
		{Shape429Wait, "application/json", 429, "Throttling.User", "x-acs-retry-after", "Throttling.User"},
		{ShapeRetryAfter, "application/json", 503, "ServiceUnavailable", "x-acs-retry-after", "ServiceUnavailable"},
		{ShapeRateLimitHeader, "application/json", 400, "Throttling.User", "x-ratelimit-user", "Throttling.User"},
	}
	if len(tests) != len(ThrottleShapes) {
		t.Fatalf("%d shapes tested of %d", len(tests), len(ThrottleShapes))
	}
	for _, tt := range tests {
		t.Run(tt.shape, func(t *testing.T) {
			s := New(Config{Keys: testKeys, RateLimit: -1, Faults: Faults{ThrottleRate: 1, ThrottleShapes: []string{tt.shape}}})
			rec := send(s, "POST", nil, "sk")
			if rec.Code != tt.status || !strings.HasPrefix(rec.Header().Get("Content-Type"), tt.contentType) {
				t.Errorf("%d %s; want %d %s", rec.Code, rec.Header().Get("Content-Type"), tt.status, tt.contentType)
			}
			var body map[string]any
			isJSON := json.Unmarshal(rec.Body.Bytes(), &body) == nil
			if code, _ := body["Code"].(string); isJSON != (tt.code != "") || code != tt.code {
				t.Errorf("body %q; want Code %q", rec.Body, tt.code)
			}
			if tt.header != "" && rec.Header().Get(tt.header) == "" {
				t.Errorf("no %s header", tt.header)
			}
			if tt.header != "x-acs-retry-after" && rec.Header().Get("x-acs-retry-after") != "" {
				t.Error("a spurious throttle carried x-acs-retry-after")
			}
			st := s.Stats()
			if st.ByCode[tt.byCode] != 1 || st.Limited != 0 || st.Applied != 0 {
				t.Errorf("stats %+v; want ByCode[%q] 1, nothing limited or applied", st, tt.byCode)
			}
		})
	}
}

// Several shapes are drawn at random, all of them in time.
func TestThrottleShapesMix(t *testing.T) {
	s := New(Config{Keys: testKeys, RateLimit: -1, Seed: 5, Faults: Faults{ThrottleRate: 1, ThrottleShapes: []string{Shape429Bare, ShapeRejected}}})
	for range 40 {
		send(s, "POST", nil, "sk")
	}
	if st := s.Stats(); st.ByCode["(429-bare)"] == 0 || st.ByCode["Rejected.Throttling"] == 0 || st.ByCode["(429-bare)"]+st.ByCode["Rejected.Throttling"] != 40 {
		t.Errorf("40 throttles as %v; want both shapes", st.ByCode)
	}
}
