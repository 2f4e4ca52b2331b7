package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certalloc/certalloc/pkg/apply"
	"github.com/certalloc/certalloc/pkg/casemu"
	"github.com/certalloc/certalloc/pkg/cli"
	"github.com/certalloc/certalloc/pkg/proxytest"
	"github.com/certalloc/certalloc/pkg/report"
)

// First contact with a real account (issue 9), end to end: the real
// binary and the real SDK against the emulator, or against a recording
// proxy where the network would be needed.

// A gateway error that every row would get stops the run at once: exit 1,
// a handful of requests, and the failures file is the whole plan.
func TestIssue9RunWideGatewayErrors(t *testing.T) {
	for _, tt := range []struct {
		code    string
		status  int
		latency time.Duration
	}{
		{"InvalidApi.NotFound", 404, 0},
		{"InvalidRegion.NotFound", 404, 0},
		{"InvalidProduct.NotFound", 404, 0},
		{"InvalidProtocol.NeedSsl", 400, 0},
		{"IllegalTimestamp", 400, 0},
		{"UnsupportedHTTPMethod", 403, 0},
		// Slow answers: the requests already in flight when the first
		// answer comes are all the run sends.
		{"InvalidApi.NotFound", 404, 800 * time.Millisecond},
	} {
		t.Run(fmt.Sprintf("%s/%v", tt.code, tt.latency), func(t *testing.T) {
			emu, url := startEmulator(t, casemu.Config{Faults: casemu.Faults{AnswerCode: tt.code, AnswerStatus: tt.status,
				LatencyMin: tt.latency, LatencyMax: tt.latency}})
			dir := t.TempDir()
			plan, _ := writePlan(t, dir, 500)
			// Default flags: --qps 10, 40 workers.
			p := certalloc(t, nil, "apply", "--endpoint", url, plan)
			code := p.wait(t)
			sent := emu.Stats().Requests
			t.Logf("%s, answers after %v: exit %d after %d requests", tt.code, tt.latency, code, sent)
			if code != cli.ExitFatal {
				t.Fatalf("exit %d; want %d\n%s\n%s", code, cli.ExitFatal, p.stdout.String(), p.stderr.String())
			}
			if sent > 60 {
				t.Errorf("%d requests before the stop; want at most 60", sent)
			}
			if want := fmt.Sprintf("stopped:     fatal: %s (HTTP %d)", tt.code, tt.status); !strings.Contains(p.stdout.String(), want) {
				t.Errorf("summary does not say %q:\n%s", want, p.stdout.String())
			}
			if got, want := fileString(t, filepath.Join(dir, "plan.failures.csv")), fileString(t, plan); got != want {
				t.Errorf("the failures file is not the whole plan: %d lines; want %d", strings.Count(got, "\n"), strings.Count(want, "\n"))
			}
			if rows := readReport(t, filepath.Join(dir, "plan.report.csv")); len(rows) != 500 {
				t.Errorf("report has %d rows; want 500", len(rows))
			}
		})
	}
}

// An endpoint that serves another region than the request names answers
// InvalidRegion.NotFound, as the gateway does: the same run-wide stop. The
// same endpoint with the right region serves the plan.
func TestIssue9RegionMismatch(t *testing.T) {
	emu, url := startEmulator(t, casemu.Config{Region: "eu-central-1"})
	dir := t.TempDir()
	plan, _ := writePlan(t, dir, 500)
	p := certalloc(t, []string{"ALIBABA_CLOUD_REGION_ID=cn-shanghai"}, "apply", "--endpoint", url, plan)
	if code := p.wait(t); code != cli.ExitFatal {
		t.Fatalf("exit %d; want %d\n%s\n%s", code, cli.ExitFatal, p.stdout.String(), p.stderr.String())
	}
	sent := emu.Stats().Requests
	t.Logf("region cn-shanghai against an eu-central-1 endpoint: exit 1 after %d requests", sent)
	if sent > 60 || !strings.Contains(p.stdout.String(), "stopped:     fatal: InvalidRegion.NotFound (HTTP 404)") {
		t.Errorf("%d requests; summary:\n%s", sent, p.stdout.String())
	}
	if got, want := fileString(t, filepath.Join(dir, "plan.failures.csv")), fileString(t, plan); got != want {
		t.Errorf("the failures file is not the whole plan")
	}

	small := writePlanFrom(t, filepath.Join(dir, "small.csv"), 5000, 5)
	p = certalloc(t, nil, "apply", "--endpoint", url, "--region", "eu-central-1", small)
	if code := p.wait(t); code != 0 {
		t.Fatalf("right region: exit %d\n%s\n%s", code, p.stdout.String(), p.stderr.String())
	}
}

