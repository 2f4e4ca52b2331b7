// Package casemu emulates the Certificate Management Service (cas) RPC
// endpoint for the one action certalloc calls, AssignCertificateCount of API
// version 2020-06-30.
//
// It is an http.Handler meant to run on loopback, for tests and for operators
// who want to try certalloc without an account. It checks what the real
// gateway checks, in the same order and with the same error codes (see
// ../shared/API.md): required common parameters, action and version, the
// AccessKey, the timestamp window, the HMAC-SHA1 signature, the nonce, the
// STS security token, permission, and the per-AccessKey rate limit of 10
// requests in any sliding second (Throttling.User, with x-acs-retry-after in
// milliseconds). Accepted calls set the Id's total and answer the documented
// success JSON with a fresh RequestId.
//
// Faults can be injected to exercise a client: a latency range, 500 and 503
// answers, spurious throttles, connections dropped after the call took
// effect (a lost answer), hangs, and Ids that always fail. Every request is
// counted, so tests can compare a client's report with what the service saw.
package casemu
