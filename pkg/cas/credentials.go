package cas

import (
	"encoding/json"
	"errors"
	"fmt"
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
	secrets secrets // AccessKey secrets and security tokens seen
	// Source says where the credentials came from, for the operator.
	Source string
	// AccessKeyID of the first resolution; not a secret.
	AccessKeyID string
}

var _ credentials.CredentialsProvider = (*Credentials)(nil)

// credentialsError is a failure to get credentials for one call: a
// refreshing provider (ECS RAM role, OIDC, RamRoleArn) could not reach STS
// or the metadata service. The request was never built, let alone sent.
type credentialsError struct{ provider string }

func (e *credentialsError) Error() string {
	return "credentials provider " + e.provider + " gave no credentials"
}

// GetCredentials implements credentials.CredentialsProvider. The inner
// provider's error text is dropped: for a broken config file it quotes the
// file, secrets included.
func (c *Credentials) GetCredentials() (*credentials.Credentials, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cc, err := c.inner.GetCredentials()
	if err != nil {
		return nil, &credentialsError{provider: c.inner.GetProviderName()}
	}
	c.secrets.add(cc.AccessKeySecret)
	c.secrets.add(cc.SecurityToken)
	return cc, nil
}

// GetProviderName implements credentials.CredentialsProvider.
func (c *Credentials) GetProviderName() string { return c.inner.GetProviderName() }

// Redact replaces every secret this provider has handed out with "***",
// in any encoding a URL, a string to sign, a JSON body or a base64 blob
// would give it. It also cuts a service message at an echoed string to
// sign, which carries the security token. A nil *Credentials only cuts.
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
	return c.secrets.redact(s)
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

// legacyEnv are the other names tools on the same machine read an AccessKey
// from, tried in this order after the SDK's own ALIBABA_CLOUD_* names. Each
// family is used whole: an id is never paired with another family's secret.
var legacyEnv = []struct{ id, secret, token string }{
	// The aliyun CLI (config/profile.go, Profile.OverwriteWithFlags).
	{"ALIBABACLOUD_ACCESS_KEY_ID", "ALIBABACLOUD_ACCESS_KEY_SECRET", "ALIBABACLOUD_SECURITY_TOKEN"},
	{"ALICLOUD_ACCESS_KEY_ID", "ALICLOUD_ACCESS_KEY_SECRET", "ALICLOUD_SECURITY_TOKEN"},
	// The Terraform and Pulumi alicloud providers.
	{"ALICLOUD_ACCESS_KEY", "ALICLOUD_SECRET_KEY", "ALICLOUD_SECURITY_TOKEN"},
	// The aliyun CLI's bare ACCESS_KEY_ID, ACCESS_KEY_SECRET and
	// SECURITY_TOKEN are left out on purpose: other vendors' tools use the
	// same names, and a run must not sign with another cloud's key.
}

// regionEnv are the names a region id is read from, in order: the SDKs' and
// the aliyun CLI's, then the Terraform provider's.
var regionEnv = []string{"ALIBABA_CLOUD_REGION_ID", "ALIBABACLOUD_REGION_ID", "ALICLOUD_REGION_ID", "ALICLOUD_REGION"}

// EnvRegion returns the region id set in the environment and the variable
// it came from, or "", "" when none is set. The SDK reads none of these.
func EnvRegion() (region, variable string) {
	for _, name := range regionEnv {
		if v := strings.TrimSpace(os.Getenv(name)); v != "" {
			return v, name
		}
	}
	return "", ""
}

// ErrNoCredentials says where credentials were looked for.
type ErrNoCredentials struct {
	Profile string
	// Hints name variables set without their pair, a likely typo.
	Hints []string
}

