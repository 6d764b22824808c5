package apiserver_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// encryptionConfig writes an EncryptionConfiguration for secrets with the given providers
// (YAML list items) into dir and returns its path.
func encryptionConfig(t *testing.T, providers ...string) string {
	t.Helper()
	yaml := "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n"
	for _, p := range providers {
		yaml += "  - " + p + "\n"
	}
	path := filepath.Join(t.TempDir(), "encryption.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func aescbcKey(name string, fill byte) string {
	return fmt.Sprintf("{aescbc: {keys: [{name: %s, secret: %s}]}}", name, base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{fill}, 32)))
}

func withEncryption(path string) apiservertest.Option {
	return func(c *apiserver.Config) { c.EncryptionProviderConfig = path }
}

// rawValue is what etcd holds at key, read with etcd's own client.
func rawValue(t *testing.T, s *apiservertest.Server, key string) []byte {
	t.Helper()
	resp, err := s.Etcd.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("etcd has no %s", key)
	}
	return resp.Kvs[0].Value
}

const plaintextMarker = "do-not-store-me-in-clear"

func createSecret(t *testing.T, s *apiservertest.Server, ns, name string) {
	t.Helper()
	_, err := s.Client.CoreV1().Secrets(ns).Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		StringData: map[string]string{"password": plaintextMarker},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// assertStoredWith checks a secret's stored value starts with prefix, holds no plaintext,
// and reads back through the API.
func assertStoredWith(t *testing.T, s *apiservertest.Server, ns, name, prefix string) {
	t.Helper()
	raw := rawValue(t, s, "/registry/secrets/"+ns+"/"+name)
	if !bytes.HasPrefix(raw, []byte(prefix)) {
		t.Errorf("secret %s/%s is stored as %q..., want prefix %q", ns, name, raw[:min(len(raw), 30)], prefix)
	}
	if prefix != "k8s\x00" && (bytes.Contains(raw, []byte(plaintextMarker)) || bytes.Contains(raw, []byte(name))) {
		t.Errorf("secret %s/%s is stored with its plaintext", ns, name)
	}
	got, err := s.Client.CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get %s/%s: %v", ns, name, err)
	}
	if string(got.Data["password"]) != plaintextMarker {
		t.Errorf("secret %s/%s reads back as %q", ns, name, got.Data["password"])
	}
}

