package job

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/certalloc/certalloc/pkg/apply"
	"github.com/certalloc/certalloc/pkg/plan"
	"github.com/certalloc/certalloc/pkg/report"
)

// ledger is what is known of each row of a plan: its latest record across
// the previous report and the journal (latest wins), and what this run does
// with it. It holds 20 bytes a row besides the plan (28 with a baseline), never the records
// themselves: the final report copies them from the files.
type ledger struct {
	rows  []plan.Row
	byID  []int32 // positions in rows, sorted by Id
	slots []slot
	// base is each row's latest record in the --baseline (16 bytes a
	// row; nil without one): an unchanged row is made from it.
	base []slot
}

type slot struct {
	off   int64 // the latest record's bytes in its file
	count int32 // CertTotalCount of the latest record
	// bits packs the record's length (low 24 bits: report.Scan refuses
	// longer records), its source, its status and the row's disposition,
	// so that a slot is 16 bytes: a run holds one per plan row.
	bits uint32
}

// Bit positions in slot.bits: the length, then 3 bits of source, 2 of
// status, 3 of disposition.
const (
	lenBits   = 24
	srcShift  = lenBits
	stShift   = srcShift + 3
	doShift   = stShift + 2
	fieldMask = 7
)

func (s *slot) len() int32          { return int32(s.bits & (1<<lenBits - 1)) }
func (s *slot) src() source         { return source(s.bits >> srcShift & 7) }
func (s *slot) status() status      { return status(s.bits >> stShift & 3) }
func (s *slot) do() disposition     { return disposition(s.bits >> doShift & 7) }
func (s *slot) setDo(d disposition) { s.bits = s.bits&^(fieldMask<<doShift) | uint32(d)<<doShift }

// set makes the record at off, n bytes long, the row's latest; the
// disposition stays.
func (s *slot) set(src source, off, n int64, st status, count int32) {
	s.off, s.count = off, count
	s.bits = s.bits&(fieldMask<<doShift) | uint32(n)&(1<<lenBits-1) | uint32(src)<<srcShift | uint32(st)<<stShift
}

// source is the file a slot's latest record is in.
type source uint8

const (
	srcNone source = iota
	srcReport
	srcJournal
	srcBaseReport // a --baseline that is another file, and its journal:
	srcBaseJournal
	srcFailReport // the record of the failures file applied as a plan, and its journal
	srcFailJournal
	nSources
)

// status of a row's latest record. Only succeeded (or unchanged, which
// carries a success) means done: a failure,
// a lost answer, a record of a send with no outcome after it (a crash) all
// leave the row to be sent again, whatever came before.
type status uint8

const (
	stNone status = iota
	stSucceeded
	stOther
)

// disposition is what this run does with a row.
type disposition uint8

const (
	doSend       disposition = iota // send it (the default)
	doSkip                          // already done with this total (--resume): carry its record
	doUnchanged                     // unchanged since --baseline: not sent
	doNotSent                       // to send, but the run stopped first
	doUnrecorded                    // sent, but its outcome could not be journaled
)

