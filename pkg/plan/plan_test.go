package plan

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func readString(s string) ([]Row, Stats, error) {
	var rows []Row
	st, err := Read(strings.NewReader(s), "p.csv", Options{}, func(r Row) error {
		rows = append(rows, r)
		return nil
	})
	return rows, st, err
}

func TestReadValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Row
		sum  int64
	}{
		{"plain", "Id,CertTotalCount\n33285,5\n2,0\n", []Row{{Line: 2, ID: 33285, CertTotalCount: 5}, {Line: 3, ID: 2, CertTotalCount: 0}}, 5},
		{"any case and order, extra columns", "note,certtotalcount,ID\nx,7,9\n", []Row{{Line: 2, ID: 9, CertTotalCount: 7}}, 7},
		{"BOM and CRLF", "\uFEFFId,CertTotalCount\r\n1,2\r\n", []Row{{Line: 2, ID: 1, CertTotalCount: 2}}, 2},
		{"blank lines keep physical numbers", "Id,CertTotalCount\n\n1,2\n\n\n3,4\n", []Row{{Line: 3, ID: 1, CertTotalCount: 2}, {Line: 6, ID: 3, CertTotalCount: 4}}, 6},
		{"quoted fields and a quoted newline", "Id,CertTotalCount,Note\n\"1\",\"2\",\"a\nb\"\n3,4,c\n", []Row{{Line: 2, ID: 1, CertTotalCount: 2}, {Line: 4, ID: 3, CertTotalCount: 4}}, 6},
		{"spaces around values", "Id , CertTotalCount\n 1 , 2 \n", []Row{{Line: 2, ID: 1, CertTotalCount: 2}}, 2},
		{"max values", "Id,CertTotalCount\n9223372036854775807,2147483647\n", []Row{{Line: 2, ID: 9223372036854775807, CertTotalCount: 2147483647}}, 2147483647},
		{"header only", "Id,CertTotalCount\n", nil, 0},
		{"no final newline", "Id,CertTotalCount\n1,2", []Row{{Line: 2, ID: 1, CertTotalCount: 2}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, st, err := readString(tt.in)
			if err != nil {
				t.Fatalf("Read(%q) error: %v", tt.in, err)
			}
			if !reflect.DeepEqual(rows, tt.want) {
				t.Errorf("Read(%q) rows = %v; want %v", tt.in, rows, tt.want)
			}
			if st.Rows != len(tt.want) || st.Sum != tt.sum {
				t.Errorf("Read(%q) stats = %+v; want %d rows, sum %d", tt.in, st, len(tt.want), tt.sum)
			}
		})
	}
}

