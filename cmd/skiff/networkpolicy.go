package main

import (
	"context"

	"github.com/spf13/cobra"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/proxy"
)

// networkPolicyOptions are the flags of `skiff network-policy`.
type networkPolicyOptions struct {
	kubeconfig       string
	hostnameOverride string
	// ipv6 polices the pods' IPv6 addresses too (table "ip6 skiff-netpol"): a dual-stack
	// cluster's nodes need it, or an isolated pod's IPv6 address stays open to every pod.
	ipv6 bool
}

func newNetworkPolicyCommand(_ *globalOptions) *cobra.Command {
	o := &networkPolicyOptions{}
	cmd := &cobra.Command{
		Use:   "network-policy",
		Short: "Enforce NetworkPolicies on this node's pods with nftables",
		Long: `Watch Pods, Namespaces and NetworkPolicies and program this node's nftables (table
"ip skiff-netpol") so that a pod selected by a policy gets only the traffic its policies allow,
in and out, as upstream defines NetworkPolicy. It runs beside skiff proxy on every node; the
table is rebuilt at start and deleted on exit. In a dual-stack cluster, --ipv6 polices the pods'
IPv6 addresses too, in the table "ip6 skiff-netpol". Needs root (CAP_NET_ADMIN) and nft.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			cfg, err := loadKubeconfig(o.kubeconfig)
			if err != nil {
				return err
			}
			return runNetworkPolicyAgent(ctx, cfg, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig to reach the API server with; default $KUBECONFIG or ~/.kube/config")
	f.StringVar(&o.hostnameOverride, "hostname-override", "", "this node's name, as its kubelet registers it; default the host name")
	f.BoolVar(&o.ipv6, "ipv6", false, "police the pods' IPv6 addresses too, in the table \"ip6 skiff-netpol\" (a dual-stack cluster: without it, isolated pods' IPv6 addresses stay open)")
	return cmd
}

// runNetworkPolicyAgent runs the agent until ctx is done.
func runNetworkPolicyAgent(ctx context.Context, cfg *rest.Config, o *networkPolicyOptions) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	a, err := proxy.NewNetworkPolicyAgent(factory.Core().V1().Pods(), factory.Core().V1().Namespaces(), factory.Networking().V1().NetworkPolicies(),
		proxy.NetworkPolicyConfig{Hostname: nodeHostname(o.hostnameOverride), IPv6: o.ipv6})
	if err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	return a.Run(ctx)
}

// upNetworkPolicy is the NetworkPolicy agent as a part of `skiff up`, for this host's node.
func upNetworkPolicy(cfg *rest.Config, network upNetwork) func(context.Context) error {
	return func(ctx context.Context) error {
		return runNetworkPolicyAgent(ctx, cfg, &networkPolicyOptions{ipv6: network.dualStack})
	}
}
