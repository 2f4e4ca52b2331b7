package casemu

import (
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// authenticate checks the request as the gateway does before the action
// runs, and returns its decoded parameters and its key.
func (s *Server) authenticate(r *http.Request) (url.Values, Key, *apiError) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return nil, Key{}, &apiError{status: http.StatusForbidden, code: "UnsupportedHTTPMethod", msg: fmt.Sprintf("This http method %s is not supported.", r.Method)}
	}
	// The body is bounded: an RPC call has at most a few form params.
	r.Body = http.MaxBytesReader(nil, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		return nil, Key{}, &apiError{status: http.StatusBadRequest, code: "InvalidParameter", msg: "The request body or query string could not be parsed."}
	}
	params := r.Form // query and form, decoded
	for _, p := range []string{"Action", "Version", "AccessKeyId", "Signature", "SignatureMethod", "SignatureVersion", "SignatureNonce", "Timestamp", "Format"} {
		if params.Get(p) == "" {
			code := "MissingParameter"
			if p == "Signature" {
				code = "IncompleteSignature"
			}
			return params, Key{}, &apiError{status: http.StatusBadRequest, code: code, msg: fmt.Sprintf("The input parameter %q that is mandatory for processing this request is not supplied.", p)}
		}
	}
	if v := params.Get("Version"); v != Version {
		return params, Key{}, &apiError{status: http.StatusBadRequest, code: "InvalidVersion", msg: fmt.Sprintf("Specified parameter Version is not valid: %q.", v)}
	}
	if a := params.Get("Action"); a != Action {
		return params, Key{}, &apiError{status: http.StatusNotFound, code: "InvalidAction.NotFound", msg: fmt.Sprintf("Specified api is not found, please check your url and method: %q.", a)}
	}
	if f := params.Get("Format"); f != "JSON" && f != "XML" {
		return params, Key{}, &apiError{status: http.StatusBadRequest, code: "InvalidParameter", msg: "The specified parameter Format is not valid."}
	}
	// The gateway routes by region before it looks at credentials.
	if rg := params.Get("RegionId"); s.cfg.Region != "" && rg != "" && rg != s.cfg.Region {
		return params, Key{}, &apiError{status: http.StatusNotFound, code: "InvalidRegion.NotFound", msg: fmt.Sprintf("Specified region %q is not served by this endpoint, which serves %q.", rg, s.cfg.Region)}
	}
	ak := params.Get("AccessKeyId")
	key, ok := s.cfg.Keys[ak]
	if !ok {
		return params, Key{}, &apiError{status: http.StatusNotFound, code: "InvalidAccessKeyId.NotFound", msg: "Specified access key is not found."}
	}
	if key.Inactive {
		return params, key, &apiError{status: http.StatusBadRequest, code: "InvalidAccessKeyId.Inactive", msg: "Specified access key is disabled."}
	}
	if params.Get("SignatureMethod") != "HMAC-SHA1" || params.Get("SignatureVersion") != "1.0" {
		return params, key, &apiError{status: http.StatusBadRequest, code: "IncompleteSignature", msg: "The request signature does not conform to Aliyun standards: unsupported SignatureMethod or SignatureVersion."}
	}
	ts, err := time.Parse("2006-01-02T15:04:05Z", params.Get("Timestamp"))
	if err != nil {
		return params, key, &apiError{status: http.StatusBadRequest, code: "InvalidTimeStamp.Format", msg: "Specified time stamp or date value is not well formatted."}
	}
	if d := s.cfg.Now().Sub(ts); d > MaxSkew || d < -MaxSkew {
		return params, key, &apiError{status: http.StatusBadRequest, code: "InvalidTimeStamp.Expired", msg: "Specified time stamp or date value is expired."}
	}
	sts := StringToSign(r.Method, params)
	if Sign(sts, key.Secret) != params.Get("Signature") {
		// The real service echoes its string to sign; it holds no secret
		// but does hold the STS token, which a client must redact.
		return params, key, &apiError{status: http.StatusBadRequest, code: "SignatureDoesNotMatch", msg: "Specified signature is not matched with our calculation. server string to sign is:" + sts}
	}
	if e := s.useNonce(params.Get("SignatureNonce")); e != nil {
		return params, key, e
	}
	if e := s.checkToken(ak, key, params.Get("SecurityToken")); e != nil {
		return params, key, e
	}
	if key.Forbidden {
		return params, key, &apiError{status: http.StatusForbidden, code: "Forbidden.RAM", msg: "User not authorized to operate on the specified resource, or this API doesn't support RAM.", key: key}
	}
	return params, key, nil
}

// checkToken checks the STS token the way the gateway tells its failures
// apart: none where one is needed, one issued with another AccessKey (or
// none it issued), and one past its expiry.
func (s *Server) checkToken(ak string, key Key, tok string) *apiError {
	if key.SecurityToken == "" {
		if owner, ok := s.tokenOwner[tok]; ok && owner != ak {
			return &apiError{status: http.StatusBadRequest, code: "InvalidSecurityToken.MismatchWithAccessKey", msg: "Specified SecurityToken mismatch with the AccessKey."}
		}
		return nil
	}
	switch {
	case tok == "":
		return &apiError{status: http.StatusBadRequest, code: "InvalidSecurityToken.Malformed", msg: "Specified SecurityToken is malformed: missing."}
	case tok != key.SecurityToken:
		return &apiError{status: http.StatusBadRequest, code: "InvalidSecurityToken.MismatchWithAccessKey", msg: "Specified SecurityToken mismatch with the AccessKey."}
	case key.TokenExpired:
		return &apiError{status: http.StatusBadRequest, code: "InvalidSecurityToken.Expired", msg: "Specified SecurityToken is expired."}
	}
	return nil
}

func (s *Server) useNonce(nonce string) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	// Nonces only need remembering while their timestamp could still pass.
	if now.Sub(s.nonceGC) > time.Minute {
		for n, t := range s.nonces {
			if now.Sub(t) > 2*MaxSkew {
				delete(s.nonces, n)
			}
		}
		s.nonceGC = now
	}
	if _, used := s.nonces[nonce]; used {
		return &apiError{status: http.StatusBadRequest, code: "SignatureNonceUsed", msg: "Specified signature nonce was used already."}
	}
	s.nonces[nonce] = now
	return nil
}
