package encryption

import (
	"bytes"
	"context"
	"crypto/aes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/storage/value"
	upstreamaes "k8s.io/apiserver/pkg/storage/value/encrypt/aes"
	upstreamsecretbox "k8s.io/apiserver/pkg/storage/value/encrypt/secretbox"
)

var (
	secrets = schema.GroupResource{Resource: "secrets"}
	key1    = bytes.Repeat([]byte{1}, 32)
	key2    = bytes.Repeat([]byte{2}, 32)
)

const etcdKey = "/registry/secrets/default/s"

func b64(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "encryption.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func load(t *testing.T, yaml string) *Config {
	t.Helper()
	c, err := LoadConfig(writeConfig(t, yaml))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func oneProvider(provider, keyName string, key []byte) string {
	return `apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
  - ` + provider + `:
      keys:
      - name: ` + keyName + `
        secret: ` + b64(key) + `
`
}

// upstreamReader is upstream's own transformer for a provider and key, the judge of whether
// skiff's values are what kube-apiserver writes and reads.
func upstreamReader(t *testing.T, provider string, key []byte) value.Transformer {
	t.Helper()
	switch provider {
	case "secretbox":
		var k [32]byte
		copy(k[:], key)
		return upstreamsecretbox.NewSecretboxTransformer(k)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	if provider == "aescbc" {
		return upstreamaes.NewCBCTransformer(block)
	}
	gcm, err := upstreamaes.NewGCMTransformer(block)
	if err != nil {
		t.Fatal(err)
	}
	return gcm
}

func TestValuesAreUpstreamsForEveryProvider(t *testing.T) {
	plain := []byte("k8s\x00 a secret value")
	for _, provider := range []string{"aescbc", "aesgcm", "secretbox"} {
		t.Run(provider, func(t *testing.T) {
			tr := load(t, oneProvider(provider, "key1", key1)).For(secrets)
			stored, err := tr.ToStorage(plain, etcdKey)
			if err != nil {
				t.Fatal(err)
			}
			prefix := "k8s:enc:" + provider + ":v1:key1:"
			if !bytes.HasPrefix(stored, []byte(prefix)) {
				t.Fatalf("stored value starts %q, want %q", stored[:min(len(stored), 30)], prefix)
			}
			if bytes.Contains(stored, []byte("a secret value")) {
				t.Fatal("the stored value holds the plaintext")
			}
			upstream := upstreamReader(t, provider, key1)
			got, _, err := upstream.TransformFromStorage(context.Background(), stored[len(prefix):], value.DefaultContext(etcdKey))
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("upstream reads %q, %v; want the plaintext", got, err)
			}
			theirs, err := upstream.TransformToStorage(context.Background(), plain, value.DefaultContext(etcdKey))
			if err != nil {
				t.Fatal(err)
			}
			got, stale, err := tr.FromStorage(append([]byte(prefix), theirs...), etcdKey)
			if err != nil || stale || !bytes.Equal(got, plain) {
				t.Fatalf("skiff reads upstream's value as %q (stale %v), %v", got, stale, err)
			}
		})
	}
}

func TestAESGCMValueDoesNotReadUnderAnotherKey(t *testing.T) {
	tr := load(t, oneProvider("aesgcm", "key1", key1)).For(secrets)
	stored, err := tr.ToStorage([]byte("value"), etcdKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tr.FromStorage(stored, "/registry/secrets/default/other"); err == nil {
		t.Fatal("a value moved to another etcd key was read")
	}
}

func TestRotationReadsOldKeysAndReportsThemStale(t *testing.T) {
	old := load(t, oneProvider("aescbc", "key1", key1)).For(secrets)
	rotated := load(t, `apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
  - aescbc:
      keys:
      - {name: key2, secret: `+b64(key2)+`}
      - {name: key1, secret: `+b64(key1)+`}
  - identity: {}
`).For(secrets)
	byOld, _ := old.ToStorage([]byte("v"), etcdKey)
	if got, stale, err := rotated.FromStorage(byOld, etcdKey); err != nil || !stale || string(got) != "v" {
		t.Fatalf("value of the old key reads %q stale=%v err=%v, want v, stale", got, stale, err)
	}
	byNew, _ := rotated.ToStorage([]byte("v"), etcdKey)
	if !bytes.HasPrefix(byNew, []byte("k8s:enc:aescbc:v1:key2:")) {
		t.Fatalf("rotated config writes %q, want key2", byNew[:24])
	}
	if _, stale, err := rotated.FromStorage(byNew, etcdKey); err != nil || stale {
		t.Fatalf("value of the current key: stale=%v err=%v", stale, err)
	}
	// plaintext written before encryption was turned on reads through identity, stale
	if got, stale, err := rotated.FromStorage([]byte("k8s\x00plain"), etcdKey); err != nil || !stale || string(got) != "k8s\x00plain" {
		t.Fatalf("plaintext reads %q stale=%v err=%v", got, stale, err)
	}
	// without key1, its values no longer read
	if _, _, err := load(t, oneProvider("aescbc", "key2", key2)).For(secrets).FromStorage(byOld, etcdKey); err == nil {
		t.Fatal("a value of a removed key was read")
	}
}

func TestIdentityFirstWritesPlaintextAndStillReadsEncrypted(t *testing.T) {
	enc := load(t, oneProvider("secretbox", "k", key1)).For(secrets)
	decrypting := load(t, `apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
  - identity: {}
  - secretbox:
      keys: [{name: k, secret: `+b64(key1)+`}]
`).For(secrets)
	stored, _ := enc.ToStorage([]byte("v"), etcdKey)
	if got, stale, err := decrypting.FromStorage(stored, etcdKey); err != nil || !stale || string(got) != "v" {
		t.Fatalf("encrypted value reads %q stale=%v err=%v", got, stale, err)
	}
	if out, _ := decrypting.ToStorage([]byte("v"), etcdKey); string(out) != "v" {
		t.Fatalf("identity first writes %q, want the plaintext", out)
	}
}

func TestResourcesMatchAsUpstream(t *testing.T) {
	c := load(t, `apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets, widgets.example.com]
  providers: [{aesgcm: {keys: [{name: a, secret: `+b64(key1)+`}]}}]
- resources: ['*.apps']
  providers: [{secretbox: {keys: [{name: b, secret: `+b64(key1)+`}]}}]
- resources: ['*.']
  providers: [{aescbc: {keys: [{name: c, secret: `+b64(key1)+`}]}}]
`)
	cases := map[schema.GroupResource]string{
		secrets: "k8s:enc:aesgcm:v1:a:",
		{Group: "example.com", Resource: "widgets"}:             "k8s:enc:aesgcm:v1:a:",
		{Group: "apps", Resource: "deployments"}:                "k8s:enc:secretbox:v1:b:",
		{Resource: "configmaps"}:                                "k8s:enc:aescbc:v1:c:",
		{Group: "batch", Resource: "jobs"}:                      "",
		{Group: "example.com", Resource: "gadgets"}:             "",
		{Group: "rbac.authorization.k8s.io", Resource: "roles"}: "",
	}
	for gr, prefix := range cases {
		tr := c.For(gr)
		if prefix == "" {
			if tr != nil {
				t.Errorf("%s has a transformer, want none", gr)
			}
			continue
		}
		out, err := tr.ToStorage([]byte("v"), etcdKey)
		if err != nil || !bytes.HasPrefix(out, []byte(prefix)) {
			t.Errorf("%s writes %q (%v), want prefix %q", gr, out, err, prefix)
		}
	}
	all := load(t, `apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: ['*.*']
  providers: [{aescbc: {keys: [{name: c, secret: `+b64(key1)+`}]}}]
`)
	if all.For(schema.GroupResource{Group: "batch", Resource: "jobs"}) == nil {
		t.Error("*.* does not cover jobs.batch")
	}
}

func TestWrongConfigurationsAreRefusedSayingWhy(t *testing.T) {
	head := "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"
	cases := map[string]struct{ yaml, want string }{
		"empty":           {"", "is empty"},
		"not yaml":        {"{{{", "error decoding encryption provider configuration file"},
		"wrong kind":      {"apiVersion: apiserver.config.k8s.io/v1\nkind: Policy\n", "error decoding"},
		"unknown field":   {head + "resources:\n- resources: [secrets]\n  providers: [{identity: {}}]\n  extra: 1\n", `unknown field "resources[0].extra"`},
		"no resources":    {head + "resources: []\n", "resources: Required value"},
		"no providers":    {head + "resources:\n- resources: [secrets]\n  providers: []\n", "resources[0].providers: Required value"},
		"short aes key":   {head + "resources:\n- resources: [secrets]\n  providers: [{aescbc: {keys: [{name: k, secret: " + b64([]byte("short")) + "}]}}]\n", "secret is not of the expected length, got 5, expected one of [16 24 32]"},
		"not base64":      {head + "resources:\n- resources: [secrets]\n  providers: [{secretbox: {keys: [{name: k, secret: '!!!'}]}}]\n", "secrets must be base64 encoded"},
		"two in one":      {head + "resources:\n- resources: [secrets]\n  providers: [{identity: {}, aescbc: {keys: [{name: k, secret: " + b64(key1) + "}]}}]\n", "more than one provider specified in a single element"},
		"masked":          {head + "resources:\n- resources: ['*.*']\n  providers: [{identity: {}}]\n- resources: [secrets]\n  providers: [{identity: {}}]\n", `resource "secrets" is masked by earlier rule "*.*"`},
		"star":            {head + "resources:\n- resources: ['*']\n  providers: [{identity: {}}]\n", "use '*.' to encrypt all the resources from core API group"},
		"kms unsupported": {head + "resources:\n- resources: [secrets]\n  providers: [{kms: {apiVersion: v2, name: k, endpoint: 'unix:///k.sock'}}]\n", "not supported by skiff"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "error reading encryption provider configuration file") {
		t.Fatalf("missing file: %v", err)
	}
}
