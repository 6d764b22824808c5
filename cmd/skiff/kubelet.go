package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/apiserver/certs"
	"github.com/skiff-dev/skiff/kubelet"
	"github.com/skiff-dev/skiff/kubelet/cri"
	"github.com/skiff-dev/skiff/kubelet/fakeruntime"
	"github.com/skiff-dev/skiff/kubelet/imagevolume"
	"github.com/skiff-dev/skiff/kubelet/localcontainerd"
	"github.com/skiff-dev/skiff/kubelet/runtime"
)

// fakeRuntimeEndpoint, given as --container-runtime-endpoint, runs the in-memory runtime.
const fakeRuntimeEndpoint = "fake"

// defaultContainerdSocket is where a system containerd listens, upstream kubelet's default.
const defaultContainerdSocket = "/run/containerd/containerd.sock"

// kubeletOptions are the flags of `skiff kubelet`, named as upstream's kubelet's.
type kubeletOptions struct {
	kubeconfig       string
	hostnameOverride string
	// tokenWebhook accepts bearer tokens on the kubelet API (--authentication-token-webhook)
	tokenWebhook    bool
	runtimeEndpoint string
	rootDir         string
	podLogsDir      string
	podCIDR         string
	systemReserved  map[string]string
	port            int
	address         string
	nodeIPs         []string
	maxPods         int
	imageDir        string
	cniConfDir      string
	// noCNIMasquerade leaves pods' source addresses alone in the CNI bridge (cri.Options'
	// NoMasquerade): the node's proxy masquerades what leaves the pod network (skiff up, skiff agent)
	noCNIMasquerade bool
	clusterDNS      []string
	clusterDomain   string
	tlsCertFile     string
	tlsKeyFile      string
	clientCAFile    string
	kubeAPIQPS      float32
	kubeAPIBurst    int
	nodeLabels      map[string]string
	// authorizationMode is AlwaysAllow or Webhook (SubjectAccessReviews), as upstream's.
	authorizationMode string
	// bootstrapKubeconfig, certDir and rotateCertificates are the TLS bootstrap's
	// (kubeletbootstrap.go)
	bootstrapKubeconfig string
	certDir             string
	rotateCertificates  bool
	// rotateServerCertificates asks for the kubelet API's serving certificate by
	// kubelet-serving CertificateSigningRequest
	rotateServerCertificates bool
	// servingCADir, when set and --tls-cert-file is not, is a PKI directory whose CA signs
	// the kubelet API's serving certificate for the node's name and IPs (skiff up); not a flag.
	servingCADir string
	nodePressureOptions
}

