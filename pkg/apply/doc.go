// Package apply runs a validated plan: a bounded errgroup pool, one shared
// Pacer that every attempt waits on, and per-row retries.
//
// Run is where the batch's promises are kept:
//
//   - Rate: every request, first tries and retries alike, passes the
//     Pacer, which never lets more than floor(qps) sends into any window of
//     one second plus PaceGuard, and slows down (AIMD) when the service
//     throttles.
//   - Exactly once: a row is retried only while it has not succeeded, and
//     only on an error classified retryable. A lost answer (timeout,
//     dropped connection) is retried because AssignCertificateCount sets a
//     total; the Outcome records that it happened.
//   - Nothing lost: every row, sent or not, is reported exactly once, from
//     a single collector goroutine, in completion order. A failed row is a
//     result, never an error of the errgroup.
//   - Stopping: a run-fatal answer, the failure limit, the deadline or the
//     caller's context stop admission; requests in flight run to their
//     timeout (the SDK takes no context) and are reported; rows never sent
//     are reported as NotAttempted.
//
// The package knows nothing of the SDK: it calls Assigners, which pkg/cas
// provides, one per goroutine at a time.
package apply
