package report

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// JournalPath is where the journal of the report at path lives: beside it,
// so that a rename of the final report never crosses file systems.
func JournalPath(report string) string { return report + ".journal" }

// Journal is the crash-safe record of a run in progress: report rows
// appended as they happen, one write(2) each, so a crash leaves whole rows
// and at most one torn last line, which the next Load cuts off. The
// journal does not lock: the caller holds the report's lock (Lock).
type Journal struct {
	mu   sync.Mutex
	f    *os.File
	path string
	size int64 // bytes of whole rows; a failed write is cut back to it
	buf  []byte
	// failed is the first failed write's error, returned by every later
	// write: on a full disk a shorter row may still fit where a longer one
	// did not, and a "sending" row getting through after an outcome was
	// lost would let the run send a row after it decided to stop.
	failed error
	// dirty says rows were written since the last sync; stop and stopped
	// end the syncer SyncEvery starts. syncFile is (*os.File).Sync but in
	// tests.
	dirty         bool
	stop, stopped chan struct{}
	syncFile      func(*os.File) error
}

// OpenJournal opens the journal at path, creating it if needed, without
// following a symlink there. Call Load before Append.
func OpenJournal(path string, private bool) (*Journal, error) {
	perm := os.FileMode(0o644)
	if private {
		perm = 0o600
	}
	f, err := openNoFollow(path, perm)
	if err != nil {
		if errors.Is(err, errSymlink) {
			return nil, fmt.Errorf("journal %s: is a symlink; refusing to write through it", path)
		}
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	return &Journal{f: f, path: path, size: fi.Size(), syncFile: (*os.File).Sync}, nil
}

// SyncEvery has the journal's new rows flushed to disk every d until
// Close, so that a power loss (not only a crash of the process, which
// loses nothing written) loses at most the last d of the record. A failed
// sync is a failed write: every later Append returns it, and the run stops
// sending. Syncing each row instead would put a disk flush before every
// request.
func (j *Journal) SyncEvery(d time.Duration) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.stop != nil || j.f == nil {
		return
	}
	j.stop, j.stopped = make(chan struct{}), make(chan struct{})
	go func(stop, stopped chan struct{}) {
		defer close(stopped)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				j.sync()
			}
		}
	}(j.stop, j.stopped)
}

// sync flushes the rows written since the last sync, outside the lock: a
// slow disk must not hold up the rows being appended meanwhile.
func (j *Journal) sync() {
	j.mu.Lock()
	if j.f == nil || !j.dirty || j.failed != nil {
		j.mu.Unlock()
		return
	}
	f := j.f
	j.dirty = false
	j.mu.Unlock()
	if err := j.syncFile(f); err != nil {
		j.mu.Lock()
		if j.failed == nil {
			j.failed = fmt.Errorf("journal %s: flush to disk: %w", j.path, err)
		}
		j.mu.Unlock()
	}
}

// Load reads every whole record already in the journal (left by a run that
// crashed), calling fn for each, and only then cuts a torn last line off:
// nothing is changed in a journal that does not read. A nil fn skips the
// reading, for a caller that has read the journal already. An empty
// journal gets the header. Torn reports whether a line was cut.
func (j *Journal) Load(fn func(*Columns, *Record) error) (torn bool, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	end, err := CompleteLength(j.f, j.size)
	if err != nil {
		return false, fmt.Errorf("journal %s: %w", j.path, err)
	}
	if end > 0 && fn != nil {
		if err := Scan(io.NewSectionReader(j.f, 0, end), j.path, fn); err != nil {
			return false, err
		}
	}
	if end < j.size {
		torn = true
		if err := j.f.Truncate(end); err != nil {
			return false, fmt.Errorf("journal %s: cut torn last line: %w", j.path, err)
		}
		j.size = end
	}
	if j.size == 0 {
		j.buf = appendFields(j.buf[:0], Header)
		if err := j.write(); err != nil {
			return torn, err
		}
	}
	return torn, nil
}

// Reset empties the journal and writes the header: for a run that
// replaces the earlier record.
func (j *Journal) Reset() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.f.Truncate(0); err != nil {
		return fmt.Errorf("journal %s: %w", j.path, err)
	}
	j.size = 0
	j.buf = appendFields(j.buf[:0], Header)
	return j.write()
}

// HeaderLine is the report's header as a CSV line.
func HeaderLine() []byte { return appendFields(nil, Header) }

