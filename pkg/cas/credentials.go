package cas

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
)

// Credentials is a credentials provider safe for many clients at once. The
// SDK's providers fill in fields lazily without locks, so every client of a
// run shares one of these instead. It also remembers every secret it handed
// out, so that any text can be scrubbed of them.
type Credentials struct {
	mu      sync.Mutex
	inner   credentials.CredentialsProvider
	secrets []string // AccessKey secrets and security tokens seen, with encodings
	// Source says where the credentials came from, for the operator.
	Source string
	// AccessKeyID of the first resolution; not a secret.
	AccessKeyID string
}

var _ credentials.CredentialsProvider = (*Credentials)(nil)

// GetCredentials implements credentials.CredentialsProvider.
func (c *Credentials) GetCredentials() (*credentials.Credentials, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cc, err := c.inner.GetCredentials()
	if err != nil {
		return nil, err
	}
	c.remember(cc.AccessKeySecret)
	c.remember(cc.SecurityToken)
	return cc, nil
}

// GetProviderName implements credentials.CredentialsProvider.
func (c *Credentials) GetProviderName() string { return c.inner.GetProviderName() }

func (c *Credentials) remember(s string) {
	if len(s) < 4 { // too short to scrub without mangling ordinary text
		return
	}
	for _, v := range []string{s, url.QueryEscape(s), url.PathEscape(s), url.QueryEscape(url.QueryEscape(s))} {
		found := false
		for _, have := range c.secrets {
			if have == v {
				found = true
				break
			}
		}
		if !found {
			c.secrets = append(c.secrets, v)
		}
	}
}

// Redact replaces every secret this provider has handed out, in any of the
// encodings a URL or a string to sign would hold it, with "***". It also
// cuts a service message at an echoed string to sign, which carries the
// security token.
func (c *Credentials) Redact(s string) string {
	lower := strings.ToLower(s)
	if i := strings.Index(lower, "string to sign"); i >= 0 {
		if j := strings.LastIndex(lower[:i], "server"); j >= 0 && strings.TrimSpace(lower[j+len("server"):i]) == "" {
			i = j
		}
		s = strings.TrimRight(s[:i], " .:") + " (string to sign withheld)"
	}
	if c == nil {
		return s
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.secrets {
		s = strings.ReplaceAll(s, v, "***")
	}
	return s
}

// StaticCredentials wraps a fixed AccessKey (and STS token, if any).
func StaticCredentials(id, secret, token, source string) (*Credentials, error) {
	var p credentials.CredentialsProvider
	var err error
	if token != "" {
		p, err = credentials.NewStaticSTSCredentialsProviderBuilder().WithAccessKeyId(id).WithAccessKeySecret(secret).WithSecurityToken(token).Build()
	} else {
		p, err = credentials.NewStaticAKCredentialsProviderBuilder().WithAccessKeyId(id).WithAccessKeySecret(secret).Build()
	}
	if err != nil {
		return nil, errors.New("incomplete AccessKey: both the id and the secret are needed")
	}
	return resolve(p, source)
}

// ErrNoCredentials says where credentials were looked for.
type ErrNoCredentials struct{ Profile string }

func (e *ErrNoCredentials) Error() string {
	if e.Profile != "" {
		return fmt.Sprintf(`no usable credentials in profile %q of ~/.aliyun/config.json.
Check the profile with 'aliyun configure list'; certalloc supports the modes AK, StsToken, RamRoleArn and EcsRamRole`, e.Profile)
	}
	return `no Alibaba Cloud credentials found. certalloc looked, in this order, for:
  1. ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET (plus ALIBABA_CLOUD_SECURITY_TOKEN for STS)
       export ALIBABA_CLOUD_ACCESS_KEY_ID=... ALIBABA_CLOUD_ACCESS_KEY_SECRET=...
  2. OIDC: ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE (RRSA on ACK)
  3. the aliyun CLI's ~/.aliyun/config.json, profile from --profile, ALIBABA_CLOUD_PROFILE or its "current"
       aliyun configure --profile NAME
  4. ~/.alibabacloud/credentials (INI), or the file named by ALIBABA_CLOUD_CREDENTIALS_FILE
  5. the ECS instance RAM role (unless ALIBABA_CLOUD_ECS_METADATA_DISABLED=true)
To try certalloc without an account, run 'certalloc emulator' and use the credentials it prints`
}

// ResolveCredentials finds credentials the way the aliyun tools do and
// resolves them once, before any worker starts. With profile set, only that
// profile of the aliyun CLI's config is used. The SDK's own error text is
// never shown: for a broken config file it quotes the whole file, secrets
// included.
func ResolveCredentials(profile string) (*Credentials, error) {
	if profile != "" {
		p := credentials.NewCLIProfileCredentialsProviderBuilder().WithProfileName(profile).Build()
		c, err := resolve(p, "aliyun CLI profile "+profile)
		if err != nil {
			return nil, &ErrNoCredentials{Profile: profile}
		}
		return c, nil
	}
	c, err := resolve(credentials.NewDefaultCredentialsProvider(), "")
	if err != nil {
		return nil, &ErrNoCredentials{}
	}
	return c, nil
}

func resolve(p credentials.CredentialsProvider, source string) (*Credentials, error) {
	c := &Credentials{inner: p, Source: source}
	cc, err := c.GetCredentials()
	if err != nil {
		return nil, err
	}
	if cc.AccessKeyId == "" || cc.AccessKeySecret == "" {
		return nil, errors.New("empty AccessKey")
	}
	c.AccessKeyID = cc.AccessKeyId
	if c.Source == "" {
		c.Source = cc.ProviderName
	}
	return c, nil
}

// ProfileRegion returns the region_id of a profile in the aliyun CLI's
// config (the named one, else ALIBABA_CLOUD_PROFILE, else "current"), or ""
// when there is none.
func ProfileRegion(profile string) string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(home, ".aliyun", "config.json"))
	if err != nil {
		return ""
	}
	var conf struct {
		Current  string `json:"current"`
		Profiles []struct {
			Name     string `json:"name"`
			RegionID string `json:"region_id"`
		} `json:"profiles"`
	}
	if json.Unmarshal(b, &conf) != nil {
		return ""
	}
	if profile == "" {
		profile = os.Getenv("ALIBABA_CLOUD_PROFILE")
	}
	if profile == "" {
		profile = conf.Current
	}
	for _, p := range conf.Profiles {
		if p.Name == profile {
			return p.RegionID
		}
	}
	return ""
}
