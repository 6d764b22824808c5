package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/proxy"
)

// proxyOptions are the flags of `skiff proxy`, named as kube-proxy's.
type proxyOptions struct {
	kubeconfig         string
	hostnameOverride   string
	clusterCIDR        string
	healthzBindAddress string
	metricsBindAddress string
	noNodeRoutes       bool
	// ipv6 makes the proxy dual-stack without an IPv6 --cluster-cidr (skiff up's, which
	// masquerades neither family); not a flag: an IPv6 --cluster-cidr does it.
	ipv6 bool
}

func newProxyCommand(_ *globalOptions) *cobra.Command {
	o := &proxyOptions{}
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Route Service traffic on this node with nftables, as kube-proxy",
		Long: `Watch Services and EndpointSlices and program this node's nftables (table "ip skiff")
so that cluster IPs, node ports and external IPs reach ready endpoints, load-balanced at random.
The table is rebuilt at start and deleted on exit. It also keeps a route to every other Node's
podCIDR via its InternalIP (routes "proto 77", kept across restarts) and masquerades what pods
send out of the pod network, every Node's podCIDRs, and nothing they send to pods (table
"ip skiff-podnet"; the kubelet's CNI bridge should then masquerade nothing: skiff kubelet
--no-cni-masquerade). --no-node-routes turns both off. Needs root (CAP_NET_ADMIN), nft and ip.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			cfg, err := loadKubeconfig(o.kubeconfig)
			if err != nil {
				return err
			}
			return runProxy(ctx, cfg, o)
		},
	}
	o.addFlags(cmd.Flags())
	return cmd
}

func (o *proxyOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig to reach the API server with; default $KUBECONFIG or ~/.kube/config")
	f.StringVar(&o.hostnameOverride, "hostname-override", "", "this node's name, as its kubelet registers it; default the host name")
	f.StringVar(&o.clusterCIDR, "cluster-cidr", "", "the pods' address range; traffic to cluster IPs from outside it is masqueraded. "+
		"An IPv4 and an IPv6 CIDR, comma-separated, make the proxy dual-stack: IPv6 Services are routed in the table \"ip6 skiff\" and IPv6 podCIDRs get node routes")
	f.StringVar(&o.healthzBindAddress, "healthz-bind-address", "0.0.0.0:10256", "address of /healthz; empty serves none")
	f.StringVar(&o.metricsBindAddress, "metrics-bind-address", "127.0.0.1:10249", "address of /metrics; empty serves none")
	f.BoolVar(&o.noNodeRoutes, "no-node-routes", false, "keep no route to other Nodes' podCIDR via their InternalIP (the host-gateway pod network, routes marked proto 77) and no masquerade of pod traffic leaving the pod network")
}

// loadKubeconfig reads a kubeconfig file, or the default ones when path is empty.
func loadKubeconfig(path string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
}

// nodeHostname is the node's name: the override, or the host name in lower case, as the
// kubelet's default.
func nodeHostname(override string) string {
	if override != "" {
		return strings.ToLower(strings.TrimSpace(override))
	}
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return strings.ToLower(h)
}

// runProxy runs the proxy until ctx is done.
func runProxy(ctx context.Context, cfg *rest.Config, o *proxyOptions) error {
	cidr, cidr6, err := parseProxyClusterCIDR(o.clusterCIDR)
	if err != nil {
		return err
	}
	ipv6 := o.ipv6 || cidr6.IsValid()
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	hostname := nodeHostname(o.hostnameOverride)
	p, err := proxy.New(factory.Core().V1().Services(), factory.Discovery().V1().EndpointSlices(), proxy.Config{
		Hostname:    hostname,
		ClusterCIDR: cidr,
		IPv6:        ipv6, IPv6ClusterCIDR: cidr6,
	})
	if err != nil {
		return err
	}
	var routes *proxy.NodeRoutes
	if !o.noNodeRoutes {
		var clusterCIDRs []netip.Prefix
		for _, c := range []netip.Prefix{cidr, cidr6} {
			if c.IsValid() {
				clusterCIDRs = append(clusterCIDRs, c)
			}
		}
		if routes, err = proxy.NewNodeRoutes(factory.Core().V1().Nodes(), proxy.RoutesConfig{Hostname: hostname, IPv6: ipv6, ClusterCIDRs: clusterCIDRs}); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := serveProxyEndpoints(ctx, p, o); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if routes == nil {
		return p.Run(ctx)
	}
	routesDone := make(chan error, 1)
	go func() { routesDone <- routes.Run(ctx) }()
	err = p.Run(ctx)
	cancel()
	return errors.Join(err, <-routesDone)
}

// parseProxyClusterCIDR parses the proxy's --cluster-cidr: empty, one CIDR, or one IPv4 and
// one IPv6 CIDR separated by a comma, as kube-proxy's. An IPv6-only range is its cidr6 alone.
func parseProxyClusterCIDR(s string) (cidr, cidr6 netip.Prefix, err error) {
	if s == "" {
		return cidr, cidr6, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) > 2 {
		return cidr, cidr6, fmt.Errorf("--cluster-cidr %q: want one CIDR, or one IPv4 and one IPv6", s)
	}
	for _, part := range parts {
		p, err := netip.ParsePrefix(strings.TrimSpace(part))
		if err != nil {
			return cidr, cidr6, fmt.Errorf("--cluster-cidr: %w", err)
		}
		switch {
		case p.Addr().Is4() && !cidr.IsValid():
			cidr = p
		case p.Addr().Is6() && !cidr6.IsValid():
			cidr6 = p
		default:
			return cidr, cidr6, fmt.Errorf("--cluster-cidr %q: want one CIDR, or one IPv4 and one IPv6", s)
		}
	}
	return cidr, cidr6, nil
}

// serveProxyEndpoints serves /healthz (kube-proxy's answer: 200 while rules are fresh, 503
// otherwise, with the last update's time) and /metrics, each on its own address.
func serveProxyEndpoints(ctx context.Context, p *proxy.Proxy, o *proxyOptions) error {
	healthz := http.NewServeMux()
	healthz.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		ok, last := p.Healthy()
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(map[string]string{"lastUpdated": last.Format(time.RFC3339Nano), "currentTime": time.Now().Format(time.RFC3339Nano)})
	})
	metrics := http.NewServeMux()
	metrics.Handle("/metrics", promhttp.HandlerFor(p.Metrics().Registry, promhttp.HandlerOpts{}))
	for _, s := range []struct {
		addr    string
		handler http.Handler
	}{{o.healthzBindAddress, healthz}, {o.metricsBindAddress, metrics}} {
		if s.addr == "" {
			continue
		}
		l, err := net.Listen("tcp", s.addr)
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				slog.Warn("proxy endpoint stopped", "address", s.addr, "err", err)
			}
		}()
		context.AfterFunc(ctx, func() { srv.Close() })
	}
	return nil
}

// upProxy is the proxy as a part of `skiff up`: for this host's node, without healthz or
// metrics ports (several clusters may run on one machine in tests).
func upProxy(cfg *rest.Config, network upNetwork) func(context.Context) error {
	return func(ctx context.Context) error {
		return runProxy(ctx, cfg, &proxyOptions{ipv6: network.dualStack})
	}
}
