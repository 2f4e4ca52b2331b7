package cas

import (
	"strings"
	"testing"
)

func TestResolveEndpoint(t *testing.T) {
	tests := []struct {
		name     string
		explicit string
		region   string
		vpc      bool
		want     string
		warn     bool
		err      bool
	}{
		{"default region", "", "", false, "https://cas.aliyuncs.com", false, false},
		{"map region hangzhou", "", "cn-hangzhou", false, "https://cas.aliyuncs.com", false, false},
		{"map region shanghai", "", "cn-shanghai", false, "https://cas.aliyuncs.com", false, false},
		{"map region finance", "", "cn-shanghai-finance-1", false, "https://cas.aliyuncs.com", false, false},
		{"map region abroad", "", "us-west-1", false, "https://cas.aliyuncs.com", false, false},
		{"map region jakarta", "", "ap-southeast-5", false, "https://cas.aliyuncs.com", false, false},
		{"fallback frankfurt", "", "eu-central-1", false, "https://cas.eu-central-1.aliyuncs.com", false, false},
		{"fallback singapore", "", "ap-southeast-1", false, "https://cas.ap-southeast-1.aliyuncs.com", false, false},
		{"fallback tokyo", "", "ap-northeast-1", false, "https://cas.ap-northeast-1.aliyuncs.com", false, false},
		{"fallback unknown", "", "xx-new-9", false, "https://cas.xx-new-9.aliyuncs.com", false, false},
		{"vpc hangzhou", "", "cn-hangzhou", true, "https://cas-vpc.cn-hangzhou.aliyuncs.com", false, false},
		{"vpc singapore", "", "ap-southeast-1", true, "https://cas-vpc.ap-southeast-1.aliyuncs.com", false, false},
		{"vpc undocumented", "", "eu-central-1", true, "https://cas-vpc.eu-central-1.aliyuncs.com", true, false},
		{"explicit wins", "cas.example.com", "eu-central-1", false, "https://cas.example.com", false, false},
		{"explicit loopback", "http://127.0.0.1:8080", "eu-central-1", false, "http://127.0.0.1:8080", false, false},
		{"explicit and vpc", "cas.example.com", "", true, "", false, true},
		{"bad region upper", "", "EU-Central-1", false, "", false, true},
		{"bad region host", "", "evil.com/x", false, "", false, true},
		{"bad region no dash", "", "hangzhou", false, "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep, warn, err := ResolveEndpoint(tt.explicit, tt.region, tt.vpc, false)
			if (err != nil) != tt.err || (!tt.err && (ep.String() != tt.want || (warn != "") != tt.warn)) {
				t.Errorf("ResolveEndpoint(%q, %q, %v) = %v, %q, %v; want %s warn=%v err=%v",
					tt.explicit, tt.region, tt.vpc, ep, warn, err, tt.want, tt.warn, tt.err)
			}
		})
	}
}

