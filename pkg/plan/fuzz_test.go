package plan

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
)

// caRule is parseCaIdentifier's rule, written another way.
var caRule = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)

// FuzzRead: no input may panic or hang, every error names a line, and a
// plan that reads as valid reads the same rows twice.
func FuzzRead(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "plans", "*"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("Id,CertTotalCount\n1,2\n1,3\n"))
	f.Add([]byte("\"Id\",\"CertTotalCount\"\r\n\"1\",\"2\"\r\n"))
	f.Add([]byte("\uFEFF\"Id\",\"CertTotalCount\"\r\n\"1\",\"2\"\r\n"))
	f.Add([]byte("Id;CertTotalCount;CaIdentifier\n1;2;ab:c\n3;4;\n"))
	f.Add([]byte("Id\tCertTotalCount\n1\t2\n"))
	f.Add([]byte("Id,CertTotalCount,Note\r1,2,\"a\rb\"\r\r3,4,c\r\n5,6"))
	f.Add([]byte("Id;CertTotalCount,Note\n1;2,x\n"))
	f.Add([]byte("\xFF\xFEI\x00d\x00"))
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
		// Detection must agree with asking for what it detected.
		var again []Row
		if _, err := Read(bytes.NewReader(data), "f.csv", Options{Delimiter: st.Delimiter}, func(r Row) error {
			again = append(again, r)
			return nil
		}); err != nil || !reflect.DeepEqual(again, rows) {
			t.Fatalf("with delimiter %q given: %v, %+v; detected: %+v", st.Delimiter, err, again, rows)
		}
		seen := map[int64]bool{}
		last := int32(1)
		for _, r := range rows {
			if r.ID <= 0 || r.CertTotalCount < 0 || seen[r.ID] || r.Line <= last {
				t.Fatalf("invalid row accepted: %+v", r)
			}
			if r.CaIdentifier != "" && (!caRule.MatchString(r.CaIdentifier) || !st.HasCaIdentifier) {
				t.Fatalf("invalid CaIdentifier accepted: %+v", r)
			}
			seen[r.ID] = true
			last = r.Line
		}
	})
}
