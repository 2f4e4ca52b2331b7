package plan

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// readers gives the same input whole, a byte at a time and in halves, so
// that a CR and its LF, or a BOM, can fall across reads.
func readers(s string) map[string]io.Reader {
	return map[string]io.Reader{
		"whole":    strings.NewReader(s),
		"one byte": iotest.OneByteReader(strings.NewReader(s)),
		"halves":   iotest.HalfReader(strings.NewReader(s)),
		"data+EOF": iotest.DataErrReader(strings.NewReader(s)),
	}
}

func TestReadDialects(t *testing.T) {
	ca := "160ae6bb538d538c70c01f81dcf2a1b2"
	tests := []struct {
		name  string
		in    string
		delim rune // Options.Delimiter
		want  []Row
		found rune // Stats.Delimiter
	}{
		{"Excel: BOM, quoted header, CRLF", "\uFEFF\"Id\",\"CertTotalCount\"\r\n\"1\",\"2\"\r\n3,4\r\n", 0,
			[]Row{{Line: 2, ID: 1, CertTotalCount: 2}, {Line: 3, ID: 3, CertTotalCount: 4}}, ','},
		{"semicolon, comma in a value", "Id;CertTotalCount;Note\n1;2;1,5\n", 0,
			[]Row{{Line: 2, ID: 1, CertTotalCount: 2}}, ';'},
		{"European Excel: BOM, semicolon, CRLF", "\uFEFFId;CertTotalCount\r\n1;2\r\n", 0,
			[]Row{{Line: 2, ID: 1, CertTotalCount: 2}}, ';'},
		{"tab", "Id\tCertTotalCount\tNote\n1\t2\ta, b; c\n", 0,
			[]Row{{Line: 2, ID: 1, CertTotalCount: 2}}, '\t'},
		{"BOM, quoted tab header", "\uFEFF\"Id\"\t\"CertTotalCount\"\n1\t2\n", 0,
			[]Row{{Line: 2, ID: 1, CertTotalCount: 2}}, '\t'},
		{"a quoted separator in the header is not a separator", "\"Id;x\",Id,CertTotalCount\na,1,2\n", 0,
			[]Row{{Line: 2, ID: 1, CertTotalCount: 2}}, ','},
		{"pipe when asked", "Id|CertTotalCount\n1|2\n", '|',
			[]Row{{Line: 2, ID: 1, CertTotalCount: 2}}, '|'},
		{"asked for a semicolon", "Id;CertTotalCount\n1;2\n", ';',
			[]Row{{Line: 2, ID: 1, CertTotalCount: 2}}, ';'},
		{"CR only, blank line kept in the count", "Id,CertTotalCount\r1,2\r\r3,4\r", 0,
			[]Row{{Line: 2, ID: 1, CertTotalCount: 2}, {Line: 4, ID: 3, CertTotalCount: 4}}, ','},
		{"CR only, CR in a quoted field", "Id,CertTotalCount,Note\r1,2,\"a\rb\"\r3,4,c\r", 0,
			[]Row{{Line: 2, ID: 1, CertTotalCount: 2}, {Line: 4, ID: 3, CertTotalCount: 4}}, ','},
		{"CR only, a stray CRLF is one line end", "Id,CertTotalCount\r1,2\r\n3,4\r", 0,
			[]Row{{Line: 2, ID: 1, CertTotalCount: 2}, {Line: 3, ID: 3, CertTotalCount: 4}}, ','},
		{"CR only, no final line end", "Id;CertTotalCount\r1;2", 0,
			[]Row{{Line: 2, ID: 1, CertTotalCount: 2}}, ';'},
		{"CR only, BOM and quoted header", "\uFEFF\"Id\",\"CertTotalCount\"\r\"1\",\"2\"\r", 0,
			[]Row{{Line: 2, ID: 1, CertTotalCount: 2}}, ','},
		{"LF file: a lone CR in a quoted field stays data", "Id,CertTotalCount,Note\n1,2,\"a\rb\"\n3,4,c\n", 0,
			[]Row{{Line: 2, ID: 1, CertTotalCount: 2}, {Line: 3, ID: 3, CertTotalCount: 4}}, ','},
		{"CaIdentifier, tab-separated", "CaIdentifier\tId\tCertTotalCount\n" + ca + "\t1\t2\n", 0,
			[]Row{{Line: 2, ID: 1, CertTotalCount: 2, CaIdentifier: ca}}, '\t'},
	}
	for _, tt := range tests {
		for how, r := range readers(tt.in) {
			t.Run(tt.name+"/"+how, func(t *testing.T) {
				var rows []Row
				st, err := Read(r, "p.csv", Options{Delimiter: tt.delim}, func(r Row) error {
					rows = append(rows, r)
					return nil
				})
				if err != nil {
					t.Fatalf("Read(%q) error: %v", tt.in, err)
				}
				if !reflect.DeepEqual(rows, tt.want) {
					t.Errorf("Read(%q) rows = %+v; want %+v", tt.in, rows, tt.want)
				}
				if st.Delimiter != tt.found || st.Rows != len(tt.want) {
					t.Errorf("Read(%q) stats = %+v; want delimiter %q and %d rows", tt.in, st, tt.found, len(tt.want))
				}
			})
		}
	}
}

