package report

import (
	"errors"
	"fmt"

	"github.com/gofrs/flock"
)

// ErrLocked means another certalloc run holds the lock.
var ErrLocked = errors.New("another certalloc run holds this report")

var errSymlink = errors.New("is a symlink; refusing to follow it")

// LockPath is the lock file that guards the report at path. It sits beside
// the report and is never removed: removing a lock file on unlock lets a
// third run lock a new file while a second still waits on the old one.
func LockPath(report string) string { return report + ".lock" }

// Lock takes an exclusive lock on the file at path, creating it empty
// (0600) if needed, without waiting. The lock holds until unlock is called
// or the process ends, however it ends. It is meant for a dedicated lock
// file, one that nothing renames or deletes: on Windows the lock also
// forbids other handles, this process's included, to write its first byte.
// A symlink at path is refused (on Windows, detected after the fact: see
// the package doc). ErrLocked (wrapped) means another process, or another
// Lock in this one, holds it.
func Lock(path string) (unlock func() error, err error) {
	if err := checkLockPath(path); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	fl := flock.New(path, flock.SetFlag(lockFlag), flock.SetPermissions(0o600))
	ok, err := fl.TryLock()
	if err != nil {
		if isSymlink(path, err) {
			return nil, fmt.Errorf("lock %s: %w", path, errSymlink)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if !ok {
		return nil, fmt.Errorf("lock %s: %w", path, ErrLocked)
	}
	fi, err := fl.Stat()
	if err == nil {
		err = checkLockTarget(path, fi)
	}
	if err != nil {
		fl.Unlock()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return fl.Unlock, nil
}
