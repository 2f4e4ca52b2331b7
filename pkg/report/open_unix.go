//go:build unix

package report

import (
	"errors"
	"os"
	"syscall"
)

// lockFlag opens a lock file without following a symlink. O_RDWR rather
// than gofrs/flock's O_RDONLY: fcntl-based platforms need it for an
// exclusive lock.
const lockFlag = os.O_RDWR | os.O_CREATE | syscall.O_NOFOLLOW

// openNoFollow opens path read-write, creating it with perm, and fails with
// errSymlink if path is a symlink: O_NOFOLLOW makes the check and the open
// one step, so a link swapped in between cannot redirect the write.
func openNoFollow(path string, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, perm)
	if err != nil && isSymlink(path, err) {
		return nil, errSymlink
	}
	return f, err
}

// isSymlink tells whether err, from opening path with O_NOFOLLOW, means a
// symlink: ELOOP on Linux and macOS, EMLINK on the BSDs.
func isSymlink(path string, err error) bool {
	if errors.Is(err, syscall.ELOOP) {
		return true
	}
	fi, lerr := os.Lstat(path)
	return lerr == nil && fi.Mode()&os.ModeSymlink != 0
}

// checkLockPath and checkLockTarget have nothing to check where lockFlag
// holds O_NOFOLLOW.
func checkLockPath(string) error                { return nil }
func checkLockTarget(string, os.FileInfo) error { return nil }
