package report_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/certalloc/certalloc/pkg/plan"
	"github.com/certalloc/certalloc/pkg/report"
)

// The failures file is a plan: it must read back through plan.Read as the
// rows that were written, with the CaIdentifier column kept when asked.
func TestFailuresRoundTrip(t *testing.T) {
	ca := "160ae6bb538d538c70c01f81dcf2a1b2"
	plain := []report.FailureRow{{ID: 7}, {ID: 9, CertTotalCount: 3}}
	withCA := []report.FailureRow{{ID: 7, CaIdentifier: ca}, {ID: 9, CertTotalCount: 3}}
	tests := []struct {
		name   string
		rows   []report.FailureRow
		askCA  bool
		file   string
		column bool
	}{
		{"plain plan", plain, false, "Id,CertTotalCount\n7,0\n9,3\n", false},
		{"plan had the column, no row has a value", plain, true, "Id,CertTotalCount,CaIdentifier\n7,0,\n9,3,\n", true},
		{"rows with values keep them even unasked", withCA, false, "Id,CertTotalCount,CaIdentifier\n7,0," + ca + "\n9,3,\n", true},
		{"asked, with values", withCA, true, "Id,CertTotalCount,CaIdentifier\n7,0," + ca + "\n9,3,\n", true},
		{"no rows", nil, false, "Id,CertTotalCount\n", false},
		{"no rows, plan had the column", nil, true, "Id,CertTotalCount,CaIdentifier\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f.csv")
			if err := report.WriteFailures(path, tt.rows, report.FailuresOptions{CaIdentifier: tt.askCA}); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(path); string(b) != tt.file {
				t.Errorf("failures file = %q; want %q", b, tt.file)
			}
			var back []report.FailureRow
			st, err := plan.ReadFile(path, plan.Options{}, func(r plan.Row) error {
				back = append(back, report.FailureRow{ID: r.ID, CertTotalCount: r.CertTotalCount, CaIdentifier: r.CaIdentifier})
				return nil
			})
			if err != nil {
				t.Fatalf("plan.ReadFile(failures) = %v", err)
			}
			if !reflect.DeepEqual(back, tt.rows) || st.HasCaIdentifier != tt.column {
				t.Errorf("read back %+v (CaIdentifier column: %v); want %+v (%v)", back, st.HasCaIdentifier, tt.rows, tt.column)
			}
		})
	}
}

// A failures file of every row of a plan is that plan, byte for byte, when
// the plan is in the failures file's own dialect, and the same rows, in
// commas, when it is not: what `cmp plan.failures.csv plan.csv` checks end
// to end.
func TestFailuresOfAWholePlan(t *testing.T) {
	for _, tt := range []struct {
		fixture string
		same    bool
	}{
		{"good-small.csv", true},
		{"ca-identifier.csv", true},
		{"semicolon.csv", false},
		{"excel-bom.csv", false},
		{"tab.tsv", false},
		{"cr-only.csv", false},
	} {
		t.Run(tt.fixture, func(t *testing.T) {
			src := filepath.Join("..", "..", "testdata", "plans", tt.fixture)
			var rows []report.FailureRow
			var want []plan.Row
			st, err := plan.ReadFile(src, plan.Options{}, func(r plan.Row) error {
				rows = append(rows, report.FailureRow{ID: r.ID, CertTotalCount: r.CertTotalCount, CaIdentifier: r.CaIdentifier})
				r.Line = 0
				want = append(want, r)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "f.csv")
			if err := report.WriteFailures(path, rows, report.FailuresOptions{CaIdentifier: st.HasCaIdentifier}); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path)
			orig, _ := os.ReadFile(src)
			if (string(got) == string(orig)) != tt.same {
				t.Errorf("failures file %q; plan %q; want same bytes: %v", got, orig, tt.same)
			}
			var back []plan.Row
			fst, err := plan.ReadFile(path, plan.Options{}, func(r plan.Row) error {
				r.Line = 0
				back = append(back, r)
				return nil
			})
			if err != nil || !reflect.DeepEqual(back, want) || fst.Delimiter != ',' {
				t.Errorf("failures read back: %+v, %v, delimiter %q; want %+v in commas", back, err, fst.Delimiter, want)
			}
		})
	}
}