func TestSecretsAreEncryptedAtRestAndServedInClear(t *testing.T) {
	s := apiservertest.Start(t, withEncryption(encryptionConfig(t, aescbcKey("key1", 1), "identity: {}")))
	ctx := context.Background()
	w, err := s.Client.CoreV1().Secrets("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	createSecret(t, s, "default", "db")
	assertStoredWith(t, s, "default", "db", "k8s:enc:aescbc:v1:key1:")

	// the watch cache reads the encrypted event
	select {
	case ev := <-w.ResultChan():
		if sec, ok := ev.Object.(*corev1.Secret); !ok || string(sec.Data["password"]) != plaintextMarker {
			t.Fatalf("watch event %s %T, want the secret in clear", ev.Type, ev.Object)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no watch event for the new secret")
	}
	list, err := s.Client.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{ResourceVersion: ""})
	if err != nil || len(list.Items) != 1 || string(list.Items[0].Data["password"]) != plaintextMarker {
		t.Fatalf("list: %v %v", list, err)
	}

	// an update is encrypted too, a no-op update writes nothing
	sec, _ := s.Client.CoreV1().Secrets("default").Get(ctx, "db", metav1.GetOptions{})
	sec.Labels = map[string]string{"tier": "db"}
	updated, err := s.Client.CoreV1().Secrets("default").Update(ctx, sec, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	assertStoredWith(t, s, "default", "db", "k8s:enc:aescbc:v1:key1:")
	again, err := s.Client.CoreV1().Secrets("default").Update(ctx, updated, metav1.UpdateOptions{})
	if err != nil || again.ResourceVersion != updated.ResourceVersion {
		t.Fatalf("a no-op update of a current secret wrote: %s -> %s (%v)", updated.ResourceVersion, again.ResourceVersion, err)
	}

	// other resources are stored as before: protobuf in the clear
	if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "plain"}, Data: map[string]string{"k": "visible"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if raw := rawValue(t, s, "/registry/configmaps/default/plain"); !bytes.HasPrefix(raw, []byte("k8s\x00")) || !bytes.Contains(raw, []byte("visible")) {
		t.Errorf("configmap stored as %q, want protobuf in clear", raw)
	}

	// every transformation is counted
	metrics := scrapeMetrics(t, s.Config)
	for _, want := range []string{
		`apiserver_storage_transformation_operations_total{resource="secrets",status="OK",transformation_type="to_storage",transformer_prefix="k8s:enc:aescbc:v1:"}`,
		`apiserver_storage_transformation_operations_total{resource="secrets",status="OK",transformation_type="from_storage",transformer_prefix="k8s:enc:aescbc:v1:"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func scrapeMetrics(t *testing.T, cfg *rest.Config) string {
	t.Helper()
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(cfg.Host + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, body)
	}
	return string(body)
}

// TestKeyRotationByRewritingEverySecret follows upstream's documented rotation: secrets
// written in clear, then encryption turned on, a new key added first, the old one removed;
// `kubectl get secrets -A -o json | kubectl replace -f -` moves every secret to the key that
// writes, even though the secrets themselves do not change.
func TestKeyRotationByRewritingEverySecret(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("no kubectl on PATH")
	}
	s := apiservertest.Start(t)
	ctx := context.Background()
	for _, ns := range []string{"default", "kube-system"} {
		createSecret(t, s, ns, "rotated")
	}
	replaceAll := func(s *apiservertest.Server) {
		t.Helper()
		kubeconfig := adminKubeconfig(t, s)
		cmd := exec.Command("sh", "-c", kubectl+" get secrets -A -o json | "+kubectl+" replace -f -")
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "HOME="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kubectl get | replace: %v\n%s", err, out)
		}
	}
	assertAll := func(s *apiservertest.Server, prefix string) {
		t.Helper()
		for _, ns := range []string{"default", "kube-system"} {
			assertStoredWith(t, s, ns, "rotated", prefix)
		}
	}
	assertAll(s, "k8s\x00")

	// 1. encryption on, identity kept to read what is there: clear values still read
	s = s.Restart(t, withEncryption(encryptionConfig(t, aescbcKey("key1", 1), "identity: {}")))
	assertAll(s, "k8s\x00")
	replaceAll(s)
	assertAll(s, "k8s:enc:aescbc:v1:key1:")

	// 2. a new key first; the old one still reads
	s = s.Restart(t, withEncryption(encryptionConfig(t, "{aescbc: {keys: [{name: key2, secret: "+
		base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))+"}, {name: key1, secret: "+
		base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))+"}]}}")))
	assertAll(s, "k8s:enc:aescbc:v1:key1:")
	replaceAll(s)
	assertAll(s, "k8s:enc:aescbc:v1:key2:")

	// 3. the old key removed: everything still reads
	s = s.Restart(t, withEncryption(encryptionConfig(t, aescbcKey("key2", 2))))
	assertAll(s, "k8s:enc:aescbc:v1:key2:")

	// 4. a configuration without the key in use cannot read the secrets, and says why
	s = s.Restart(t, withEncryption(encryptionConfig(t, aescbcKey("key3", 3))))
	_, err = s.Client.CoreV1().Secrets("default").Get(ctx, "rotated", metav1.GetOptions{ResourceVersion: ""})
	if err == nil {
		t.Fatal("a secret encrypted with a removed key was read")
	}
}

func TestWrongEncryptionConfigurationStopsTheServerFromStarting(t *testing.T) {
	bad := encryptionConfig(t, "{aescbc: {keys: [{name: k, secret: "+base64.StdEncoding.EncodeToString([]byte("short"))+"}]}}")
	_, err := apiserver.New(apiserver.Config{EncryptionProviderConfig: bad, Etcd: &clientv3.Client{}})
	want := "--encryption-provider-config: encryption provider configuration file " + fmt.Sprintf("%q", bad) +
		": resources[0].providers[0].aescbc.keys[0].secret: Invalid value: \"REDACTED\": secret is not of the expected length, got 5, expected one of [16 24 32]"
	if err == nil || err.Error() != want {
		t.Fatalf("error\n %v\nwant\n %s", err, want)
	}
}
