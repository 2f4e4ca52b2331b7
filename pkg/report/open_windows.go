//go:build windows

package report

import (
	"os"

	"golang.org/x/sys/windows"
)

// lockFlag: Windows has no O_NOFOLLOW; checkLockTarget checks afterwards.
const lockFlag = os.O_RDWR | os.O_CREATE

// openNoFollow opens path read-write, creating it, and fails with
// errSymlink if path is a symlink or another reparse point (a junction):
// FILE_FLAG_OPEN_REPARSE_POINT opens the link itself instead of its
// target, so nothing is created or written through it, and its attributes
// say what it is. perm is not used: Windows files have no mode bits but
// read-only, and a report is never read-only.
func openNoFollow(path string, _ os.FileMode) (*os.File, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	// The share mode is the one os.OpenFile uses.
	h, err := windows.CreateFile(p, windows.GENERIC_READ|windows.GENERIC_WRITE,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE, nil, windows.OPEN_ALWAYS,
		windows.FILE_ATTRIBUTE_NORMAL|windows.FILE_FLAG_OPEN_REPARSE_POINT, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var info windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(h, &info); err != nil {
		windows.CloseHandle(h)
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if info.FileAttributes&windows.FILE_ATTRIBUTE_REPARSE_POINT != 0 {
		windows.CloseHandle(h)
		return nil, errSymlink
	}
	return os.NewFile(uintptr(h), path), nil
}

// isSymlink: openNoFollow and checkLockPath have said it already.
func isSymlink(string, error) bool { return false }

// checkLockPath refuses a symlink at path before gofrs/flock opens it (and
// would create the file a dangling link points to).
func checkLockPath(path string) error {
	fi, err := os.Lstat(path)
	if err == nil && fi.Mode()&(os.ModeSymlink|os.ModeIrregular) != 0 {
		return errSymlink
	}
	return nil
}

// checkLockTarget refuses a lock whose path is, now, a symlink or not the
// file that was locked: gofrs/flock opens by name, and Windows follows
// links when it does.
func checkLockTarget(path string, locked os.FileInfo) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if fi.Mode()&(os.ModeSymlink|os.ModeIrregular) != 0 || !os.SameFile(fi, locked) {
		return errSymlink
	}
	return nil
}
