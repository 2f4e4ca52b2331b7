// Package cas makes AssignCertificateCount calls through the Alibaba Cloud
// SDK's CommonRequest (its services/cas package lacks the action) and
// classifies every outcome as retryable, row-final or run-fatal.
//
// Three traps of the v1 SDK shape this package (see ../shared/API.md):
//
//   - An sdk.Client is not safe for concurrent use: each call writes the
//     client's http.Client timeout and, given an *http.Transport, rewrites
//     its dialer, TLS config and proxy. NewClients therefore returns one
//     Client per worker, all sharing one transport hidden behind a
//     RoundTripper that is not an *http.Transport, so the SDK leaves it
//     alone.
//   - The credentials providers fill in fields lazily, without locks.
//     Credentials wraps one provider in a mutex, is resolved once before
//     the workers start, and is shared by every Client.
//   - err.Error() of an SDK error embeds the signed URL, STS token
//     included, and the service echoes its string to sign on a signature
//     mismatch. Error messages are rebuilt from code, status and message,
//     and passed through Credentials.Redact.
package cas
