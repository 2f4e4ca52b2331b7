package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/certalloc/certalloc/pkg/report"
)

// FailuresRecordPath is where the record of a failures file applied as a
// plan goes by default: its own report, FAILURES.report.csv.
func FailuresRecordPath(failures string) string {
	return strings.TrimSuffix(failures, filepath.Ext(failures)) + ".report.csv"
}

// adoptFailuresRecord carries into this plan's record the rows that were
// finished by applying its failures file as a plan (the README's way before
// --retry-failed), so that they are not sent again and the plan's report
// shows them done. A row is taken from that record only when this plan's
// latest record of it is not done, the failures file's run has it
// succeeded with today's total, and that success is no older than this
// plan's latest record of the row: an older success says nothing of what a
// later attempt (perhaps at another total) left. Everything else is sent,
// as the plan's own record says.
func (r *run) adoptFailuresRecord(ctx context.Context) error {
	path := FailuresRecordPath(r.c.FailuresPath)
	if samePath(path, r.c.ReportPath) {
		return nil
	}
	cand := map[int]slot{}
	for p := range r.led.rows {
		if r.led.slots[p].src() != srcNone && !r.led.done(p) {
			cand[p] = slot{}
		}
	}
	if len(cand) == 0 {
		return nil
	}
	if _, err := os.Stat(path); os.IsNotExist(err) {
		if _, err := os.Stat(report.JournalPath(path)); os.IsNotExist(err) {
			return nil
		}
	}
	// A run applying the failures file now could send a row this run
	// sends too.
	unlock, err := report.Lock(report.LockPath(path))
	if err != nil {
		if errors.Is(err, report.ErrLocked) {
			return fmt.Errorf("%w: %s, the record of this plan's failures file, is being written by a run applying that file; let it finish, then run again; nothing was sent", err, path)
		}
		return reportOpenError(err)
	}
	r.unlockFailures = unlock

	finished := map[int]string{}
	var files [nSources]recordFile
	for _, f := range []struct {
		path string
		src  source
	}{{path, srcFailReport}, {report.JournalPath(path), srcFailJournal}} {
		file, err := os.Open(f.path)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return readError("", err)
		}
		files[f.src] = recordFile{r: file, f: file}
		fi, err := file.Stat()
		if err != nil {
			return readError("", err)
		}
		end, err := report.CompleteLength(file, fi.Size())
		if err != nil || end == 0 {
			if err != nil {
				return readError("", fmt.Errorf("%s: %w", f.path, err))
			}
			continue
		}
		n := 0
		err = report.Scan(io.NewSectionReader(file, 0, end), f.path, func(cols *report.Columns, rec *report.Record) error {
			if n++; n%4096 == 0 && ctx.Err() != nil {
				return context.Cause(ctx)
			}
			files[f.src].cols = cols
			p := r.led.pos(rec.ID)
			if _, ok := cand[p]; !ok {
				return nil
			}
			st := stOther
			if report.Done(rec.Status) && cols.Get(rec, "CaIdentifier") == r.led.rows[p].CaIdentifier {
				st = stSucceeded
			}
			var s slot
			s.set(f.src, rec.Off, rec.Len, st, rec.CertTotalCount)
			cand[p], finished[p] = s, cols.Get(rec, "FinishedAt")
			return nil
		})
		if err != nil {
			return readError("", err)
		}
	}
	own := map[source]recordFile{srcReport: {r: r.prevReport, cols: r.files[srcReport].cols}, srcJournal: {r: r.leftJournal, cols: r.files[srcJournal].cols}}
	adopted := 0
	for p, s := range cand {
		row := r.led.rows[p]
		if s.src() == srcNone || s.status() != stSucceeded || s.count != row.CertTotalCount {
			continue
		}
		mine := &r.led.slots[p]
		f := own[mine.src()]
		raw := make([]byte, mine.len())
		if _, err := f.r.ReadAt(raw, mine.off); err != nil {
			return readError("", err)
		}
		last, err := f.cols.Parse(raw)
		if err != nil {
			return readError("", fmt.Errorf("%s: %w", r.c.ReportPath, err))
		}
		if finished[p] < last.FinishedAt {
			continue
		}
		mine.set(s.src(), s.off, int64(s.len()), stSucceeded, s.count)
		adopted++
	}
	for src, f := range files {
		if f.f == nil {
			continue
		}
		if adopted > 0 && f.cols != nil {
			r.files[src] = f
		} else {
			f.f.Close()
		}
	}
	if adopted > 0 {
		r.log.Info("rows finished by applying the failures file are taken from its record, not sent again", "record", path, "rows", adopted)
	}
	return nil
}
