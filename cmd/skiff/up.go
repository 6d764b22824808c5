package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/controllers/nodeipam"
	"github.com/skiff-dev/skiff/kubelet"
	"github.com/skiff-dev/skiff/kubelet/localcontainerd"
)

// upOptions are the flags of `skiff up`.
type upOptions struct {
	dataDir string
	port    int
	// kubeletPort is the kubelet API's port: two skiff ups on one host need two.
	kubeletPort int
	// runtimeEndpoint is the kubelet's CRI endpoint; "" runs a containerd of up's own,
	// "fake" the in-memory runtime.
	runtimeEndpoint string
	imageDir        string
	// registryMirrors are --registry-mirror's REGISTRY=URL values for up's own containerd
	registryMirrors []string
	// encryptionProviderConfig is passed to the API server; without it, secretsEncryption
	// makes one in the data dir
	encryptionProviderConfig string
	secretsEncryption        bool
	// advertiseAddress is the address joining nodes reach the API server at, published in
	// cluster-info; "" is this host's node address.
	advertiseAddress string
	// nodeIPs are up's own Node's addresses (k3s's --node-ip), those its kubelet reports and
	// the other nodes route this node's pods through; none: the address of the default route
	nodeIPs []string
	// disableIngress leaves the built-in ingress controller out, as k3s's --disable traefik
	disableIngress bool
	// clusterCIDR and serviceCIDR are k3s's flags of those names (upnetwork.go): one CIDR
	// each, or an IPv4 and an IPv6 one for a dual-stack cluster
	clusterCIDR, serviceCIDR string
	// nodePressure are the kubelet's image garbage collection and eviction flags
	nodePressure nodePressureOptions
	// readyTimeout bounds the wait for the API server's /readyz; not a flag.
	readyTimeout time.Duration
	// clusterInit, or joinServer with joinToken and joinCAHashes, make up one server of
	// several, its etcd a member of a cluster spanning machines (upserver.go)
	clusterInit  bool
	joinServer   string
	joinToken    string
	joinCAHashes []string
}

