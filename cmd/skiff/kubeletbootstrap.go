package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/skiff-dev/skiff/kubelet"
	"github.com/skiff-dev/skiff/kubelet/certificate"
)

// The kubelet's TLS bootstrap, as upstream's --bootstrap-kubeconfig: without a usable
// --kubeconfig, the bootstrap kubeconfig's credentials (a bootstrap token) ask for a client
// certificate by CertificateSigningRequest; it is kept in --cert-dir, --kubeconfig is written
// to name it, and with --rotate-certificates it is renewed before it expires.

// bootstrapClient returns the kubelet's REST config on a rotating client certificate, and
// the loop that renews it (nil without --rotate-certificates).
func (o *kubeletOptions) bootstrapClient(ctx context.Context, nodeName string) (*rest.Config, func(context.Context, kubernetes.Interface), error) {
	bootstrap, err := clientcmd.BuildConfigFromFlags("", o.bootstrapKubeconfig)
	if err != nil {
		return nil, nil, fmt.Errorf("--bootstrap-kubeconfig: %w", err)
	}
	certDir := o.kubeletCertDir()
	server := rest.AnonymousClientConfig(bootstrap)
	if _, err := os.Stat(o.kubeconfig); err == nil {
		// an earlier bootstrap's kubeconfig: its server and CA, the certificate from the dir
		if existing, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig); err == nil {
			server = rest.AnonymousClientConfig(existing)
		}
	}
	m, err := certificate.New(ctx, certificate.Config{NodeName: nodeName, CertDir: certDir, Server: server, Bootstrap: bootstrap})
	if err != nil {
		return nil, nil, err
	}
	if err := writeKubeletKubeconfig(o.kubeconfig, server, m.CertificateFile()); err != nil {
		return nil, nil, err
	}
	cfg, err := m.RESTConfig()
	if err != nil {
		return nil, nil, err
	}
	if !o.rotateCertificates {
		return cfg, nil, nil
	}
	return cfg, m.Run, nil
}

// writeKubeletKubeconfig writes a kubeconfig reaching server with the client certificate and
// key in certFile, as upstream's kubelet writes its --kubeconfig after bootstrap.
func writeKubeletKubeconfig(path string, server *rest.Config, certFile string) error {
	if path == "" {
		return errors.New("--kubeconfig names where the bootstrapped kubeconfig is written")
	}
	caData := server.CAData
	if len(caData) == 0 && server.CAFile != "" {
		b, err := os.ReadFile(server.CAFile)
		if err != nil {
			return err
		}
		caData = b
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["default-cluster"] = &clientcmdapi.Cluster{Server: server.Host, CertificateAuthorityData: caData, TLSServerName: server.ServerName}
	cfg.AuthInfos["default-auth"] = &clientcmdapi.AuthInfo{ClientCertificate: certFile, ClientKey: certFile}
	cfg.Contexts["default-context"] = &clientcmdapi.Context{Cluster: "default-cluster", AuthInfo: "default-auth"}
	cfg.CurrentContext = "default-context"
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return clientcmd.WriteToFile(*cfg, path)
}

// servingCertificate is the kubelet API's certificate by kubelet-serving
// CertificateSigningRequest for the node's name and addresses, and the loop that asks for
// and renews it.
func (o *kubeletOptions) servingCertificate(k *kubelet.Kubelet) (func() *tls.Certificate, func(context.Context, kubernetes.Interface)) {
	name, ips := k.ServingAddresses()
	m := certificate.NewServing(certificate.Config{
		NodeName: name, CertDir: o.kubeletCertDir(),
		Serving: &certificate.Serving{DNSNames: []string{name}, IPAddresses: ips},
	})
	return m.Current, m.Run
}

// kubeletCertDir is --cert-dir, by default --root-dir/pki.
func (o *kubeletOptions) kubeletCertDir() string {
	if o.certDir != "" {
		return o.certDir
	}
	return filepath.Join(o.rootDir, "pki")
}
