// Package cas makes AssignCertificateCount calls through the Alibaba Cloud
// SDK's CommonRequest (its services/cas package lacks the action) and
// classifies every outcome as retryable, row-final or run-fatal.
//
// Three traps of the v1 SDK shape this package (see ../shared/API.md):
//
//   - An sdk.Client is not safe for concurrent use: each call writes the
//     client's http.Client timeout and, given an *http.Transport, rewrites
//     its dialer, TLS config and proxy. A Factory therefore makes one
//     Client per call in flight, all sharing one transport hidden behind a
//     RoundTripper that is not an *http.Transport, so the SDK leaves it
//     alone.
//   - The credentials providers fill in fields lazily, without locks.
//     Credentials wraps one provider in a mutex, is resolved once before
//     the workers start, and is shared by every Client.
//   - err.Error() of an SDK error embeds the signed URL, STS token
//     included, and the service echoes its string to sign on a signature
//     mismatch. Error messages are rebuilt from code, status and message,
//     and passed through Credentials.Redact.
//
// # Answers that must not hurt
//
// The SDK trusts what comes back; the RoundTripper and Assign do not.
//
//   - A JSON error body whose RequestId, Code or AccessDeniedDetail has
//     another type than documented makes the SDK panic. Assign recovers:
//     the attempt is a retryable BadResponse.
//   - The SDK reads the whole body into memory, and its http.Client follows
//     redirects with the same nonce, unpaced. The RoundTripper fails a body
//     past MaxResponseBytes and turns any 3xx into a Redirected error; the
//     server sees one request. The read timeout bounds the body too: the
//     SDK sets it as http.Client.Timeout, which covers the whole exchange.
//   - A 2xx is a success only in the documented shape: with an error Code
//     or without a RequestId it is a BadResponse that may have been
//     applied.
//   - Server text (an HTML error page, an echoed query) is scrubbed of
//     secrets first, then made one line of at most MaxMessageBytes. The
//     scrubbing decodes percent-escapes in either case and at any depth,
//     and JSON escapes, so that an echoed token is found whatever its form.
//
// # Sent or not
//
// MaybeApplied says an answer was lost after the request may have reached
// the service. It comes from what the transport saw (httptrace's
// WroteRequest), never from error text: a refused connection, a DNS
// failure, a proxy that refuses the tunnel or a bad proxy variable leave it
// false. The SDK parses HTTP(S)_PROXY with url.Parse and compiles each
// NO_PROXY entry as a regular expression on every call, loopback endpoints
// included, so one malformed variable fails every row: NewFactory checks
// them first and reports the variable by name, never its value. A proxy
// that refuses the tunnel is named as the cause (ProxyRefused), never the
// endpoint: run-fatal when the refusal would repeat for every row (403,
// 407), retried otherwise.
//
// # Endpoints
//
// RPC signatures do not cover the host, so a wrong endpoint is not caught
// by signing: every row goes to the wrong region and fails. ResolveEndpoint
// picks the host as the official cas 2020-06-30 SDKs do (their EndpointMap,
// else cas.<region>.aliyuncs.com); the v1 SDK's own endpoint data is for
// the 2020-04-07 API and is not used.
//
// # Throttling
//
// The service and the gateways in front of it say "throttled" in several
// ways: a code containing Throttling, HTTP 429 with any body or none, an
// x-acs-retry-after header on any answer. Error.Throttled covers them all,
// and Error.RetryAfter carries the wait (x-acs-retry-after, else the
// TimeLeft of an exhausted x-ratelimit-user limit), capped at
// MaxRetryAfter.
package cas
