// Package plan reads and validates certalloc allocation plans.
//
// A plan is a CSV file whose header names the columns Id and CertTotalCount,
// and optionally CaIdentifier (any case, any order, other columns ignored).
// Each following record asks for one AssignCertificateCount call.
//
// # Dialects
//
// Plans come from spreadsheets, so the reader takes what they write:
//   - A UTF-8 byte order mark is dropped before the CSV parser sees it, so a
//     quoted header after it ("Id","CertTotalCount", as Excel writes) is
//     not a bare quote. Columns on line 1 are then counted without it, as
//     an editor shows them. A UTF-16 file (Excel's "Unicode text") is
//     refused with a message that says so.
//   - The separator is detected from the header line: ',' ';' or tab, the
//     one under which the header names both required columns (failing that,
//     the one that splits it into most fields; ties go to ','). Options can
//     name it instead, '|' included. When a header lacks a required column
//     and a cell holds another separator, the error names the separator and
//     the --delimiter value that reads it.
//   - Line ends may be LF, CRLF or, in old Mac exports, a lone CR. A file
//     whose header ends with a lone CR is read with every lone CR as a line
//     end (the LF of a stray CRLF is dropped), inside quoted fields too: in
//     such a file a CR is how a line ends, and the fields certalloc reads
//     cannot hold one anyway. In a file whose header ends with LF or CRLF a
//     lone CR stays data, as encoding/csv has always read it. Lines are
//     numbered as an editor shows them in either case.
//
// # CaIdentifier
//
// An empty cell, or a record that stops before the column, means no
// identifier. A value is 1 to 64 of A-Z a-z 0-9 . _ : -, starting with a
// letter or a digit. The API documents no format; real identifiers are
// 32 hex digits (cas Identifier fields) or a UUID (the SDKs' CaIdentifier
// example), and the rule keeps room for both while refusing spaces, the
// **** of masked examples, and what a spreadsheet would take as a formula.
//
// # Streaming and errors
//
// The reader streams: it never holds more than one record, so a plan of a
// million rows costs the memory of the duplicate-Id index and nothing else.
// It does not stop at the first bad record; it reports every problem (up to
// a cap) with the file, the physical line and column, the field and the
// value, so an operator can fix a plan in one pass.
//
// encoding/csv is used directly rather than gocsv: gocsv numbers records,
// not physical lines (it is off after a blank line or a quoted newline), and
// stops at the first conversion error, while plan errors must name the
// physical line and list every problem.
package plan