func newLedger(rows []plan.Row) *ledger {
	l := &ledger{rows: rows, byID: make([]int32, len(rows))}
	for i := range l.byID {
		l.byID[i] = int32(i)
	}
	slices.SortFunc(l.byID, func(a, b int32) int {
		switch x, y := rows[a].ID, rows[b].ID; {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	return l
}

// pos returns the position in the plan of the row with id, or -1.
func (l *ledger) pos(id int64) int {
	i, ok := slices.BinarySearchFunc(l.byID, id, func(p int32, id int64) int {
		switch x := l.rows[p].ID; {
		case x < id:
			return -1
		case x > id:
			return 1
		}
		return 0
	})
	if !ok {
		return -1
	}
	return int(l.byID[i])
}

// note records rec as the latest record of its row; records of Ids not in
// the plan are counted, not kept.
func (l *ledger) note(src source, cols *report.Columns, rec *report.Record) (inPlan bool) {
	p := l.pos(rec.ID)
	if p < 0 {
		return false
	}
	st := stOther
	// A success sent with another CaIdentifier than the plan's (or none)
	// is not this row's assignment: the row is sent again, as one whose
	// total changed is.
	if report.Done(rec.Status) && cols.Get(rec, "CaIdentifier") == l.rows[p].CaIdentifier {
		st = stSucceeded
	}
	slots := l.slots
	if src == srcBaseReport || src == srcBaseJournal {
		slots = l.base
	}
	slots[p].set(src, rec.Off, rec.Len, st, rec.CertTotalCount)
	return true
}

// noteJournal records that row p's latest record is now the journal's
// bytes at off.
func (l *ledger) noteJournal(p int, off, n int64, st status, count int32) {
	l.slots[p].set(srcJournal, off, n, st, count)
}

// unchanged reports whether row p's latest record in the baseline is a
// success with today's total.
func (l *ledger) unchanged(p int) bool {
	return l.base != nil && l.base[p].status() == stSucceeded && l.base[p].count == l.rows[p].CertTotalCount
}

// readBaseline reads a baseline report and its journal into base. The
// files that have records are left open in files, for the unchanged rows
// of the final report to be made from; the caller closes them.
func (l *ledger) readBaseline(ctx context.Context, path string, files *[nSources]recordFile) (exists bool, err error) {
	l.base = make([]slot, len(l.rows))
	var pr prior
	for _, f := range []struct {
		path string
		src  source
	}{{path, srcBaseReport}, {report.JournalPath(path), srcBaseJournal}} {
		cols, file, err := l.readOpen(ctx, f.path, f.src, &pr)
		if err != nil {
			return false, readError("--baseline: ", err)
		}
		if file != nil {
			files[f.src] = recordFile{r: file, cols: cols, f: file}
		}
	}
	return pr.exists, nil
}

// done reports whether row p's latest record is a success with today's
// total.
func (l *ledger) done(p int) bool {
	s := &l.slots[p]
	return s.status() == stSucceeded && s.count == l.rows[p].CertTotalCount
}

// prior is what a previous report and its journal say.
type prior struct {
	foreign   int64 // an Id not in the plan (0: none)
	foreignAt string
	applied   int  // records of rows sent or being sent
	torn      bool // the journal ended in a torn line
	exists    bool // the report or the journal has records
}

// record returns a Scan callback that notes each record in the ledger and
// counts what a run must know before it writes anything. ctx is checked
// as it goes, so a signal during a long read ends the run at once.
func (l *ledger) record(ctx context.Context, name string, src source, pr *prior, cols **report.Columns) func(*report.Columns, *report.Record) error {
	n := 0
	return func(c *report.Columns, rec *report.Record) error {
		if n++; n%4096 == 0 && ctx.Err() != nil {
			return context.Cause(ctx)
		}
		*cols = c
		pr.exists = true
		if report.Done(rec.Status) || rec.Status == report.Sending || rec.Attempts > 0 {
			pr.applied++
		}
		if !l.note(src, c, rec) && pr.foreign == 0 {
			pr.foreign, pr.foreignAt = rec.ID, fmt.Sprintf("%s:%d", name, rec.FileLine)
		}
		return nil
	}
}

// readOpen reads the whole records of a report or journal into the
// ledger, without changing the file; a missing file has none. A torn last
// line (a journal cut by a crash, or a report of an earlier version) is
// skipped, and reported in pr.torn. The file is kept open when it has
// records: the final report copies them from it by offset, and the path
// may meanwhile be deleted or replaced (by an operator tidying up, or a
// copy put back), while the open file still holds the bytes the offsets
// point to.
func (l *ledger) readOpen(ctx context.Context, path string, src source, pr *prior) (*report.Columns, *os.File, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	cols, err := l.scanFile(ctx, f, path, src, pr)
	if cols == nil || err != nil {
		f.Close()
		return nil, nil, err
	}
	return cols, f, nil
}

func (l *ledger) scanFile(ctx context.Context, f *os.File, path string, src source, pr *prior) (*report.Columns, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	end, err := report.CompleteLength(f, fi.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pr.torn = pr.torn || end < fi.Size()
	if end == 0 {
		return nil, nil
	}
	var cols *report.Columns
	err = report.Scan(io.NewSectionReader(f, 0, end), path, l.record(ctx, path, src, pr, &cols))
	return cols, err
}

// writeReport writes the final report: one row per plan row, in plan
// order, each the row's latest record (copied from the previous report or
// the journal) or, for rows this run did not send, a row saying why.
func (l *ledger) writeReport(w io.Writer, files *[nSources]recordFile, rc rowContext) error {
	buf := make([]byte, 0, 64<<10)
	var rec []byte
	// read returns the bytes of the record s points to.
	var windows [nSources]window
	read := func(s *slot) (*recordFile, []byte, error) {
		f := &files[s.src()]
		if raw, ok := windows[s.src()].get(f.r, s.off, int(s.len())); ok {
			return f, raw, nil
		}
		if n := int(s.len()); cap(rec) < n {
			rec = make([]byte, n)
		}
		rec = rec[:s.len()]
		_, err := f.r.ReadAt(rec, s.off)
		return f, rec, err
	}
	for p, row := range l.rows {
		s := &l.slots[p]
		var err error
		switch {
		case s.do() == doUnchanged:
			var f *recordFile
			var raw []byte
			if f, raw, err = read(&l.base[p]); err == nil {
				buf, err = report.AppendUnchanged(buf, f.cols, raw, int(row.Line), row.CaIdentifier)
			}
		case s.do() == doNotSent:
			buf = report.AppendRow(buf, &report.Row{Line: int(row.Line), ID: row.ID, CertTotalCount: row.CertTotalCount, CaIdentifier: row.CaIdentifier,
				Status: report.Failed, ErrorCode: "NotAttempted", ErrorMessage: "not sent: " + rc.stopReason, FinishedAt: rc.now})
		case s.do() == doUnrecorded:
			r := reportRow(rc.unrecorded[p])
			buf = report.AppendRow(buf, &r)
		case s.src() != srcNone:
			var f *recordFile
			var raw []byte
			if f, raw, err = read(s); err == nil {
				buf, err = report.CopyRecord(buf, f.cols, raw, int(row.Line))
			}
		default:
			err = fmt.Errorf("internal error: no record for plan line %d (Id %d)", row.Line, row.ID)
		}
		if err != nil {
			return err
		}
		if len(buf) >= 60<<10 {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	_, err := w.Write(buf)
	return err
}

// window reads a file ahead, a block at a time: records are mostly
// copied in the order they were written, and a read(2) per record would
// cost a million-row report seconds.
type window struct {
	buf []byte
	off int64
}

const windowBytes = 256 << 10

// get returns the n bytes at off, or false when they do not fit a block
// (the caller reads them itself).
func (w *window) get(r io.ReaderAt, off int64, n int) ([]byte, bool) {
	if n > windowBytes/4 {
		return nil, false
	}
	if off < w.off || off+int64(n) > w.off+int64(len(w.buf)) {
		if w.buf == nil {
			w.buf = make([]byte, windowBytes)
		}
		k, err := r.ReadAt(w.buf[:windowBytes], off)
		if k < n {
			w.buf = w.buf[:0]
			return nil, false
		}
		_ = err // a short block at the end of the file: io.EOF with k bytes
		w.buf, w.off = w.buf[:k], off
	}
	return w.buf[off-w.off : off-w.off+int64(n)], true
}

// recordFile is a file records are copied from; f, when set, is the
// open file to close at the end.
type recordFile struct {
	r    io.ReaderAt
	cols *report.Columns
	f    *os.File
}

// rowContext is what the rows a run writes itself need to say.
type rowContext struct {
	now, stopReason string
	unrecorded      map[int]apply.Outcome
}

// final says whether row p ends the run succeeded.
func (l *ledger) succeeded(p int) bool {
	s := &l.slots[p]
	switch s.do() {
	case doUnchanged:
		return true
	case doNotSent:
		return false
	case doUnrecorded:
		return false
	}
	return s.status() == stSucceeded && s.count == l.rows[p].CertTotalCount
}

// nowRFC3339 is the time rows written by the run itself carry.
func nowRFC3339() string { return time.Now().UTC().Format(time.RFC3339) }
