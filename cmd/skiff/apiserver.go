package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/apiserver/authz"
	"github.com/skiff-dev/skiff/apiserver/certs"
	"github.com/skiff-dev/skiff/registry"
)

// apiServerOptions are the flags of `skiff apiserver`, named as kube-apiserver's.
type apiServerOptions struct {
	etcd                        etcdOptions
	dataDir                     string
	bindAddress                 string
	securePort                  int
	tokenAuthFile               string
	maxRequestsInFlight         int
	maxMutatingRequestsInFlight int
	requestTimeout              time.Duration
	disableAdmissionPlugins     []string
	authorizationModes          []string
	auditPolicyFile             string
	auditLogPath                string
	encryptionProviderConfig    string
	auditLogRotation            apiserver.AuditLogRotation
	auditWebhook                apiserver.AuditWebhook
	auditWebhookMode            string
	serviceAccountIssuer        string
	apiAudiences                []string
	kubeletCAFile               string
	// kubeletCA verifies kubelets' serving certificates: --kubelet-certificate-authority's
	// contents, or the cluster CA in skiff up, whose kubelet has a certificate from it.
	kubeletCA *x509.CertPool
	// serviceClusterIPRange is --service-cluster-ip-range: one CIDR, or one of each family.
	serviceClusterIPRange string
}

