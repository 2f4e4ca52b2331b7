package casemu

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/url"
	"sort"
	"strings"
)

// percentEncode encodes s by RFC 3986 as signature v1 wants it: only
// A-Z a-z 0-9 - _ . ~ stay as they are.
func percentEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) * 3 / 2)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// StringToSign builds the signature v1 string to sign from decoded
// parameters. Signature itself is left out; blank values are kept.
func StringToSign(method string, params url.Values) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		if k != "Signature" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var canon strings.Builder
	for _, k := range keys {
		for _, v := range params[k] {
			if canon.Len() > 0 {
				canon.WriteByte('&')
			}
			canon.WriteString(percentEncode(k))
			canon.WriteByte('=')
			canon.WriteString(percentEncode(v))
		}
	}
	return method + "&" + percentEncode("/") + "&" + percentEncode(canon.String())
}

// Sign returns the signature v1 (HMAC-SHA1) of stringToSign under secret.
func Sign(stringToSign, secret string) string {
	m := hmac.New(sha1.New, []byte(secret+"&"))
	m.Write([]byte(stringToSign))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
