package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certalloc/certalloc/pkg/casemu"
	"github.com/certalloc/certalloc/pkg/cli"
)

// secretForms are the ways a secret could show up in text: as is, and
// encoded once or twice as in a URL or a string to sign.
func secretForms(s string) []string {
	return []string{s, url.QueryEscape(s), url.PathEscape(s), url.QueryEscape(url.QueryEscape(s)),
		strings.ReplaceAll(url.QueryEscape(s), "+", "%20")}
}

// Runs at debug level through every fault the emulator can inject, and
// through every way the service can reject an STS key, then searches
// every output for the AccessKey secret and the STS token.
func TestNoSecretInAnyOutput(t *testing.T) {
	emu, endpoint := startEmulator(t, casemu.Config{RateLimit: 30, Faults: casemu.Faults{
		LatencyMax: 20 * time.Millisecond, Error503Rate: 0.1, Error500Rate: 0.1, DropRate: 0.1,
		ThrottleRate: 0.1, HangRate: 0.1, HangFor: 2 * time.Second, FailIDs: map[int64]bool{1001: true, 1002: true},
	}})
	dir := t.TempDir()
	plan, _ := writePlan(t, dir, 40)
	runs := []struct {
		name   string
		env    []string
		faults bool
	}{
		{"faults", []string{"ALIBABA_CLOUD_SECURITY_TOKEN=" + testToken}, true},
		{"wrong-secret", []string{"ALIBABA_CLOUD_SECURITY_TOKEN=" + testToken, "ALIBABA_CLOUD_ACCESS_KEY_SECRET=" + testSecret + "x"}, false},
		{"wrong-token", []string{"ALIBABA_CLOUD_SECURITY_TOKEN=" + testToken + "x"}, false},
		{"no-token", []string{"ALIBABA_CLOUD_SECURITY_TOKEN="}, false},
	}
	var outputs []string
	for _, run := range runs {
		if !run.faults {
			emu.SetFaults(casemu.Faults{})
		}
		for _, format := range []string{"text", "json"} {
			out := filepath.Join(dir, run.name+"-"+format) // a report of its own: the second run would be refused
			env := append([]string{"ALIBABA_CLOUD_ACCESS_KEY_ID=" + testKeyID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET=" + testSecret}, run.env...)
			p := certalloc(t, env, "apply", "--endpoint", endpoint, "--qps", "30", "--timeout", "500ms",
				"--max-attempts", "3", "--log-level", "debug", "--log-format", format, "--progress", "always",
				"--report", out+".report.csv", "--failures", out+".failures.csv", "--summary", out+".json", "--metrics-file", out+".prom", plan)
			code := p.wait(t)
			t.Logf("%s/%s: exit %d", run.name, format, code)
			outputs = append(outputs, p.stdout.String(), p.stderr.String())
			for _, ext := range []string{".report.csv", ".failures.csv", ".json", ".prom"} {
				b, err := os.ReadFile(out + ext)
				if err != nil {
					t.Errorf("%s%s: %v", run.name, ext, err)
				}
				outputs = append(outputs, string(b))
			}
		}
	}
	all := strings.Join(outputs, "\n")
	for _, want := range []string{"SignatureDoesNotMatch", "InvalidSecurityToken.Mismatch", "InvalidSecurityToken.Malformed",
		"ServiceUnavailable", "InternalError", "Throttling.User", "InvalidParameter", "ConnectionLost", "ClientTimeout", "level=DEBUG"} {
		if !strings.Contains(all, want) {
			t.Errorf("no output mentions %s: the test did not exercise it", want)
		}
	}
	for _, secret := range []string{testSecret, testToken} {
		for _, form := range secretForms(secret) {
			if i := strings.Index(all, form); i >= 0 {
				t.Errorf("secret form %q found in output: ...%s...", form, all[max(0, i-80):min(len(all), i+len(form)+20)])
			}
		}
	}
}

// 48 workers at a high rate, with faults, in this process, so that -race
// sees the whole pipeline: pool, pacer, SDK clients, report.
func TestManyWorkersRaceFree(t *testing.T) {
	emu, endpoint := startEmulator(t, casemu.Config{RateLimit: -1, Faults: casemu.Faults{
		LatencyMin: 80 * time.Millisecond, LatencyMax: 120 * time.Millisecond, Error503Rate: 0.05, DropRate: 0.03, ThrottleRate: 0.03, HangRate: 0.01, HangFor: 2 * time.Second,
	}})
	dir := t.TempDir()
	plan, want := writePlan(t, dir, 400)
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", testKeyID)
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", testSecret)
	t.Setenv("ALIBABA_CLOUD_SECURITY_TOKEN", testToken)
	t.Setenv("HOME", dir)
	var stdout, stderr bytes.Buffer
	code := cli.Run(context.Background(), []string{"apply", "--endpoint", endpoint, "--qps", "400", "--workers", "48",
		"--timeout", "500ms", "--max-attempts", "10", "--progress", "never", plan}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	st := emu.Stats()
	if st.MaxInFlight < 16 {
		t.Errorf("at most %d requests were in flight; the test wants real concurrency", st.MaxInFlight)
	}
	for id, n := range want {
		if a, _ := emu.State(id); a.CertTotalCount != n {
			t.Errorf("Id %d: %+v; want %d", id, a, n)
		}
	}
	if !strings.Contains(stdout.String(), fmt.Sprintf("%d succeeded, 0 failed", len(want))) {
		t.Errorf("summary:\n%s", stdout.String())
	}
}
