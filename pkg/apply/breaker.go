package apply

import (
	"fmt"

	"github.com/certalloc/certalloc/pkg/cas"
)

// breaker stops a run whose first rows all fail alike: a run-wide error
// that pkg/cas does not list as fatal (a new gateway code, an endpoint in
// the wrong region) would otherwise fail every row of the plan, one
// request at a time.
type breaker struct {
	rows int    // finished rows to judge; 0 is off
	seen int    // finished rows so far, while armed
	code string // the code every one of them failed with
	done bool   // judged: tripped or disarmed
}

// add judges one more outcome, and returns the run-fatal error when the
// breaker trips.
func (b *breaker) add(o Outcome) *cas.Error {
	if b.rows <= 0 || b.done || o.Status == NotAttempted {
		return nil
	}
	if o.Status == Succeeded || (b.seen > 0 && o.Err.Code != b.code) {
		b.done = true // a row can succeed, or the failures differ
		return nil
	}
	b.code = o.Err.Code
	if b.seen++; b.seen < b.rows {
		return nil
	}
	b.done = true
	return &cas.Error{Class: cas.Fatal, Code: o.Err.Code, HTTPStatus: o.Err.HTTPStatus, RequestID: o.Err.RequestID,
		Message: fmt.Sprintf("the first %d finished rows all failed with %s and none succeeded: taken as an error every row would get, the run stopped (last message: %s)",
			b.rows, o.Err.Code, o.Err.Message)}
}
