package cas

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cleanEnv leaves no credentials anywhere the chain looks: no variables,
// an empty home, no ECS metadata service.
func cleanEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		for _, p := range []string{"ALIBABA_CLOUD_", "ALIBABACLOUD_", "ALICLOUD_"} {
			if strings.HasPrefix(name, p) {
				t.Setenv(name, "")
			}
		}
	}
	t.Setenv("HOME", t.TempDir())
	t.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
}

func TestResolveCredentialsFromEnvironment(t *testing.T) {
	tests := []struct {
		name   string
		env    map[string]string
		id     string
		token  string
		source string
	}{
		{"standard", map[string]string{"ALIBABA_CLOUD_ACCESS_KEY_ID": "STD", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "std-secret"}, "STD", "", "env"},
		{"standard sts", map[string]string{"ALIBABA_CLOUD_ACCESS_KEY_ID": "STD", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "std-secret", "ALIBABA_CLOUD_SECURITY_TOKEN": "std-token"}, "STD", "std-token", "env"},
		{"standard beats legacy", map[string]string{"ALIBABA_CLOUD_ACCESS_KEY_ID": "STD", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "std-secret", "ALICLOUD_ACCESS_KEY": "TF", "ALICLOUD_SECRET_KEY": "tf-secret"}, "STD", "", "env"},
		{"aliyun cli ALIBABACLOUD", map[string]string{"ALIBABACLOUD_ACCESS_KEY_ID": "ABC", "ALIBABACLOUD_ACCESS_KEY_SECRET": "abc-secret", "ALIBABACLOUD_SECURITY_TOKEN": "abc-token"}, "ABC", "abc-token", "environment ALIBABACLOUD_ACCESS_KEY_ID"},
		{"aliyun cli ALICLOUD", map[string]string{"ALICLOUD_ACCESS_KEY_ID": "ALC", "ALICLOUD_ACCESS_KEY_SECRET": "alc-secret"}, "ALC", "", "environment ALICLOUD_ACCESS_KEY_ID"},
		{"terraform", map[string]string{"ALICLOUD_ACCESS_KEY": "TF", "ALICLOUD_SECRET_KEY": "tf-secret", "ALICLOUD_SECURITY_TOKEN": "tf-token"}, "TF", "tf-token", "environment ALICLOUD_ACCESS_KEY"},
		{"order among legacy", map[string]string{"ALICLOUD_ACCESS_KEY": "TF", "ALICLOUD_SECRET_KEY": "tf-secret", "ALIBABACLOUD_ACCESS_KEY_ID": "ABC", "ALIBABACLOUD_ACCESS_KEY_SECRET": "abc-secret"}, "ABC", "", "environment ALIBABACLOUD_ACCESS_KEY_ID"},
		{"half standard, whole legacy", map[string]string{"ALIBABA_CLOUD_ACCESS_KEY_ID": "STD", "ALICLOUD_ACCESS_KEY": "TF", "ALICLOUD_SECRET_KEY": "tf-secret"}, "TF", "", "environment ALICLOUD_ACCESS_KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			c, err := ResolveCredentials("")
			if err != nil {
				t.Fatalf("ResolveCredentials: %v", err)
			}
			cc, err := c.GetCredentials()
			if err != nil {
				t.Fatal(err)
			}
			if c.AccessKeyID != tt.id || cc.SecurityToken != tt.token || !strings.Contains(c.Source, tt.source) {
				t.Errorf("got id %s, token %q, source %q; want %s, %q, %q", c.AccessKeyID, cc.SecurityToken, c.Source, tt.id, tt.token, tt.source)
			}
			if got := c.Redact("x " + cc.AccessKeySecret + " y"); strings.Contains(got, "secret") {
				t.Errorf("Redact = %q; the secret read from the environment is not scrubbed", got)
			}
		})
	}
}

