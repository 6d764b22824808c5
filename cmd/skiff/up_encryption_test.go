package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/registry/storage/etcd3"
)

func TestUpEncryptsSecretsAtRestWithAKeyKeptInItsDataDir(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "skiff")
	port := freePort(t)
	encrypted := func(o *upOptions) { o.secretsEncryption = true }
	clientFor := func() kubernetes.Interface {
		cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dataDir, "kubeconfig"))
		if err != nil {
			t.Fatal(err)
		}
		return kubernetes.NewForConfigOrDie(cfg)
	}
	const value = "hunter2-in-clear"

	first := startUp(t, dataDir, port, encrypted)
	first.waitForLine(t, "ready")
	if _, err := clientFor().CoreV1().Secrets("default").Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db"}, StringData: map[string]string{"password": value},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := first.stop(t); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dataDir, secretsEncryptionConfigFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("encryption config: %v, mode %v; want a file only its owner reads", err, fi)
	}

	// what etcd holds, read with etcd's own client
	etcd, err := etcd3.StartEmbedded(context.Background(), filepath.Join(dataDir, "etcd"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := etcd.Client.Get(context.Background(), "/registry/secrets/", clientv3.WithPrefix())
	if err != nil {
		etcd.Close()
		t.Fatal(err)
	}
	etcd.Close()
	if len(resp.Kvs) == 0 {
		t.Fatal("etcd holds no secrets")
	}
	for _, kv := range resp.Kvs {
		if !bytes.HasPrefix(kv.Value, []byte("k8s:enc:aescbc:v1:aescbckey:")) || bytes.Contains(kv.Value, []byte(value)) {
			t.Errorf("%s is stored as %q..., want aescbc ciphertext", kv.Key, kv.Value[:min(len(kv.Value), 30)])
		}
	}

	// the next start reuses the key: the secret reads
	second := startUp(t, dataDir, port, encrypted)
	second.waitForLine(t, "ready")
	got, err := clientFor().CoreV1().Secrets("default").Get(context.Background(), "db", metav1.GetOptions{})
	if err != nil || string(got.Data["password"]) != value {
		t.Fatalf("after a restart the secret reads %v, %v", got, err)
	}
	if err := second.stop(t); err != nil {
		t.Fatal(err)
	}
}