func newUpCommand(g *globalOptions) *cobra.Command {
	o := &upOptions{readyTimeout: 2 * time.Minute}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a whole cluster on this machine until interrupted",
		Long: `Run a whole cluster on this machine: etcd (in DATA_DIR/etcd) and the API server on
every address of this host, with an admin kubeconfig in DATA_DIR/kubeconfig.
Its kubelet runs pods in a containerd of its own (DATA_DIR/containerd; 'skiff images import'
loads images into it), or in the runtime --container-runtime-endpoint names.
Stop it with Ctrl-C; the next 'skiff up' with the same data directory resumes the cluster.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			return runUp(ctx, o, g.verbosity, cmd.OutOrStdout())
		},
	}
	o.addFlags(cmd.Flags())
	return cmd
}

func (o *upOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.dataDir, "data-dir", defaultDataDir(), "where the cluster's etcd data, certificates and kubeconfig live")
	f.IntVar(&o.port, "port", 6443, "port the API server serves HTTPS on")
	f.IntVar(&o.kubeletPort, "kubelet-port", 10250, "port the kubelet API (logs, exec, port-forward) serves HTTPS on")
	f.StringVar(&o.runtimeEndpoint, "container-runtime-endpoint", "",
		`the kubelet's CRI endpoint (unix:///PATH), or "fake" for the in-memory runtime; default: a containerd of skiff up's own in DATA_DIR/containerd`)
	f.StringVar(&o.encryptionProviderConfig, "encryption-provider-config", "",
		"apiserver.config.k8s.io/v1 EncryptionConfiguration for the API server (overrides --secrets-encryption)")
	f.BoolVar(&o.secretsEncryption, "secrets-encryption", true,
		"encrypt Secrets in etcd with an aescbc key made once in DATA_DIR/"+secretsEncryptionConfigFile+" (keep that file: without it the secrets are lost)")
	f.StringVar(&o.advertiseAddress, "advertise-address", "",
		"address nodes that join ('skiff agent') reach the API server at, published in kube-public/cluster-info; default: this host's address of the default route")
	f.StringSliceVar(&o.nodeIPs, "node-ip", nil,
		"this host's Node's addresses, those other nodes ('skiff agent') route its pods through and reach its DNS at, and the default --advertise-address; default: the address of the default route")
	f.StringVar(&o.imageDir, "image-dir", "", "import every image tarball (*.tar, *.tar.gz) in this directory into containerd before the Node reports Ready")
	f.BoolVar(&o.disableIngress, "disable-ingress", false, "do not run the built-in ingress controller (IngressClass skiff, on ports 80 and 443)")
	f.StringVar(&o.clusterCIDR, "cluster-cidr", nodeipam.DefaultClusterCIDR,
		"the pods' addresses, a /24 of them per node; an IPv4 and an IPv6 CIDR, comma-separated (10.42.0.0/16,fd42::/56), give every pod an address of each (a /64 of IPv6 per node)")
	f.StringVar(&o.serviceCIDR, "service-cidr", apiserver.DefaultServiceClusterIPRange,
		"the Services' cluster IPs (kube-dns has the tenth); an IPv4 and an IPv6 CIDR, comma-separated (10.96.0.0/12,fd00:10:96::/112), allow dual-stack Services, routed by the proxy on both")
	f.StringArrayVar(&o.registryMirrors, "registry-mirror", nil,
		`REGISTRY=URL: up's own containerd pulls images of REGISTRY (a host such as docker.io, or * for every registry) from the mirror at URL first (repeatable)`)
	f.BoolVar(&o.clusterInit, "cluster-init", false,
		"run etcd as the first member of a cluster that more servers join ('skiff up --server'), listening on --advertise-address:2379 and :2380")
	f.StringVar(&o.joinServer, "server", "", "join the cluster of the server at this URL as one more server (https://HOST:6443; with --token)")
	f.StringVar(&o.joinToken, "token", "", "bootstrap token of 'skiff token create --server', for --server")
	f.StringSliceVar(&o.joinCAHashes, "ca-cert-hash", nil, "sha256:HEX pin of the cluster CA's public key, for --server (repeatable)")
	o.nodePressure.addFlags(f)
}

// mirrors parses --registry-mirror.
func (o *upOptions) mirrors() ([]localcontainerd.RegistryMirror, error) {
	var mirrors []localcontainerd.RegistryMirror
	for _, s := range o.registryMirrors {
		m, err := localcontainerd.ParseRegistryMirror(s)
		if err != nil {
			return nil, err
		}
		mirrors = append(mirrors, m)
	}
	return mirrors, nil
}

// component is one part of the cluster that `skiff up` runs on this machine.
type component struct {
	name string
	// run works until ctx is done, then stops and returns nil. Returning before that, with an
	// error or without, brings the whole cluster down.
	run func(ctx context.Context) error
}

