package casemu

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// post sends one signed call over real HTTP without following redirects.
func post(t *testing.T, srv *httptest.Server, client *http.Client) *http.Response {
	t.Helper()
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	resp, err := client.Post(srv.URL+"/?"+signed("POST", nil, "sk").Encode(), "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// Each hostile answer, what it looks like on the wire, whether the call
// took effect before it, and the key it is counted under.
func TestHostileAnswers(t *testing.T) {
	tests := []struct {
		name    string
		f       Faults
		status  []int
		check   func(h http.Header, body []byte) string // "" when the answer is as wanted
		applied bool
		byCode  string
	}{
		{"numeric JSON", Faults{NumericJSONRate: 1}, []int{500, 400}, func(h http.Header, b []byte) string {
			var v map[string]any
			if json.Unmarshal(b, &v) != nil {
				return "not JSON"
			}
			if _, ok := v["RequestId"].(float64); !ok {
				return "RequestId is not a number"
			}
			if _, ok := v["Code"].(float64); !ok {
				return "Code is not a number"
			}
			return ""
		}, false, "(numeric-json)"},
		{"HTML page", Faults{HTMLRate: 1}, []int{502}, func(h http.Header, b []byte) string {
			if !strings.HasPrefix(h.Get("Content-Type"), "text/html") || len(b) < 100_000 || strings.Count(string(b), "\n") < 100 {
				return "want a 100 KB HTML page of many lines"
			}
			return ""
		}, true, "(html)"},
		{"redirect", Faults{RedirectRate: 1}, []int{302}, func(h http.Header, b []byte) string {
			loc, err := url.Parse(h.Get("Location"))
			if err != nil || loc.Path != redirectPath || loc.Query().Get("SignatureNonce") == "" {
				return "want a Location on another path carrying the signed query"
			}
			return ""
		}, false, "(redirect)"},
		{"200 with an error Code", Faults{OKErrorRate: 1}, []int{200}, func(h http.Header, b []byte) string {
			var v map[string]any
			if json.Unmarshal(b, &v) != nil || v["Code"] != "InternalError" || v["RequestId"] == nil {
				return "want a JSON error body"
			}
			return ""
		}, false, "(200-error)"},
		{"200 without RequestId", Faults{NoRequestIDRate: 1}, []int{200}, func(h http.Header, b []byte) string {
			var v map[string]any
			if json.Unmarshal(b, &v) != nil || v["CertCount"] != 5.0 {
				return "want the success body"
			}
			if _, ok := v["RequestId"]; ok {
				return "has a RequestId"
			}
			return ""
		}, true, "(no-requestid)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Config{Keys: testKeys, RateLimit: -1, Faults: tt.f})
			srv := httptest.NewServer(s)
			defer srv.Close()
			resp := post(t, srv, nil)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			ok := false
			for _, st := range tt.status {
				ok = ok || resp.StatusCode == st
			}
			if !ok {
				t.Errorf("status %d; want one of %v", resp.StatusCode, tt.status)
			}
			if msg := tt.check(resp.Header, body); msg != "" {
				t.Errorf("%s: %.200q", msg, body)
			}
			st := s.Stats()
			if (st.Applied == 1) != tt.applied || st.ByCode[tt.byCode] != 1 {
				t.Errorf("applied %d, ByCode %v; want applied=%v and %q counted", st.Applied, st.ByCode, tt.applied, tt.byCode)
			}
		})
	}
}

// A client that follows the redirect sends the call a second time, and the
// emulator counts it.
func TestRedirectFollowedIsCounted(t *testing.T) {
	s := New(Config{Keys: testKeys, RateLimit: -1, Faults: Faults{RedirectRate: 1}})
	srv := httptest.NewServer(s)
	defer srv.Close()
	resp := post(t, srv, http.DefaultClient)
	resp.Body.Close()
	st := s.Stats()
	if st.RedirectsFollowed != 1 || st.ByCode["(redirect followed)"] != 1 || st.Requests != 2 || st.Applied != 0 {
		t.Errorf("stats %+v; want one followed redirect, two requests, nothing applied", st)
	}
}

// The endless body goes on past any sane cap, at a bounded pace, and stops
// as soon as the client goes away: closing the server (which waits for its
// handlers) is then prompt.
func TestEndlessBody(t *testing.T) {
	s := New(Config{Keys: testKeys, RateLimit: -1, Faults: Faults{EndlessRate: 1}})
	srv := httptest.NewServer(s)
	resp := post(t, srv, nil)
	start := time.Now()
	const want = 3 << 20
	n, err := io.CopyN(io.Discard, resp.Body, want)
	took := time.Since(start)
	if err != nil || n != want || resp.StatusCode != 200 {
		t.Fatalf("read %d bytes, %v, status %d; want %d bytes of a 200", n, err, resp.StatusCode, want)
	}
	// 48 chunks of 64 KiB at one per 5 ms take about 240 ms (unpaced,
	// loopback moves them in a few ms); half that proves the pace without
	// depending on when the first tick falls. Load only makes it slower.
	if minTook := time.Duration(want/endlessChunk/2) * endlessTick; took < minTook {
		t.Errorf("3 MiB in %v; the pace allows no faster than %v", took, minTook)
	}
	resp.Body.Close()
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the endless handler did not stop after the client went away")
	}
	if st := s.Stats(); st.Applied != 1 || st.ByCode["(endless)"] != 1 {
		t.Errorf("stats %+v", st)
	}
}