func newAPIServerCommand(g *globalOptions) *cobra.Command {
	o := &apiServerOptions{}
	cmd := &cobra.Command{
		Use:   "apiserver",
		Short: "Serve the Kubernetes API over HTTPS, on embedded etcd or an etcd cluster",
		Long: `Serve the Kubernetes API over HTTPS.

Without --etcd-servers, etcd runs inside this process with its data in DATA_DIR/etcd.
The cluster's certificates are made once in DATA_DIR/pki, and an admin kubeconfig is
written to DATA_DIR/kubeconfig.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			return runAPIServer(ctx, o, g.verbosity)
		},
	}
	o.addFlags(cmd.Flags())
	return cmd
}

func (o *apiServerOptions) addFlags(f *pflag.FlagSet) {
	f.StringSliceVar(&o.etcd.servers, "etcd-servers", nil,
		"etcd servers to connect to, as comma-separated URLs; none starts an embedded etcd in DATA_DIR/etcd")
	f.StringVar(&o.etcd.caFile, "etcd-cafile", "", "CA bundle that verifies the etcd servers")
	f.StringVar(&o.etcd.certFile, "etcd-certfile", "", "client certificate for etcd")
	f.StringVar(&o.etcd.keyFile, "etcd-keyfile", "", "key of --etcd-certfile")
	f.StringVar(&o.dataDir, "data-dir", defaultDataDir(), "where the certificates, the kubeconfig and the embedded etcd live")
	f.StringVar(&o.bindAddress, "bind-address", "0.0.0.0",
		"IP address to serve on; 0.0.0.0 or :: serves on every interface and address family")
	f.IntVar(&o.securePort, "secure-port", 6443, "port to serve HTTPS on")
	f.StringVar(&o.tokenAuthFile, "token-auth-file", "",
		`static bearer tokens: a CSV file of token,user,uid,"group1,group2" lines`)
	f.IntVar(&o.maxRequestsInFlight, "max-requests-inflight", 400,
		"most non-mutating requests served at once; beyond it requests are answered 429")
	f.IntVar(&o.maxMutatingRequestsInFlight, "max-mutating-requests-inflight", 200,
		"most mutating requests served at once; beyond it requests are answered 429")
	f.DurationVar(&o.requestTimeout, "request-timeout", 60*time.Second,
		"longest a non-watch request may take before it is answered 504")
	f.StringVar(&o.serviceAccountIssuer, "service-account-issuer", apiserver.DefaultServiceAccountIssuer,
		"the iss claim of the service-account tokens this server issues and accepts")
	f.StringSliceVar(&o.apiAudiences, "api-audiences", nil,
		"audiences a service-account token must name to authenticate here; default the issuer")
	f.StringSliceVar(&o.disableAdmissionPlugins, "disable-admission-plugins", nil,
		fmt.Sprintf("admission plugins to turn off (all of %s run by default)", strings.Join(apiserver.AdmissionPlugins, ", ")))
	f.StringSliceVar(&o.authorizationModes, "authorization-mode", apiserver.DefaultAuthorizationModes,
		"ordered list of authorization modes: Node, RBAC, AlwaysAllow, AlwaysDeny (members of system:masters are always allowed)")
	f.StringVar(&o.auditPolicyFile, "audit-policy-file", "", "audit.k8s.io/v1 Policy saying which requests are recorded, and how much of them")
	f.StringVar(&o.auditLogPath, "audit-log-path", "", `file audit events are appended to, one JSON line each ("-": standard output)`)
	f.IntVar(&o.auditLogRotation.MaxAge, "audit-log-maxage", 0, "days to keep rotated audit log files (0: no limit)")
	f.IntVar(&o.auditLogRotation.MaxBackups, "audit-log-maxbackup", 0, "rotated audit log files to keep (0: no limit)")
	f.IntVar(&o.auditLogRotation.MaxSize, "audit-log-maxsize", 0, "megabytes the audit log grows to before it is rotated (0: 100)")
	f.BoolVar(&o.auditLogRotation.Compress, "audit-log-compress", false, "gzip rotated audit log files")
	f.StringVar(&o.auditWebhook.ConfigFile, "audit-webhook-config-file", "",
		"kubeconfig of a webhook that receives audit events, POSTed as audit.k8s.io/v1 EventLists")
	f.StringVar(&o.auditWebhookMode, "audit-webhook-mode", "batch",
		"how events reach the webhook: only batch (buffered, sent apart from requests, dropped when the buffer is full)")
	f.IntVar(&o.auditWebhook.BufferSize, "audit-webhook-batch-buffer-size", 10000, "audit events waiting for the webhook; beyond it they are dropped")
	f.IntVar(&o.auditWebhook.MaxBatchSize, "audit-webhook-batch-max-size", 400, "most audit events in one webhook request")
	f.DurationVar(&o.auditWebhook.MaxBatchWait, "audit-webhook-batch-max-wait", 30*time.Second, "longest an audit event waits for its batch to fill")
	f.DurationVar(&o.auditWebhook.InitialBackoff, "audit-webhook-initial-backoff", 10*time.Second, "wait before retrying a failed webhook request")
	f.StringVar(&o.encryptionProviderConfig, "encryption-provider-config", "",
		"apiserver.config.k8s.io/v1 EncryptionConfiguration: which resources are encrypted in etcd, with which providers and keys")
	f.StringVar(&o.kubeletCAFile, "kubelet-certificate-authority", "",
		"CA bundle that verifies kubelets' serving certificates; default: they are not verified")
	f.StringVar(&o.serviceClusterIPRange, "service-cluster-ip-range", "10.96.0.0/12",
		"CIDR Services' cluster IPs come from; an IPv4 and an IPv6 CIDR, comma-separated, make Services dual-stack")
}

func (o *apiServerOptions) validate() error {
	if o.kubeletCAFile != "" {
		pem, err := os.ReadFile(o.kubeletCAFile)
		if err != nil {
			return fmt.Errorf("--kubelet-certificate-authority: %w", err)
		}
		o.kubeletCA = x509.NewCertPool()
		if !o.kubeletCA.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--kubelet-certificate-authority %s holds no certificate", o.kubeletCAFile)
		}
	}
	if err := o.etcd.validate(); err != nil {
		return err
	}
	if net.ParseIP(o.bindAddress) == nil {
		return fmt.Errorf("--bind-address %q is not an IP address", o.bindAddress)
	}
	if o.securePort < 1 || o.securePort > 65535 {
		return fmt.Errorf("--secure-port %d is not a port", o.securePort)
	}
	if o.maxRequestsInFlight < 0 || o.maxMutatingRequestsInFlight < 0 {
		return errors.New("--max-requests-inflight and --max-mutating-requests-inflight cannot be negative")
	}
	if o.requestTimeout <= 0 {
		return errors.New("--request-timeout must be positive")
	}
	if o.dataDir == "" {
		return errors.New("--data-dir must not be empty")
	}
	if o.serviceClusterIPRange != "" {
		if _, _, err := registry.ParseServiceCIDRs(o.serviceClusterIPRange); err != nil {
			return err
		}
	}
	if o.auditWebhookMode != "" && o.auditWebhookMode != "batch" {
		return fmt.Errorf("--audit-webhook-mode %q is not supported: skiff sends audit events in batches only, never holding a request for the webhook", o.auditWebhookMode)
	}
	if err := authz.ValidateModes(o.authorizationModes); err != nil {
		return fmt.Errorf("--authorization-mode: %w", err)
	}
	return nil
}

// bindAddr is where to listen, host:port.
func (o *apiServerOptions) bindAddr() string {
	return net.JoinHostPort(o.bindAddress, strconv.Itoa(o.securePort))
}

// localURL is how a client on this machine reaches the server.
func (o *apiServerOptions) localURL() string {
	host := o.bindAddress
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, strconv.Itoa(o.securePort))
}

// extraSANs are the names the serving certificate needs beyond the host's own.
func (o *apiServerOptions) extraSANs() []string {
	if ip := net.ParseIP(o.bindAddress); ip != nil && !ip.IsUnspecified() {
		return []string{o.bindAddress}
	}
	return nil
}

// config is the API server's configuration from the flags, the PKI and the etcd client.
func (o *apiServerOptions) config(pki *certs.PKI, etcd *etcdConnection, verbosity int) apiserver.Config {
	return apiserver.Config{
		KubeletClientCert:           kubeletClientCert(pki),
		ServiceAccountSigningKey:    pki.ServiceAccountKey,
		ServiceAccountIssuer:        o.serviceAccountIssuer,
		APIAudiences:                o.apiAudiences,
		KubeletCA:                   o.kubeletCA,
		BindAddresses:               []string{o.bindAddr()},
		ServingCert:                 pki.ServingCert,
		ClientCA:                    pki.CAPool,
		ClientCABundle:              pki.CAPEM,
		FrontProxyClientCert:        &pki.FrontProxy.ClientCert,
		FrontProxyCA:                pki.FrontProxy.CAPEM,
		TokenFile:                   o.tokenAuthFile,
		Etcd:                        etcd.client,
		RequestTimeout:              o.requestTimeout,
		MaxRequestsInFlight:         o.maxRequestsInFlight,
		MaxMutatingRequestsInFlight: o.maxMutatingRequestsInFlight,
		DisableAdmissionPlugins:     o.disableAdmissionPlugins,
		AuthorizationModes:          o.authorizationModes,
		AuditPolicyFile:             o.auditPolicyFile,
		AuditLogPath:                o.auditLogPath,
		EncryptionProviderConfig:    o.encryptionProviderConfig,
		AuditLogRotation:            o.auditLogRotation,
		AuditWebhook:                o.auditWebhook,
		Verbosity:                   verbosity,
		ServiceClusterIPRange:       o.serviceClusterIPRange,
	}
}

// prepareDataDir makes the data directory (private to its owner), the PKI in it and the admin
// kubeconfig at DATA/kubeconfig for server. The serving certificate names extraSANs and the
// kubernetes Service's cluster IP, where in-cluster clients reach the server.
func prepareDataDir(dataDir, server string, extraSANs []string) (*certs.PKI, string, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, "", fmt.Errorf("creating data directory: %w", err)
	}
	serviceIP, err := apiserver.KubernetesServiceIP("")
	if err != nil {
		return nil, "", err
	}
	pkiDir := filepath.Join(dataDir, "pki")
	pki, err := certs.Ensure(pkiDir, append(slices.Clone(extraSANs), serviceIP.String())...)
	if err != nil {
		return nil, "", fmt.Errorf("certificates in %s: %w", pkiDir, err)
	}
	slog.Info("certificates ready", "dir", pkiDir)
	kubeconfig := filepath.Join(dataDir, "kubeconfig")
	if err := pki.WriteKubeconfig(kubeconfig, server); err != nil {
		return nil, "", err
	}
	slog.Info("admin kubeconfig written", "file", kubeconfig, "server", server)
	if err := writeComponentKubeconfigs(pki, dataDir, server); err != nil {
		return nil, "", err
	}
	return pki, kubeconfig, nil
}

func runAPIServer(ctx context.Context, o *apiServerOptions, verbosity int) (err error) {
	if err := o.validate(); err != nil {
		return err
	}
	pki, _, err := prepareDataDir(o.dataDir, o.localURL(), o.extraSANs())
	if err != nil {
		return err
	}
	etcd, err := openEtcd(ctx, o.etcd, o.dataDir)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, etcd.close()) }()

	srv, err := apiserver.New(o.config(pki, etcd, verbosity))
	if err != nil {
		return err
	}
	go func() {
		select {
		case <-srv.Ready():
			// the same kind of line as skiff up's, for scripts that wait for it
			fmt.Printf("skiff apiserver is ready at %s (kubeconfig %s)\n", o.localURL(), filepath.Join(o.dataDir, "kubeconfig"))
		case <-ctx.Done():
		}
	}()
	return srv.Run(ctx)
}

// signalContext is ctx until the first SIGINT or SIGTERM. A second SIGINT (Ctrl-C again) ends
// the process at once; a second SIGTERM does not, lest the stop it asked for be cut short: a
// supervisor may ask again, and a parent-death signal (Pdeathsig) comes once for every thread
// of a dying Go parent, as the kernel passes the child from thread to thread.
func signalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, func() {
		// a plain Canceled is stop() on the way out, not a request to stop
		if cause := context.Cause(ctx); cause != context.Canceled {
			slog.Info("stopping", "reason", cause)
			signal.Ignore(syscall.SIGTERM) // before stop(), which would restore its default
		}
		stop() // a later SIGINT gets its default handling
	})
	return ctx, stop
}

// kubeletClientCert is the certificate the API server presents to kubelets (logs, exec, node
// proxy), minted from the cluster CA at start, as upstream's --kubelet-client-certificate.
func kubeletClientCert(pki *certs.PKI) *tls.Certificate {
	certPEM, keyPEM, err := pki.ClientCertificate("kube-apiserver-kubelet-client", certs.AdminGroup)
	if err == nil {
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err == nil {
			return &cert
		}
	}
	slog.Warn("no kubelet client certificate: kubelets will see the API server unauthenticated", "err", err)
	return nil
}
