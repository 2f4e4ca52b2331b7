package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

// recipe is one way the README and deploy/ run certalloc nightly, as
// written there, with what the host or the platform provides before the
// first night: nothing else may exist.
type recipe struct {
	// shell is the cron line's command, after the schedule, run by sh as
	// cron would; args are the certalloc arguments of the others.
	shell string
	args  []string
	// provided are the folders the platform makes before the run (the
	// unit's StateDirectory, the pod's volumes); writable are those the
	// run may write to (nil: anywhere, as root from cron may).
	provided, writable []string
	plan               string // where the set-up installs the plan
	dir                string // the unit's WorkingDirectory
	logFile            string // where the cron line appends its output
}

// absPath finds the absolute paths of a command line: at its start, or
// after a blank, a '=' or a shell redirection.
var absPath = regexp.MustCompile(`(^|[\s=>])/`)

// deployedRecipes are the recipes of the README's cron line, the systemd
// unit and the two Kubernetes CronJobs, read from those files.
func deployedRecipes(t *testing.T) map[string]recipe {
	t.Helper()
	read := func(parts ...string) string {
		b, err := os.ReadFile(filepath.Join(append([]string{"..", ".."}, parts...)...))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	recipes := map[string]recipe{}
	schedule := regexp.MustCompile(`^0 2 \* \* \*\s+`)
	for _, line := range strings.Split(read("README.md"), "\n") {
		if loc := schedule.FindStringIndex(line); loc != nil && strings.Contains(line, "certalloc apply") {
			r := recipe{shell: line[loc[1]:], plan: "/etc/certalloc/plan.csv"}
			if m := regexp.MustCompile(`>> *(\S+) 2>&1$`).FindStringSubmatch(r.shell); m != nil {
				r.logFile = m[1]
			}
			// A bare host has /var/log; the operator installs the binary
			// and the plan. Nothing else exists.
			r.provided = []string{"/var/log"}
			recipes["README cron line"] = r
		}
	}

	unit := read("deploy", "systemd", "certalloc.service")
	exec := unit[strings.Index(unit, "ExecStart="):]
	exec = strings.ReplaceAll(exec[:strings.Index(exec, "\n#")], "\\\n", " ")
	sd := regexp.MustCompile(`(?m)^StateDirectory=(\S+)$`).FindStringSubmatch(unit)
	wd := regexp.MustCompile(`(?m)^WorkingDirectory=(\S+)$`).FindStringSubmatch(unit)
	if sd == nil || wd == nil {
		t.Fatal("the unit has no StateDirectory= or WorkingDirectory=")
	}
	state := "/var/lib/" + sd[1] // what systemd creates, owned by User=
	recipes["systemd unit"] = recipe{args: strings.Fields(exec)[1:], plan: "/etc/certalloc/plan.csv", dir: wd[1],
		provided: []string{state}, writable: []string{state}}

	for _, file := range []string{"cronjob.yaml", "cronjob-rrsa.yaml"} {
		r := recipe{}
		in := false
		lines := strings.Split(read("deploy", "kubernetes", file), "\n")
		for i, line := range lines {
			l := strings.TrimSpace(line)
			switch {
			case l == "args:":
				in = true
			case in && strings.HasPrefix(l, "#"):
			case in && strings.HasPrefix(l, "- "):
				r.args = append(r.args, strings.Trim(strings.TrimPrefix(l, "- "), `"`))
			default:
				in = false
			}
			// The pod's volumes are mounted before it starts, the plan's
			// ConfigMap read-only; the root file system is read-only.
			if m, ok := strings.CutPrefix(l, "mountPath: "); ok {
				r.provided = append(r.provided, m)
				if i+1 < len(lines) && strings.TrimSpace(lines[i+1]) == "readOnly: true" {
					r.plan = m + "/plan.csv"
				} else {
					r.writable = append(r.writable, m)
				}
			}
		}
		if !strings.Contains(read("deploy", "kubernetes", file), "readOnlyRootFilesystem: true") {
			t.Errorf("%s: the container's root file system is not read-only", file)
		}
		recipes["Kubernetes "+file] = r
	}
	for name, r := range recipes {
		cmd := strings.Join(r.args, " ")
		if r.shell != "" {
			cmd = r.shell[strings.Index(r.shell, "certalloc apply")+len("certalloc "):]
		}
		if !strings.HasPrefix(cmd, "apply ") || !strings.Contains(cmd, "--baseline") || !strings.Contains(cmd, "--log-format") || r.plan == "" || !strings.Contains(cmd, r.plan) {
			t.Fatalf("%s: could not find its command line and plan (got %q, plan %q)", name, cmd, r.plan)
		}
	}
	if len(recipes) != 4 {
		t.Fatalf("found %d deployed recipes; want 4", len(recipes))
	}
	return recipes
}

// Every recipe runs for three nights against the emulator as written, its
// absolute paths moved into an empty temporary root and --endpoint added,
// nothing else: the first night with no report, no state folder and no
// metrics folder (only what the platform provides), then a plan that
// changes. Each night exits 0 and sends exactly what the record does not
// have as done, which after night 1 is the changed rows; every line the
// run writes (the cron log, or stdout and stderr, which journald and the
// pod's log gather) parses as JSON; and nothing is written outside the
// folders the unit and the pod can write.
func TestDeployedCommandsRunThreeNights(t *testing.T) {
	t.Parallel()
	plans := nightlyPlans()
	bin, err := exec.LookPath("certalloc")
	if err != nil {
		t.Fatal(err)
	}
	for name, rc := range deployedRecipes(t) {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			emu, url := startEmulator(t, casemu.Config{RateLimit: -1})
			root := t.TempDir()
			at := func(p string) string { return absPath.ReplaceAllString(p, "${1}"+root+"/") }
			for _, d := range rc.provided {
				if err := os.MkdirAll(at(d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.MkdirAll(filepath.Dir(at(rc.plan)), 0o755); err != nil {
				t.Fatal(err)
			}
			var cmd func() *exec.Cmd
			var report string
			if rc.shell != "" {
				// The binary where the recipe runs it from: cron's PATH
				// has no /usr/local/bin.
				line := at(rc.shell)
				if n := strings.Count(line, "/usr/local/bin/certalloc apply "); n != 1 {
					t.Fatalf("the cron line runs %d /usr/local/bin/certalloc apply; want 1:\n%s", n, rc.shell)
				}
				if err := os.MkdirAll(root+"/usr/local/bin", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(bin, root+"/usr/local/bin/certalloc"); err != nil {
					t.Fatal(err)
				}
				line = strings.Replace(line, "/usr/local/bin/certalloc apply ", "/usr/local/bin/certalloc apply --endpoint "+url+" ", 1)
				cmd = func() *exec.Cmd {
					c := certallocCmd(t, nil)
					c.Path, c.Args = "/bin/sh", []string{"sh", "-c", line}
					return c
				}
				report = regexp.MustCompile(`--report[= ](\S+)`).FindStringSubmatch(line)[1]
			} else {
				var args []string
				for i, a := range rc.args {
					args = append(args, at(a))
					if a == "--report" {
						report = at(rc.args[i+1])
					} else if v, ok := strings.CutPrefix(a, "--report="); ok {
						report = at(v)
					}
				}
				args = append(args, "--endpoint", url)
				cmd = func() *exec.Cmd {
					c := certallocCmd(t, nil, args...)
					if rc.dir != "" {
						c.Dir = at(rc.dir)
					}
					return c
				}
			}
			if !strings.HasPrefix(report, root+"/") {
				t.Fatalf("no --report in the root: %q", report)
			}
			for night, plan := range plans {
				what := fmt.Sprintf("night %d", night+1)
				writePlanRows(t, at(rc.plan), plan)
				if rc.plan != "/etc/certalloc/plan.csv" {
					// A ConfigMap's files are read-only.
					os.Chmod(at(rc.plan), 0o444)
				}
				before := readRecord(t, report)
				applied := appliedCounts(emu)
				c := cmd()
				var out bytes.Buffer
				c.Stdout, c.Stderr = &out, &out
				if err := c.Run(); err != nil {
					t.Fatalf("%s: %v\n%s", what, err, out.String())
				}
				log, nights := out.String(), 1
				if rc.logFile != "" {
					if out.Len() > 0 {
						t.Errorf("%s: the cron line wrote %q outside its log file (cron would mail it)", what, out.String())
					}
					b, err := os.ReadFile(at(rc.logFile))
					if err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					log, nights = string(b), night+1 // all nights so far
				}
				checkJSONLines(t, what, log, nights)
				if night == 0 && !strings.Contains(log, "the baseline does not exist yet or is empty") {
					t.Errorf("night 1 did not say the baseline is new:\n%s", log)
				}
				checkSentOnce(t, what, plan, before, applied, appliedCounts(emu))
				if night > 0 {
					changed := 0
					for _, r := range plan {
						if !before[r.ID].done(r.Count) {
							changed++
						}
					}
					if sent := emu.Stats().Applied - sum(applied); sent != changed || changed == 0 {
						t.Errorf("%s: %d requests applied; want the %d rows changed since night %d", what, sent, changed, night)
					}
				}
				checkFinalReport(t, report, plan, true)
				if rc.writable != nil {
					checkWrittenOnlyIn(t, what, root, append([]string{rc.plan}, rc.writable...), at)
				}
			}
		})
	}
}

func sum(m map[int64]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// checkJSONLines checks that every line of a log parses as one JSON
// object, and that it holds a summary record, exiting 0, per night.
func checkJSONLines(t *testing.T, what, log string, nights int) {
	t.Helper()
	summaries := 0
	for i, line := range strings.Split(strings.TrimSuffix(log, "\n"), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("%s: log line %d is not JSON (%v): %q", what, i+1, err, line)
			continue
		}
		if rec["msg"] == "summary" {
			summaries++
			if rec["exit_code"] != 0.0 {
				t.Errorf("%s: summary record says exit code %v", what, rec["exit_code"])
			}
		}
	}
	if summaries != nights {
		t.Errorf("%s: %d summary records in the log; want %d", what, summaries, nights)
	}
}

// checkWrittenOnlyIn checks that every file under root is the plan or in
// one of the writable folders: the unit's file system is read-only but
// for its StateDirectory, the pod's but for its volumes.
func checkWrittenOnlyIn(t *testing.T, what, root string, allowed []string, at func(string) string) {
	t.Helper()
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		for _, a := range allowed {
			if p == at(a) || strings.HasPrefix(p, at(a)+"/") {
				return nil
			}
		}
		t.Errorf("%s: wrote %s, outside %v", what, strings.TrimPrefix(p, root), allowed)
		return nil
	})
}
