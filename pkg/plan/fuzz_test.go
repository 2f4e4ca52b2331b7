package plan

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRead: no input may panic or hang, every error names a line, and a
// plan that reads as valid reads the same rows twice.
func FuzzRead(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "plans", "*.csv"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("Id,CertTotalCount\n1,2\n1,3\n"))
	f.Add([]byte("\"Id\",\"CertTotalCount\"\r\n\"1\",\"2\"\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var rows []Row
		st, err := Read(bytes.NewReader(data), "f.csv", Options{}, func(r Row) error {
			rows = append(rows, r)
			return nil
		})
		var errs *Errors
		if err != nil {
			if !errors.As(err, &errs) {
				t.Fatalf("Read returned %T %v; want *Errors", err, err)
			}
			for _, e := range errs.List {
				if e.Line < 1 || e.File != "f.csv" {
					t.Fatalf("error without a place: %+v", e)
				}
			}
			return
		}
		if st.Rows != len(rows) {
			t.Fatalf("stats say %d rows, callback saw %d", st.Rows, len(rows))
		}
		seen := map[int64]bool{}
		last := 1
		for _, r := range rows {
			if r.ID <= 0 || r.CertTotalCount < 0 || seen[r.ID] || r.Line <= last {
				t.Fatalf("invalid row accepted: %+v", r)
			}
			seen[r.ID] = true
			last = r.Line
		}
	})
}