func TestNoCredentials(t *testing.T) {
	cleanEnv(t)
	// One family's id with another's secret is never paired.
	t.Setenv("ALIBABACLOUD_ACCESS_KEY_ID", "ABC")
	t.Setenv("ALICLOUD_SECRET_KEY", "tf-secret-value")
	_, err := ResolveCredentials("")
	var nc *ErrNoCredentials
	if !errors.As(err, &nc) {
		t.Fatalf("ResolveCredentials = %v; want ErrNoCredentials", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"ALIBABA_CLOUD_ACCESS_KEY_ID", "ALICLOUD_ACCESS_KEY", "ALIBABA_CLOUD_OIDC_TOKEN_FILE", "ChainableRamRoleArn",
		"ALIBABA_CLOUD_CREDENTIALS_FILE", "ALIBABA_CLOUD_CREDENTIALS_URI", "ALIBABA_CLOUD_ECS_METADATA_DISABLED",
		"ALIBABACLOUD_ACCESS_KEY_ID is set but ALIBABACLOUD_ACCESS_KEY_SECRET is not",
		"ALICLOUD_SECRET_KEY is set but ALICLOUD_ACCESS_KEY is not",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("ErrNoCredentials does not mention %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "tf-secret-value") {
		t.Errorf("ErrNoCredentials quotes a secret:\n%s", msg)
	}
}

// The chain's later steps the error message promises: the aliyun CLI's
// config (modes the SDK supports) and ALIBABA_CLOUD_CREDENTIALS_URI.
func TestResolveCredentialsFromTheChain(t *testing.T) {
	t.Run("cli profile", func(t *testing.T) {
		cleanEnv(t)
		dir := filepath.Join(os.Getenv("HOME"), ".aliyun")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		conf := `{"current":"work","profiles":[{"name":"work","mode":"AK","access_key_id":"CLI","access_key_secret":"cli-secret","region_id":"eu-central-1"},
			{"name":"sso","mode":"CloudSSO","region_id":"cn-shanghai"}]}`
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := ResolveCredentials("")
		if err != nil || c.AccessKeyID != "CLI" {
			t.Fatalf("ResolveCredentials = %v, %v; want the current profile's key", c, err)
		}
		if r := ProfileRegion(""); r != "eu-central-1" {
			t.Errorf("ProfileRegion = %q; want eu-central-1", r)
		}
		_, err = ResolveCredentials("sso")
		var nc *ErrNoCredentials
		if !errors.As(err, &nc) || nc.Profile != "sso" || !strings.Contains(err.Error(), "not CloudSSO") {
			t.Errorf("ResolveCredentials(sso) = %v; want ErrNoCredentials naming the supported modes", err)
		}
	})
	t.Run("credentials uri", func(t *testing.T) {
		cleanEnv(t)
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"AccessKeyId":"URI","AccessKeySecret":"uri-secret","SecurityToken":"uri-token","Expiration":"2099-01-01T00:00:00Z"}`)
		}))
		defer ts.Close()
		t.Setenv("ALIBABA_CLOUD_CREDENTIALS_URI", ts.URL)
		c, err := ResolveCredentials("")
		if err != nil || c.AccessKeyID != "URI" {
			t.Fatalf("ResolveCredentials = %v, %v; want the key served at the URI", c, err)
		}
	})
}

func TestEnvRegion(t *testing.T) {
	tests := []struct {
		env      map[string]string
		region   string
		variable string
	}{
		{map[string]string{}, "", ""},
		{map[string]string{"ALICLOUD_REGION": "eu-central-1"}, "eu-central-1", "ALICLOUD_REGION"},
		{map[string]string{"ALICLOUD_REGION_ID": "ap-southeast-1", "ALICLOUD_REGION": "eu-central-1"}, "ap-southeast-1", "ALICLOUD_REGION_ID"},
		{map[string]string{"ALIBABA_CLOUD_REGION_ID": "cn-shanghai", "ALIBABACLOUD_REGION_ID": "cn-beijing"}, "cn-shanghai", "ALIBABA_CLOUD_REGION_ID"},
	}
	for _, tt := range tests {
		cleanEnv(t)
		for k, v := range tt.env {
			t.Setenv(k, v)
		}
		if r, v := EnvRegion(); r != tt.region || v != tt.variable {
			t.Errorf("EnvRegion with %v = %q, %q; want %q, %q", tt.env, r, v, tt.region, tt.variable)
		}
	}
}
