package cas

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Endpoint is where calls go.
type Endpoint struct {
	Scheme   string // "https" or "http"
	Host     string // host[:port]
	Loopback bool
}

func (e Endpoint) String() string { return e.Scheme + "://" + e.Host }

// centralRegions are the regions the official cas 2020-06-30 SDKs send to
// the central host cas.aliyuncs.com: the EndpointMap of
// github.com/aliyun/alibabacloud-go-sdk cas-20200630/client/client.go
// (the same map is in alibabacloud_cas20200630 for Python). Their newer
// releases also list ap-southeast-1, ap-southeast-2, ap-northeast-1,
// ap-south-1, eu-central-1, me-central-1 and me-east-1, each mapped to
// cas.<region>.aliyuncs.com, which is what the fallback gives anyway.
var centralRegions = map[string]bool{
	"cn-hangzhou": true, "ap-northeast-2-pop": true, "ap-southeast-3": true, "ap-southeast-5": true,
	"cn-beijing": true, "cn-beijing-finance-1": true, "cn-beijing-finance-pop": true, "cn-beijing-gov-1": true,
	"cn-beijing-nu16-b01": true, "cn-chengdu": true, "cn-edge-1": true, "cn-fujian": true,
	"cn-haidian-cm12-c01": true, "cn-hangzhou-bj-b01": true, "cn-hangzhou-finance": true,
	"cn-hangzhou-internal-prod-1": true, "cn-hangzhou-internal-test-1": true, "cn-hangzhou-internal-test-2": true,
	"cn-hangzhou-internal-test-3": true, "cn-hangzhou-test-306": true, "cn-hongkong": true,
	"cn-hongkong-finance-pop": true, "cn-huhehaote": true, "cn-huhehaote-nebula-1": true, "cn-north-2-gov-1": true,
	"cn-qingdao": true, "cn-qingdao-nebula": true, "cn-shanghai": true, "cn-shanghai-et15-b01": true,
	"cn-shanghai-et2-b01": true, "cn-shanghai-finance-1": true, "cn-shanghai-inner": true,
	"cn-shanghai-internal-test-1": true, "cn-shenzhen": true, "cn-shenzhen-finance-1": true,
	"cn-shenzhen-inner": true, "cn-shenzhen-st4-d01": true, "cn-shenzhen-su18-b01": true, "cn-wuhan": true,
	"cn-wulanchabu": true, "cn-yushanfang": true, "cn-zhangbei": true, "cn-zhangbei-na61-b01": true,
	"cn-zhangjiakou": true, "cn-zhangjiakou-na62-a01": true, "cn-zhengzhou-nebula-1": true, "eu-west-1": true,
	"eu-west-1-oxs": true, "rus-west-1-pop": true, "us-east-1": true, "us-west-1": true,
}

// vpcRegions have a VPC endpoint on the service's endpoint page
// (alibabacloud.com/help/en/ssl-certificate/developer-reference/endpoints).
var vpcRegions = map[string]bool{
	"cn-hangzhou": true, "ap-southeast-1": true, "ap-southeast-3": true, "ap-southeast-5": true,
}

// regionRE is the shape of every region id above, with room for new ones.
var regionRE = regexp.MustCompile(`^[a-z]{2,4}(-[a-z0-9]+){1,5}$`)

// ValidRegion reports whether s has the shape of a region id (cn-hangzhou,
// ap-southeast-1, cn-beijing-finance-1).
func ValidRegion(s string) bool { return len(s) <= 64 && regionRE.MatchString(s) }

// RegionalHost returns the host the official cas 2020-06-30 SDKs use for a
// region: cas.aliyuncs.com for the regions of their map, otherwise
// cas.<region>.aliyuncs.com ("regional" endpoint rule of darabonba-openapi,
// GetEndpointRules). With vpc, it is cas-vpc.<region>.aliyuncs.com, the form
// of the service's VPC endpoints, which exist in a few regions only.
func RegionalHost(region string, vpc bool) string {
	switch {
	case vpc:
		return "cas-vpc." + region + ".aliyuncs.com"
	case centralRegions[region]:
		return "cas.aliyuncs.com"
	}
	return "cas." + region + ".aliyuncs.com"
}

