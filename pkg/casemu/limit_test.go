package casemu

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

var accountKeys = map[string]Key{
	"acme-1":   {Secret: "a1", Account: "acme"},
	"acme-2":   {Secret: "a2", Account: "acme"},
	"acme-sts": {Secret: "as", Account: "acme", SecurityToken: "acme-session-token"},
	"other":    {Secret: "o", Account: "other"},
	"solo-1":   {Secret: "s1"},
	"solo-2":   {Secret: "s2"},
}

// callAs sends a call signed with key ak of accountKeys.
func callAs(t *testing.T, s *Server, ak string) (int, map[string]any, http.Header) {
	t.Helper()
	k := accountKeys[ak]
	return call(t, s, func(p url.Values) {
		p.Set("AccessKeyId", ak)
		if k.SecurityToken != "" {
			p.Set("SecurityToken", k.SecurityToken)
		}
	}, k.Secret)
}

// Ten calls from the keys and the STS session of one account fill its
// second; the eleventh is throttled whichever of them sends it, while
// another account, and a key with no account, still get through.
func TestAccountSharesOneWindow(t *testing.T) {
	tests := []struct {
		eleventh string
		status   int
	}{
		{"acme-1", 400},
		{"acme-2", 400},
		{"acme-sts", 400},
		{"other", 200},
		{"solo-1", 200},
	}
	for _, tt := range tests {
		t.Run(tt.eleventh, func(t *testing.T) {
			now := time.Now()
			s := New(Config{Keys: accountKeys, Now: func() time.Time { return now }})
			for i := range DefaultRateLimit {
				ak := []string{"acme-1", "acme-2", "acme-sts"}[i%3]
				if status, body, _ := callAs(t, s, ak); status != 200 {
					t.Fatalf("call %d by %s: %v", i, ak, body)
				}
				now = now.Add(50 * time.Millisecond)
			}
			status, body, h := callAs(t, s, tt.eleventh)
			if status != tt.status {
				t.Fatalf("11th call by %s = %d %v; want %d", tt.eleventh, status, body, tt.status)
			}
			if status == 400 && (body["Code"] != "Throttling.User" || h.Get("x-acs-retry-after") != "500") {
				t.Errorf("throttled answer %v, retry-after %q; want Throttling.User after 500ms", body, h.Get("x-acs-retry-after"))
			}
		})
	}
}

// Keys with no account are each their own: ten calls from one leave the
// other's second empty, as before accounts existed.
func TestKeysWithoutAccountAreSeparate(t *testing.T) {
	now := time.Now()
	s := New(Config{Keys: accountKeys, Now: func() time.Time { return now }})
	for range DefaultRateLimit {
		callAs(t, s, "solo-1")
	}
	if status, body, _ := callAs(t, s, "solo-2"); status != 200 {
		t.Errorf("solo-2 after solo-1 filled its second: %d %v", status, body)
	}
	if status, _, _ := callAs(t, s, "solo-1"); status != 400 {
		t.Errorf("solo-1's 11th call: %d; want 400", status)
	}
	if st := s.Stats(); st.Limited != 1 || st.MaxInWindow != 11 {
		t.Errorf("Limited %d, MaxInWindow %d; want 1 and 11", st.Limited, st.MaxInWindow)
	}
}

func TestThrottle429(t *testing.T) {
	now := time.Now()
	s := New(Config{Keys: testKeys, RateLimit: 2, Throttle429: true, Now: func() time.Time { return now }})
	call(t, s, nil, "sk")
	now = now.Add(300 * time.Millisecond)
	call(t, s, nil, "sk")
	status, body, h := call(t, s, nil, "sk")
	if status != 429 || body["Code"] != "Throttling.User" || body["RequestId"] == "" || h.Get("x-acs-retry-after") != "700" {
		t.Errorf("limit in 429 mode = %d %v retry-after %q; want 429 Throttling.User, 700ms", status, body, h.Get("x-acs-retry-after"))
	}
	if st := s.Stats(); st.Limited != 1 || st.ByCode["Throttling.User"] != 1 {
		t.Errorf("stats %+v", st)
	}
}

// With arrival jitter the server's flow control sees each request at its
// send time plus its own delay: its verdicts and its busiest window are
// those of the window over the delayed stamps, drawn from the same dice.
func TestServerCountsDelayedArrivals(t *testing.T) {
	const seed, n, gap = 42, 60, 100 * time.Millisecond
	mean, sd := time.Duration(0), 20*time.Millisecond
	start := time.Now()
	now := start
	s := New(Config{Keys: testKeys, Seed: seed, Now: func() time.Time { return now },
		Faults: Faults{JitterMean: mean, JitterStdDev: sd}})
	var got []bool
	for i := range n {
		now = start.Add(time.Duration(i) * gap)
		status, _, _ := call(t, s, nil, "sk")
		got = append(got, status == 200)
	}

	rng := newRNG(seed)
	var w window
	throttled, busiest := 0, 0
	for i := range n {
		d := jitterDraw(mean, sd, rng.NormFloat64())
		ok, _, most := w.arrive(start.Add(time.Duration(i)*gap+d), DefaultRateLimit, time.Second)
		busiest = max(busiest, most)
		if ok != got[i] {
			t.Errorf("request %d: server ok=%v; the window over delayed stamps says %v", i, got[i], ok)
		}
		if !ok {
			throttled++
		}
	}
	st := s.Stats()
	if st.MaxInWindow != busiest || st.Limited != throttled {
		t.Errorf("server MaxInWindow %d, Limited %d; window over delayed stamps: %d, %d", st.MaxInWindow, st.Limited, busiest, throttled)
	}
	// Evenly paced at exactly the limit, undelayed sends never exceed it;
	// the test means something only if the jitter made some second hold 11.
	if busiest < 11 || throttled == 0 {
		t.Errorf("busiest window %d, %d throttled: the jitter bunched nothing", busiest, throttled)
	}
}