func (e *ErrNoCredentials) Error() string {
	var b strings.Builder
	if e.Profile != "" {
		fmt.Fprintf(&b, `no usable credentials in profile %q of ~/.aliyun/config.json.
Check the profile with 'aliyun configure list'; certalloc supports the modes AK, StsToken, RamRoleArn, EcsRamRole, OIDC and ChainableRamRoleArn (not CloudSSO, OAuth or External)`, e.Profile)
	} else {
		b.WriteString(`no Alibaba Cloud credentials found. certalloc looked, in this order, for:
  1. ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET (plus ALIBABA_CLOUD_SECURITY_TOKEN for STS)
       export ALIBABA_CLOUD_ACCESS_KEY_ID=... ALIBABA_CLOUD_ACCESS_KEY_SECRET=...
     then, as the aliyun CLI and Terraform name them, each pair with its token:
       ALIBABACLOUD_ACCESS_KEY_ID, ALIBABACLOUD_ACCESS_KEY_SECRET, ALIBABACLOUD_SECURITY_TOKEN
       ALICLOUD_ACCESS_KEY_ID, ALICLOUD_ACCESS_KEY_SECRET, ALICLOUD_SECURITY_TOKEN
       ALICLOUD_ACCESS_KEY, ALICLOUD_SECRET_KEY, ALICLOUD_SECURITY_TOKEN
  2. OIDC: ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE (RRSA on ACK)
  3. the aliyun CLI's ~/.aliyun/config.json, profile from --profile, ALIBABA_CLOUD_PROFILE or its "current";
     modes AK, StsToken, RamRoleArn, EcsRamRole, OIDC, ChainableRamRoleArn
     (skipped when ALIBABA_CLOUD_CLI_PROFILE_DISABLED=true)
       aliyun configure --profile NAME
  4. ~/.alibabacloud/credentials (INI: access_key, ecs_ram_role, ram_role_arn), or the file named by ALIBABA_CLOUD_CREDENTIALS_FILE
  5. the ECS instance RAM role (unless ALIBABA_CLOUD_ECS_METADATA_DISABLED=true)
  6. the URL in ALIBABA_CLOUD_CREDENTIALS_URI
To try certalloc without an account, run 'certalloc emulator' and use the credentials it prints`)
	}
	for _, h := range e.Hints {
		b.WriteString("\nnote: ")
		b.WriteString(h)
	}
	return b.String()
}

// ResolveCredentials finds credentials the way the aliyun tools do and
// resolves them once, before any worker starts. With profile set, only that
// profile of the aliyun CLI's config is used. Otherwise the SDK's default
// chain is used, with the legacy environment names of legacyEnv tried right
// after its own. The SDK's own error text is never shown: for a broken
// config file it quotes the whole file, secrets included.
func ResolveCredentials(profile string) (*Credentials, error) {
	if profile != "" {
		p := credentials.NewCLIProfileCredentialsProviderBuilder().WithProfileName(profile).Build()
		c, err := resolve(p, "aliyun CLI profile "+profile)
		if err != nil {
			return nil, &ErrNoCredentials{Profile: profile}
		}
		return c, nil
	}
	standard := os.Getenv("ALIBABA_CLOUD_ACCESS_KEY_ID") != "" && os.Getenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET") != ""
	if !standard {
		for _, f := range legacyEnv {
			id, secret := os.Getenv(f.id), os.Getenv(f.secret)
			if id != "" && secret != "" {
				return StaticCredentials(id, secret, os.Getenv(f.token), "environment "+f.id)
			}
		}
	}
	c, err := resolve(credentials.NewDefaultCredentialsProvider(), "")
	if err != nil {
		return nil, &ErrNoCredentials{Hints: halfSet()}
	}
	return c, nil
}

// halfSet names the credential variables set without their pair.
func halfSet() []string {
	fams := append([]struct{ id, secret, token string }{
		{"ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", ""},
	}, legacyEnv...)
	var out []string
	for _, f := range fams {
		id, secret := os.Getenv(f.id) != "", os.Getenv(f.secret) != ""
		switch {
		case id && !secret:
			out = append(out, f.id+" is set but "+f.secret+" is not")
		case secret && !id:
			out = append(out, f.secret+" is set but "+f.id+" is not")
		}
	}
	return out
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