// ResolveEndpoint picks where calls go. An explicit endpoint (--endpoint)
// wins, checked by ParseEndpoint; otherwise the host follows the region as
// in RegionalHost, over https. A wrong host is not caught by the signature
// (RPC signatures do not cover it), so this is the one place it is decided.
// warn is non-empty when the operator should hear about the choice.
func ResolveEndpoint(explicit, region string, vpc, allowInsecure bool) (ep Endpoint, warn string, err error) {
	if explicit != "" {
		if vpc {
			return Endpoint{}, "", errors.New("--vpc and --endpoint do not go together: --endpoint names the host itself")
		}
		return ParseEndpoint(explicit, allowInsecure)
	}
	if region == "" {
		region = DefaultRegion
	}
	if !ValidRegion(region) {
		return Endpoint{}, "", fmt.Errorf("region %q: want a region id such as cn-hangzhou or eu-central-1", region)
	}
	ep = Endpoint{Scheme: "https", Host: RegionalHost(region, vpc)}
	if vpc && !vpcRegions[region] {
		warn = fmt.Sprintf("the service documents no VPC endpoint for %s; %s may not resolve", region, ep.Host)
	}
	return ep, warn, nil
}

// ParseEndpoint reads --endpoint. A bare host means https; "" means
// DefaultEndpoint. Plain http is refused unless the host is loopback or
// allowInsecure is set, in which case warn is non-empty and should be shown
// to the operator. Credentials in the URL are refused, and no error quotes
// them.
func ParseEndpoint(s string, allowInsecure bool) (ep Endpoint, warn string, err error) {
	if s == "" {
		s = DefaultEndpoint
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	shown := RedactEndpoint(s)
	u, err := url.Parse(s)
	if err != nil {
		if shown != s {
			// The parser's message may quote a piece of the userinfo.
			return Endpoint{}, "", fmt.Errorf("endpoint %q: not a valid URL", shown)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Endpoint{}, "", fmt.Errorf("endpoint %q: %v", shown, err)
	}
	if u.User != nil {
		return Endpoint{}, "", fmt.Errorf("endpoint %q: credentials in the URL are not allowed; certalloc signs its requests with the AccessKey", shown)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return Endpoint{}, "", fmt.Errorf("endpoint %q: want scheme://host[:port] and nothing else", shown)
	}
	if p := u.Port(); p != "" {
		// url.Parse takes any digits; the dialer would refuse the port on
		// every call, each a retried "network error".
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return Endpoint{}, "", fmt.Errorf("endpoint %q: port %s is not from 1 to 65535", shown, p)
		}
	}
	ep = Endpoint{Scheme: strings.ToLower(u.Scheme), Host: u.Host, Loopback: isLoopback(u.Hostname())}
	switch ep.Scheme {
	case "https":
	case "http":
		if !ep.Loopback {
			if !allowInsecure {
				return Endpoint{}, "", fmt.Errorf("endpoint %q: plain http is only allowed to loopback addresses; use https, or pass --insecure-endpoint if you really mean it", shown)
			}
			warn = fmt.Sprintf("endpoint %s is plain http to a non-loopback host: requests and their signatures travel unencrypted", ep)
		}
	default:
		return Endpoint{}, "", fmt.Errorf("endpoint %q: scheme must be https or http", shown)
	}
	return ep, warn, nil
}

// RedactEndpoint hides the userinfo of an endpoint URL ("https://u:p@h"
// becomes "https://***@h"), and its query and fragment, which is where a
// token would sit otherwise ("https://h/?token=x" becomes "https://h/?***"),
// for any message that quotes what the operator typed. It works on text
// that does not parse as a URL too.
func RedactEndpoint(s string) string {
	prefix, rest := "", s
	if i := strings.Index(s, "://"); i >= 0 {
		prefix, rest = s[:i+3], s[i+3:]
	}
	authority, tail := rest, ""
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		authority, tail = rest[:j], rest[j:]
	}
	if k := strings.LastIndex(authority, "@"); k >= 0 {
		authority = "***" + authority[k:]
	}
	if j := strings.IndexAny(tail, "?#"); j >= 0 {
		tail = tail[:j+1] + "***"
	}
	return prefix + authority + tail
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
