package cas

import (
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/certalloc/certalloc/pkg/proxytest"
)

// net/http reads the proxy variables once per process, at first use, so
// each test that sets them runs in a fresh copy of this test binary.
const childEnv = "CAS_PROXY_TEST_CHILD"

// inChild runs the calling test again in a child process, with its name in
// childEnv, and reports whether this is the child, which should go on.
func inChild(t *testing.T) bool {
	t.Helper()
	if os.Getenv(childEnv) == t.Name() {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("child test: %v\n%s", err, out)
	}
	return false
}

// The host a region resolves to is the one the client connects to: proved
// through HTTPS_PROXY, by the CONNECT target, with no network.
func TestEndpointOnTheWire(t *testing.T) {
	if !inChild(t) {
		return
	}
	addr, targets := proxytest.Recording(t)
	t.Setenv("HTTPS_PROXY", "http://"+addr)
	t.Setenv("https_proxy", "")
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	t.Setenv("ALIBABA_CLOUD_REGION_ID", "ap-southeast-1")
	envRegion, _ := EnvRegion()
	creds, err := StaticCredentials("AKID", "sekret", "", "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		region string
		vpc    bool
		want   string
	}{
		{"eu-central-1", false, "CONNECT cas.eu-central-1.aliyuncs.com:443"},
		{envRegion, false, "CONNECT cas.ap-southeast-1.aliyuncs.com:443"},
		{"cn-shanghai", false, "CONNECT cas.aliyuncs.com:443"},
		{"cn-hangzhou", true, "CONNECT cas-vpc.cn-hangzhou.aliyuncs.com:443"},
	} {
		ep, _, err := ResolveEndpoint("", tt.region, tt.vpc, false)
		if err != nil {
			t.Fatal(err)
		}
		cs, err := NewClients(Config{Endpoint: ep, Region: tt.region, Credentials: creds, Timeout: 5 * time.Second}, 1)
		if err != nil {
			t.Fatal(err)
		}
		calls := 0
		_, e := cs[0].Assign(Request{ID: 1, CertTotalCount: 1}, func() { calls++ })
		if e == nil || e.MaybeApplied || calls != 0 {
			t.Errorf("region %s: Assign = %v, onWire called %d times; want a failure that sent nothing", tt.region, e, calls)
		} else if e.Code != CodeProxyRefused || e.Class != Fatal {
			t.Errorf("region %s: Assign = %v (%v); want a run-fatal %s", tt.region, e, e.Class, CodeProxyRefused)
		}
		select {
		case got := <-targets:
			if got != tt.want {
				t.Errorf("region %s (vpc %v): the proxy saw %q; want %q", tt.region, tt.vpc, got, tt.want)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("region %s: the proxy saw nothing", tt.region)
		}
	}
}

// A proxy variable net/http cannot use fails every call: it stops the run
// before the first, naming the variable and never its value.
func TestUnusableHTTPSProxy(t *testing.T) {
	if !inChild(t) {
		return
	}
	t.Setenv("HTTPS_PROXY", "ftp://user:pa55@proxy.example:21")
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	creds, err := StaticCredentials("AKID", "sekret", "", "test")
	if err != nil {
		t.Fatal(err)
	}
	ep, _, _ := ResolveEndpoint("", "eu-central-1", false, false)
	_, err = NewClients(Config{Endpoint: ep, Credentials: creds}, 1)
	var e *Error
	if !asError(err, &e) || e.Class != Fatal || e.Code != CodeBadProxy {
		t.Fatalf("NewClients = %v; want a run-fatal BadProxy", err)
	}
	if !strings.Contains(e.Message, "HTTPS_PROXY") || strings.Contains(e.Message, "pa55") || strings.Contains(e.Message, "proxy.example") {
		t.Errorf("Message = %q; want it to name HTTPS_PROXY and not its value", e.Message)
	}
}

// A proxy that refuses the tunnel, or cannot be reached, is named as the
// cause: the endpoint was never contacted, and nothing was sent. A refusal
// that will repeat for every row stops the run.
func TestProxyRefusals(t *testing.T) {
	if !inChild(t) {
		return
	}
	t.Setenv("https_proxy", "")
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	creds, err := StaticCredentials("AKID", "sekret", "", "test")
	if err != nil {
		t.Fatal(err)
	}
	ep, _, _ := ResolveEndpoint("", "eu-central-1", false, false)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	for _, tt := range []struct {
		status int // 0: nothing listens at the proxy's address
		code   string
		class  Class
		says   string
	}{
		{http.StatusForbidden, CodeProxyRefused, Fatal, "refused the tunnel to cas.eu-central-1.aliyuncs.com:443 (HTTP 403)"},
		{http.StatusProxyAuthRequired, CodeProxyRefused, Fatal, "wants credentials"},
		{http.StatusBadGateway, CodeProxyRefused, Retryable, "(HTTP 502)"},
		{0, CodeConnectionRefused, Retryable, "refused by the proxy"},
	} {
		addr := closedAddr
		if tt.status != 0 {
			addr, _ = proxytest.Refusing(t, tt.status)
		}
		// net/http reads the variable once per process, so the
		// transport's proxy function is pointed at each proxy directly.
		t.Setenv("HTTPS_PROXY", "http://"+addr)
		cs, err := NewClients(Config{Endpoint: ep, Region: "eu-central-1", Credentials: creds, Timeout: 5 * time.Second}, 1)
		if err != nil {
			t.Fatal(err)
		}
		cs[0].rt.t.Proxy = func(*http.Request) (*url.URL, error) { return url.Parse("http://" + addr) }
		_, e := cs[0].Assign(Request{ID: 1, CertTotalCount: 1}, nil)
		if e == nil || e.Code != tt.code || e.Class != tt.class || e.MaybeApplied || !strings.Contains(e.Message, tt.says) {
			t.Errorf("proxy answering %d: Assign = %v (%v, maybe applied %v); want %s %v saying %q", tt.status, e, e.Class, e.MaybeApplied, tt.code, tt.class, tt.says)
		}
	}
}