func TestReadDialectErrors(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		delim rune
		want  []string
	}{
		{"comma asked, semicolon file", "Id;CertTotalCount\n1;2\n", ',', []string{
			"p.csv:1: header has neither an Id nor a CertTotalCount column (found: Id;CertTotalCount); " +
				"the header is one column that contains ';': if that is the separator, pass --delimiter ';'"}},
		{"pipe is not detected", "Id|CertTotalCount\n1|2\n", 0, []string{
			"p.csv:1: header has neither an Id nor a CertTotalCount column (found: Id|CertTotalCount); " +
				"the header is one column that contains '|': if that is the separator, pass --delimiter '|'"}},
		{"tab asked, comma file", "Id,CertTotalCount\n", '\t', []string{
			"p.csv:1: header has neither an Id nor a CertTotalCount column (found: Id,CertTotalCount); " +
				"the header is one column that contains ',': if that is the separator, pass --delimiter ,"}},
		{"mixed separators", "Id;CertTotalCount,Note\n1;2,x\n", 0, []string{
			"p.csv:1: header has neither an Id nor a CertTotalCount column (found: Id;CertTotalCount,Note); " +
				"the header is split on ',' but also contains ';': use one separator throughout, and pass it with --delimiter if it is not found"}},
		{"semicolon header missing a column: split right", "Id;Count\n1;2\n", 0, []string{
			"p.csv:1: header has no CertTotalCount column (found: Id,Count)"}},
		{"rows on another separator", "Id,CertTotalCount\n1;2\n", 0, []string{
			"p.csv:2: 1 field(s), but the header has 2; the record contains ';', the header is split on ','"}},
		{"UTF-16", "\xFF\xFEI\x00d\x00", 0, []string{
			"p.csv:1: the file is UTF-16 (it starts with the byte order mark FF FE); save it as CSV UTF-8"}},
		{"columns with a semicolon", "Id;CertTotalCount\n1;-1\n", 0, []string{
			`p.csv:2:3: CertTotalCount "-1": negative; want an integer from 0 to 2147483647`}},
		{"columns with a tab", "Id\tCertTotalCount\n\t1\n", 0, []string{
			`p.csv:2:1: Id "": empty; want a positive integer`}},
		{"columns after a BOM are what an editor shows", "\uFEFFId,CertTotalCount,id\n", 0, []string{
			`p.csv:1:19: header names column "id" twice`}},
		{"CR-only line numbers", "Id,CertTotalCount\r1,2\r\rx,3\r", 0, []string{
			`p.csv:4:1: Id "x": not an integer; want a positive integer`}},
		{"CR-only line numbers after a quoted CR", "Id,CertTotalCount,Note\r1,2,\"a\rb\"\r5,y,c\r", 0, []string{
			`p.csv:4:3: CertTotalCount "y": not an integer; want an integer from 0 to 2147483647`}},
	}
	for _, tt := range tests {
		for how, r := range readers(tt.in) {
			t.Run(tt.name+"/"+how, func(t *testing.T) {
				_, err := Read(r, "p.csv", Options{Delimiter: tt.delim}, func(Row) error { return nil })
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
}

func TestReadRejectsUnsupportedDelimiter(t *testing.T) {
	for _, d := range []rune{'"', '\n', '\r', ' ', 'x', '\uFFFD'} {
		_, err := Read(strings.NewReader("Id,CertTotalCount\n"), "p.csv", Options{Delimiter: d}, func(Row) error { return nil })
		var errs *Errors
		if err == nil || errors.As(err, &errs) || !strings.Contains(err.Error(), "p.csv") {
			t.Errorf("Read(delimiter %q) = %v; want an error naming the plan, not a plan problem", d, err)
		}
	}
}

func TestParseDelimiter(t *testing.T) {
	tests := []struct {
		in   string
		want rune
	}{
		{",", ','}, {"comma", ','}, {";", ';'}, {"Semicolon", ';'}, {"tab", '\t'}, {"TAB", '\t'},
		{`\t`, '\t'}, {"\t", '\t'}, {"|", '|'}, {"pipe", '|'},
		{"", 0}, {" ", 0}, {`"`, 0}, {",;", 0}, {"colon", 0}, {":", 0},
	}
	for _, tt := range tests {
		got, err := ParseDelimiter(tt.in)
		if got != tt.want || (err != nil) != (tt.want == 0) {
			t.Errorf("ParseDelimiter(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
		if err == nil {
			if _, rerr := Read(strings.NewReader("Id,CertTotalCount\n"), "p", Options{Delimiter: got}, func(Row) error { return nil }); rerr != nil {
				var errs *Errors
				if !errors.As(rerr, &errs) {
					t.Errorf("Read refuses the delimiter ParseDelimiter(%q) gave: %v", tt.in, rerr)
				}
			}
		}
	}
}

func TestDelimiterName(t *testing.T) {
	for d, want := range map[rune]string{',': "','", ';': "';'", '\t': "tab", '|': "'|'"} {
		if got := DelimiterName(d); got != want {
			t.Errorf("DelimiterName(%q) = %q; want %q", d, got, want)
		}
	}
}

func TestSplitHeader(t *testing.T) {
	tests := []struct {
		head   string
		atEOF  bool
		fields []string
		eol    string
	}{
		{"a,b\n", false, []string{"a", "b"}, "\n"},
		{"a,b\r\nc", false, []string{"a", "b"}, "\r\n"},
		{"a,b\rc", false, []string{"a", "b"}, "\r"},
		{"a,b\r", true, []string{"a", "b"}, "\r"},
		{"a,b\r", false, []string{"a", "b"}, ""}, // the LF may follow
		{"a,b", true, []string{"a", "b"}, ""},
		{`"a,""x""",b` + "\n", false, []string{`a,"x"`, "b"}, "\n"},
		{"\"a\rb\",c\r", true, []string{"a\rb", "c"}, "\r"},
		{`"open` + "\n", true, []string{"open\n"}, ""},
		{`x"y,z` + "\n", false, []string{`x"y`, "z"}, "\n"},
	}
	for _, tt := range tests {
		fields, eol := splitHeader([]byte(tt.head), ',', tt.atEOF)
		if !reflect.DeepEqual(fields, tt.fields) || eol != tt.eol {
			t.Errorf("splitHeader(%q, %v) = %q, %q; want %q, %q", tt.head, tt.atEOF, fields, eol, tt.fields, tt.eol)
		}
	}
}

func TestCRReader(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a\rb\r", "a\nb\n"},
		{"a\r\nb\r\r", "a\nb\n\n"},
		{"\r\n\r\n", "\n\n"},
		{"a\n\rb", "a\n\nb"},
		{"", ""},
	}
	for _, tt := range tests {
		for how, r := range readers(tt.in) {
			got, err := io.ReadAll(&crReader{r: r})
			if err != nil || string(got) != tt.want {
				t.Errorf("crReader(%q) %s = %q, %v; want %q", tt.in, how, got, err, tt.want)
			}
		}
	}
}