// A code nobody listed, answered to every row, trips the breaker: the
// first rows all failed alike and none succeeded, so the run stops and
// names the code.
func TestIssue9BreakerUnlistedCode(t *testing.T) {
	if _, ok := reflect.TypeFor[apply.Config]().FieldByName("BreakerRows"); !ok {
		t.Skip("needs the apply breaker (apply.Config.BreakerRows)")
	}
	emu, url := startEmulator(t, casemu.Config{Faults: casemu.Faults{AnswerCode: "Some.NewCode", AnswerStatus: 400}})
	dir := t.TempDir()
	plan, _ := writePlan(t, dir, 500)
	p := certalloc(t, nil, "apply", "--endpoint", url, plan)
	code := p.wait(t)
	sent := emu.Stats().Requests
	t.Logf("exit %d after %d requests\n%s", code, sent, p.stdout.String())
	if code != cli.ExitFatal {
		t.Fatalf("exit %d; want %d\n%s\n%s", code, cli.ExitFatal, p.stdout.String(), p.stderr.String())
	}
	if sent > 60 {
		t.Errorf("%d requests before the stop; want at most 60", sent)
	}
	if !strings.Contains(p.stdout.String(), "Some.NewCode") {
		t.Errorf("the summary does not name the code:\n%s", p.stdout.String())
	}
	if got, want := fileString(t, filepath.Join(dir, "plan.failures.csv")), fileString(t, plan); got != want {
		t.Errorf("the failures file is not the whole plan")
	}
}

// Throttling in the shapes the service and its gateways use, on 12% of
// answers: every row succeeds, and every throttle is counted as one.
// --qps 50 against an emulator limited to 50, to keep the test short; the
// shapes are the same at 10.
func TestIssue9ThrottleShapes(t *testing.T) {
	for _, tt := range []struct {
		name   string
		shapes []string
		rows   int
	}{
		{"issue", []string{casemu.Shape429, casemu.Shape429Bare, casemu.ShapeThrottling, casemu.ShapeThrottlingAPI, casemu.ShapeRejected}, 300},
		{"all", casemu.ThrottleShapes, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			emu, url := startEmulator(t, casemu.Config{RateLimit: 50, Seed: 9,
				Faults: casemu.Faults{ThrottleRate: 0.12, ThrottleShapes: tt.shapes}})
			dir := t.TempDir()
			plan, want := writePlan(t, dir, tt.rows)
			summary := filepath.Join(dir, "summary.json")
			p := certalloc(t, nil, "apply", "--endpoint", url, "--qps", "50", "--summary", summary, plan)
			if code := p.wait(t); code != 0 {
				t.Fatalf("exit %d; want 0\n%s\n%s", code, p.stdout.String(), p.stderr.String())
			}
			st := emu.Stats()
			throttles := st.ByCode["(429-bare)"]
			for code, n := range st.ByCode {
				if strings.Contains(code, "Throttling") {
					throttles += n
				}
			}
			if st.ByCode["ServiceUnavailable"] > 0 { // the retry-after shape
				throttles += st.ByCode["ServiceUnavailable"]
			}
			for _, shape := range tt.shapes {
				key := map[string]string{casemu.Shape429: "Throttling.User", casemu.Shape429Wait: "Throttling.User", casemu.Shape429Bare: "(429-bare)",
					casemu.ShapeRetryAfter: "ServiceUnavailable", casemu.ShapeRateLimitHeader: "Throttling.User"}[shape]
				if key == "" {
					key = shape
				}
				if st.ByCode[key] == 0 {
					t.Errorf("shape %s never answered (answers %v): the test did not exercise it", shape, st.ByCode)
				}
			}
			got := summaryNumber(t, summary, "throttled")
			t.Logf("%d rows, %d requests, %d throttled (%.1f%%), %d by the limit itself; summary throttled %v; answers %v",
				tt.rows, st.Requests, throttles, 100*float64(throttles)/float64(st.Requests), st.Limited, got, st.ByCode)
			if got != float64(throttles) {
				t.Errorf("summary counts %v throttled; the emulator sent %d throttling answers", got, throttles)
			}
			if throttles == 0 {
				t.Fatalf("no throttling answer was sent")
			}
			if !strings.Contains(p.stdout.String(), fmt.Sprintf("%d succeeded, 0 failed", tt.rows)) {
				t.Errorf("summary:\n%s", p.stdout.String())
			}
			for id, n := range want {
				if a, _ := emu.State(id); a.CertTotalCount != n || a.Applied != 1 {
					t.Errorf("Id %d: %+v; want total %d applied once", id, a, n)
				}
			}
		})
	}
}

