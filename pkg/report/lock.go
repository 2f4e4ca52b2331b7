package report

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// LockPath is the lock file of the report at path. It is a file of its
// own, never renamed or removed, so that the lock holds while the report is
// replaced by rename, or deleted by hand.
func LockPath(report string) string { return report + ".lock" }

// ErrLocked means another run holds the report.
var ErrLocked = errors.New("another certalloc run holds this report")

// Lock takes the exclusive lock at path without waiting; ErrLocked
// (wrapped) means another process has it. The lock goes with the process,
// so a crash never leaves it held.
func Lock(path string) (unlock func() error, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f.Close, nil
}
