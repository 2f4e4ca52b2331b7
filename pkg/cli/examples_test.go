package cli

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certalloc/certalloc/pkg/casemu"
)

// The examples --help gives are run, not only parsed: each in a folder of
// its own holding plans/example.csv (and plan.csv), against the emulator
// instead of the cloud, with absolute paths brought into the folder. An
// example that carries on from an earlier run (--resume, --retry-failed, a
// failures file) first gets that run: one that left two rows failed.
func TestHelpExamplesRun(t *testing.T) {
	planText, err := os.ReadFile(filepath.Join("..", "..", "plans", "example.csv"))
	if err != nil {
		t.Fatal(err)
	}
	emu := casemu.New(casemu.Config{Keys: map[string]casemu.Key{EmulatorKeyID: {Secret: EmulatorSecret}}, RateLimit: -1})
	srv := httptest.NewServer(emu)
	defer srv.Close()
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", EmulatorKeyID)
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", EmulatorSecret)
	t.Setenv("ALIBABA_CLOUD_SECURITY_TOKEN", "")
	t.Setenv("HOME", t.TempDir())
	firstTwo := strings.Split(string(planText), "\n")[1:3]

	run := func(t *testing.T, args []string) (int, string) {
		var out, errOut bytes.Buffer
		code := Run(t.Context(), args, &out, &errOut)
		return code, out.String() + errOut.String()
	}
	exs := examples("Examples:\n"+applyExamples, false)
	if len(exs) < 6 {
		t.Fatalf("found %d examples in apply --help", len(exs))
	}
	for _, ex := range exs {
		t.Run(strings.Join(ex, " "), func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			os.MkdirAll("plans", 0o755)
			os.WriteFile(filepath.Join("plans", "example.csv"), planText, 0o644)
			os.WriteFile("plan.csv", planText, 0o644)
			args := make([]string, 0, len(ex)+2)
			hasEndpoint := false
			for i := 0; i < len(ex); i++ {
				a := ex[i]
				switch {
				case a == "--endpoint":
					hasEndpoint = true
					args = append(args, a, srv.URL)
					i++
					continue
				case strings.HasPrefix(a, "/"):
					a = filepath.Base(a)
				}
				args = append(args, a)
			}
			if ex[0] == "apply" && !hasEndpoint {
				args = append([]string{"apply", "--endpoint", srv.URL}, args[1:]...)
			}
			if line := strings.Join(ex, " "); strings.Contains(line, "--resume") || strings.Contains(line, "--retry-failed") || strings.Contains(line, "failures.csv") {
				var ids []string
				for _, l := range firstTwo {
					ids = append(ids, strings.Split(l, ",")[0])
				}
				f, err := casemu.ParseIDs(strings.Join(ids, ","))
				if err != nil {
					t.Fatal(err)
				}
				emu.SetFaults(casemu.Faults{FailIDs: f})
				if code, out := run(t, []string{"apply", "--endpoint", srv.URL, "plans/example.csv"}); code != ExitPartial {
					t.Fatalf("setting the example up: exit %d; want 3\n%s", code, out)
				}
				emu.SetFaults(casemu.Faults{})
			}
			if code, out := run(t, args); code != ExitOK {
				t.Fatalf("certalloc %s: exit %d\n%s", strings.Join(args, " "), code, out)
			}
		})
	}
}