// A plan with a CaIdentifier column: each value is sent with its row (and
// an empty cell sends none), the report keeps the column, and so does the
// failures file, which re-applies exactly what failed.
func TestIssue9CaIdentifier(t *testing.T) {
	dir := t.TempDir()
	src := fileString(t, filepath.Join("..", "..", "testdata", "plans", "ca-identifier.csv"))
	plan := filepath.Join(dir, "plan.csv")
	if err := os.WriteFile(plan, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	type row struct {
		count int32
		ca    string
	}
	want := map[int64]row{}
	recs := csvRecords(t, plan)
	for _, r := range recs[1:] {
		var id int64
		var n int32
		fmt.Sscan(r[0], &id)
		fmt.Sscan(r[1], &n)
		want[id] = row{n, r[2]}
	}
	if len(want) < 3 || want[33286].ca != "" || want[33285].ca == "" {
		t.Fatalf("testdata/plans/ca-identifier.csv changed: %v", want)
	}

	// Two rows fail, one with a CaIdentifier and one without.
	emu, url := startEmulator(t, casemu.Config{Faults: casemu.Faults{FailIDs: map[int64]bool{33285: true, 33286: true}}})
	p := certalloc(t, nil, "apply", "--endpoint", url, "--qps", "50", plan)
	if code := p.wait(t); code != cli.ExitPartial {
		t.Fatalf("exit %d; want %d\n%s\n%s", code, cli.ExitPartial, p.stdout.String(), p.stderr.String())
	}
	if a, ok := emu.State(33287); !ok || a.CaIdentifier != want[33287].ca || a.CertTotalCount != want[33287].count {
		t.Errorf("Id 33287: emulator state %+v; want %+v", a, want[33287])
	}
	for _, r := range readReport(t, filepath.Join(dir, "plan.report.csv")) {
		if r.CaIdentifier != want[r.ID].ca {
			t.Errorf("report Id %d: CaIdentifier %q; want %q", r.ID, r.CaIdentifier, want[r.ID].ca)
		}
	}
	failures := filepath.Join(dir, "plan.failures.csv")
	wantFailures := "Id,CertTotalCount,CaIdentifier\n" +
		fmt.Sprintf("33285,5,%s\n33286,10,\n", want[33285].ca)
	if got := fileString(t, failures); got != wantFailures {
		t.Errorf("failures file:\n%s\nwant:\n%s", got, wantFailures)
	}

	// The cause fixed, the failures file finishes the job, CaIdentifier
	// included, and sends nothing else.
	emu.SetFaults(casemu.Faults{})
	before := emu.Stats().Requests
	p = certalloc(t, nil, "apply", "--endpoint", url, "--qps", "50", failures)
	if code := p.wait(t); code != 0 {
		t.Fatalf("applying the failures file: exit %d\n%s\n%s", code, p.stdout.String(), p.stderr.String())
	}
	if n := emu.Stats().Requests - before; n != 2 {
		t.Errorf("the failures file sent %d requests; want 2", n)
	}
	for id, w := range want {
		if a, ok := emu.State(id); !ok || a.CertTotalCount != w.count || a.CaIdentifier != w.ca || a.Applied != 1 {
			t.Errorf("Id %d: emulator state %+v (known %v); want %+v applied once", id, a, ok, w)
		}
	}
}

// Two AccessKeys of one account share its limit, as on the service: two
// runs at 10/s each, with different keys, get throttled, slow down to a
// share each, and every row of both succeeds. Each run alone never sends
// more than 10 in a second, so a throttle here can only come from the
// shared window. After the first seconds the account sees at most 11
// arrivals in any second, and few requests are throttled (before the
// pacer shared: 20 a second, 44% throttled).
func TestIssue9TwoKeysOneAccount(t *testing.T) {
	const keyA, keyB, secretB = "LTAI5tAccountKeyA0000000", "LTAI5tAccountKeyB0000000", "second-key-secret"
	rec := &arrivalLog{}
	emu := casemu.New(casemu.Config{Keys: map[string]casemu.Key{
		keyA: {Secret: cli.EmulatorSecret, Account: "1234567890"},
		keyB: {Secret: secretB, Account: "1234567890"},
	}})
	srv := httptest.NewServer(rec.wrap(emu))
	t.Cleanup(srv.Close)

	const rows = 50
	runs := []struct {
		key, secret string
		first       int64
	}{{keyA, cli.EmulatorSecret, 10000}, {keyB, secretB, 20000}}
	procs := make([]*proc, len(runs))
	dirs := make([]string, len(runs))
	for i, r := range runs {
		dirs[i] = t.TempDir()
		plan := writePlanFrom(t, filepath.Join(dirs[i], "plan.csv"), r.first, rows)
		procs[i] = certalloc(t, []string{"ALIBABA_CLOUD_ACCESS_KEY_ID=" + r.key, "ALIBABA_CLOUD_ACCESS_KEY_SECRET=" + r.secret},
			"apply", "--endpoint", srv.URL, "--summary", filepath.Join(dirs[i], "s.json"), plan)
	}
	for i, p := range procs {
		if code := p.wait(t); code != 0 {
			t.Fatalf("run %d: exit %d\n%s\n%s", i, code, p.stdout.String(), p.stderr.String())
		}
	}
	st := emu.Stats()
	if st.Applied != 2*rows {
		t.Errorf("%d calls applied; want %d", st.Applied, 2*rows)
	}
	if st.Limited == 0 {
		t.Errorf("no throttling: the two keys did not share one limit")
	}
	throttled := summaryNumber(t, filepath.Join(dirs[0], "s.json"), "throttled") + summaryNumber(t, filepath.Join(dirs[1], "s.json"), "throttled")
	if int(throttled) != st.Limited {
		t.Errorf("the runs counted %v throttled; the emulator's limit answered %d", throttled, st.Limited)
	}
	all, admitted := rec.maxPerSecond()
	// The most arrivals in any second that starts 3s or more after the
	// first arrival: the runs have met and cut by then.
	rec.mu.Lock()
	first := slices.MinFunc(rec.at, func(x, y time.Time) int { return x.Compare(y) })
	var after []time.Time
	for _, at := range rec.at {
		if at.Sub(first) >= 3*time.Second {
			after = append(after, at)
		}
	}
	rec.mu.Unlock()
	settled := mostInWindow(after, time.Second)
	share := float64(st.Limited) / float64(st.Requests)
	goodputA := summaryNumber(t, filepath.Join(dirs[0], "s.json"), "goodput_rows_per_second")
	goodputB := summaryNumber(t, filepath.Join(dirs[1], "s.json"), "goodput_rows_per_second")
	t.Logf("two keys, one account: %d requests for %d rows, %d throttled by the limit (%.1f%%); most arrivals in one second %d (emulator) / %d (recorded), of which admitted %d, and %d after the first 3s; goodput %.2f and %.2f rows/s; arrivals per second %v",
		st.Requests, 2*rows, st.Limited, 100*share, st.MaxInWindow, all, admitted, settled, goodputA, goodputB, rec.perSecond())
	if settled > 11 {
		t.Errorf("%d arrivals in one second after the first 3s; want at most 11", settled)
	}
	if share >= 0.15 {
		t.Errorf("%.1f%% of requests throttled; want under 15%%", 100*share)
	}
}

// The region decides the endpoint, as the official SDKs do, seen on the
// wire without any network: HTTPS goes through a local proxy that records
// the CONNECT target and refuses the tunnel.
func TestIssue9EndpointFromRegion(t *testing.T) {
	proxy, targets := proxytest.Recording(t)
	dir := t.TempDir()
	plan, _ := writePlan(t, dir, 1)
	proxyEnv := []string{"HTTPS_PROXY=http://" + proxy, "https_proxy=", "HTTP_PROXY=", "http_proxy=", "NO_PROXY=", "no_proxy=",
		"ALIBABA_CLOUD_REGION_ID=", "ALIBABACLOUD_REGION_ID=", "ALICLOUD_REGION_ID=", "ALICLOUD_REGION="}
	for i, tt := range []struct {
		name string
		env  []string
		args []string
		host string
	}{
		{"flag fallback", nil, []string{"--region", "eu-central-1"}, "cas.eu-central-1.aliyuncs.com"},
		{"env fallback", []string{"ALIBABA_CLOUD_REGION_ID=ap-southeast-1"}, nil, "cas.ap-southeast-1.aliyuncs.com"},
		{"terraform env", []string{"ALICLOUD_REGION=ap-northeast-1"}, nil, "cas.ap-northeast-1.aliyuncs.com"},
		{"map region", nil, []string{"--region", "cn-shanghai"}, "cas.aliyuncs.com"},
		{"flag beats env", []string{"ALIBABA_CLOUD_REGION_ID=ap-southeast-1"}, []string{"--region", "cn-shanghai"}, "cas.aliyuncs.com"},
		{"default", nil, nil, "cas.aliyuncs.com"},
		{"vpc", nil, []string{"--region", "ap-southeast-1", "--vpc"}, "cas-vpc.ap-southeast-1.aliyuncs.com"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := append(slices.Clone(proxyEnv), tt.env...)
			// The dry run names the endpoint before anything is sent.
			p := certalloc(t, env, append([]string{"plan"}, append(tt.args, plan)...)...)
			if code := p.wait(t); code != 0 {
				t.Fatalf("plan: exit %d\n%s", code, p.stderr.String())
			}
			if want := "An apply would send to https://" + tt.host + " "; !strings.Contains(p.stdout.String(), want) {
				t.Errorf("plan does not say %q:\n%s", want, p.stdout.String())
			}
			reportPath := filepath.Join(dir, fmt.Sprintf("r%d.csv", i))
			args := append([]string{"apply", "--report", reportPath, "--failures", reportPath + ".failures"}, tt.args...)
			p = certalloc(t, env, append(args, plan)...)
			// The proxy refuses with 403, as an egress proxy does for a
			// host it does not allow: every row would get the same.
			if code := p.wait(t); code != cli.ExitFatal {
				t.Errorf("apply: exit %d; want %d (the proxy refuses every tunnel)\n%s", code, cli.ExitFatal, p.stderr.String())
			}
			if want := "stopped:     fatal: ProxyRefused: the proxy in HTTPS_PROXY refused the tunnel to " + tt.host + ":443 (HTTP 403)"; !strings.Contains(p.stdout.String(), want) {
				t.Errorf("summary does not say %q:\n%s", want, p.stdout.String())
			}
			select {
			case got := <-targets:
				if want := "CONNECT " + tt.host + ":443"; got != want {
					t.Errorf("the proxy saw %q; want %q", got, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("the proxy saw nothing\n%s", p.stderr.String())
			}
			select {
			case got := <-targets:
				t.Errorf("a second request reached the proxy: %q", got)
			default:
			}
			if want := "endpoint=https://" + tt.host + " "; !strings.Contains(p.stderr.String(), want) {
				t.Errorf("the start-up line does not name the endpoint (%q):\n%s", want, p.stderr.String())
			}
			if want := "endpoint:    https://" + tt.host + " "; !strings.Contains(p.stdout.String(), want) {
				t.Errorf("the summary does not name the endpoint (%q):\n%s", want, p.stdout.String())
			}
			if rows := readReport(t, reportPath); len(rows) != 1 || rows[0].Status != report.Failed || strings.Contains(rows[0].ErrorMessage, "may have") {
				t.Errorf("report %+v; want one failed row, never sent", rows)
			}
		})
	}
}

// A RAM refusal names what to fix: the stop reason carries the action, the
// no-permission type and the policy type, and the encoded diagnostic is
// printed once, with the command that decodes it.
func TestIssue9RAMDiagnostics(t *testing.T) {
	emu, url := startEmulator(t, casemu.Config{Keys: map[string]casemu.Key{cli.EmulatorKeyID: {Secret: cli.EmulatorSecret, Forbidden: true, Account: "1234567890"}}})
	dir := t.TempDir()
	plan, _ := writePlan(t, dir, 50)
	summary := filepath.Join(dir, "s.json")
	p := certalloc(t, nil, "apply", "--endpoint", url, "--summary", summary, plan)
	if code := p.wait(t); code != cli.ExitFatal {
		t.Fatalf("exit %d; want %d\n%s\n%s", code, cli.ExitFatal, p.stdout.String(), p.stderr.String())
	}
	out, errOut := p.stdout.String(), p.stderr.String()
	t.Logf("%d requests\n%s\n%s", emu.Stats().Requests, out, errOut)
	for _, want := range []string{"stopped:     fatal: Forbidden.RAM (HTTP 403)", "RAM denied yundun-cert:AssignCertificateCount",
		"NoPermissionType ImplicitDeny", "PolicyType AccountLevelIdentityBasedPolicy"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary does not say %q", want)
		}
	}
	reason := summaryString(t, summary, "stop_reason")
	if !strings.Contains(reason, "ImplicitDeny") || !strings.Contains(reason, "AccountLevelIdentityBasedPolicy") {
		t.Errorf("JSON stop_reason = %q; want the RAM detail", reason)
	}
	// The emulator's diagnostic: base64 of a fixed text.
	const encoded = "Y2FzZW11OiB0aGUga2V5IGxhY2tzIHl1bmR1bi1jZXJ0OkFzc2lnbkNlcnRpZmljYXRlQ291bnQ="
	if n := strings.Count(errOut, encoded); n != 1 {
		t.Errorf("the encoded diagnostic appears %d times on stderr; want once", n)
	}
	if !strings.Contains(errOut, "aliyun ram DecodeDiagnosticMessage --EncodedDiagnosticMessage "+encoded) {
		t.Errorf("stderr does not say how to decode the diagnostic:\n%s", errOut)
	}
	if strings.Contains(out, encoded) || strings.Contains(fileString(t, filepath.Join(dir, "plan.report.csv")), encoded) {
		t.Errorf("the encoded diagnostic belongs on stderr only")
	}
	if emu.Stats().Applied != 0 || !strings.Contains(out, "not attempted (of 50)") {
		t.Errorf("want nothing applied and the rest not attempted:\n%s", out)
	}
}

// arrivalLog records when requests reached the emulator and whether they
// were admitted (answered 200).
type arrivalLog struct {
	mu sync.Mutex
	at []time.Time
	ok []bool
}

func (a *arrivalLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		sw := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		a.mu.Lock()
		a.at = append(a.at, now)
		a.ok = append(a.ok, sw.status == http.StatusOK)
		a.mu.Unlock()
	})
}

