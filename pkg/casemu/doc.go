// Package casemu emulates the Certificate Management Service (cas) RPC
// endpoint for the one action certalloc calls, AssignCertificateCount of API
// version 2020-06-30.
//
// It is an http.Handler meant to run on loopback, for tests and for operators
// who want to try certalloc without an account. It is meant to be as strict
// as the service (see ../shared/API.md), so a client that passes against it
// has met the service's rules.
//
// # What it checks
//
// In the gateway's order, with the service's codes and statuses: the HTTP
// method (GET or POST, else 403 UnsupportedHTTPMethod); the required common
// parameters; the version and the action; the region, when Config.Region
// is set (a RegionId naming another region answers 404
// InvalidRegion.NotFound, the gateway's code for a region it cannot route;
// a request without RegionId is served); the AccessKey; the timestamp
// window; the HMAC-SHA1 signature, over the method used; the nonce; the
// STS token (missing: InvalidSecurityToken.Malformed; not the one issued
// with this AccessKey, or an STS token sent with a permanent key:
// InvalidSecurityToken.MismatchWithAccessKey; expired:
// InvalidSecurityToken.Expired); permission (Forbidden.RAM, with the
// AccessDeniedDetail that names the RAM action); then the rate limit.
//
// The action then checks Id and CertTotalCount and, when Config.Instances
// is set, that the Id is a known instance (else 400 NotFound, as the service
// answers) and that CertTotalCount is within the instance's quota (else 400
// InvalidParameter.CertTotalCount: the API documents no code for this, and
// a 400 naming the parameter is how the service reports a value it refuses,
// which a client treats as final for the row). An accepted call sets the
// Id's total, records its CaIdentifier, and answers the documented success
// JSON with a fresh RequestId.
//
// # The rate limit
//
// The service allows 10 calls in any sliding second per account (UID),
// shared by all its AccessKeys and STS sessions: Key.Account groups keys
// into accounts, and a key without one is an account of its own. Past the
// limit it answers 400 Throttling.User (or 429 with Config.Throttle429),
// with x-acs-retry-after in milliseconds: the time until the call would
// have been admitted.
//
// The limit counts arrivals at the service, not sends. With arrival jitter
// (Faults.JitterMean, JitterStdDev) each request is held for a one-way
// delay drawn from a normal distribution (negative draws count as none)
// before the service sees it, so sends paced at exactly 10 per second can
// arrive 11 in a second, as on a real network. Because the delay is
// actually spent, requests are judged in arrival order; stamps that still
// come out of order (scheduling noise) are inserted in place, and a call is
// admitted only if every window holding its stamp, including windows that
// end at later stamps already admitted, stays within the limit. A window is
// the half-open interval (y-1s, y]. Stats.MaxInWindow is the most arrivals
// of one account in any such window, on the delayed stamps.
//
// # Faults
//
// Faults are injected after authentication and the limit, so a faulty
// answer has used the caller's quota. Each is a rate, and each either
// answers before the call takes effect (nothing applied) or after it
// (applied, whatever the client sees). Stats.ByCode counts answers by
// their Code, and answers that have none under a key in parentheses:
//
//	before, not applied           after, applied
//	spurious throttle (shapes)    (dropped)     connection reset, no answer
//	ServiceUnavailable (503)      (hung)        answer after HangFor
//	InternalError (500)           (html)        502 with a ~100 KB HTML page
//	(numeric-json) 500/400        (endless)     200 whose body never ends
//	(redirect) 302                (no-requestid) 200 without RequestId
//	(200-error) 200 with a Code
//
// Throttle shapes: Throttling, Throttling.User, Throttling.Api and
// Rejected.Throttling (400 JSON), 429 with the JSON body, 429 as a bare
// HTML page with no Code (counted as "(429-bare)"), 429 with the JSON body
// and x-acs-retry-after: 300 ("429-wait"), 503 carrying
// x-acs-retry-after, and 400 whose wait comes only in x-ratelimit-user.
// The numeric JSON body ({"RequestId":12345,"Code":500}) is what makes the
// v1 SDK panic. A redirect points at another path of this server with the
// whole signed query; a client that follows it is counted in
// Stats.RedirectsFollowed. The endless body streams one shared 64 KiB
// chunk every 5 ms until the client goes away, so it costs the server one
// fixed buffer and little CPU whoever reads it. Faults.AnswerCode answers every request with
// one code (a run-wide gateway error, or any code at all), and FailIDs
// fail chosen Ids with InvalidParameter.
//
// Every request is counted, so tests can compare a client's report with
// what the service saw.
package casemu
