// Package report writes and reads certalloc's per-row report and failures
// files, and holds the lock that keeps two runs off one report.
//
// The report is the run's record of truth. Each row reaches the file in one
// write as soon as its result is known, so a crash at any moment leaves
// whole rows (a torn last line is possible only if the write itself was cut,
// and Open detects and cuts it off).
//
// # Lock
//
// A run holds an exclusive lock on LockPath(report), a file beside the
// report that is never renamed or removed, so a second run on the same
// report stops at once instead of interleaving, even if the report itself
// is deleted or replaced meanwhile. The lock is gofrs/flock: flock(2) on
// Unix, LockFileEx on Windows; the system drops it when the process ends,
// however it ends, so a crash leaves no stale lock to clean up. It is not
// the report that is locked because on Windows a lock is mandatory: it
// would forbid the writes of the run that holds it.
//
// # Symlinks
//
// A symlink where an output goes could send certalloc's writes to a file
// chosen by whoever can write the folder. On Unix:
//   - the report is opened with O_NOFOLLOW: a symlink at its path is
//     refused, in the same step as the open, so no race can slip one in;
//   - the lock file is opened the same way;
//   - the failures file (and any WriteAtomic output) is written to a
//     temporary file and renamed over its path, which replaces a symlink
//     rather than following it.
//
// On Windows (where making a symlink needs a privilege or developer mode):
//   - the report is opened with FILE_FLAG_OPEN_REPARSE_POINT and refused if
//     it is a reparse point (a symlink or a junction): as on Unix, one step,
//     nothing written or created through the link;
//   - the lock file cannot be opened that way through gofrs/flock, so its
//     path is checked before the open and again after the lock (the locked
//     file must be the one at the path, not a link). A link swapped in
//     between the check and the open can make certalloc create an empty
//     file where the link points, or lock that file's first byte until the
//     run ends; it never writes to it;
//   - the rename of WriteAtomic replaces a symlink at the path, as on Unix;
//   - the report is created without Unix permissions: Private means
//     nothing more than the folder's ACL gives.
package report