// maxPerSecond returns the most arrivals, and the most admitted ones, in
// any window (t-1s, t]. The stamps are taken a little before the
// emulator's own, so they can differ from its count by one at an edge.
func (a *arrivalLog) maxPerSecond() (all, admitted int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var at, ok []time.Time
	for i, t := range a.at {
		at = append(at, t)
		if a.ok[i] {
			ok = append(ok, t)
		}
	}
	return mostInWindow(at, time.Second), mostInWindow(ok, time.Second)
}

// perSecond counts arrivals in each whole second from the first.
func (a *arrivalLog) perSecond() []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.at) == 0 {
		return nil
	}
	first := slices.MinFunc(a.at, func(x, y time.Time) int { return x.Compare(y) })
	var n []int
	for _, t := range a.at {
		s := int(t.Sub(first) / time.Second)
		for len(n) <= s {
			n = append(n, 0)
		}
		n[s]++
	}
	return n
}

func mostInWindow(ts []time.Time, w time.Duration) int {
	ts = slices.Clone(ts)
	slices.SortFunc(ts, func(x, y time.Time) int { return x.Compare(y) })
	best, lo := 0, 0
	for hi := range ts {
		for ts[hi].Sub(ts[lo]) >= w {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writePlanFrom writes n rows with Ids first+1 ... first+n.
func writePlanFrom(t *testing.T, path string, first int64, n int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("Id,CertTotalCount\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%d,%d\n", first+int64(i), i%13)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func fileString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func csvRecords(t *testing.T, path string) [][]string {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader([]byte(fileString(t, path)))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// summaryField reads a number from a JSON summary.
func summaryNumber(t *testing.T, path, key string) float64 {
	t.Helper()
	v, ok := summaryMap(t, path)[key].(float64)
	if !ok {
		t.Fatalf("%s: no number %q", path, key)
	}
	return v
}

func summaryMap(t *testing.T, path string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(fileString(t, path)), &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

func summaryString(t *testing.T, path, key string) string {
	t.Helper()
	s, _ := summaryMap(t, path)[key].(string)
	return s
}