func TestRegionalHostCoversTheDocumentedRegions(t *testing.T) {
	// API.md's list of regions the official SDKs send to the central host.
	for _, r := range []string{"cn-hangzhou", "cn-shanghai", "cn-beijing", "cn-shenzhen", "cn-qingdao", "cn-zhangjiakou",
		"cn-huhehaote", "cn-wulanchabu", "cn-chengdu", "cn-hongkong", "cn-wuhan", "cn-fujian", "ap-southeast-3",
		"ap-southeast-5", "ap-northeast-2-pop", "eu-west-1", "us-east-1", "us-west-1", "rus-west-1-pop",
		"cn-beijing-finance-1", "cn-hangzhou-finance", "cn-shenzhen-finance-1", "cn-beijing-gov-1", "cn-north-2-gov-1"} {
		if got := RegionalHost(r, false); got != "cas.aliyuncs.com" {
			t.Errorf("RegionalHost(%q) = %s; want cas.aliyuncs.com", r, got)
		}
		if !ValidRegion(r) {
			t.Errorf("ValidRegion(%q) = false", r)
		}
	}
	for r := range centralRegions {
		if !ValidRegion(r) {
			t.Errorf("ValidRegion(%q) = false for a region of the SDK's map", r)
		}
	}
}

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		in       string
		insecure bool
		want     string
		loopback bool
		warn     bool
		err      bool
	}{
		{"", false, "https://cas.aliyuncs.com", false, false, false},
		{"cas.aliyuncs.com", false, "https://cas.aliyuncs.com", false, false, false},
		{"http://127.0.0.1:8080", false, "http://127.0.0.1:8080", true, false, false},
		{"http://localhost:8080/", false, "http://localhost:8080", true, false, false},
		{"http://[::1]:9", false, "http://[::1]:9", true, false, false},
		{"http://10.0.0.1:8080", false, "", false, false, true},
		{"http://10.0.0.1:8080", true, "http://10.0.0.1:8080", false, true, false},
		{"ftp://x", false, "", false, false, true},
		{"https://x/path", false, "", false, false, true},
		{"https://user:pw@x", false, "", false, false, true},
		{"https://x:443", false, "https://x:443", false, false, false},
		{"https://x:65535", false, "https://x:65535", false, false, false},
		{"https://x:65536", false, "", false, false, true},
		{"https://x:99999", false, "", false, false, true},
		{"https://x:0", false, "", false, false, true},
		{"http://127.0.0.1:000080", false, "http://127.0.0.1:000080", true, false, false},
	}
	for _, tt := range tests {
		ep, warn, err := ParseEndpoint(tt.in, tt.insecure)
		if (err != nil) != tt.err || (!tt.err && (ep.String() != tt.want || ep.Loopback != tt.loopback || (warn != "") != tt.warn)) {
			t.Errorf("ParseEndpoint(%q, %v) = %v, %q, %v; want %s loopback=%v warn=%v err=%v", tt.in, tt.insecure, ep, warn, err, tt.want, tt.loopback, tt.warn, tt.err)
		}
	}
}

// An endpoint with credentials in it is refused, and no error quotes them,
// whichever check refuses it.
func TestEndpointCredentialsNeverEchoed(t *testing.T) {
	for _, in := range []string{
		"https://LTAIuser:s3cretPass@cas.aliyuncs.com",
		"https://LTAIuser:s3cretPass@cas.aliyuncs.com/path",
		"http://LTAIuser:s3cretPass@10.0.0.1:8080",
		"ftp://LTAIuser:s3cretPass@x",
		"https://LTAIuser:s3cret%zzPass@cas.aliyuncs.com",   // bad escape in the userinfo
		"https://LTAIuser:s3cretPass@cas.aliyuncs.com:port", // bad port
		"LTAIuser:s3cretPass@cas.aliyuncs.com",
		"https://LTAIuser:s3cretPass@cas.aliyuncs.com:99999", // port out of range
	} {
		_, _, err := ParseEndpoint(in, true)
		if err == nil {
			t.Errorf("ParseEndpoint(%q) accepted credentials", in)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "LTAIuser") {
			t.Errorf("ParseEndpoint(%q) = %v; the error quotes the credentials", in, err)
		}
		if !strings.Contains(err.Error(), "***@") {
			t.Errorf("ParseEndpoint(%q) = %v; want the endpoint shown with ***@", in, err)
		}
	}
}

func TestRedactEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"https://u:p@h.example:443/x?y":   "https://***@h.example:443/x?***",
		"https://h.example/?token=s3cret": "https://h.example/?***",
		"https://h.example#s3cret":        "https://h.example#***",
		"https://h.example/p?a#b":         "https://h.example/p?***",
		"h.example?x=@y":                  "h.example?***",
		"u:p@h":                           "***@h",
		"https://h.example/a@b":           "https://h.example/a@b",
		"https://a@b@h":                   "https://***@h",
		"https://h.example":               "https://h.example",
	} {
		if got := RedactEndpoint(in); got != want {
			t.Errorf("RedactEndpoint(%q) = %q; want %q", in, got, want)
		}
	}
}

// A token in the query or fragment of --endpoint is refused without being
// echoed: --endpoint takes scheme://host[:port] only.
func TestEndpointQueryNeverEchoed(t *testing.T) {
	for _, in := range []string{
		"https://cas.aliyuncs.com/?AccessKeySecret=s3cretPass",
		"https://cas.aliyuncs.com?SecurityToken=s3cretPass",
		"https://cas.aliyuncs.com#s3cretPass",
		"https://cas.aliyuncs.com/?x=%zz&t=s3cretPass", // does not parse
	} {
		_, _, err := ParseEndpoint(in, false)
		if err == nil {
			t.Errorf("ParseEndpoint(%q) accepted a query or fragment", in)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("ParseEndpoint(%q) = %v; the error quotes the query", in, err)
		}
	}
}
