package job

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certalloc/certalloc/pkg/report"
)

// What a baseline's records mean, whoever wrote them: a success, an
// unchanged row, or an unchanged row of an earlier version (succeeded, no
// attempt, a message) is done at its total; anything else is not. A done
// row with today's total is unchanged, carries the success's RequestId,
// counts and time, and is not sent; the rest are sent.
func TestBaselineRecords(t *testing.T) {
	hdr := strings.Join(report.Header, ",") + "\n"
	tests := []struct {
		name      string
		record    string // the baseline's row of Id 7, plan total 10
		unchanged bool
		requestID string // of the unchanged row
		finished  string
	}{
		{"a success", "2,7,10,succeeded,1,REQ-A,10,3,,,41,2026-11-27T10:00:00Z,\n", true, "REQ-A", "2026-11-27T10:00:00Z"},
		{"a success after a lost answer", `2,7,10,succeeded,2,REQ-A,10,3,,"succeeded after a lost answer (ClientTimeout): the call was sent again; it sets a total, so the state is the same",41,2026-11-27T10:00:00Z,` + "\n",
			true, "REQ-A", "2026-11-27T10:00:00Z"},
		{"an unchanged row", "5,7,10,unchanged,0,REQ-A,10,3,,,0,2026-11-27T10:00:00Z,\n", true, "REQ-A", "2026-11-27T10:00:00Z"},
		{"an unchanged row of an earlier version", "2,7,10,succeeded,0,,,,,unchanged since baseline mon.csv; not sent,0,2026-11-28T02:00:00Z,\n",
			true, "", "2026-11-28T02:00:00Z"},
		{"a success at another total", "2,7,9,succeeded,1,REQ-A,9,3,,,41,2026-11-27T10:00:00Z,\n", false, "", ""},
		{"an unchanged row at another total", "2,7,9,unchanged,0,REQ-A,9,3,,,0,2026-11-27T10:00:00Z,\n", false, "", ""},
		{"a failure", "2,7,10,failed,1,REQ-F,,,InvalidParameter,bad,41,2026-11-27T10:00:00Z,\n", false, "", ""},
		{"a row not attempted", "2,7,10,failed,0,,,,NotAttempted,not sent: deadline,0,2026-11-27T10:00:00Z,\n", false, "", ""},
	}
	for _, tt := range tests {
		for _, same := range []bool{false, true} {
			name := tt.name + map[bool]string{false: ", baseline another file", true: ", baseline the report"}[same]
			t.Run(name, func(t *testing.T) {
				c, emu := testJob(t, "Id,CertTotalCount\n7,10\n8,20\n")
				c.BaselinePath = filepath.Join(filepath.Dir(c.PlanPath), "base.csv")
				if same {
					c.BaselinePath = c.ReportPath
				}
				if err := os.WriteFile(c.BaselinePath, []byte(hdr+tt.record), 0o644); err != nil {
					t.Fatal(err)
				}
				sum, err := Run(context.Background(), c)
				if err != nil {
					t.Fatal(err)
				}
				wantSent := map[bool]int{true: 1, false: 2}[tt.unchanged]
				if sum.ExitCode != ExitOK || sum.Succeeded != wantSent || emu.Stats().Requests != wantSent {
					t.Fatalf("summary %+v after %d requests; want exit 0 and %d sent", sum, emu.Stats().Requests, wantSent)
				}
				if a, _ := emu.State(7); (a.Applied == 0) != tt.unchanged {
					t.Errorf("Id 7 applied %d times; unchanged %v", a.Applied, tt.unchanged)
				}
				row := reportRows(t, c.ReportPath)[7]
				switch {
				case tt.unchanged && (row.Status != report.Unchanged || row.RequestID != tt.requestID || row.FinishedAt != tt.finished ||
					row.ErrorMessage != "" || row.ErrorCode != "" || row.Attempts != 0 || row.Line != 2):
					t.Errorf("report row %+v; want unchanged on line 2 with RequestId %q, FinishedAt %s, no message", row, tt.requestID, tt.finished)
				case !tt.unchanged && (row.Status != report.Succeeded || row.Attempts != 1):
					t.Errorf("report row %+v; want sent and succeeded", row)
				}
				if sum.Unchanged != map[bool]int{true: 1}[tt.unchanged] {
					t.Errorf("summary counts %d unchanged", sum.Unchanged)
				}

				// The report is the next night's baseline: the same plan
				// then sends nothing, and the row stays as it was.
				c.BaselinePath = c.ReportPath
				sum, err = Run(context.Background(), c)
				if err != nil {
					t.Fatal(err)
				}
				if sum.Requests != 0 || sum.Unchanged != 2 || sum.ExitCode != ExitOK {
					t.Errorf("next night: %+v; want nothing sent, 2 unchanged, exit 0", sum)
				}
				if next := reportRows(t, c.ReportPath)[7]; tt.unchanged && (next.RequestID != row.RequestID || next.FinishedAt != row.FinishedAt) {
					t.Errorf("next night's row %+v; want the same success as %+v", next, row)
				}
			})
		}
	}
}

