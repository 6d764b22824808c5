package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/dns"
)

// dnsOptions are the flags of `skiff dns`.
type dnsOptions struct {
	kubeconfig       string
	listen           string
	advertiseAddress string
	clusterDomain    string
	upstreams        []string
	serviceIP        string
	hostnameOverride string
	// retryListen keeps trying to bind instead of failing (inside `skiff up`); not a flag.
	retryListen bool
}

func newDNSCommand(_ *globalOptions) *cobra.Command {
	o := &dnsOptions{}
	cmd := &cobra.Command{
		Use:   "dns",
		Short: "Serve the cluster's DNS (Services and pods of the cluster domain) and forward the rest",
		Long: `Serve <svc>.<ns>.svc.<domain> and pod names from the API, and forward other names to the
host's resolvers. At start it creates the kube-system/kube-dns Service (cluster IP --service-ip)
if absent, and adds --advertise-address and the --listen port to its endpoints (beside other
DNS servers', while its Lease kube-system/kube-dns-NODE is renewed); the proxy then forwards
the Service's cluster IP here.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			cfg, err := loadKubeconfig(o.kubeconfig)
			if err != nil {
				return err
			}
			return runDNS(ctx, cfg, o)
		},
	}
	o.addFlags(cmd.Flags())
	return cmd
}

func (o *dnsOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig to reach the API server with; default $KUBECONFIG or ~/.kube/config")
	f.StringVar(&o.listen, "listen", "0.0.0.0:53", "address to serve DNS on, UDP and TCP")
	f.StringVar(&o.advertiseAddress, "advertise-address", "",
		"the address pods reach this server at, published as the kube-dns endpoint; default the host's first global IPv4 address")
	f.StringVar(&o.clusterDomain, "cluster-domain", dns.DefaultClusterDomain, "the cluster's DNS domain")
	f.StringSliceVar(&o.upstreams, "upstream", nil, "resolvers for other names, host[:port], comma-separated; default the nameservers of /etc/resolv.conf")
	f.StringVar(&o.serviceIP, "service-ip", dns.DefaultServiceIP, "cluster IP of the kube-dns Service when it is created")
	f.StringVar(&o.hostnameOverride, "hostname-override", "", "this node's name; default the host name")
}

// runDNS serves cluster DNS until ctx is done, keeping the kube-dns Service's endpoints on
// this server.
func runDNS(ctx context.Context, cfg *rest.Config, o *dnsOptions) error {
	host, portStr, err := net.SplitHostPort(o.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	advertise, err := dnsAdvertiseAddress(o.advertiseAddress, host)
	if err != nil {
		return err
	}
	upstreams, err := dnsUpstreams(o.upstreams, o.serviceIP)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	server, err := dns.New(factory.Core().V1().Services(), factory.Discovery().V1().EndpointSlices(), dns.Config{
		ClusterDomain: o.clusterDomain, Upstreams: upstreams})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	factory.Start(ctx.Done())
	defer factory.Shutdown()

	publisher := dns.NewPublisher(client, o.serviceIP, dns.Endpoint{IP: advertise, Port: int32(port), NodeName: nodeHostname(o.hostnameOverride)})
	published := make(chan struct{})
	go func() { defer close(published); publisher.Run(ctx) }()
	// a clean stop waits for the publisher to take this server out of kube-dns
	defer func() { cancel(); <-published }()
	for {
		err := server.ListenAndServe(ctx, o.listen)
		if ctx.Err() != nil {
			return nil
		}
		if !o.retryListen {
			return err
		}
		slog.Warn("cluster DNS cannot serve; trying again in 30s", "address", o.listen, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(30 * time.Second):
		}
	}
}

// dnsAdvertiseAddress is the configured address, the listen address when it names one, or
// the host's first global unicast IPv4 address.
func dnsAdvertiseAddress(configured, listenHost string) (netip.Addr, error) {
	if configured != "" {
		ip, err := netip.ParseAddr(configured)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("--advertise-address: %w", err)
		}
		return ip, nil
	}
	if ip, err := netip.ParseAddr(listenHost); err == nil && !ip.IsUnspecified() {
		return ip, nil
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap().Is4() && ip.IsGlobalUnicast() {
				return ip.Unmap(), nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("no global IPv4 address on this host: give --advertise-address")
}

// dnsUpstreams are the configured resolvers with port 53 by default, or those of
// /etc/resolv.conf, leaving out the cluster DNS itself (a host whose resolv.conf already
// names it would loop).
func dnsUpstreams(configured []string, serviceIP string) ([]string, error) {
	var out []string
	if len(configured) == 0 {
		fromFile, err := dns.UpstreamsFromResolvConf("/etc/resolv.conf")
		if err != nil {
			slog.Warn("no resolvers to forward to: other names will fail", "err", err)
		}
		configured = fromFile
	}
	for _, u := range configured {
		u = strings.TrimSpace(u)
		if _, _, err := net.SplitHostPort(u); err != nil {
			u = net.JoinHostPort(u, "53")
		}
		if host, _, _ := net.SplitHostPort(u); host == serviceIP {
			continue
		}
		out = append(out, u)
	}
	return out, nil
}

// upDNS is the cluster DNS as a part of `skiff up`: on every address of the host, port 53,
// waiting for the port rather than failing when another server holds it; published at the
// node's first address (--node-ip) when it has one, else at the server's --advertise-address.
func upDNS(cfg *rest.Config, network upNetwork, nodeIPs []string, advertiseAddress string) func(context.Context) error {
	advertise := advertiseAddress
	if len(nodeIPs) > 0 {
		advertise = nodeIPs[0]
	}
	return func(ctx context.Context) error {
		return runDNS(ctx, cfg, &dnsOptions{listen: "0.0.0.0:53", advertiseAddress: advertise,
			clusterDomain: dns.DefaultClusterDomain, serviceIP: network.clusterDNS, retryListen: true})
	}
}
