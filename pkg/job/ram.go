package job

import (
	"cmp"

	"github.com/certalloc/certalloc/pkg/cas"
)

// logAccessDenied tells the operator, once per run, which RAM policy to
// fix. The stop reason already names the action, the policy type and the
// no-permission type; the encoded diagnostic, which names the policy that
// matched, is too long for it and for every report row, so it goes here,
// with the command that decodes it.
func (r *run) logAccessDenied(e *cas.Error) {
	ad := e.AccessDenied
	if ad == nil {
		return
	}
	attrs := []any{"code", e.Code, "action", cmp.Or(ad.AuthAction, cas.RAMAction),
		"no_permission_type", ad.NoPermissionType, "policy_type", ad.PolicyType, "principal_type", ad.AuthPrincipalType}
	msg := "RAM refused the call: the policy must allow " + cas.RAMAction
	if cmd := ad.DecodeCommand(); cmd != "" {
		attrs = append(attrs, "decode", cmd)
		msg += "; to see which policy refused it, decode the diagnostic (this needs ram:DecodeDiagnosticMessage)"
	}
	r.log.Error(msg, attrs...)
}
