// Package plan reads and validates certalloc allocation plans.
//
// A plan is a CSV file whose header names the columns Id and CertTotalCount
// (any case, any order, other columns ignored). Each following record asks
// for one AssignCertificateCount call.
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
