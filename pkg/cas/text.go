package cas

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxMessageBytes bounds Error.Message: it goes into one cell of the report
// and one log line, and a server's answer can be a 100 KB HTML page.
const MaxMessageBytes = 512

const (
	maxCodeBytes       = 64
	maxRequestIDBytes  = 64
	maxDiagnosticBytes = 4 << 10
	// rawTextCap is how much of a server's text is kept before redaction.
	// Only the first MaxMessageBytes survive; the margin lets a secret that
	// straddles that point still be found whole, and keeps redaction cheap
	// on a 1 MiB body.
	rawTextCap = 8 << 10
)

// oneLine makes s fit one line of a log or a CSV cell: valid UTF-8, no
// control characters, no markup if it is an HTML page, runs of white space
// folded into one space.
func oneLine(s string) string {
	if len(s) > rawTextCap {
		s = s[:rawTextCap]
	}
	s = strings.ToValidUTF8(s, "?")
	if strings.HasPrefix(strings.TrimSpace(s), "<") {
		s = stripTags(s)
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// stripTags keeps the text of an HTML page: a gateway's error page then
// reads "502 Bad Gateway nginx" instead of its first 500 bytes of markup.
func stripTags(s string) string {
	var b strings.Builder
	in := false
	for _, r := range s {
		switch {
		case r == '<':
			in = true
		case r == '>' && in:
			in = false
			b.WriteByte(' ')
		case !in:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// clip cuts s to at most n bytes on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "..."
	if n < len(mark) {
		return mark[:max(n, 0)]
	}
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// finish makes an Error's texts safe to log and report: secrets scrubbed
// (creds may be nil), one line, bounded. Redaction comes first, so that a
// cut cannot leave half a secret that no longer matches.
func finish(e *Error, creds *Credentials) {
	safe := func(s string, n int) string {
		if len(s) > rawTextCap {
			s = s[:rawTextCap]
		}
		return clip(oneLine(creds.Redact(s)), n)
	}
	e.Code = safe(e.Code, maxCodeBytes)
	e.RequestID = safe(e.RequestID, maxRequestIDBytes)
	if ad := e.AccessDenied; ad != nil {
		for _, f := range []*string{&ad.AuthAction, &ad.AuthPrincipalType, &ad.AuthPrincipalDisplayName, &ad.NoPermissionType, &ad.PolicyType} {
			*f = safe(*f, 128)
		}
		ad.EncodedDiagnosticMessage = safe(ad.EncodedDiagnosticMessage, maxDiagnosticBytes)
	}
	msg := safe(e.Message, rawTextCap)
	if hint := ramHint(e); hint != "" && !strings.Contains(msg, hint) {
		if msg == "" {
			msg = hint
		} else {
			msg = clip(msg, MaxMessageBytes-len(hint)-2) + "; " + hint
		}
	}
	e.Message = clip(msg, MaxMessageBytes)
}

// ramHint tells the operator which RAM policy to fix, from the service's
// AccessDeniedDetail when it gave one.
func ramHint(e *Error) string {
	ad := e.AccessDenied
	if ad == nil || ad.AuthAction == "" && ad.NoPermissionType == "" && ad.PolicyType == "" {
		if e.Code == "NoPermission" || strings.HasPrefix(e.Code, "Forbidden") {
			return "the RAM policy must allow " + RAMAction
		}
		return ""
	}
	action := ad.AuthAction
	if action == "" {
		action = RAMAction
	}
	var parts []string
	for _, kv := range [][2]string{{"NoPermissionType", ad.NoPermissionType}, {"PolicyType", ad.PolicyType}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+" "+kv[1])
		}
	}
	if who := strings.TrimSpace(ad.AuthPrincipalType + " " + ad.AuthPrincipalDisplayName); who != "" {
		parts = append(parts, "principal "+who)
	}
	hint := "RAM denied " + action
	if len(parts) > 0 {
		hint += " (" + strings.Join(parts, ", ") + ")"
	}
	return clip(hint, 256)
}

// DecodeCommand returns the aliyun CLI command that decodes the
// EncodedDiagnosticMessage into the policy that refused the call, or ""
// when there is none. The command is meant to be pasted into a shell, and
// the server chose its text, so a diagnostic with any character base64
// does not use (a clipped one included) gives "" too.
func (a *AccessDenied) DecodeCommand() string {
	if a == nil || a.EncodedDiagnosticMessage == "" {
		return ""
	}
	for _, c := range []byte(a.EncodedDiagnosticMessage) {
		if !isAlnumByte(c) && c != '+' && c != '/' && c != '=' && c != '-' && c != '_' {
			return ""
		}
	}
	return "aliyun ram DecodeDiagnosticMessage --EncodedDiagnosticMessage " + a.EncodedDiagnosticMessage
}

func isAlnumByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
