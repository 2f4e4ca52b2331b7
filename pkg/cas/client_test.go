package cas

import (
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certalloc/certalloc/pkg/casemu"
)

func emuConfig() casemu.Config { return casemu.Config{RateLimit: -1} }

func emulator(t *testing.T, cfg casemu.Config) (*casemu.Server, Endpoint) {
	t.Helper()
	if cfg.Keys == nil {
		cfg.Keys = map[string]casemu.Key{"AKID": {Secret: "sekret"}, "STSID": {Secret: "sts-sekret", SecurityToken: "sts-token-value"}}
	}
	s := casemu.New(cfg)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	ep, _, err := ParseEndpoint(ts.URL, false)
	if err != nil {
		t.Fatal(err)
	}
	return s, ep
}

func clients(t *testing.T, ep Endpoint, id, secret, token string, n int, timeout time.Duration) []*Client {
	t.Helper()
	creds, err := StaticCredentials(id, secret, token, "test")
	if err != nil {
		t.Fatal(err)
	}
	cs, err := NewClients(Config{Endpoint: ep, Timeout: timeout, Credentials: creds}, n)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestAssignThroughTheSDK(t *testing.T) {
	s, ep := emulator(t, casemu.Config{RateLimit: -1})
	for _, tc := range []struct{ id, secret, token string }{{"AKID", "sekret", ""}, {"STSID", "sts-sekret", "sts-token-value"}} {
		c := clients(t, ep, tc.id, tc.secret, tc.token, 1, time.Second)[0]
		r, e := c.Assign(Request{ID: 33285, CertTotalCount: 5}, nil)
		if e != nil {
			t.Fatalf("Assign with %s: %v", tc.id, e)
		}
		if r.CertCount != 5 || len(r.RequestID) != 36 {
			t.Errorf("Assign with %s = %+v", tc.id, r)
		}
	}
	if a, _ := s.State(33285); a.Applied != 2 || a.CertTotalCount != 5 {
		t.Errorf("State = %+v", a)
	}
}

func TestAssignFailures(t *testing.T) {
	tests := []struct {
		name   string
		faults casemu.Faults
		secret string
		class  Class
		code   string
		maybe  bool
	}{
		{"bad secret", casemu.Faults{}, "wrong", Fatal, "SignatureDoesNotMatch", false},
		{"row fails", casemu.Faults{FailIDs: map[int64]bool{1: true}}, "sekret", RowFinal, "InvalidParameter", false},
		{"503", casemu.Faults{Error503Rate: 1}, "sekret", Retryable, "ServiceUnavailable", false},
		{"dropped", casemu.Faults{DropRate: 1}, "sekret", Retryable, CodeConnectionLost, true},
		{"hang", casemu.Faults{HangRate: 1, HangFor: 2 * time.Second}, "sekret", Retryable, CodeClientTimeout, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ep := emulator(t, casemu.Config{RateLimit: -1, Faults: tt.faults})
			c := clients(t, ep, "AKID", tt.secret, "", 1, 300*time.Millisecond)[0]
			_, e := c.Assign(Request{ID: 1, CertTotalCount: 1}, nil)
			if e == nil || e.Class != tt.class || e.Code != tt.code || e.MaybeApplied != tt.maybe {
				t.Fatalf("Assign = %v, maybe applied %v; want %v %s, %v", e, e.MaybeApplied, tt.class, tt.code, tt.maybe)
			}
			if strings.Contains(e.Error(), "sekret") || strings.Contains(e.Error(), "Signature=") {
				t.Errorf("error %q leaks", e.Error())
			}
		})
	}
}

// A timeout before the request was written (here in a TLS handshake the
// server never answers) cannot have been applied.
func TestTimeoutBeforeSending(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // silent until the test ends
		}
	}()
	ep, _, err := ParseEndpoint("https://"+ln.Addr().String(), false)
	if err != nil {
		t.Fatal(err)
	}
	creds, _ := StaticCredentials("AKID", "sekret", "", "test")
	cs, err := NewClients(Config{Endpoint: ep, Credentials: creds, Timeout: 5 * time.Second, ConnectTimeout: 200 * time.Millisecond}, 1)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	_, e := cs[0].Assign(Request{ID: 1, CertTotalCount: 1}, func() { calls++ })
	if e == nil || e.Code != CodeClientTimeout || e.MaybeApplied || calls != 0 || !strings.Contains(e.Message, "before the request was sent") {
		t.Errorf("Assign = %v, maybe applied %v, onWire called %d times; want a ClientTimeout that sent nothing", e, e.MaybeApplied, calls)
	}
}