func newKubeletCommand(g *globalOptions) *cobra.Command {
	o := &kubeletOptions{}
	cmd := &cobra.Command{
		Use:   "kubelet",
		Short: "Run this machine's node agent: register the Node and run the pods bound to it",
		Long: `Run the node agent: register this machine as a Node, keep its Lease fresh, run the
pods bound to it through the container runtime (containerd's CRI, or the in-memory fake with
--container-runtime-endpoint fake) and report their status. The kubelet API (logs, exec,
healthz, metrics) is served on --port.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			return runKubelet(ctx, o)
		},
	}
	o.addFlags(cmd.Flags())
	return cmd
}

func (o *kubeletOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig that reaches the API server")
	f.StringVar(&o.hostnameOverride, "hostname-override", "", "the Node's name instead of the host name")
	f.StringVar(&o.runtimeEndpoint, "container-runtime-endpoint", "unix://"+defaultContainerdSocket,
		`CRI endpoint of the container runtime, or "fake" for the in-memory runtime`)
	f.StringVar(&o.rootDir, "root-dir", "/var/lib/skiff-kubelet", "where pods' volumes live")
	f.StringVar(&o.podLogsDir, "pod-logs-dir", "/var/log/pods", "where the runtime writes container logs")
	f.StringVar(&o.podCIDR, "pod-cidr", "", "the pods' address range when the Node has no spec.podCIDR; an IPv4 and an IPv6 CIDR, comma-separated, give pods an address of each")
	f.StringToStringVar(&o.systemReserved, "system-reserved", nil, "resources kept from pods, such as cpu=500m,memory=1Gi")
	f.IntVar(&o.port, "port", 10250, "port of the kubelet API (HTTPS)")
	f.StringVar(&o.address, "address", "0.0.0.0", "address the kubelet API listens on")
	f.StringSliceVar(&o.nodeIPs, "node-ip", nil, "the Node's addresses; default: the address of the default route")
	f.IntVar(&o.maxPods, "max-pods", 110, "how many pods the Node takes")
	f.Float32Var(&o.kubeAPIQPS, "kube-api-qps", defaultKubeletAPIQPS, "most requests per second to the API server")
	f.IntVar(&o.kubeAPIBurst, "kube-api-burst", defaultKubeletAPIBurst, "most requests in a burst to the API server")
	f.StringVar(&o.imageDir, "image-dir", "", "import every image tarball (*.tar, *.tar.gz) in this directory into containerd before the Node reports Ready")
	f.StringVar(&o.cniConfDir, "cni-conf-dir", "/etc/cni/net.d", "the runtime's CNI config directory, where the pod network's config is written")
	f.BoolVar(&o.noCNIMasquerade, "no-cni-masquerade", false, "the CNI bridge masquerades nothing, so that pods of other nodes see pods' own addresses; "+
		"for a node whose skiff proxy keeps node routes, which then masquerades only what pods send out of the pod network")
	f.StringSliceVar(&o.clusterDNS, "cluster-dns", nil, "DNS servers of ClusterFirst pods")
	f.StringVar(&o.clusterDomain, "cluster-domain", "cluster.local", "the cluster's DNS domain")
	f.StringVar(&o.tlsCertFile, "tls-cert-file", "", "serving certificate of the kubelet API; default: a self-signed one")
	f.StringVar(&o.tlsKeyFile, "tls-private-key-file", "", "key of --tls-cert-file")
	f.StringVar(&o.clientCAFile, "client-ca-file", "", "CA whose client certificates the kubelet API requires")
	f.StringVar(&o.authorizationMode, "authorization-mode", "AlwaysAllow",
		"how kubelet API requests are authorized: AlwaysAllow, or Webhook (a SubjectAccessReview to the API server for nodes/<subresource>)")
	f.StringToStringVar(&o.nodeLabels, "node-labels", nil, "labels added to the Node")
	f.StringVar(&o.bootstrapKubeconfig, "bootstrap-kubeconfig", "",
		"kubeconfig with bootstrap credentials (a bootstrap token): when --kubeconfig is missing, ask for a client certificate with them "+
			"by CertificateSigningRequest, keep it in --cert-dir and write --kubeconfig to use it")
	f.StringVar(&o.certDir, "cert-dir", "", "where the bootstrapped client certificate is kept (default --root-dir/pki)")
	f.BoolVar(&o.rotateCertificates, "rotate-certificates", true,
		"with --bootstrap-kubeconfig, renew the client certificate by CertificateSigningRequest when 70-90% of its life has passed")
	f.BoolVar(&o.rotateServerCertificates, "rotate-server-certificates", false,
		"without --tls-cert-file, ask for the kubelet API's serving certificate by kubelet-serving CertificateSigningRequest "+
			"(approved by a person or an approver; a self-signed one is served meanwhile), keep it in --cert-dir and renew it")
	f.BoolVar(&o.tokenWebhook, "authentication-token-webhook", false,
		"accept bearer tokens on the kubelet API, checked with the API server's TokenReview")
	o.nodePressureOptions.addFlags(f)
}

// nodeName is --hostname-override, or the host name, lower-cased.
func (o *kubeletOptions) nodeName() (string, error) {
	name := o.hostnameOverride
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return "", err
		}
		name = h
	}
	return strings.ToLower(strings.TrimSpace(name)), nil
}

// kubeletSetup is a kubelet made from options, ready to run.
type kubeletSetup struct {
	kubelet *kubelet.Kubelet
	server  kubelet.ServerConfig
	close   func()
	client  kubernetes.Interface
	// renewClientCertificate and renewServingCertificate, when set, keep those certificates
	// until ctx is done
	renewClientCertificate  func(context.Context, kubernetes.Interface)
	renewServingCertificate func(context.Context, kubernetes.Interface)
}

func (o *kubeletOptions) setUp(ctx context.Context, restConfig *rest.Config) (*kubeletSetup, error) {
	name, err := o.nodeName()
	if err != nil {
		return nil, err
	}
	reserved := v1.ResourceList{}
	for k, v := range o.systemReserved {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return nil, fmt.Errorf("--system-reserved %s=%s: %w", k, v, err)
		}
		reserved[v1.ResourceName(k)] = q
	}
	var ips []net.IP
	for _, s := range o.nodeIPs {
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, fmt.Errorf("--node-ip %q is not an IP address", s)
		}
		ips = append(ips, ip)
	}
	restConfig = rest.CopyConfig(restConfig)
	restConfig.QPS, restConfig.Burst = o.kubeAPIQPS, o.kubeAPIBurst
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return nil, err
	}
	setup := &kubeletSetup{close: func() {}, client: client}
	var rt runtime.Runtime
	rootDir, logsDir := o.rootDir, o.podLogsDir
	var prepare func(context.Context) error
	var imageViews kubelet.ImageVolumeMounter
	if o.runtimeEndpoint == fakeRuntimeEndpoint {
		fake, err := fakeruntime.New(strings.Split(o.podCIDR, ",")[0]) // it hands out one family
		if err != nil {
			return nil, err
		}
		rt, rootDir, logsDir = fake, "", ""
		if o.imageDir != "" {
			slog.Warn("--image-dir is ignored: the in-memory fake runtime has no images", "dir", o.imageDir)
		}
	} else {
		if o.imageDir != "" {
			// a mistyped dir fails the start; a bad tarball in it only logs (importImageDir)
			if st, err := os.Stat(o.imageDir); err != nil || !st.IsDir() {
				return nil, fmt.Errorf("--image-dir %s: no such directory", o.imageDir)
			}
			socket, dir := strings.TrimPrefix(o.runtimeEndpoint, "unix://"), o.imageDir
			prepare = func(ctx context.Context) error { return importImageDir(ctx, socket, dir) }
		}
		c, err := cri.Dial(o.runtimeEndpoint, cri.Options{CNIConfDir: o.cniConfDir, NoMasquerade: o.noCNIMasquerade})
		if err != nil {
			return nil, err
		}
		// the endpoint is a containerd's: the kubelet mounts image volumes through it when
		// its CRI cannot (before 2.1)
		views, err := imagevolume.New(strings.TrimPrefix(o.runtimeEndpoint, "unix://"), "")
		if err != nil {
			c.Close()
			return nil, err
		}
		setup.close = func() { c.Close(); views.Close() }
		rt, imageViews = c, views
	}
	cfg := kubelet.Config{
		NodeName: name, Client: client, Runtime: rt, RuntimeEndpoint: o.runtimeEndpoint,
		KubeletVersion: apis.VersionInfo().GitVersion,
		RootDir:        rootDir, PodLogsDir: logsDir,
		NodeIPs: ips, SystemReserved: reserved, MaxPods: o.maxPods, Port: o.port,
		NodeLabels: o.nodeLabels, PodCIDR: o.podCIDR,
		ClusterDNS: o.clusterDNS, ClusterDomain: o.clusterDomain,
		Prepare: prepare, PrepareMessage: "importing images from " + o.imageDir,
		ImageVolumes: imageViews,
	}
	err = o.nodePressureOptions.apply(&cfg)
	var k *kubelet.Kubelet
	if err == nil {
		k, err = kubelet.New(cfg)
	}
	if err != nil {
		setup.close()
		return nil, err
	}
	setup.kubelet = k
	setup.server = kubelet.ServerConfig{Address: net.JoinHostPort(o.address, strconv.Itoa(o.port))}
	if o.tlsCertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.tlsCertFile, o.tlsKeyFile)
		if err != nil {
			setup.close()
			return nil, err
		}
		setup.server.Certificate = &cert
	}
	if o.tlsCertFile == "" && o.rotateServerCertificates {
		setup.server.ServingCertificate, setup.renewServingCertificate = o.servingCertificate(k)
	}
	if o.tlsCertFile == "" && o.servingCADir != "" {
		cert, err := kubeletServingCertificate(o.servingCADir, k)
		if err != nil {
			setup.close()
			return nil, err
		}
		setup.server.Certificate = cert
	}
	switch o.authorizationMode {
	case "", "AlwaysAllow":
	case "Webhook":
		setup.server.Authorizer = kubelet.NewWebhookAuthorizer(client.AuthorizationV1().SubjectAccessReviews(), 0, 0)
	default:
		setup.close()
		return nil, fmt.Errorf("--authorization-mode %q: want AlwaysAllow or Webhook", o.authorizationMode)
	}
	if o.tokenWebhook {
		setup.server.TokenAuthenticator = kubelet.NewWebhookTokenAuthenticator(client.AuthenticationV1().TokenReviews(), 0)
	}
	if o.clientCAFile != "" {
		pem, err := os.ReadFile(o.clientCAFile)
		if err != nil {
			setup.close()
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			setup.close()
			return nil, fmt.Errorf("--client-ca-file %s holds no certificate", o.clientCAFile)
		}
		setup.server.ClientCAs = pool
	}
	return setup, nil
}

// kubeletServingCertificate is a serving certificate for k's node name and IPs, signed by the
// CA of the PKI in dir.
func kubeletServingCertificate(dir string, k *kubelet.Kubelet) (*tls.Certificate, error) {
	ca, err := certs.LoadCA(dir)
	if err != nil {
		return nil, fmt.Errorf("kubelet serving certificate: %w", err)
	}
	name, ips := k.ServingAddresses()
	certPEM, keyPEM, err := ca.KubeletServingCertificate(name, ips)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return &cert, nil
}

// run runs the kubelet and its API until ctx is done. A kubelet API that cannot listen is
// logged, not fatal, when apiOptional (inside `skiff up`, where the port may be taken).
func (s *kubeletSetup) run(ctx context.Context, apiOptional bool) error {
	defer s.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var serveErr error
	for _, renew := range []func(context.Context, kubernetes.Interface){s.renewClientCertificate, s.renewServingCertificate} {
		if renew != nil {
			wg.Go(func() { renew(ctx, s.client) })
		}
	}
	wg.Go(func() {
		err := s.kubelet.Serve(ctx, s.server, func(addr string) { slog.Info("serving the kubelet API", "address", addr) })
		if err != nil && ctx.Err() == nil {
			if apiOptional {
				slog.Warn("kubelet API not served", "err", err)
				return
			}
			serveErr = err
			cancel()
		}
	})
	err := s.kubelet.Run(ctx)
	cancel()
	wg.Wait()
	return errors.Join(err, serveErr)
}

func runKubelet(ctx context.Context, o *kubeletOptions) error {
	if o.kubeconfig == "" {
		return errors.New("--kubeconfig is required")
	}
	var restConfig *rest.Config
	var renew func(context.Context, kubernetes.Interface)
	var err error
	if o.bootstrapKubeconfig != "" {
		name, err := o.nodeName()
		if err != nil {
			return err
		}
		if restConfig, renew, err = o.bootstrapClient(ctx, name); err != nil {
			return err
		}
	} else if restConfig, err = clientcmd.BuildConfigFromFlags("", o.kubeconfig); err != nil {
		return err
	}
	setup, err := o.setUp(ctx, restConfig)
	if err != nil {
		return err
	}
	setup.renewClientCertificate = renew
	return setup.run(ctx, false)
}

// upKubelet is `skiff up`'s kubelet: this host as a Node, on the runtime
// --container-runtime-endpoint names, else on a containerd of skiff up's own under
// DATA_DIR/containerd, started here and stopped when ctx ends, its pods' containers first.
// Without what that containerd needs (containerd, runc, the CNI plugins, busybox-static,
// root) it falls back to the in-memory runtime, whose pods "run" but start nothing, and says
// what to install; a containerd that is installed but fails to start fails skiff up.
// The kubelet's client limits, upstream's defaults (kubeAPIQPS 50, kubeAPIBurst 100): a pod
// costs about eight requests (token, status patches, events), and client-go's own default of
// 5 per second made a hundred pods wait over a minute for their turn.
const (
	defaultKubeletAPIQPS   = 50
	defaultKubeletAPIBurst = 100
)

func upKubelet(up *upOptions, network upNetwork, restConfig *rest.Config, mirrors []localcontainerd.RegistryMirror) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		o := &kubeletOptions{
			runtimeEndpoint: up.runtimeEndpoint,
			imageDir:        up.imageDir,
			rootDir:         filepath.Join(up.dataDir, "kubelet"),
			podLogsDir:      filepath.Join(up.dataDir, "kubelet", "logs"),
			podCIDR:         network.podCIDR,
			nodeIPs:         up.nodeIPs,
			port:            cmp.Or(up.kubeletPort, 10250),
			address:         "0.0.0.0",
			maxPods:         110,
			kubeAPIQPS:      defaultKubeletAPIQPS,
			kubeAPIBurst:    defaultKubeletAPIBurst,
			cniConfDir:      "/etc/cni/net.d",
			// the proxy's node routes masquerade what leaves the pod network (upProxy)
			noCNIMasquerade: true,
			clusterDomain:   "cluster.local",
			// the kube-dns Service skiff up's DNS server keeps (dns/README.md)
			clusterDNS:   []string{network.clusterDNS},
			clientCAFile: filepath.Join(up.dataDir, "pki", "ca.crt"),
			// the API server verifies this kubelet against the cluster CA, and the kubelet
			// asks it about every request, as a kubeadm cluster's does
			servingCADir:        filepath.Join(up.dataDir, "pki"),
			authorizationMode:   "Webhook",
			tokenWebhook:        true,
			nodePressureOptions: up.nodePressure,
		}
		return runOwnKubelet(ctx, o, up.dataDir, mirrors, restConfig, nil)
	}
}

// runOwnKubelet runs the kubelet o describes with restConfig (and renew, when set, keeping
// its client certificate) until ctx is done. Without o.runtimeEndpoint it runs on a containerd
// of its own under dataDir/containerd, started here and stopped when ctx ends, its pods'
// containers first; without what that containerd needs, on the in-memory runtime.
func runOwnKubelet(ctx context.Context, o *kubeletOptions, dataDir string, mirrors []localcontainerd.RegistryMirror,
	restConfig *rest.Config, renew func(context.Context, kubernetes.Interface)) (err error) {
	if o.runtimeEndpoint == "" {
		if missing := ownContainerdMissing(); missing != "" {
			slog.Warn("containerd cannot run here: " + missing + "; until then pods run on the in-memory fake runtime, " +
				"where no container really starts (--container-runtime-endpoint=fake chooses it without this warning)")
			o.runtimeEndpoint = fakeRuntimeEndpoint
		} else {
			d, err := localcontainerd.Start(ctx, filepath.Join(dataDir, "containerd"), mirrors...)
			if err != nil {
				return fmt.Errorf("start containerd: %w; --container-runtime-endpoint=fake runs pods without it", err)
			}
			slog.Info("containerd started", "socket", d.Socket, "log", filepath.Join(d.Dir, "containerd.log"))
			// deferred before the kubelet's run: the kubelet stops first, then its pods
			defer func() { err = errors.Join(err, stopOwnContainerd(d, dataDir)) }()
			o.runtimeEndpoint, o.cniConfDir = d.Endpoint(), d.CNIConfDir
			// the pod network's config now, not when the kubelet learns the Node's podCIDR:
			// the runtime's network is ready by the time the Node registers. A node whose
			// podCIDR comes from the controller manager (skiff agent) writes it when it does.
			if o.podCIDR != "" {
				if err := cri.WriteCNIConfig(d.CNIConfDir, o.podCIDR, !o.noCNIMasquerade); err != nil {
					return err
				}
			}
		}
	}
	setup, err := o.setUp(ctx, restConfig)
	if err != nil {
		return err
	}
	setup.renewClientCertificate = renew
	return setup.run(ctx, true)
}

// ownContainerdMissing says what skiff up's own containerd lacks here, "" when nothing.
func ownContainerdMissing() string {
	if m := localcontainerd.Missing(); m != "" {
		return m
	}
	if os.Geteuid() != 0 {
		return "run skiff up as root (containerd needs it)"
	}
	return ""
}

// stopOwnContainerd ends skiff up's containerd as a node's shutdown ends its pods
// (localcontainerd's Shutdown): no shim, bridge or mount of theirs outlives skiff up, and the
// kubelet's tmpfs volumes under the data dir are unmounted. The next skiff up starts the pods
// again from the API.
func stopOwnContainerd(d *localcontainerd.Daemon, dataDir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := d.Shutdown(ctx, dataDir)
	slog.Info("containerd stopped", "socket", d.Socket)
	return err
}

// unmountUnder is how up_process_test.go reaps what a failed skiff up left mounted.
var unmountUnder = localcontainerd.UnmountUnder
