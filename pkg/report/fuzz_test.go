package report

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadFrom: a report read back by --resume or --baseline may be any
// file at all; reading it must not panic or hang.
func FuzzReadFrom(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "reports", "*.csv"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("Line,Id,CertTotalCount,Status\n2,1,1,succeeded\n"))
	f.Add([]byte("Line,Id,CertTotalCount,Status,CaIdentifier\r\n2,1,1,succeeded,ab:c\r\n3,2,1,failed,\r\n"))
	f.Add([]byte("\uFEFF\"Line\",\"Id\",\"CertTotalCount\",\"Status\"\r\n\"2\",\"1\",\"1\",\"succeeded\"\r\n"))
	f.Add([]byte("Line;Id;CertTotalCount;Status\n2;1;1;succeeded\n"))
	f.Add([]byte("Line,Id,CertTotalCount,Status\r2,1,1,succeeded\r3,2,2,planned\r"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n := 0
		ReadFrom(bytes.NewReader(data), "f.csv", func(r Row) error {
			n++
			return nil
		})
		if n > bytes.Count(data, []byte("\n"))+1 {
			t.Fatalf("%d rows from %d lines", n, bytes.Count(data, []byte("\n"))+1)
		}
		// Scan, which runs use, must stay inside the input and hand out
		// records that copy into a report that scans again.
		err := Scan(bytes.NewReader(data), "f.csv", func(c *Columns, rec *Record) error {
			if rec.Off < 0 || rec.Len <= 0 || rec.Off+rec.Len > int64(len(data)) {
				t.Fatalf("record at %d+%d outside %d bytes", rec.Off, rec.Len, len(data))
			}
			out, err := CopyRecord(appendFields(nil, Header), c, data[rec.Off:rec.Off+rec.Len], 2)
			if err != nil {
				return nil
			}
			if err := Scan(bytes.NewReader(out), "copy", func(*Columns, *Record) error { return nil }); err != nil {
				t.Fatalf("a copied record does not scan: %v\n%q", err, out)
			}
			return nil
		})
		_ = err
	})
}