// Three nights of the nightly set-up (the report its own baseline): night
// 3's baseline holds night 2's unchanged rows, which stay unchanged with
// night 1's success; --resume and the dry run read them as done.
func TestThreeNightsOfUnchangedRows(t *testing.T) {
	c, emu := testJob(t, "Id,CertTotalCount\n1,10\n2,20\n3,30\n")
	c.BaselinePath = c.ReportPath
	nights := []struct {
		plan      string
		sent      int
		unchanged int
	}{
		{"Id,CertTotalCount\n1,10\n2,20\n3,30\n", 3, 0},
		{"Id,CertTotalCount\n1,10\n2,21\n3,30\n", 1, 2},
		{"Id,CertTotalCount\n3,30\n1,10\n2,21\n4,40\n", 1, 3},
	}
	var first map[int64]report.Row
	for i, n := range nights {
		if err := os.WriteFile(c.PlanPath, []byte(n.plan), 0o644); err != nil {
			t.Fatal(err)
		}
		before := emu.Stats().Requests
		sum, err := Run(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		if got := emu.Stats().Requests - before; got != n.sent || sum.Unchanged != n.unchanged || sum.ExitCode != ExitOK {
			t.Fatalf("night %d: %d sent, summary %+v; want %d sent, %d unchanged, exit 0", i+1, got, sum, n.sent, n.unchanged)
		}
		rows := reportRows(t, c.ReportPath)
		if i == 0 {
			first = rows
			continue
		}
		for _, id := range []int64{1, 3} {
			if r := rows[id]; r.Status != report.Unchanged || r.RequestID != first[id].RequestID || r.FinishedAt != first[id].FinishedAt ||
				*r.CertCount != *first[id].CertCount || r.ErrorMessage != "" {
				t.Errorf("night %d: Id %d = %+v; want unchanged with night 1's %+v", i+1, id, r, first[id])
			}
		}
		if i == 2 && (rows[1].Line != 3 || rows[3].Line != 2) {
			t.Errorf("night 3: lines %d and %d; want each row on its plan line", rows[1].Line, rows[3].Line)
		}
	}

	// --resume reads the unchanged rows as done and sends nothing.
	resume := c
	resume.BaselinePath, resume.Resume = "", true
	before := emu.Stats().Requests
	sum, err := Run(context.Background(), resume)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Skipped != 4 || emu.Stats().Requests != before || sum.ExitCode != ExitOK {
		t.Errorf("--resume: %+v; want 4 skipped, nothing sent, exit 0", sum)
	}
	if r := reportRows(t, c.ReportPath)[1]; r.Status != report.Unchanged || r.RequestID != first[1].RequestID {
		t.Errorf("--resume rewrote the unchanged row as %+v", r)
	}

	// The dry run against it: every row unchanged.
	dry := c
	dry.DryRun, dry.ReportPath = true, ""
	if err := dry.Check(); err != nil {
		t.Fatal(err)
	}
	res, err := Plan(context.Background(), dry)
	if err != nil {
		t.Fatal(err)
	}
	if res.Unchanged != 4 || res.ToSend != 0 {
		t.Errorf("dry run %+v; want 4 unchanged, none to send", res)
	}
}
