package job

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseMaxFailures(t *testing.T) {
	tests := []struct {
		in    string
		rows  int
		limit bool
		n     int
		err   bool
	}{
		{"", 100, false, 0, false},
		{"0", 100, true, 0, false},
		{"5", 100, true, 5, false},
		{"5%", 200, true, 10, false},
		{"2.5%", 100, true, 2, false},
		{"101%", 100, false, 0, true},
		{"-1", 100, false, 0, true},
		{"x", 100, false, 0, true},
	}
	for _, tt := range tests {
		limit, n, err := parseMaxFailures(tt.in, tt.rows)
		if limit != tt.limit || n != tt.n || (err != nil) != tt.err {
			t.Errorf("parseMaxFailures(%q, %d) = %v, %d, %v; want %v, %d, err %v", tt.in, tt.rows, limit, n, err, tt.limit, tt.n, tt.err)
		}
	}
}

func TestCheckPaths(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "p.csv")
	tests := []struct {
		paths    map[string]string
		baseline string
		want     string
	}{
		{map[string]string{"plan": p, "--report": p + ".r"}, "", ""},
		{map[string]string{"plan": p, "--report": p}, "", "plan and --report are the same file"},
		{map[string]string{"plan": p, "--report": "x.csv", "--failures": "./x.csv"}, "", "--report and --failures are the same file"},
		{map[string]string{"plan": p, "--report": "r.csv", "--summary": "r.csv"}, "", "--report and --summary are the same file"},
		{map[string]string{"plan": p, "--report": "r.csv"}, "r.csv", ""},
		{map[string]string{"plan": p, "--report": "r.csv", "--failures": "f.csv"}, "f.csv", "--baseline and --failures are the same file"},
		{map[string]string{"plan": p, "--report": "r.csv", roleJournal: "r.csv.journal", roleLock: "r.csv.lock", "--failures": "r.csv.journal"}, "",
			"the report's journal and --failures are the same file"},
		{map[string]string{"plan": p, "--report": "r.csv", roleJournal: "r.csv.journal", roleLock: "r.csv.lock", "--metrics-file": "./r.csv.lock"}, "",
			"the report's lock and --metrics-file are the same file"},
		{map[string]string{"plan": p, "--report": "r.csv", roleJournal: "r.csv.journal", roleLock: "r.csv.lock"}, "r.csv.lock",
			"--baseline and the report's lock are the same file"},
		{map[string]string{"plan": p, "--report": dir}, "", "--report " + dir + " is not a regular file (a directory)"},
		// "-" is not stdout here: it would be a file named "-".
		{map[string]string{"plan": p, "--report": "r.csv", "--summary": "-"}, "", "--summary -: outputs are files"},
		{map[string]string{"plan": p, "--report": "r.csv", "--metrics-file": "-"}, "", "--metrics-file -: outputs are files"},
		{map[string]string{"plan": p, "--report": "-"}, "", "--report -: outputs are files"},
	}
	for _, tt := range tests {
		err := checkPaths(tt.paths, tt.baseline)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if !strings.HasPrefix(got, tt.want) || (tt.want == "") != (err == nil) {
			t.Errorf("checkPaths(%v, %q) = %v; want %q", tt.paths, tt.baseline, err, tt.want)
		}
	}
}

// An output that exists and is not a regular file is refused by Check,
// before anything is read or written: as root, renaming the new report
// over /dev/null would replace the device.
func TestCheckRefusesOutputsThatAreNotFiles(t *testing.T) {
	dir := t.TempDir()
	plan := filepath.Join(dir, "plan.csv")
	if err := os.WriteFile(plan, []byte("Id,CertTotalCount\n1,1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	outputs := map[string]string{}
	if fi, err := os.Stat("/dev/null"); err == nil && fi.Mode()&os.ModeDevice != 0 {
		outputs["/dev/null"] = "a device"
	}
	if err := mkfifo(fifo); err == nil {
		outputs[fifo] = "a named pipe"
	}
	for path, kind := range outputs {
		for _, flag := range []string{"--report", "--failures", "--summary", "--metrics-file"} {
			c := Config{PlanPath: plan, QPS: 10, EndpointURL: "http://127.0.0.1:1"}
			switch flag {
			case "--report":
				c.ReportPath = path
			case "--failures":
				c.FailuresPath = path
			case "--summary":
				c.SummaryPath = path
			case "--metrics-file":
				c.MetricsPath = path
			}
			err := c.Check()
			var ie *InputError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), flag+" "+path+" is not a regular file ("+kind+")") {
				t.Errorf("Check with %s %s = %v; want an InputError naming it %s", flag, path, err, kind)
			}
		}
	}
	// A symlink to a regular file is an output like any other: it is
	// replaced, not followed.
	target := filepath.Join(dir, "target.csv")
	os.WriteFile(target, nil, 0o644)
	link := filepath.Join(dir, "link.csv")
	if err := os.Symlink(target, link); err == nil {
		c := Config{PlanPath: plan, QPS: 10, EndpointURL: "http://127.0.0.1:1", ReportPath: link}
		if err := c.Check(); err != nil {
			t.Errorf("Check with a report symlinked to a file = %v", err)
		}
	}
}

