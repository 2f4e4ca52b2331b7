package job

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/certalloc/certalloc/pkg/apply"
	"github.com/certalloc/certalloc/pkg/plan"
	"github.com/certalloc/certalloc/pkg/report"
)

// onSend runs before a row's first request leaves. The first one opens the
// record for writing: the stale failures file goes (it may hold another
// plan's values, and applying it then would roll the service back), and
// the journal is opened, its torn tail cut. Then the row is noted as being
// sent: should the run die now, its state is unknown.
func (r *run) onSend(row plan.Row) error {
	r.openOnce.Do(func() { r.openErr = r.openJournal() })
	if r.openErr != nil {
		return r.openErr
	}
	rec := report.Row{Line: int(row.Line), ID: row.ID, CertTotalCount: row.CertTotalCount, CaIdentifier: row.CaIdentifier,
		Status: report.Sending, FinishedAt: time.Now().UTC().Format(time.RFC3339)}
	off, n, err := r.journal.Append(&rec)
	if err != nil {
		return err
	}
	r.led.noteJournal(r.led.pos(row.ID), off, n, stOther, row.CertTotalCount)
	return nil
}

// journalSync is how often the journal is flushed to disk: a power loss
// loses at most this much of the record, whose rows --resume then sends
// again (to the same totals).
const journalSync = time.Second

func (r *run) openJournal() error {
	if err := os.Remove(r.c.FailuresPath); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove the last run's failures file: %w", err)
	}
	j, err := report.OpenJournal(r.journalAt, r.c.Private)
	if err != nil {
		return err
	}
	keep := r.c.carries() || r.c.BaselinePath != "" && samePath(r.c.BaselinePath, r.c.ReportPath)
	if keep && r.leftJournal != nil {
		// The ledger points into the journal read at the start; appending
		// to another file there (the first deleted or replaced since) would
		// mix offsets of two files in the final report.
		if err := sameFile(j, r.leftJournal); err != nil {
			j.Close()
			return fmt.Errorf("journal %s: %w; nothing more is sent", r.journalAt, err)
		}
	}
	if keep {
		_, err = j.Load(nil)
	} else {
		err = j.Reset()
	}
	if err != nil {
		j.Close()
		return err
	}
	j.SyncEvery(journalSync)
	r.journal = j
	r.files[srcJournal] = recordFile{r: j.ReaderAt(), cols: report.CurrentColumns()}
	return nil
}

// outcome journals a finished row. Rows the run never sent are not
// journaled: the final report says why, and a crash before it loses
// nothing, since they were not sent.
func (r *run) outcome(out apply.Outcome) error {
	p := r.led.pos(out.Row.ID)
	if out.Status == apply.NotAttempted {
		r.led.slots[p].setDo(doNotSent)
		if r.stopMsg == "" && out.Err != nil {
			r.stopMsg = strings.TrimPrefix(out.Err.Message, "not sent: ")
		}
		return nil
	}
	if out.Status == apply.Failed {
		r.log.Warn("row failed", "line", out.Row.Line, "id", out.Row.ID, "code", out.Err.Code, "message", out.Err.Message, "attempts", out.Attempts)
	}
	rec := reportRow(out)
	var err error
	if r.journal == nil {
		err = errors.New("the journal is not open")
	} else {
		var off, n int64
		if off, n, err = r.journal.Append(&rec); err == nil {
			st := stOther
			if out.Status == apply.Succeeded {
				st = stSucceeded
			}
			r.led.noteJournal(p, off, n, st, out.Row.CertTotalCount)
			return nil
		}
	}
	if r.unrecorded == nil {
		r.unrecorded = map[int]apply.Outcome{}
	}
	r.unrecorded[p] = out
	r.led.slots[p].setDo(doUnrecorded)
	r.log.Error("could not journal a row's outcome; stopping", "line", out.Row.Line, "id", out.Row.ID, "status", out.Status, "error", err)
	return err
}

