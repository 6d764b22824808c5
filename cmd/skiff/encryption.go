package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// secretsEncryptionConfigFile is where skiff up keeps the EncryptionConfiguration it makes
// for --secrets-encryption, beside the PKI: losing it loses every secret.
const secretsEncryptionConfigFile = "encryption-config.yaml"

// ensureSecretsEncryptionConfig returns the path of dataDir's EncryptionConfiguration for
// secrets, writing one with a fresh 32-byte aescbc key the first time, as k3s's
// --secrets-encryption does. identity follows aescbc so that secrets stored before
// encryption was on still read (and move to the key when rewritten). An existing file is
// used as it is, so that an operator's rotation of its keys survives restarts.
func ensureSecretsEncryptionConfig(dataDir string) (string, error) {
	path := filepath.Join(dataDir, secretsEncryptionConfigFile)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	config := fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources:
  - secrets
  providers:
  - aescbc:
      keys:
      - name: aescbckey
        secret: %s
  - identity: {}
`, base64.StdEncoding.EncodeToString(key))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("secrets encryption config: %w", err)
	}
	if _, err := f.WriteString(config); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("secrets encryption config: %w", err)
	}
	return path, f.Close()
}