// Append writes one row in a single write and returns where it went. On a
// failed or short write (a full disk) the file is cut back to its last
// whole row and the error returned: the journal never holds a torn row in
// its middle. After a failed write every Append fails, with its error.
func (j *Journal) Append(r *Row) (off, n int64, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.buf = AppendRow(j.buf[:0], r)
	off = j.size
	if err := j.write(); err != nil {
		return 0, 0, err
	}
	return off, int64(len(j.buf)), nil
}

func (j *Journal) write() error {
	if j.f == nil {
		return fmt.Errorf("journal %s: closed", j.path)
	}
	if j.failed != nil {
		return j.failed
	}
	n, err := j.f.WriteAt(j.buf, j.size)
	if err == nil && n < len(j.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		if terr := j.f.Truncate(j.size); terr != nil {
			j.failed = fmt.Errorf("journal %s: %w (and cutting the partial row failed: %v)", j.path, err, terr)
		} else {
			j.failed = fmt.Errorf("journal %s: %w", j.path, err)
		}
		return j.failed
	}
	j.size += int64(n)
	j.dirty = true
	return nil
}

// Stat describes the journal's file, for a caller that must know it is the
// file it read earlier.
func (j *Journal) Stat() (os.FileInfo, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil, fmt.Errorf("journal %s: closed", j.path)
	}
	return j.f.Stat()
}

// ReaderAt gives access to the journal's bytes, for copying records into
// the final report.
func (j *Journal) ReaderAt() io.ReaderAt { return j.f }

// Close stops the syncer, then syncs and closes the journal.
func (j *Journal) Close() error {
	j.mu.Lock()
	stop, stopped := j.stop, j.stopped
	j.stop = nil
	j.mu.Unlock()
	if stop != nil {
		close(stop)
		<-stopped // it may be in a sync, which takes the lock
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.syncFile(j.f)
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	j.f = nil
	return err
}

// AppendRow appends r as one CSV record in Header order, newline included,
// quoting exactly as encoding/csv does.
func AppendRow(dst []byte, r *Row) []byte {
	opt := func(dst []byte, p *int64) []byte {
		if p == nil {
			return dst
		}
		return strconv.AppendInt(dst, *p, 10)
	}
	dst = strconv.AppendInt(dst, int64(r.Line), 10)
	dst = append(dst, ',')
	dst = strconv.AppendInt(dst, r.ID, 10)
	dst = append(dst, ',')
	dst = strconv.AppendInt(dst, int64(r.CertTotalCount), 10)
	dst = append(dst, ',')
	dst = appendField(dst, r.Status)
	dst = append(dst, ',')
	dst = strconv.AppendInt(dst, int64(r.Attempts), 10)
	dst = append(dst, ',')
	dst = appendField(dst, r.RequestID)
	dst = append(dst, ',')
	dst = opt(dst, r.CertCount)
	dst = append(dst, ',')
	dst = opt(dst, r.CurrentYearFreeCertCount)
	dst = append(dst, ',')
	dst = appendField(dst, r.ErrorCode)
	dst = append(dst, ',')
	dst = appendField(dst, r.ErrorMessage)
	dst = append(dst, ',')
	if r.Status != Planned {
		dst = strconv.AppendInt(dst, r.LatencyMs, 10)
	}
	dst = append(dst, ',')
	dst = appendField(dst, r.FinishedAt)
	dst = append(dst, ',')
	dst = appendField(dst, r.CaIdentifier)
	return append(dst, '\n')
}

func appendFields(dst []byte, fields []string) []byte {
	for i, f := range fields {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendField(dst, f)
	}
	return append(dst, '\n')
}

// appendField quotes f when encoding/csv's Writer would.
func appendField(dst []byte, f string) []byte {
	if !needsQuotes(f) {
		return append(dst, f...)
	}
	dst = append(dst, '"')
	for i := 0; i < len(f); i++ {
		if f[i] == '"' {
			dst = append(dst, '"')
		}
		dst = append(dst, f[i])
	}
	return append(dst, '"')
}

func needsQuotes(f string) bool {
	if f == "" {
		return false
	}
	if f == `\.` {
		return true
	}
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case '\n', '\r', '"', ',':
			return true
		}
	}
	r, _ := utf8.DecodeRuneInString(f)
	return unicode.IsSpace(r)
}

// CompleteLength returns the length of f up to and including its last
// newline: what follows is a line whose write was cut short.
func CompleteLength(f io.ReaderAt, size int64) (int64, error) {
	buf := make([]byte, 4096)
	for end := size; end > 0; {
		start := max(0, end-int64(len(buf)))
		n, err := f.ReadAt(buf[:end-start], start)
		if err != nil && err != io.EOF {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return start + int64(i) + 1, nil
		}
		end = start
	}
	return 0, nil
}