func TestReadInvalid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // each listed error, as printed
	}{
		{"empty file", "", []string{"p.csv:1: empty plan: want a header naming Id and CertTotalCount"}},
		{"missing column", "Id,Count\n1,2\n", []string{"p.csv:1: header has no CertTotalCount column (found: Id,Count)"}},
		{"column twice", "Id,CertTotalCount,id\n", []string{`p.csv:1:19: header names column "id" twice`}},
		{"not an integer", "Id,CertTotalCount\nabc,5\n", []string{`p.csv:2:1: Id "abc": not an integer; want a positive integer`}},
		{"zero id", "Id,CertTotalCount\n0,5\n", []string{`p.csv:2:1: Id "0": want a positive integer`}},
		{"negative count", "Id,CertTotalCount\n1,-1\n", []string{`p.csv:2:3: CertTotalCount "-1": negative; want an integer from 0 to 2147483647`}},
		{"count too big", "Id,CertTotalCount\n1,2147483648\n", []string{`p.csv:2:3: CertTotalCount "2147483648": out of range; want an integer from 0 to 2147483647`}},
		{"id too big", "Id,CertTotalCount\n9223372036854775808,1\n", []string{`p.csv:2:1: Id "9223372036854775808": out of range; want a positive integer up to 9223372036854775807`}},
		{"empty field", "Id,CertTotalCount\n1,\n", []string{`p.csv:2:3: CertTotalCount "": empty; want an integer from 0 to 2147483647`}},
		{"short record", "Id,CertTotalCount\n1\n", []string{"p.csv:2: 1 field(s), but the header has 2"}},
		{"duplicate id", "Id,CertTotalCount\n7,1\n\n7,2\n", []string{`p.csv:4:1: Id "7": duplicate Id: already on line 2`}},
		{"both fields bad, and a later line", "Id,CertTotalCount\nx,y\n1,1\n2,z\n", []string{
			`p.csv:2:1: Id "x": not an integer; want a positive integer`,
			`p.csv:2:3: CertTotalCount "y": not an integer; want an integer from 0 to 2147483647`,
			`p.csv:4:3: CertTotalCount "z": not an integer; want an integer from 0 to 2147483647`,
		}},
		{"bad quoting", "Id,CertTotalCount\n\"1,2\n", []string{`p.csv:2:6: extraneous or missing " in quoted-field`}},
		{"long line", "Id,CertTotalCount\n" + strings.Repeat("1", MaxLineBytes+1) + "\n", []string{"p.csv:2: line longer than 65536 bytes; is this a plan?"}},
		{"too many fields", "Id,CertTotalCount\n1,2" + strings.Repeat(",", MaxFields) + "\n", []string{"p.csv:2: 258 fields; at most 256 are allowed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := readString(tt.in)
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Read(%q) error = %v; want *Errors", tt.in, err)
			}
			var got []string
			for _, e := range errs.List {
				got = append(got, e.Error())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Read(%q) errors =\n%q\nwant\n%q", tt.in, got, tt.want)
			}
		})
	}
}

func TestReadCapsErrors(t *testing.T) {
	in := "Id,CertTotalCount\n" + strings.Repeat("x,1\n", 30)
	_, err := Read(strings.NewReader(in), "p.csv", Options{MaxErrors: 5}, func(Row) error { return nil })
	var errs *Errors
	if !errors.As(err, &errs) || len(errs.List) != 5 || errs.More != 25 {
		t.Fatalf("Read() = %v; want 5 listed errors and 25 more", err)
	}
	if !strings.HasSuffix(err.Error(), "... and 25 more") {
		t.Errorf("Error() = %q; want it to end with the count of the rest", err.Error())
	}
}

func TestReadDoesNotCallBackAfterAnError(t *testing.T) {
	var calls int
	_, err := Read(strings.NewReader("Id,CertTotalCount\nx,1\n2,2\n"), "p.csv", Options{}, func(Row) error {
		calls++
		return nil
	})
	if err == nil || calls != 0 {
		t.Fatalf("Read() err = %v, callbacks = %d; want an error and no callback after it", err, calls)
	}
}

func TestReadFixtures(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "plans", "*.csv"))
	if len(files) == 0 {
		t.Fatal("no plan fixtures in testdata/plans")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := ReadFile(f, Options{}, func(Row) error { return nil })
			wantBad := strings.HasPrefix(filepath.Base(f), "bad-")
			if (err != nil) != wantBad {
				t.Errorf("ReadFile(%s) error = %v; want error: %v", f, err, wantBad)
			}
			if err != nil && !strings.Contains(err.Error(), f+":") {
				t.Errorf("ReadFile(%s) error %q does not name the file", f, err)
			}
		})
	}
}

func TestReadFileMissing(t *testing.T) {
	_, err := ReadFile(filepath.Join(t.TempDir(), "nope.csv"), Options{}, func(Row) error { return nil })
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadFile(missing) = %v; want ErrNotExist", err)
	}
}

func BenchmarkRead(b *testing.B) {
	var buf strings.Builder
	buf.WriteString("Id,CertTotalCount\n")
	for i := 1; i <= 100_000; i++ {
		buf.WriteString(strconv.Itoa(i) + "," + strconv.Itoa(i%1000) + "\n")
	}
	data := buf.String()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Read(strings.NewReader(data), "b.csv", Options{}, func(Row) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
