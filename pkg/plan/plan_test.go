package plan

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unsafe"
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

// Fixtures named bad-* are invalid; the others are valid, with the
// options listed here. The lead's end-to-end tests apply them too.
func TestReadFixtures(t *testing.T) {
	needs := map[string]Options{"pipe.csv": {Delimiter: '|'}}
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "plans", "*"))
	if len(files) == 0 {
		t.Fatal("no plan fixtures in testdata/plans")
	}
	for _, f := range files {
		base := filepath.Base(f)
		t.Run(base, func(t *testing.T) {
			opts, special := needs[base]
			if special {
				if _, err := ReadFile(f, Options{}, func(Row) error { return nil }); err == nil {
					t.Errorf("ReadFile(%s) without options succeeded; want an error", f)
				}
			}
			_, err := ReadFile(f, opts, func(Row) error { return nil })
			wantBad := strings.HasPrefix(base, "bad-")
			if (err != nil) != wantBad {
				t.Errorf("ReadFile(%s) error = %v; want error: %v", f, err, wantBad)
			}
			if err != nil && !strings.Contains(err.Error(), f+":") {
				t.Errorf("ReadFile(%s) error %q does not name the file", f, err)
			}
		})
	}
}

// The dialect fixtures hold one plan, written as each tool exports it.
func TestDialectFixturesAgree(t *testing.T) {
	want := []Row{{ID: 33285, CertTotalCount: 5}, {ID: 33286, CertTotalCount: 10}, {ID: 33287, CertTotalCount: 0}}
	for f, o := range map[string]Options{"excel-bom.csv": {}, "semicolon.csv": {}, "tab.tsv": {}, "cr-only.csv": {},
		"pipe.csv": {Delimiter: '|'}, "ca-identifier.csv": {}} {
		var got []Row
		_, err := ReadFile(filepath.Join("..", "..", "testdata", "plans", f), o, func(r Row) error {
			r.Line = 0
			got = append(got, r)
			return nil
		})
		if f == "ca-identifier.csv" && len(got) == 3 {
			if got[0].CaIdentifier != "160ae6bb538d538c70c01f81dcf2a1b2" || got[1].CaIdentifier != "" || got[2].CaIdentifier != "1f0167b4-ee84-4c1a-9d2e-49bc4d39fa68" {
				t.Errorf("%s: CaIdentifiers %+v", f, got)
			}
			for i := range got {
				got[i].CaIdentifier = ""
			}
		}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: rows %+v, %v; want %+v", f, got, err, want)
		}
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

func TestReadCaIdentifier(t *testing.T) {
	hex := "160ae6bb538d538c70c01f81dcf2a1b2"
	uuid := "1f0167b4-ee84-4c1a-9d2e-49bc4d39fa68"
	long := strings.Repeat("a", MaxCaIdentifierLen)
	tests := []struct {
		name  string
		in    string
		want  []Row
		hasCA bool
	}{
		{"values, an empty cell, spaces", "Id,CertTotalCount,CaIdentifier\n1,2," + hex + "\n3,4,\n5,6, " + uuid + " \n",
			[]Row{{Line: 2, ID: 1, CertTotalCount: 2, CaIdentifier: hex}, {Line: 3, ID: 3, CertTotalCount: 4}, {Line: 4, ID: 5, CertTotalCount: 6, CaIdentifier: uuid}}, true},
		{"any case, any place", "caidentifier;ID;certtotalcount\nca.1_x:y;1;2\n",
			[]Row{{Line: 2, ID: 1, CertTotalCount: 2, CaIdentifier: "ca.1_x:y"}}, true},
		{"a record that stops before the column has none", "Id,CertTotalCount,CaIdentifier\n1,2\n",
			[]Row{{Line: 2, ID: 1, CertTotalCount: 2}}, true},
		{"the column with every cell empty", "Id,CertTotalCount,CaIdentifier\n1,2,\n",
			[]Row{{Line: 2, ID: 1, CertTotalCount: 2}}, true},
		{"longest", "Id,CertTotalCount,CaIdentifier\n1,2," + long + "\n",
			[]Row{{Line: 2, ID: 1, CertTotalCount: 2, CaIdentifier: long}}, true},
		{"no column", "Id,CertTotalCount\n1,2\n", []Row{{Line: 2, ID: 1, CertTotalCount: 2}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, st, err := readString(tt.in)
			if err != nil {
				t.Fatalf("Read(%q) error: %v", tt.in, err)
			}
			if !reflect.DeepEqual(rows, tt.want) {
				t.Errorf("Read(%q) rows = %+v; want %+v", tt.in, rows, tt.want)
			}
			if st.HasCaIdentifier != tt.hasCA {
				t.Errorf("Read(%q) HasCaIdentifier = %v; want %v", tt.in, st.HasCaIdentifier, tt.hasCA)
			}
		})
	}
}

func TestReadCaIdentifierInvalid(t *testing.T) {
	const rule = "want 1 to 64 of A-Z a-z 0-9 . _ : -, starting with a letter or digit"
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"space", "Id,CertTotalCount,CaIdentifier\n1,2,ca one\n", []string{
			`p.csv:2:5: CaIdentifier "ca one": character ' ' is not allowed; ` + rule}},
		{"too long", "Id,CertTotalCount,CaIdentifier\n1,2," + strings.Repeat("a", MaxCaIdentifierLen+1) + "\n", []string{
			`p.csv:2:5: CaIdentifier "` + strings.Repeat("a", 40) + `...": 65 characters; ` + rule}},
		{"masked, as in the documentation", "Id,CertTotalCount,CaIdentifier\n1,2,160ae6bb538d538c70c01f81dcf2****\n", []string{
			`p.csv:2:5: CaIdentifier "160ae6bb538d538c70c01f81dcf2****": contains '*': documentation masks identifiers with ****; give the whole identifier`}},
		{"leading dash", "Id,CertTotalCount,CaIdentifier\n1,2,-abc\n", []string{
			`p.csv:2:5: CaIdentifier "-abc": starts with '-'; ` + rule}},
		{"formula", "Id,CertTotalCount,CaIdentifier\n1,2,\"=cmd|x\"\n", []string{
			`p.csv:2:5: CaIdentifier "=cmd|x": character '=' is not allowed; ` + rule}},
		{"not ASCII", "CaIdentifier;Id;CertTotalCount\ncaé;1;2\n", []string{
			`p.csv:2:1: CaIdentifier "caé": character 'é' is not allowed; ` + rule}},
		{"tab-separated column", "Id\tCertTotalCount\tCaIdentifier\n1\t2\ta/b\n", []string{
			`p.csv:2:5: CaIdentifier "a/b": character '/' is not allowed; ` + rule}},
		{"with a bad count on the same line", "Id,CertTotalCount,CaIdentifier\n1,x,a/b\n", []string{
			`p.csv:2:3: CertTotalCount "x": not an integer; want an integer from 0 to 2147483647`,
			`p.csv:2:5: CaIdentifier "a/b": character '/' is not allowed; ` + rule}},
		{"column twice", "Id,CertTotalCount,CaIdentifier,caidentifier\n", []string{
			`p.csv:1:32: header names column "caidentifier" twice`}},
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

// A plan names few CAs; rows must share them rather than each keep a copy
// (or, worse, its whole record) alive.
func TestReadInternsCaIdentifiers(t *testing.T) {
	var b strings.Builder
	b.WriteString("Id,CertTotalCount,CaIdentifier\n")
	for i := 1; i <= 100; i++ {
		b.WriteString(strconv.Itoa(i) + ",1,ca-" + strconv.Itoa(i%2) + "\n")
	}
	ptrs := map[string]map[*byte]bool{}
	_, err := Read(strings.NewReader(b.String()), "p.csv", Options{}, func(r Row) error {
		if ptrs[r.CaIdentifier] == nil {
			ptrs[r.CaIdentifier] = map[*byte]bool{}
		}
		ptrs[r.CaIdentifier][unsafe.StringData(r.CaIdentifier)] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ptrs) != 2 || len(ptrs["ca-0"]) != 1 || len(ptrs["ca-1"]) != 1 {
		t.Errorf("CaIdentifier storage: %d values, %d and %d copies; want 2 values, one copy each", len(ptrs), len(ptrs["ca-0"]), len(ptrs["ca-1"]))
	}
}

// BenchmarkReadDialects prices what the dialects add to BenchmarkRead: a
// separator other than ',', the CR-only translation, the CaIdentifier
// column.
func BenchmarkReadDialects(b *testing.B) {
	for _, d := range []struct{ name, head, sep, eol, ca string }{
		{"semicolon", "Id;CertTotalCount", ";", "\n", ""},
		{"cr-only", "Id,CertTotalCount", ",", "\r", ""},
		{"caidentifier", "Id,CertTotalCount,CaIdentifier", ",", "\n", ",160ae6bb538d538c70c01f81dcf2a1b2"},
	} {
		b.Run(d.name, func(b *testing.B) {
			var buf strings.Builder
			buf.WriteString(d.head + d.eol)
			for i := 1; i <= 100_000; i++ {
				buf.WriteString(strconv.Itoa(i) + d.sep + strconv.Itoa(i%1000) + d.ca + d.eol)
			}
			data := buf.String()
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Read(strings.NewReader(data), "b.csv", Options{}, func(Row) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
