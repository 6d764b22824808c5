package main

import (
	"context"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/skiff-dev/skiff/controllers/csrapproving"
	"github.com/skiff-dev/skiff/join"
	"github.com/skiff-dev/skiff/join/loadbalancer"
	"github.com/skiff-dev/skiff/kubelet/certificate"
)

// agentOptions are the flags of `skiff agent`, named as k3s's and kubeadm join's.
type agentOptions struct {
	server                   string
	token                    string
	caCertHashes             []string
	unsafeSkipCAVerification bool
	dataDir                  string
	nodeName                 string
	nodeIPs                  []string
	kubeletPort              int
	runtimeEndpoint          string
	imageDir                 string
	registryMirrors          []string
	// clusterCIDR is the proxy's --cluster-cidr: an IPv6 CIDR in it makes the node's proxy
	// dual-stack (its kubelet learns the node's pod CIDRs of both families from the Node)
	clusterCIDR string
	// lbServerPort is the port on 127.0.0.1 of the load balancer in front of the API servers
	lbServerPort int
	// nodePressure are the kubelet's image garbage collection and eviction flags
	nodePressure nodePressureOptions
}

func newAgentCommand(g *globalOptions) *cobra.Command {
	o := &agentOptions{}
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Join this machine to a cluster as a node, with a bootstrap token",
		Long: `Join this machine to the cluster at --server as a node ('skiff token create' on the server
prints the command). It reads kube-public/cluster-info, trusts the CA in it only if the
token's signature checks out and the CA's key has the --ca-cert-hash, asks for the kubelet's
client certificate by CertificateSigningRequest with the token (approved automatically) and
for its proxy's (system:kube-proxy) and NetworkPolicy agent's with the node's, and then runs
the kubelet on a containerd of its own (DATA_DIR/containerd), the service proxy, which also
routes pod traffic to the other nodes, and the NetworkPolicy agent. These reach the API servers through a load balancer on
127.0.0.1:--lb-server-port, as k3s's agent: it learns every server from the kubernetes
Service's endpoints (kept in DATA_DIR/api-servers.json for the next start), asks each one's
/readyz every 5 s and skips those that fail while another passes, and fails over to
another when the one in use stops answering. Run it as root. Restarted on the same data directory it keeps its
certificates and needs no valid token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			return runAgent(ctx, o)
		},
	}
	o.addFlags(cmd.Flags())
	return cmd
}

func (o *agentOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.server, "server", "", "the API server's URL, https://HOST:6443")
	f.StringVar(&o.token, "token", "", "bootstrap token ID.SECRET ('skiff token create')")
	f.StringSliceVar(&o.caCertHashes, "ca-cert-hash", nil, "sha256:HEX pin of the cluster CA's public key (repeatable)")
	f.BoolVar(&o.unsafeSkipCAVerification, "discovery-token-unsafe-skip-ca-verification", false,
		"trust whichever CA cluster-info names if the token signed it, without a --ca-cert-hash")
	f.StringVar(&o.dataDir, "data-dir", filepath.Join(defaultDataDir(), "agent"), "where the node's certificates, containerd and pods' data live")
	f.StringVar(&o.nodeName, "node-name", "", "the Node's name; default the host name")
	f.StringSliceVar(&o.nodeIPs, "node-ip", nil, "the Node's addresses; default: the address of the default route")
	f.IntVar(&o.kubeletPort, "kubelet-port", 10250, "port the kubelet API serves HTTPS on")
	f.StringVar(&o.runtimeEndpoint, "container-runtime-endpoint", "",
		`the kubelet's CRI endpoint (unix:///PATH), or "fake" for the in-memory runtime; default: a containerd of the agent's own in DATA_DIR/containerd`)
	f.StringVar(&o.imageDir, "image-dir", "", "import every image tarball (*.tar, *.tar.gz) in this directory into containerd before the Node reports Ready")
	f.StringArrayVar(&o.registryMirrors, "registry-mirror", nil, "REGISTRY=URL: pull images of REGISTRY (or * for every one) from the mirror at URL first (repeatable)")
	f.IntVar(&o.lbServerPort, "lb-server-port", 6444, "port on 127.0.0.1 of the node's load balancer in front of the API servers, which the kubelet, proxy and NetworkPolicy agent use")
	f.StringVar(&o.clusterCIDR, "cluster-cidr", "", "the server's --cluster-cidr, for the proxy (as kube-proxy's): traffic to cluster IPs from outside it is masqueraded, "+
		"and an IPv6 CIDR in it (10.42.0.0/16,fd42::/56) makes the proxy route IPv6 Services and IPv6 pod routes, and the NetworkPolicy agent police pods' IPv6 addresses")
	o.nodePressure.addFlags(f)
}

// lbHealthCheckPeriod is how often the agent's load balancer asks each API server's /readyz.
const lbHealthCheckPeriod = 5 * time.Second

// runAgent joins and runs the node until ctx is done.
func runAgent(ctx context.Context, o *agentOptions) (err error) {
	if o.server == "" {
		return errors.New("--server is required")
	}
	mirrors, err := (&upOptions{registryMirrors: o.registryMirrors}).mirrors()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return err
	}
	caFile := filepath.Join(o.dataDir, "pki", "ca.crt")
	caPEM, err := o.clusterCA(ctx, caFile)
	if err != nil {
		return err
	}
	// the node's clients, the bootstrap's too, reach the servers through the load balancer
	serverURL, err := url.Parse(o.server)
	if err != nil || serverURL.Host == "" {
		return fmt.Errorf("--server %q: want https://HOST:PORT", o.server)
	}
	fallback := serverURL.Host
	if serverURL.Port() == "" {
		fallback = net.JoinHostPort(serverURL.Hostname(), "443")
	}
	lb, err := loadbalancer.New(net.JoinHostPort("127.0.0.1", strconv.Itoa(o.lbServerPort)), fallback, filepath.Join(o.dataDir, "api-servers.json"))
	if err != nil {
		return fmt.Errorf("the API servers' load balancer: %w", err)
	}
	readyz, err := loadbalancer.Readyz(caPEM)
	if err != nil {
		return fmt.Errorf("the API servers' health check: %w", err)
	}
	lb.SetHealthCheck(readyz, lbHealthCheckPeriod)
	lbCtx, stopLB := context.WithCancel(ctx)
	lbDone := make(chan error, 1)
	go func() { lbDone <- lb.Serve(lbCtx) }()
	defer func() { stopLB(); err = errors.Join(err, <-lbDone) }()

	bootstrapKubeconfig := filepath.Join(o.dataDir, "bootstrap-kubelet.kubeconfig")
	if o.token != "" {
		if err := writeBootstrapKubeconfig(bootstrapKubeconfig, lb.URL(), caPEM, o.token); err != nil {
			return err
		}
	}
	k := &kubeletOptions{
		kubeconfig:          filepath.Join(o.dataDir, "kubelet.kubeconfig"),
		bootstrapKubeconfig: bootstrapKubeconfig,
		certDir:             filepath.Join(o.dataDir, "kubelet", "pki"),
		rotateCertificates:  true,
		// the API server checks kubelets' serving certificates against the cluster CA: one
		// is asked for by kubelet-serving CSR, which a person approves (as upstream)
		rotateServerCertificates: true,
		hostnameOverride:         o.nodeName,
		nodeIPs:                  o.nodeIPs,
		runtimeEndpoint:          o.runtimeEndpoint,
		imageDir:                 o.imageDir,
		rootDir:                  filepath.Join(o.dataDir, "kubelet"),
		podLogsDir:               filepath.Join(o.dataDir, "kubelet", "logs"),
		port:                     o.kubeletPort,
		address:                  "0.0.0.0",
		maxPods:                  110,
		kubeAPIQPS:               defaultKubeletAPIQPS,
		kubeAPIBurst:             defaultKubeletAPIBurst,
		cniConfDir:               "/etc/cni/net.d",
		noCNIMasquerade:          true, // the proxy's node routes masquerade what leaves the pod network
		clusterDomain:            "cluster.local",
		clusterDNS:               []string{"10.96.0.10"}, // the server's DNS, through its Service
		clientCAFile:             caFile,
		authorizationMode:        "Webhook",
		tokenWebhook:             true,
		nodePressureOptions:      o.nodePressure,
	}
	name, err := k.nodeName()
	if err != nil {
		return err
	}
	if _, err := os.Stat(k.kubeconfig); err != nil && o.token == "" {
		return errors.New("--token is required to join: this data directory has no node credentials yet")
	}
	if err := throughLoadBalancer(k.kubeconfig, lb.URL()); err != nil {
		return err
	}
	nodeConfig, renewNode, err := k.bootstrapClient(ctx, name)
	if err != nil {
		return err
	}
	proxyConfig, renewProxy, err := o.proxyCredentials(ctx, name, lb.URL(), caPEM, nodeConfig, csrapproving.ProxyUser, "kube-proxy")
	if err != nil {
		return err
	}
	policyConfig, renewPolicy, err := o.proxyCredentials(ctx, name, lb.URL(), caPEM, nodeConfig, csrapproving.NetworkPolicyAgentUser, "network-policy")
	if err != nil {
		return err
	}
	nodeClient, err := kubernetes.NewForConfig(nodeConfig)
	if err != nil {
		return err
	}
	// an IPv6 cluster CIDR makes the node dual-stack: its pods' IPv6 addresses are policed too
	// (a bad --cluster-cidr fails the proxy, which stops the agent)
	_, clusterCIDR6, _ := parseProxyClusterCIDR(o.clusterCIDR)
	proxyClient, err := kubernetes.NewForConfig(proxyConfig)
	if err != nil {
		return err
	}
	slog.Info("joined", "node", name, "server", o.server, "through", lb.URL())
	return runComponents(ctx, []component{
		{"api-servers", func(ctx context.Context) error {
			// the proxy's identity reads endpoints; the servers it finds feed the balancer
			lb.WatchServers(ctx, proxyClient)
			return nil
		}},
		{"kubelet", func(ctx context.Context) error {
			return runOwnKubelet(ctx, k, o.dataDir, mirrors, nodeConfig, renewNode)
		}},
		{"proxy", func(ctx context.Context) error {
			return runProxy(ctx, proxyConfig, &proxyOptions{hostnameOverride: name, clusterCIDR: o.clusterCIDR})
		}},
		{"network-policy", func(ctx context.Context) error {
			return runNetworkPolicyAgent(ctx, policyConfig, &networkPolicyOptions{hostnameOverride: name, ipv6: clusterCIDR6.IsValid()})
		}},
		{"proxy-certificates", func(ctx context.Context) error {
			var wg sync.WaitGroup
			wg.Go(func() { renewProxy(ctx, nodeClient) })
			renewPolicy(ctx, nodeClient)
			wg.Wait()
			return nil
		}},
	})
}

// clusterCA is the CA this node trusts: the one pinned when it first joined (in caFile), else
// the one token discovery finds, then kept in caFile.
func (o *agentOptions) clusterCA(ctx context.Context, caFile string) ([]byte, error) {
	if b, err := os.ReadFile(caFile); err == nil {
		slog.Info("using the cluster CA pinned when this node joined", "file", caFile)
		return b, nil
	}
	if o.token == "" {
		return nil, errors.New("--token is required to join")
	}
	caPEM, err := join.Discovery{
		Server: o.server, Token: o.token,
		CACertHashes: o.caCertHashes, UnsafeSkipCAVerification: o.unsafeSkipCAVerification,
	}.Discover(ctx)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(caFile), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		return nil, err
	}
	slog.Info("cluster CA discovered and pinned", "server", o.server, "file", caFile)
	return caPEM, nil
}

// proxyCredentials are a client certificate, from server, of user's own (the proxy's system:kube-proxy, the
// NetworkPolicy agent's), asked for with the node's credentials and kept in
// DATA_DIR/proxy/pki/<file>-client-current.pem, and the loop that renews it with them.
func (o *agentOptions) proxyCredentials(ctx context.Context, node, server string, caPEM []byte, nodeConfig *rest.Config, user, file string) (*rest.Config, func(context.Context, kubernetes.Interface), error) {
	m, err := certificate.New(ctx, certificate.Config{
		NodeName: node, CertDir: filepath.Join(o.dataDir, "proxy", "pki"), FileName: file + "-client-current.pem",
		Server: &rest.Config{Host: server, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}}, Bootstrap: nodeConfig,
		Identity: &pkix.Name{CommonName: user},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("the client certificate of %s: %w", user, err)
	}
	cfg, err := m.RESTConfig()
	if err != nil {
		return nil, nil, err
	}
	return cfg, m.Run, nil
}

// throughLoadBalancer points the kubeconfig at path, if there is one (an earlier start's,
// perhaps from before the load balancer), at the load balancer's URL.
func throughLoadBalancer(path, url string) error {
	cfg, err := clientcmd.LoadFromFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	changed := false
	for _, c := range cfg.Clusters {
		if c.Server != url {
			c.Server, changed = url, true
		}
	}
	if !changed {
		return nil
	}
	return clientcmd.WriteToFile(*cfg, path)
}

// writeBootstrapKubeconfig writes the kubelet's --bootstrap-kubeconfig: server, the pinned CA
// and the token.
func writeBootstrapKubeconfig(path, server string, caPEM []byte, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["default-cluster"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos["tls-bootstrap-token-user"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["tls-bootstrap-token-user@default-cluster"] = &clientcmdapi.Context{Cluster: "default-cluster", AuthInfo: "tls-bootstrap-token-user"}
	cfg.CurrentContext = "tls-bootstrap-token-user@default-cluster"
	return clientcmd.WriteToFile(*cfg, path)
}