// finish writes the final report and the failures file, and removes the
// journal once the report holds everything it had.
func (r *run) finish() []error {
	var errs []error
	c := &r.c
	if err := r.openReportForCopy(); err != nil {
		return []error{err, r.writeFailures()}
	}
	rc := rowContext{now: r.now, stopReason: r.stopMsg, unrecorded: r.unrecorded}
	err := report.WriteAtomic(c.ReportPath, c.Private, func(w io.Writer) error {
		if _, err := w.Write(report.HeaderLine()); err != nil {
			return err
		}
		return r.led.writeReport(w, &r.files, rc)
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("could not write the report: %w; the previous report is unchanged and this run's rows are in %s", err, r.journalAt))
	} else if err := r.removeJournal(); err != nil {
		errs = append(errs, err)
	}
	if err := r.writeFailures(); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// openReportForCopy points the final report's copying at the files the
// ledger's offsets were taken from: the previous report, and a journal a
// crashed run left that this run did not open for writing. They were kept
// open since they were read, so a report deleted or replaced meanwhile
// changes nothing.
func (r *run) openReportForCopy() error {
	if r.files[srcReport].cols != nil {
		if r.prevReport == nil {
			return errors.New("internal error: the previous report is not open")
		}
		r.files[srcReport].r = r.prevReport
	}
	if r.journal == nil && r.files[srcJournal].cols != nil {
		if r.leftJournal == nil {
			return errors.New("internal error: the journal is not open")
		}
		r.files[srcJournal].r = r.leftJournal
	}
	return nil
}

func sameFile(j *report.Journal, read *os.File) error {
	now, err := j.Stat()
	if err != nil {
		return err
	}
	then, err := read.Stat()
	if err != nil {
		return err
	}
	if !os.SameFile(now, then) {
		return errors.New("deleted or replaced since this run read it")
	}
	return nil
}

func (r *run) removeJournal() error {
	if r.journal != nil {
		if err := r.journal.Close(); err != nil {
			return fmt.Errorf("journal %s: %w", r.journalAt, err)
		}
		r.journal = nil
	}
	if err := os.Remove(r.journalAt); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("the report is complete, but its journal could not be removed: %w", err)
	}
	return nil
}

func (r *run) writeFailures() error {
	var rows []report.FailureRow
	for p, row := range r.led.rows {
		if !r.led.succeeded(p) {
			rows = append(rows, report.FailureRow{ID: row.ID, CertTotalCount: row.CertTotalCount, CaIdentifier: row.CaIdentifier})
		}
	}
	if err := report.WriteFailures(r.c.FailuresPath, rows, report.FailuresOptions{Private: r.c.Private, CaIdentifier: r.hasCA}); err != nil {
		return fmt.Errorf("could not write the failures file: %w", err)
	}
	return nil
}

func (r *run) closeFiles() {
	if r.journal != nil {
		r.journal.Close()
	}
	for _, f := range []*os.File{r.prevReport, r.leftJournal, r.files[srcBaseReport].f, r.files[srcBaseJournal].f} {
		if f != nil {
			f.Close()
		}
	}
}

func reportRow(o apply.Outcome) report.Row {
	r := report.Row{
		Line: int(o.Row.Line), ID: o.Row.ID, CertTotalCount: o.Row.CertTotalCount, CaIdentifier: o.Row.CaIdentifier,
		Status: report.Failed, Attempts: o.Attempts, LatencyMs: o.Latency.Milliseconds(),
		FinishedAt: o.Finished.UTC().Format(time.RFC3339),
	}
	switch o.Status {
	case apply.Succeeded:
		r.Status = report.Succeeded
		r.RequestID = o.Result.RequestID
		r.CertCount = &o.Result.CertCount
		r.CurrentYearFreeCertCount = &o.Result.CurrentYearFreeCertCount
		if o.Lost != "" {
			r.ErrorMessage = fmt.Sprintf("succeeded after a lost answer (%s): the call was sent again; it sets a total, so the state is the same", o.Lost)
		}
	default:
		if o.Err != nil {
			r.ErrorCode, r.ErrorMessage, r.RequestID = o.Err.Code, o.Err.Message, o.Err.RequestID
		}
	}
	return r
}
