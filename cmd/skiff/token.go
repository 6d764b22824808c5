package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"

	"github.com/skiff-dev/skiff/join"
)

// tokenOptions are the flags of `skiff token create`, named as kubeadm's.
type tokenOptions struct {
	kubeconfig  string
	ttl         time.Duration
	description string
	groups      []string
	usages      []string
	// server makes a token that joins servers too (serverTokenGroup, upserver.go)
	server bool
}

// defaultNodeTokenGroup is kubeadm's extra group of join tokens.
const defaultNodeTokenGroup = "system:bootstrappers:kubeadm:default-node-token"

func newTokenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage bootstrap tokens, with which nodes join the cluster",
	}
	o := &tokenOptions{}
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a bootstrap token and print the command that joins a node with it",
		Long: `Create a bootstrap token (a Secret of type bootstrap.kubernetes.io/token in kube-system,
as kubeadm's) and print the 'skiff agent' command that joins a machine to the cluster with it:
the server's address from cluster-info, the token, and the hash of the cluster CA's public key
that the agent pins, as 'kubeadm token create --print-join-command'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return createToken(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := create.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", filepath.Join(defaultDataDir(), "kubeconfig"), "an admin's kubeconfig (skiff up's DATA_DIR/kubeconfig)")
	f.DurationVar(&o.ttl, "ttl", 24*time.Hour, "how long the token is valid; 0 never expires")
	f.StringVar(&o.description, "description", "", "what the token is for, for people")
	f.StringSliceVar(&o.groups, "groups", []string{defaultNodeTokenGroup}, "extra groups the token authenticates as (system:bootstrappers:...)")
	f.StringSliceVar(&o.usages, "usages", []string{"signing", "authentication"}, "what the token may be used for: signing (cluster-info), authentication")
	f.BoolVar(&o.server, "server", false,
		"the token also joins servers ('skiff up --server' on a machine of a --cluster-init cluster), which read the cluster's CA keys: keep it as secret as they are")
	cmd.AddCommand(create)
	return cmd
}

func createToken(ctx context.Context, o *tokenOptions, stdout io.Writer) error {
	if err := bootstraputil.ValidateUsages(o.usages); err != nil {
		return err
	}
	for _, g := range o.groups {
		if err := bootstraputil.ValidateBootstrapGroupName(g); err != nil {
			return err
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	server, caPEM, err := joinTarget(ctx, client, cfg)
	if err != nil {
		return err
	}
	hash, err := caHash(caPEM)
	if err != nil {
		return err
	}
	token, err := bootstraputil.GenerateBootstrapToken()
	if err != nil {
		return err
	}
	id, secret, _ := strings.Cut(token, ".")
	data := map[string][]byte{
		bootstrapapi.BootstrapTokenIDKey:     []byte(id),
		bootstrapapi.BootstrapTokenSecretKey: []byte(secret),
	}
	if o.description != "" {
		data[bootstrapapi.BootstrapTokenDescriptionKey] = []byte(o.description)
	}
	if o.ttl > 0 {
		data[bootstrapapi.BootstrapTokenExpirationKey] = []byte(time.Now().Add(o.ttl).UTC().Format(time.RFC3339))
	}
	if o.server {
		o.groups = append(o.groups, serverTokenGroup)
	}
	if len(o.groups) > 0 {
		data[bootstrapapi.BootstrapTokenExtraGroupsKey] = []byte(strings.Join(o.groups, ","))
	}
	for _, u := range o.usages {
		data[bootstrapapi.BootstrapTokenUsagePrefix+u] = []byte("true")
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: bootstraputil.BootstrapTokenSecretName(id), Namespace: metav1.NamespaceSystem},
		Type:       bootstrapapi.SecretTypeBootstrapToken,
		Data:       data,
	}
	if _, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating the token's Secret: %w", err)
	}
	fmt.Fprintf(stdout, "skiff agent --server %s --token %s --ca-cert-hash %s\n", server, token, hash)
	if o.server {
		fmt.Fprintf(stdout, "skiff up --server %s --token %s --ca-cert-hash %s\n", server, token, hash)
	}
	return nil
}

// joinTarget is the server URL and CA nodes join: cluster-info's, as the agent will read them,
// else the kubeconfig's.
func joinTarget(ctx context.Context, client kubernetes.Interface, cfg *rest.Config) (string, []byte, error) {
	if cm, err := client.CoreV1().ConfigMaps(metav1.NamespacePublic).Get(ctx, bootstrapapi.ConfigMapClusterInfo, metav1.GetOptions{}); err == nil {
		if kc, err := clientcmd.Load([]byte(cm.Data[bootstrapapi.KubeConfigKey])); err == nil {
			for _, c := range kc.Clusters {
				if c.Server != "" && len(c.CertificateAuthorityData) > 0 {
					return c.Server, c.CertificateAuthorityData, nil
				}
			}
		}
	}
	caPEM := cfg.CAData
	if len(caPEM) == 0 && cfg.CAFile != "" {
		b, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return "", nil, err
		}
		caPEM = b
	}
	if len(caPEM) == 0 {
		return "", nil, errors.New("the kubeconfig names no CA to pin")
	}
	return cfg.Host, caPEM, nil
}

// caHash is the pin of the first certificate in caPEM.
func caHash(caPEM []byte) (string, error) {
	b, _ := pem.Decode(caPEM)
	if b == nil {
		return "", errors.New("the cluster CA holds no certificate")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return "", err
	}
	return join.CACertHash(cert), nil
}
