package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
)

// ensureServiceAccountKey loads the service-account signing key, making it on the first start.
// The key file is the truth: a missing or stale sa.pub is written anew from it, but an existing
// sa.key is never replaced, since every token issued so far would stop verifying.
func (p *PKI) ensureServiceAccountKey() error {
	keyPEM, err := os.ReadFile(p.ServiceAccountKeyFile)
	if errors.Is(err, fs.ErrNotExist) {
		_, keyPEM, err = newKey()
		if err != nil {
			return err
		}
		if err := writeFileAtomic(p.ServiceAccountKeyFile, keyPEM, 0o600); err != nil {
			return err
		}
		slog.Info("created service-account signing key", "file", p.ServiceAccountKeyFile)
	} else if err != nil {
		return fmt.Errorf("reading service-account key: %w", err)
	} else if err := os.Chmod(p.ServiceAccountKeyFile, 0o600); err != nil {
		return fmt.Errorf("restricting service-account key: %w", err)
	}
	key, err := ParseServiceAccountKey(keyPEM)
	if err != nil {
		return fmt.Errorf("%s: %w", p.ServiceAccountKeyFile, err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return err
	}
	pubPEM := encodePEM("PUBLIC KEY", pubDER)
	if have, err := os.ReadFile(p.ServiceAccountPublicKeyFile); err != nil || !bytes.Equal(have, pubPEM) {
		if err := writeFileAtomic(p.ServiceAccountPublicKeyFile, pubPEM, 0o644); err != nil {
			return err
		}
	}
	p.ServiceAccountKey = key
	return nil
}

// ParseServiceAccountKey reads a PEM private key that can sign service-account tokens: RSA or
// ECDSA, in PKCS #1, SEC 1 or PKCS #8 form (kubeadm writes an RSA PKCS #1 sa.key; skiff
// writes ECDSA P-256).
func ParseServiceAccountKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("no PEM private key")
	}
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("a %T cannot sign service-account tokens (RSA or ECDSA only)", key)
	}
}