func TestSTSTokenNeverInErrors(t *testing.T) {
	_, ep := emulator(t, casemu.Config{RateLimit: -1})
	// A wrong secret makes the service echo its string to sign, which
	// holds the token.
	c := clients(t, ep, "STSID", "wrong", "sts-token-value", 1, time.Second)[0]
	_, e := c.Assign(Request{ID: 1, CertTotalCount: 1}, nil)
	if e == nil || e.Code != "SignatureDoesNotMatch" {
		t.Fatalf("Assign = %v", e)
	}
	if strings.Contains(e.Error(), "sts-token") || strings.Contains(e.Error(), "wrong") {
		t.Errorf("error %q leaks the token or secret", e.Error())
	}
}

// Many clients on one transport and one credentials provider, each used by
// one goroutine, as the runner does: must be clean under -race.
func TestClientsRaceFree(t *testing.T) {
	s, ep := emulator(t, casemu.Config{RateLimit: -1, Faults: casemu.Faults{LatencyMax: 5 * time.Millisecond}})
	cs := clients(t, ep, "STSID", "sts-sekret", "sts-token-value", 24, time.Second)
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				if _, e := c.Assign(Request{ID: int64(i*100 + j + 1), CertTotalCount: 1}, nil); e != nil {
					t.Errorf("Assign: %v", e)
				}
			}
		}()
	}
	wg.Wait()
	if st := s.Stats(); st.Applied != 240 || st.ByCode["SignatureNonceUsed"] != 0 {
		t.Errorf("stats = %+v", st)
	}
}

// The transport keeps certificate checks on and one idle connection per
// worker; loopback never goes through a proxy.
func TestTransportSettings(t *testing.T) {
	local, _, _ := ParseEndpoint("http://127.0.0.1:8080", false)
	if rt := newTransport(local, time.Second, 4); rt.Proxy != nil {
		t.Errorf("a loopback endpoint has a proxy")
	}
	remote, _, _ := ParseEndpoint("", false)
	rt := newTransport(remote, time.Second, 4)
	if rt.Proxy == nil {
		t.Errorf("a remote endpoint ignores the proxy variables")
	}
	if rt.TLSClientConfig != nil && rt.TLSClientConfig.InsecureSkipVerify {
		t.Errorf("certificate verification is off")
	}
	if rt.MaxIdleConnsPerHost < 4 {
		t.Errorf("MaxIdleConnsPerHost = %d; want at least the worker count", rt.MaxIdleConnsPerHost)
	}
}

func TestAssignCallsOnWireOnce(t *testing.T) {
	_, ep := emulator(t, casemu.Config{RateLimit: -1})
	c := clients(t, ep, "AKID", "sekret", "", 1, time.Second)[0]
	for i := 0; i < 3; i++ {
		calls := 0
		if _, e := c.Assign(Request{ID: int64(i + 1), CertTotalCount: 1}, func() { calls++ }); e != nil || calls != 1 {
			t.Errorf("Assign: %v, onWire called %d times; want once", e, calls)
		}
	}
	refused, _, _ := ParseEndpoint("http://127.0.0.1:1", false)
	c = clients(t, refused, "AKID", "sekret", "", 1, time.Second)[0]
	calls := 0
	if _, e := c.Assign(Request{ID: 1, CertTotalCount: 1}, func() { calls++ }); e == nil || e.Code != CodeConnectionRefused || e.MaybeApplied || calls != 0 {
		t.Errorf("Assign to nothing: %v, onWire called %d times; want ConnectionRefused, not maybe applied, and no call", e, calls)
	}
}

// A factory makes clients on demand, up to the number it was made for.
func TestFactoryMakesUpToN(t *testing.T) {
	creds, err := StaticCredentials("AKID", "sekret", "", "test")
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFactory(Config{Endpoint: Endpoint{Scheme: "http", Host: "127.0.0.1:1"}, Credentials: creds}, 2)
	if err != nil {
		t.Fatal(err)
	}
	a, errA := f.New()
	b, errB := f.New()
	if errA != nil || errB != nil || a == b || a.rt == b.rt || a.rt.t != b.rt.t {
		t.Fatalf("New, New = %v, %v; want two clients with their own round trippers on one transport", errA, errB)
	}
	if _, err := f.New(); err == nil {
		t.Error("a third New succeeded; want an error past n")
	}
}
