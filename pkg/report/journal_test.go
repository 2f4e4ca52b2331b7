package report

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// SyncEvery flushes new rows once per period and not when nothing was
// written; a failed flush fails every later Append, as a failed write
// does, so that the run stops sending. Close stops the syncer.
func TestJournalSyncEvery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j, err := OpenJournal(filepath.Join(t.TempDir(), "r.csv.journal"), false)
		if err != nil {
			t.Fatal(err)
		}
		var syncs atomic.Int32
		var fail atomic.Bool
		j.syncFile = func(*os.File) error {
			syncs.Add(1)
			if fail.Load() {
				return errors.New("input/output error")
			}
			return nil
		}
		if _, err := j.Load(nil); err != nil {
			t.Fatal(err)
		}
		j.SyncEvery(time.Second)
		row := Row{Line: 2, ID: 1, CertTotalCount: 1, Status: Sending, FinishedAt: "2026-11-28T02:00:00Z"}
		if _, _, err := j.Append(&row); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		if n := syncs.Load(); n != 1 {
			t.Errorf("%d flushes after a second with rows; want 1", n)
		}
		time.Sleep(3 * time.Second)
		if n := syncs.Load(); n != 1 {
			t.Errorf("%d flushes after 3 more seconds with no row; want still 1", n)
		}
		fail.Store(true)
		if _, _, err := j.Append(&row); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		if _, _, err := j.Append(&row); err == nil || !strings.Contains(err.Error(), "flush to disk: input/output error") {
			t.Errorf("Append after a failed flush = %v; want the flush's error", err)
		}
		fail.Store(false)
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		n := syncs.Load()
		time.Sleep(3 * time.Second)
		if syncs.Load() != n {
			t.Errorf("the syncer flushed after Close")
		}
	})
}
