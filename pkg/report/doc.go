// Package report writes and reads certalloc's record of a run: the report
// (one row per plan row), the journal a run appends to as rows finish, the
// failures file (a plan of the rows not done), and the lock that keeps two
// runs off one report.
//
// The journal is the crash-safe part: each row reaches it in one write as
// soon as its outcome is known, so a crash leaves whole rows and at most a
// torn last line, which the next run cuts off after reading the rest; a
// failed or short write is cut back at once. The report and the failures
// file are only ever replaced whole, by a temporary file renamed over them
// (WriteAtomic), so a reader never sees half of one and a crash leaves the
// previous one.
//
// Reports and journals are read by Scan: encoding/csv with the offset of
// every record, so that a run can copy a record into the next report as
// bytes, without holding it. ReadFile, through gocsv, gives whole rows to
// callers that want them (tests, tools); gocsv also writes the failures
// file.
//
// # Lock
//
// A run holds an exclusive lock on LockPath(report), a file beside the
// report that is never renamed or removed, so a second run on the same
// report stops at once instead of interleaving, even if the report itself
// is deleted or replaced meanwhile. The lock is gofrs/flock: flock(2) on
// Unix, LockFileEx on Windows; the system drops it when the process ends,
// however it ends, so a crash leaves no stale lock to clean up. It is not
// the report that is locked: a run replaces the report by rename, which
// would leave the lock on the old file, and on Windows a lock is mandatory,
// forbidding the writes of the run that holds it.
//
// # Symlinks
//
// A symlink where an output goes could send certalloc's writes to a file
// chosen by whoever can write the folder. On Unix:
//   - the journal is opened with O_NOFOLLOW: a symlink at its path is
//     refused, in the same step as the open, so no race can slip one in;
//   - the lock file is opened the same way;
//   - the report, the failures file (and any WriteAtomic output) are
//     written to a temporary file and renamed over their path, which
//     replaces a symlink rather than following it.
//
// On Windows (where making a symlink needs a privilege or developer mode):
//   - the journal is opened with FILE_FLAG_OPEN_REPARSE_POINT and refused if
//     it is a reparse point (a symlink or a junction): as on Unix, one step,
//     nothing written or created through the link;
//   - the lock file cannot be opened that way through gofrs/flock, so its
//     path is checked before the open and again after the lock (the locked
//     file must be the one at the path, not a link). A link swapped in
//     between the check and the open can make certalloc create an empty
//     file where the link points, or lock that file's first byte until the
//     run ends; it never writes to it;
//   - the rename of WriteAtomic replaces a symlink at the path, as on Unix;
//   - files are created without Unix permissions: Private means nothing
//     more than the folder's ACL gives.
package report
