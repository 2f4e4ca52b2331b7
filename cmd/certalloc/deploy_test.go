package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certalloc/certalloc/pkg/casemu"
)

// The shipped systemd unit and timer pass systemd-analyze verify (with the
// binary's path pointed at one that exists here), and the unit keeps every
// file the run writes in its StateDirectory.
func TestSystemdUnitVerifies(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	truePath, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true(1) to stand in for the binary")
	}
	dir := t.TempDir()
	for _, name := range []string{"certalloc.service", "certalloc.timer"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		unit := string(b)
		if name == "certalloc.service" {
			checkUnitPaths(t, unit)
			unit = strings.ReplaceAll(unit, "/usr/local/bin/certalloc", truePath)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(sa, "verify", filepath.Join(dir, "certalloc.service"), filepath.Join(dir, "certalloc.timer")).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// checkUnitPaths checks that every file the unit's run writes is under its
// StateDirectory: /etc is read-only under ProtectSystem=strict.
func checkUnitPaths(t *testing.T, unit string) {
	t.Helper()
	if !strings.Contains(unit, "\nStateDirectory=certalloc\n") || !strings.Contains(unit, "\nProtectSystem=strict\n") {
		t.Fatalf("the unit has no StateDirectory=certalloc under ProtectSystem=strict")
	}
	exec := unit[strings.Index(unit, "ExecStart="):]
	exec = strings.ReplaceAll(exec[:strings.Index(exec, "\n#")], "\\\n", " ")
	fields := strings.Fields(exec)
	for _, flag := range []string{"--report", "--failures", "--summary", "--metrics-file"} {
		i := indexOf(fields, flag)
		if i < 0 || i+1 >= len(fields) {
			t.Errorf("the unit does not pass %s", flag)
			continue
		}
		if !strings.HasPrefix(fields[i+1], "/var/lib/certalloc/") {
			t.Errorf("%s %s is outside the StateDirectory", flag, fields[i+1])
		}
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// deployedCommands are the command lines certalloc is deployed with: the
// README's cron line, the systemd unit's ExecStart and the Kubernetes
// CronJob's args, each as the arguments after "certalloc".
func deployedCommands(t *testing.T) map[string][]string {
	t.Helper()
	read := func(parts ...string) string {
		b, err := os.ReadFile(filepath.Join(append([]string{"..", ".."}, parts...)...))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	cmds := map[string][]string{}
	for _, line := range strings.Split(read("README.md"), "\n") {
		if strings.HasPrefix(line, "0 2 * * *") && strings.Contains(line, "certalloc apply") {
			f := strings.Fields(line[strings.Index(line, "certalloc apply"):])[1:]
			if i := indexOf(f, ">>"); i >= 0 {
				f = f[:i]
			}
			cmds["README cron line"] = f
		}
	}
	unit := read("deploy", "systemd", "certalloc.service")
	exec := unit[strings.Index(unit, "ExecStart="):]
	exec = strings.ReplaceAll(exec[:strings.Index(exec, "\n#")], "\\\n", " ")
	cmds["systemd unit"] = strings.Fields(exec)[1:]
	var args []string
	in := false
	for _, line := range strings.Split(read("deploy", "kubernetes", "cronjob.yaml"), "\n") {
		l := strings.TrimSpace(line)
		switch {
		case l == "args:":
			in = true
		case in && strings.HasPrefix(l, "#"):
		case in && strings.HasPrefix(l, "- "):
			args = append(args, strings.Trim(strings.TrimPrefix(l, "- "), `"`))
		default:
			in = false
		}
	}
	cmds["Kubernetes CronJob"] = args
	for name, c := range cmds {
		if len(c) < 3 || c[0] != "apply" || !strings.Contains(strings.Join(c, " "), "--baseline") {
			t.Fatalf("%s: could not find its command line (got %q)", name, c)
		}
	}
	if len(cmds) != 3 {
		t.Fatalf("found %d deployed command lines; want 3", len(cmds))
	}
	return cmds
}

// Every deployed command line runs for three nights against the emulator,
// as written but for its folders: the first night with no report at all,
// then a plan that changes. Each night exits 0 and sends exactly what the
// record does not have as done. The systemd unit and the CronJob write
// nothing beside the plan, which is read-only where they run.
func TestDeployedCommandsRunThreeNights(t *testing.T) {
	t.Parallel()
	plans := nightlyPlans()
	for name, args := range deployedCommands(t) {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			emu, url := startEmulator(t, casemu.Config{RateLimit: -1})
			dir := t.TempDir()
			state, etc := filepath.Join(dir, "state"), filepath.Join(dir, "etc")
			for _, d := range []string{state, etc, filepath.Join(state, "textfile")} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			remap := strings.NewReplacer(
				"/var/lib/node_exporter/textfile_collector/", state+"/textfile/",
				"/var/lib/certalloc/", state+"/",
				"/reports/", state+"/",
				"/etc/certalloc/plan.csv", etc+"/plan.csv",
				"/plan/plan.csv", etc+"/plan.csv")
			var run []string
			for _, a := range args {
				run = append(run, remap.Replace(a))
			}
			run = append(run, "--endpoint", url, "--qps", "200")
			var R string
			for i, a := range run {
				if v, ok := strings.CutPrefix(a, "--report="); ok {
					R = v
				} else if a == "--report" {
					R = run[i+1]
				}
			}
			if !strings.HasPrefix(R, state) {
				t.Fatalf("report %q is not in the state folder", R)
			}
			for night, plan := range plans {
				writePlanRows(t, filepath.Join(etc, "plan.csv"), plan)
				before := readRecord(t, R)
				applied := appliedCounts(emu)
				p := certalloc(t, nil, run...)
				if code := p.wait(t); code != 0 {
					t.Fatalf("night %d: exit %d\n%s\n%s", night+1, code, p.stdout.String(), p.stderr.String())
				}
				if night == 0 && !strings.Contains(p.stderr.String(), "the baseline does not exist yet or is empty") {
					t.Errorf("night 1 did not say the baseline is new:\n%s", p.stderr.String())
				}
				checkSentOnce(t, fmt.Sprintf("night %d", night+1), plan, before, applied, appliedCounts(emu))
				checkFinalReport(t, R, plan, true)
			}
			if name != "README cron line" { // cron runs as root, and may write /etc
				if entries, _ := os.ReadDir(etc); len(entries) != 1 {
					var names []string
					for _, e := range entries {
						names = append(names, e.Name())
					}
					t.Errorf("files beside the plan: %v; /etc is read-only under the unit and in the pod", names)
				}
			}
		})
	}
}
