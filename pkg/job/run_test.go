package job

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certalloc/certalloc/pkg/apply"
	"github.com/certalloc/certalloc/pkg/cas"
	"github.com/certalloc/certalloc/pkg/casemu"
	"github.com/certalloc/certalloc/pkg/report"
)

// testJob returns a job against a fresh emulator on loopback, through the
// real SDK, with the plan written into a temporary folder.
func testJob(t *testing.T, planCSV string) (Config, *casemu.Server) {
	t.Helper()
	emu := casemu.New(casemu.Config{Keys: map[string]casemu.Key{casemu.DemoKeyID: {Secret: casemu.DemoSecret}}, RateLimit: -1})
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	creds, err := cas.StaticCredentials(casemu.DemoKeyID, casemu.DemoSecret, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	planPath := filepath.Join(dir, "plan.csv")
	if err := os.WriteFile(planPath, []byte(planCSV), 0o644); err != nil {
		t.Fatal(err)
	}
	c := Config{PlanPath: planPath, QPS: 200, EndpointURL: srv.URL, Credentials: creds}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	return c, emu
}

func reportRows(t *testing.T, path string) map[int64]report.Row {
	t.Helper()
	rows := map[int64]report.Row{}
	if err := report.ReadFile(path, func(r report.Row) error { rows[r.ID] = r; return nil }); err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestRunAppliesEveryRow(t *testing.T) {
	c, emu := testJob(t, "Id,CertTotalCount\n1,10\n2,20\n3,30\n")
	sum, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Succeeded != 3 || sum.ExitCode != ExitOK || sum.Err() != nil {
		t.Fatalf("summary %+v; want 3 succeeded, exit 0", sum)
	}
	got := reportRows(t, c.ReportPath)
	for id, want := range map[int64]int32{1: 10, 2: 20, 3: 30} {
		a, ok := emu.State(id)
		if !ok || a.CertTotalCount != want || a.Applied != 1 {
			t.Errorf("emulator state of %d = %+v; want total %d applied once", id, a, want)
		}
		if r := got[id]; r.Status != report.Succeeded || r.CertTotalCount != want || r.RequestID == "" {
			t.Errorf("report row of %d = %+v", id, r)
		}
	}
	b, err := os.ReadFile(c.FailuresPath)
	if err != nil || string(b) != "Id,CertTotalCount\n" {
		t.Errorf("failures file = %q, %v; want the header alone", b, err)
	}
}

func TestRunRowFailuresGoToTheFailuresFile(t *testing.T) {
	c, emu := testJob(t, "Id,CertTotalCount\n1,10\n2,20\n3,30\n")
	emu.SetFaults(casemu.Faults{FailIDs: map[int64]bool{2: true}})
	sum, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	var re *RunError
	if sum.Failed != 1 || !errors.As(sum.Err(), &re) || re.Code != ExitPartial {
		t.Fatalf("summary %+v, err %v; want 1 failed, exit 3", sum, sum.Err())
	}
	b, _ := os.ReadFile(c.FailuresPath)
	if string(b) != "Id,CertTotalCount\n2,20\n" {
		t.Errorf("failures file = %q", b)
	}
	if r := reportRows(t, c.ReportPath)[2]; r.Status != report.Failed || r.ErrorCode != "InvalidParameter" {
		t.Errorf("report row of 2 = %+v", r)
	}
}

func TestRunFatalStopsAndListsEveryRow(t *testing.T) {
	c, emu := testJob(t, "Id,CertTotalCount\n1,10\n2,20\n3,30\n")
	c.Workers = 1
	creds, _ := cas.StaticCredentials(casemu.DemoKeyID, "wrong-secret", "", "test")
	c.Credentials = creds
	sum, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Stopped != "fatal" || sum.ExitCode != ExitFatal || !strings.Contains(sum.StopReason, "SignatureDoesNotMatch") {
		t.Fatalf("summary %+v; want a fatal stop on SignatureDoesNotMatch", sum)
	}
	if st := emu.Stats(); st.Applied != 0 || st.Requests != 1 {
		t.Errorf("emulator saw %d requests, %d applied; want 1 and 0", st.Requests, st.Applied)
	}
	b, _ := os.ReadFile(c.FailuresPath)
	if string(b) != "Id,CertTotalCount\n1,10\n2,20\n3,30\n" {
		t.Errorf("failures file = %q; want every row", b)
	}
}

func TestRunWithBaselineSendsOnlyTheChange(t *testing.T) {
	c, emu := testJob(t, "Id,CertTotalCount\n1,10\n2,20\n")
	if _, err := Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.PlanPath, []byte("Id,CertTotalCount\n1,10\n2,21\n3,30\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := reportRows(t, c.ReportPath)
	c.BaselinePath = c.ReportPath // the nightly pattern: the report is its own baseline
	sum, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Succeeded != 2 || sum.Unchanged != 1 || emu.Stats().Requests != 4 {
		t.Fatalf("summary %+v after %d requests; want 2 sent, 1 unchanged, 4 requests in all", sum, emu.Stats().Requests)
	}
	got := reportRows(t, c.ReportPath)
	if len(got) != 3 || got[1].Status != report.Unchanged || got[2].CertTotalCount != 21 {
		t.Errorf("report = %+v; want every plan row, 1 unchanged, 2 at 21", got)
	}
	// The unchanged row is the baseline's success carried forward.
	if u, b := got[1], before[1]; u.RequestID != b.RequestID || *u.CertCount != *b.CertCount || u.FinishedAt != b.FinishedAt ||
		u.ErrorMessage != "" || u.Attempts != 0 {
		t.Errorf("unchanged row %+v; want the baseline's %+v with no attempt and no message", u, b)
	}
}

func TestPlanSendsNothing(t *testing.T) {
	c, emu := testJob(t, "Id,CertTotalCount\n1,10\n2,20\n")
	c.DryRun, c.ReportPath = true, ""
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	res, err := Plan(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != 2 || res.Sum != 30 || res.ToSend != 2 || !strings.HasSuffix(c.ReportPath, ".planned.csv") {
		t.Errorf("Plan = %+v, report %s", res, c.ReportPath)
	}
	if n := emu.Stats().Requests; n != 0 {
		t.Errorf("a dry run sent %d requests", n)
	}
}

func TestInvalidPlanIsAnInputError(t *testing.T) {
	c, emu := testJob(t, "Id,CertTotalCount\n1,x\n")
	_, err := Run(context.Background(), c)
	var ie *InputError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), fmt.Sprintf("%s:2:3: CertTotalCount", c.PlanPath)) {
		t.Fatalf("Run = %v; want an InputError naming file, line and column", err)
	}
	if n := emu.Stats().Requests; n != 0 {
		t.Errorf("an invalid plan sent %d requests", n)
	}
}

// progressHook runs a function when the run starts sending: after the
// record was read, before the first request.
type progressHook func()

func (h progressHook) Start(int)       { h() }
func (progressHook) Add(apply.Outcome) {}
func (progressHook) Finish()           {}

// A journal replaced between the run reading it and its first send: the
// run sends nothing (its offsets are into the file it read), and the final
// report still carries the crashed run's records, read from that file.
func TestJournalReplacedBeforeTheFirstSend(t *testing.T) {
	c, emu := testJob(t, "Id,CertTotalCount\n1,10\n2,20\n3,30\n")
	hdr := strings.Join(report.Header, ",") + "\n"
	crashed := hdr + "3,2,20,sending,0,,,,,,0,2026-11-28T02:00:00Z,\n" +
		"3,2,20,succeeded,1,REQ-2,20,0,,,41,2026-11-28T02:00:01Z,\n"
	journal := report.JournalPath(c.ReportPath)
	if err := os.WriteFile(journal, []byte(crashed), 0o644); err != nil {
		t.Fatal(err)
	}
	c.Resume = true
	c.Progress = progressHook(func() {
		// An operator "tidies up": the journal goes, and a stray copy of
		// another run's journal comes back in its place.
		os.Remove(journal)
		os.WriteFile(journal, []byte(hdr+"2,1,99,succeeded,1,REQ-X,99,0,,,41,2026-11-28T02:00:01Z,\n"), 0o644)
	})
	sum, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if sum.ExitCode != ExitFatal || !strings.Contains(sum.StopReason, "deleted or replaced since this run read it") {
		t.Errorf("summary %+v; want a fatal stop naming the replaced journal", sum)
	}
	if n := emu.Stats().Requests; n != 0 {
		t.Errorf("%d requests sent", n)
	}
	got := reportRows(t, c.ReportPath)
	if r := got[2]; r.Status != report.Succeeded || r.RequestID != "REQ-2" || r.Line != 3 {
		t.Errorf("report row of 2 = %+v; want the crashed run's success, copied from the journal it read", r)
	}
	if r := got[1]; r.Status != report.Failed || r.ErrorCode != "NotAttempted" {
		t.Errorf("report row of 1 = %+v; want not attempted", r)
	}
}

// The previous report deleted, or replaced by another file, while the run
// goes: the final report copies the records the run read at the start.
func TestReportReplacedMidRun(t *testing.T) {
	for _, how := range []string{"deleted", "replaced"} {
		t.Run(how, func(t *testing.T) {
			c, emu := testJob(t, "Id,CertTotalCount\n1,10\n2,20\n3,30\n")
			if _, err := Run(context.Background(), c); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(c.PlanPath, []byte("Id,CertTotalCount\n1,10\n2,21\n3,30\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			before := reportRows(t, c.ReportPath)
			c.BaselinePath = c.ReportPath
			c.Progress = progressHook(func() {
				os.Remove(c.ReportPath)
				if how == "replaced" {
					os.WriteFile(c.ReportPath, []byte(strings.Join(report.Header, ",")+"\n"+
						"9,9,9,succeeded,1,REQ-9,9,0,,,41,2026-11-28T02:00:01Z,\n"), 0o644)
				}
			})
			sum, err := Run(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			if sum.ExitCode != ExitOK || emu.Stats().Requests != 4 {
				t.Fatalf("summary %+v, errors %v, %d requests; want exit 0 after 4", sum, sum.RecordErrors, emu.Stats().Requests)
			}
			got := reportRows(t, c.ReportPath)
			if len(got) != 3 || got[2].CertTotalCount != 21 || got[1].Status != report.Unchanged || got[3].Status != report.Unchanged {
				t.Errorf("report = %+v", got)
			}
			if got[1].FinishedAt != before[1].FinishedAt || got[1].RequestID != before[1].RequestID || before[1].Status != report.Succeeded {
				t.Errorf("row 1 = %+v", got[1])
			}
		})
	}
}

// A plan on a pipe can be read only once: the dry run and the apply hold
// it instead of reading it twice, and its outputs need paths of their own.
func TestPlanOnAPipe(t *testing.T) {
	c, emu := testJob(t, "Id,CertTotalCount\n")
	dir := filepath.Dir(c.PlanPath)
	fifo := filepath.Join(dir, "plan.fifo")
	if err := mkfifo(fifo); err != nil {
		t.Skip(err)
	}
	feed := func() {
		go func() {
			if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
				f.WriteString("Id,CertTotalCount\n7,70\n8,80\n")
				f.Close()
			}
		}()
	}
	bare := Config{PlanPath: fifo, QPS: 200, EndpointURL: c.EndpointURL, Credentials: c.Credentials}
	if err := bare.Check(); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("Check with a pipe and no --report = %v; want a refusal", err)
	}
	dry := bare
	dry.DryRun, dry.ReportPath = true, filepath.Join(dir, "p.planned.csv")
	if err := dry.Check(); err != nil {
		t.Fatal(err)
	}
	feed()
	if res, err := Plan(context.Background(), dry); err != nil || res.Rows != 2 || res.Sum != 150 {
		t.Fatalf("Plan on a pipe = %+v, %v; want 2 rows", res, err)
	}
	run := bare
	run.ReportPath, run.FailuresPath = filepath.Join(dir, "p.report.csv"), filepath.Join(dir, "p.failures.csv")
	if err := run.Check(); err != nil {
		t.Fatal(err)
	}
	feed()
	if sum, err := Run(context.Background(), run); err != nil || sum.Succeeded != 2 {
		t.Fatalf("Run on a pipe = %+v, %v; want 2 succeeded", sum, err)
	}
	if a, _ := emu.State(8); a.CertTotalCount != 80 {
		t.Errorf("emulator state of 8 = %+v", a)
	}
}
