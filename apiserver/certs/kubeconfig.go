package certs

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/runtime"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	clientcmdlatest "k8s.io/client-go/tools/clientcmd/api/latest"
)

// KubeconfigName names the cluster and the context in every kubeconfig written here.
const KubeconfigName = "skiff"

// WriteKubeconfig writes (mode 0600) a kubeconfig for the admin user that reaches server (an
// https:// URL) and trusts only the cluster CA; the CA, certificate and key are embedded, so
// the file works from anywhere. Its context is "skiff": cluster "skiff", user "admin".
func (p *PKI) WriteKubeconfig(path, server string) error {
	return writeKubeconfig(path, kubeconfig(server, p.CAPEM, AdminUser, p.adminCertPEM, p.adminKeyPEM))
}

// WriteUserKubeconfig mints a client certificate for user and groups (see ClientCertificate)
// and writes (mode 0600) a kubeconfig that authenticates with it, like WriteKubeconfig does
// for the admin. Kubelets and tests use it for identities other than the admin.
func (p *PKI) WriteUserKubeconfig(path, server, user string, groups ...string) error {
	certPEM, keyPEM, err := p.ClientCertificate(user, groups...)
	if err != nil {
		return err
	}
	return writeKubeconfig(path, kubeconfig(server, p.CAPEM, user, certPEM, keyPEM))
}

func kubeconfig(server string, caPEM []byte, user string, certPEM, keyPEM []byte) *clientcmdapi.Config {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[KubeconfigName] = &clientcmdapi.Cluster{
		Server:                   server,
		CertificateAuthorityData: caPEM,
	}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{
		ClientCertificateData: certPEM,
		ClientKeyData:         keyPEM,
	}
	cfg.Contexts[KubeconfigName] = &clientcmdapi.Context{
		Cluster:  KubeconfigName,
		AuthInfo: user,
	}
	cfg.CurrentContext = KubeconfigName
	return cfg
}

func writeKubeconfig(path string, cfg *clientcmdapi.Config) error {
	data, err := runtime.Encode(clientcmdlatest.Codec, cfg)
	if err != nil {
		return fmt.Errorf("encoding kubeconfig: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := writeFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	return nil
}
