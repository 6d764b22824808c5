package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
)

func TestServiceAccountKeyPairMadeOnceAndShared(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	first := mustEnsure(t, dir)
	if first.ServiceAccountKey == nil {
		t.Fatal("no service-account key")
	}
	if m := mode(t, first.ServiceAccountKeyFile); m != 0o600 {
		t.Errorf("sa.key mode = %o, want 600", m)
	}
	if m := mode(t, first.ServiceAccountPublicKeyFile); m != 0o644 {
		t.Errorf("sa.pub mode = %o, want 644", m)
	}
	block, _ := pem.Decode(readFile(t, first.ServiceAccountPublicKeyFile))
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("sa.pub is not a PEM public key: %q", readFile(t, first.ServiceAccountPublicKeyFile))
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !first.ServiceAccountKey.Public().(*ecdsa.PublicKey).Equal(pub) {
		t.Error("sa.pub is not the public half of sa.key")
	}

	// a second API server on the same data directory signs and verifies with the same key
	keyBefore := readFile(t, first.ServiceAccountKeyFile)
	pubBefore := readFile(t, first.ServiceAccountPublicKeyFile)
	if err := os.Remove(first.ServiceAccountPublicKeyFile); err != nil {
		t.Fatal(err)
	}
	second := mustEnsure(t, dir)
	if !bytes.Equal(readFile(t, second.ServiceAccountKeyFile), keyBefore) {
		t.Error("sa.key was replaced on restart")
	}
	if !second.ServiceAccountKey.Public().(*ecdsa.PublicKey).Equal(first.ServiceAccountKey.Public()) {
		t.Error("restart loaded another key")
	}
	if !bytes.Equal(readFile(t, second.ServiceAccountPublicKeyFile), pubBefore) {
		t.Error("sa.pub not written anew from sa.key")
	}
}

func TestServiceAccountKeyFromKubeadmRSA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(filepath.Join(dir, ServiceAccountKeyFileName), keyPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	p := mustEnsure(t, dir)
	if !key.PublicKey.Equal(p.ServiceAccountKey.Public()) {
		t.Error("an existing RSA sa.key was not used")
	}
	if m := mode(t, p.ServiceAccountKeyFile); m != 0o600 {
		t.Errorf("sa.key mode = %o, want 600", m)
	}
}

func TestServiceAccountKeyThatIsNoKeyIsAnError(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ServiceAccountKeyFileName), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(dir); err == nil {
		t.Fatal("Ensure accepted a sa.key that holds no key")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, ServiceAccountKeyFileName)); string(b) != "not a key" {
		t.Error("an unreadable sa.key was replaced")
	}
}