func TestCheckRetryFailed(t *testing.T) {
	plan := filepath.Join(t.TempDir(), "p.csv")
	if err := os.WriteFile(plan, []byte("Id,CertTotalCount\n1,1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		set  func(*Config)
		want string
	}{
		{"alone", func(*Config) {}, ""},
		{"with --resume", func(c *Config) { c.Resume = true }, "--retry-failed and --resume do not go together"},
		{"with --overwrite", func(c *Config) { c.Overwrite = true }, "--retry-failed and --overwrite do not go together"},
		{"in a dry run", func(c *Config) { c.DryRun = true }, "--retry-failed does not go with a dry run"},
		{"with --baseline", func(c *Config) { c.BaselinePath = "b.csv" }, "--retry-failed takes no --baseline"},
	}
	for _, tt := range tests {
		c := Config{PlanPath: plan, QPS: 10, RetryFailed: true, EndpointURL: "http://127.0.0.1:1"}
		tt.set(&c)
		err := c.Check()
		if got := fmt.Sprint(err); (tt.want == "") != (err == nil) || !strings.Contains(got, tt.want) {
			t.Errorf("%s: Check() = %v; want %q", tt.name, err, tt.want)
		}
	}
}

func TestRetryCommand(t *testing.T) {
	tests := []struct {
		c                      Config
		plan, report, failures string
		want                   string
	}{
		{Config{}, "plans/x.csv", "plans/x.report.csv", "plans/x.failures.csv", "certalloc apply --retry-failed plans/x.csv"},
		{Config{Region: "cn-hangzhou", MetricsPath: "/var/lib/node_exporter/textfile_collector/certalloc.prom"},
			"/etc/certalloc/plan.csv", "/var/lib/certalloc/report.csv", "/var/lib/certalloc/failures.csv",
			"certalloc apply --retry-failed --metrics-file /var/lib/node_exporter/textfile_collector/certalloc.prom --report /var/lib/certalloc/report.csv --failures /var/lib/certalloc/failures.csv /etc/certalloc/plan.csv"},
		{Config{}, "my plans/l'été.csv", "my plans/l'été.report.csv", "f.csv",
			`certalloc apply --retry-failed --failures f.csv 'my plans/l'\''été.csv'`},
		// The finishing run must go where the run went (another profile
		// is another account), and read the plan and write the files as
		// it did.
		{Config{Profile: "prod a", Region: "eu-central-1", VPC: true, Delimiter: ';', Private: true, SummaryPath: "s 1.json"}, "p.csv", "p.report.csv", "p.failures.csv",
			`certalloc apply --retry-failed --profile 'prod a' --region eu-central-1 --vpc --delimiter ';' --private --summary 's 1.json' p.csv`},
		{Config{EndpointURL: "http://10.0.0.5:8080", Insecure: true, Delimiter: '\t'}, "p.csv", "r.csv", "p.failures.csv",
			`certalloc apply --retry-failed --endpoint http://10.0.0.5:8080 --insecure-endpoint --delimiter tab --report r.csv p.csv`},
	}
	for _, tt := range tests {
		if got := tt.c.RetryCommand(tt.plan, tt.report, tt.failures); got != tt.want {
			t.Errorf("%+v.RetryCommand(%q, %q, %q) = %s; want %s", tt.c, tt.plan, tt.report, tt.failures, got, tt.want)
		}
	}
}