// runUp runs the cluster until ctx is done, then stops every part of it and returns nil; it
// returns an error when a part could not start or failed on its own.
func runUp(ctx context.Context, o *upOptions, verbosity int, stdout io.Writer) (err error) {
	started := time.Now()
	serverOpts := &apiServerOptions{
		dataDir:                     o.dataDir,
		bindAddress:                 "0.0.0.0",
		securePort:                  o.port,
		maxRequestsInFlight:         400,
		maxMutatingRequestsInFlight: 200,
		requestTimeout:              60 * time.Second,
		authorizationModes:          apiserver.DefaultAuthorizationModes,
	}
	if err := serverOpts.validate(); err != nil {
		return err
	}
	mirrors, err := o.mirrors()
	if err != nil {
		return err
	}
	network, err := o.network()
	if err != nil {
		return err
	}
	serverOpts.serviceClusterIPRange = network.serviceCIDR
	if err := o.validateHA(); err != nil {
		return err
	}

	// one skiff up per data dir, and no skiff reset under it (reset.go)
	unlock, err := lockDataDir(o.dataDir)
	if err != nil {
		return err
	}
	defer unlock()

	var etcd *etcdConnection
	if o.haServer() {
		etcd, err = o.startServerEtcd(ctx)
	} else {
		etcd, err = startEmbeddedEtcd(ctx, filepath.Join(o.dataDir, "etcd"))
	}
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, etcd.close()) }()

	server := "https://127.0.0.1:" + strconv.Itoa(o.port)
	// joining nodes verify the server by the address they reach it at (advertisedURL)
	sans := slices.Clone(o.nodeIPs)
	if o.advertiseAddress != "" {
		sans = append(sans, o.advertiseAddress)
	}
	pki, kubeconfig, err := prepareDataDir(o.dataDir, server, sans)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "export KUBECONFIG=%s\n", kubeconfig)
	// up's kubelet serves a certificate from the cluster CA (upKubelet)
	serverOpts.kubeletCA = pki.CAPool
	serverOpts.encryptionProviderConfig = o.encryptionProviderConfig
	if serverOpts.encryptionProviderConfig == "" && o.secretsEncryption {
		if serverOpts.encryptionProviderConfig, err = ensureSecretsEncryptionConfig(o.dataDir); err != nil {
			return err
		}
	}
	restConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}

	apiServerConfig := serverOpts.config(pki, etcd, verbosity)
	if o.haServer() {
		// the kubernetes Service's endpoints name each server by its own address
		ip, err := o.memberIP()
		if err != nil {
			return err
		}
		apiServerConfig.AdvertiseAddress = ip.String()
	}
	apiServer, err := apiserver.New(apiServerConfig)
	if err != nil {
		return err
	}

	// The cluster's parts, each talking to the API server as any client would, each as its
	// own user with what the default policy grants it (identities.go); only waitReady uses
	// the admin's. Adding a part is adding a line.
	node, err := hostNodeName("")
	if err != nil {
		return err
	}
	configs := map[string]*rest.Config{} // by user
	for _, id := range []identity{kubeletIdentity(node), proxyIdentity, dnsIdentity, schedulerIdentity, controllerManagerIdentity, localPathIdentity, networkPolicyIdentity, ingressIdentity} {
		if configs[id.user], err = componentConfig(o.dataDir, id); err != nil {
			return err
		}
	}
	// the API server stops after the DNS server, which takes itself out of kube-dns through it
	dnsStopped := make(chan struct{})
	components := []component{
		{"apiserver", outliving(apiServer.Run, dnsStopped)},
		{"kubelet", upKubelet(o, network, configs[kubeletIdentity(node).user], mirrors)},
		{"proxy", upProxy(configs[proxyIdentity.user], network)},
		{"dns", closingWhenDone(upDNS(configs[dnsIdentity.user], network, o.nodeIPs, o.advertiseAddress), dnsStopped)},
		{"scheduler", upScheduler(configs[schedulerIdentity.user], verbosity, o.haServer())},
		{"controller-manager", upControllerManager(configs[controllerManagerIdentity.user], network, pki.CACertFile, pki.CAKeyFile)},
		{"local-path-provisioner", upLocalPath(o, configs[localPathIdentity.user])},
		{"network-policy", upNetworkPolicy(configs[networkPolicyIdentity.user], network)},
	}
	if !o.disableIngress {
		components = append(components, component{"ingress-controller", upIngress(configs[ingressIdentity.user])})
	}
	if o.haServer() {
		components = append(components, component{"etcd-members-record", recordEtcdMembers(etcd, o.dataDir)})
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	announced := make(chan struct{})
	go func() {
		defer close(announced)
		if err := waitReady(ctx, restConfig, o.readyTimeout); err != nil {
			if ctx.Err() == nil {
				cancel(fmt.Errorf("%w: %v", errNotReady, err))
			}
			return
		}
		if err := ensureNodeBootstrapBindings(ctx, restConfig); err != nil && ctx.Err() == nil {
			cancel(fmt.Errorf("%w: %v", errNotReady, err))
			return
		}
		if err := ensureClusterInfo(ctx, restConfig, o.advertisedURL(), pki.CAPEM); err != nil && ctx.Err() == nil {
			cancel(fmt.Errorf("%w: %v", errNotReady, err))
			return
		}
		if o.haServer() {
			if err := ensureServerBootstrap(ctx, restConfig, o.dataDir); err != nil && ctx.Err() == nil {
				cancel(fmt.Errorf("%w: %v", errNotReady, err))
				return
			}
		}
		if err := waitClusterUsable(ctx, restConfig, node, started); err != nil {
			return // stopping
		}
		slog.Info("ready", "server", server)
		fmt.Fprintf(stdout, "skiff is ready at %s: kubectl get nodes\n", server)
	}()

	err = runComponents(ctx, components)
	cancel(nil)
	<-announced
	if cause := context.Cause(ctx); errors.Is(cause, errNotReady) {
		err = errors.Join(cause, err)
	}
	return err
}

var errNotReady = errors.New("API server did not become ready")

// advertisedURL is the API server's URL for nodes on other machines: at --advertise-address,
// else at the node's address (as k3s's).
func (o *upOptions) advertisedURL() string {
	host := o.advertiseAddress
	if host == "" && len(o.nodeIPs) > 0 {
		host = o.nodeIPs[0]
	}
	if host == "" {
		host = kubelet.DefaultNodeIP().String()
	}
	return "https://" + net.JoinHostPort(host, strconv.Itoa(o.port))
}

// outlivingBound is the longest outliving keeps a component going once ctx is done.
const outlivingBound = 10 * time.Second

// outliving runs run until ctx is done and then until other is closed too (outlivingBound at
// most): a component that others still need while they stop (the API server) keeps going
// until they have.
func outliving(run func(context.Context) error, other <-chan struct{}) func(context.Context) error {
	return func(ctx context.Context) error {
		runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		go func() {
			select {
			case <-ctx.Done():
			case <-runCtx.Done():
				return // run returned on its own
			}
			select {
			case <-other:
			case <-runCtx.Done():
			case <-time.After(outlivingBound):
			}
			cancel()
		}()
		return run(runCtx)
	}
}

// closingWhenDone runs run and closes done when it returns.
func closingWhenDone(run func(context.Context) error, done chan<- struct{}) func(context.Context) error {
	return func(ctx context.Context) error {
		defer close(done)
		return run(ctx)
	}
}

// runComponents runs every component until ctx is done, or until one of them stops on its own,
// which stops the others too. It returns when all have returned: nil when they stopped because
// ctx was done, otherwise why the first one stopped.
func runComponents(ctx context.Context, components []component) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for _, c := range components {
		wg.Go(func() {
			err := c.run(ctx)
			stopping := ctx.Err() != nil
			switch {
			case stopping && err != nil:
				slog.Warn("component stopped with an error", "component", c.name, "err", err)
			case stopping:
				slog.Debug("component stopped", "component", c.name)
			default:
				if err == nil {
					err = errors.New("stopped unexpectedly")
				}
				err = fmt.Errorf("%s: %w", c.name, err)
				slog.Error("component failed, stopping the cluster", "component", c.name, "err", err)
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				cancel(err)
			}
		})
	}
	wg.Wait()
	return firstErr
}

// waitReady polls the API server's /readyz with the admin's credentials until it answers 200,
// for at most timeout.
func waitReady(ctx context.Context, cfg *rest.Config, timeout time.Duration) error {
	cfg = rest.CopyConfig(cfg)
	// only the status code is read: no types to decode
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(runtime.NewScheme()).WithoutConversion()
	client, err := rest.UnversionedRESTClientFor(cfg)
	if err != nil {
		return err
	}
	var last error
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		var code int
		result := client.Get().AbsPath("/readyz").Timeout(5 * time.Second).Do(ctx).StatusCode(&code)
		if code == http.StatusOK {
			return true, nil
		}
		if last = result.Error(); last == nil {
			last = fmt.Errorf("/readyz answered %d", code)
		}
		return false, nil
	})
	if err != nil && last != nil {
		return fmt.Errorf("%w; last answer: %v", err, last)
	}
	return err
}
