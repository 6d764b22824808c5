package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/controllers/manager"
)

// controllerManagerOptions are the flags of `skiff controller-manager`, named as
// kube-controller-manager's.
type controllerManagerOptions struct {
	kubeconfig string
	manager    manager.Options
	rootCAFile string
}

// profilingUsage describes --profiling of the parts that serve plain HTTP. Upstream's is on by
// default behind its authenticated port; skiff's port has no authentication, so it is off.
const profilingUsage = "also serve the Go runtime's profiles under /debug/pprof/ on --port (unauthenticated, as the port is)"

func newControllerManagerCommand(_ *globalOptions) *cobra.Command {
	o := &controllerManagerOptions{}
	cmd := &cobra.Command{
		Use:   "controller-manager",
		Short: "Run the controllers that drive the cluster's actual state to the desired one",
		Long: `Run the controllers (ReplicaSets, Deployments, garbage collection, namespaces, nodes, ...)
against an API server. With --leader-elect (the default) several may run: the one holding the
Lease kube-system/kube-controller-manager acts. /healthz and /metrics are served on --port.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			return runControllerManager(ctx, o)
		},
	}
	o.addFlags(cmd.Flags())
	return cmd
}

func (o *controllerManagerOptions) addFlags(f *pflag.FlagSet) {
	m := &o.manager
	f.StringVar(&o.kubeconfig, "kubeconfig", "",
		"kubeconfig of the API server to drive; without it $KUBECONFIG, ~/.kube/config or the in-cluster service account")
	f.StringSliceVar(&m.Controllers, "controllers", []string{"*"},
		"controllers to run: '*' runs every controller, 'foo' runs foo, '-foo' does not run foo. All controllers: "+
			strings.Join(manager.ControllerNames(), ", "))
	f.BoolVar(&m.LeaderElect, "leader-elect", true,
		"campaign for the Lease kube-system/kube-controller-manager and run controllers only while holding it")
	f.DurationVar(&m.LeaseDuration, "leader-elect-lease-duration", 15*time.Second,
		"how long others wait after the leader's last renewal before taking the Lease")
	f.DurationVar(&m.RenewDeadline, "leader-elect-renew-deadline", 10*time.Second,
		"how long the leader keeps trying to renew before it gives up leading")
	f.DurationVar(&m.RetryPeriod, "leader-elect-retry-period", 2*time.Second,
		"how often to try to acquire or renew the Lease")
	f.StringVar(&m.ClusterCIDR, "cluster-cidr", "10.244.0.0/16",
		"CIDR of the pod network; each node gets a subnet of it as spec.podCIDR (one IPv4 and one IPv6 CIDR, comma-separated, for dual stack)")
	f.IntVar(&m.NodeCIDRMaskSize, "node-cidr-mask-size", 0, "prefix length of each node's pod CIDR (default 24 for IPv4, 64 for IPv6)")
	f.DurationVar(&m.NodeMonitorGracePeriod, "node-monitor-grace-period", 40*time.Second,
		"how long a node may go without renewing its Lease or posting status before it is marked unhealthy")
	f.StringVar(&o.rootCAFile, "root-ca-file", "", "CA bundle published to every namespace as the kube-root-ca.crt ConfigMap")
	f.StringVar(&m.ClusterSigningCertFile, "cluster-signing-cert-file", "",
		"PEM CA certificate the kubernetes.io signers issue CertificateSigningRequests' certificates with")
	f.StringVar(&m.ClusterSigningKeyFile, "cluster-signing-key-file", "", "PEM private key of --cluster-signing-cert-file")
	f.DurationVar(&m.ClusterSigningDuration, "cluster-signing-duration", 365*24*time.Hour,
		"the longest an issued certificate lives; a request's spec.expirationSeconds may ask for less")
	f.IntVar(&m.TerminatedPodGCThreshold, "terminated-pod-gc-threshold", 12500,
		"how many terminated pods may exist before the pod garbage collector deletes the oldest; 0 keeps them all")
	f.StringVar(&m.BindAddress, "bind-address", "127.0.0.1", "IP address /healthz and /metrics are served on")
	f.IntVar(&m.Port, "port", 10257, "port /healthz and /metrics are served on (HTTP); -1 serves nothing")
	f.BoolVar(&m.Profiling, "profiling", false, profilingUsage)
	f.BoolVar(&m.UseServiceAccountCredentials, "use-service-account-credentials", false,
		"run each controller as its own ServiceAccount in kube-system (system:controller:<name> in the default policy) rather than as the manager")
	f.Float32Var(&m.KubeAPIQPS, "kube-api-qps", 200, "most requests per second to the API server")
	f.IntVar(&m.KubeAPIBurst, "kube-api-burst", 400, "most requests in a burst to the API server")
}

func (o *controllerManagerOptions) validate() error {
	if o.manager.NodeMonitorGracePeriod <= 0 {
		return errors.New("--node-monitor-grace-period must be positive")
	}
	if o.manager.TerminatedPodGCThreshold < 0 {
		return errors.New("--terminated-pod-gc-threshold cannot be negative")
	}
	if o.manager.Port > 65535 {
		return fmt.Errorf("--port %d is not a port", o.manager.Port)
	}
	if m := o.manager; m.LeaderElect && (m.LeaseDuration <= m.RenewDeadline || m.RenewDeadline <= m.RetryPeriod || m.RetryPeriod <= 0) {
		return errors.New("leader election needs --leader-elect-lease-duration > --leader-elect-renew-deadline > --leader-elect-retry-period > 0")
	}
	if o.manager.Port == 0 {
		o.manager.Port = -1 // upstream: 0 serves nothing
	}
	return o.manager.Validate()
}

func runControllerManager(ctx context.Context, o *controllerManagerOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	cfg, err := controllerManagerRESTConfig(o.kubeconfig)
	if err != nil {
		return err
	}
	if o.rootCAFile != "" {
		if o.manager.RootCA, err = os.ReadFile(o.rootCAFile); err != nil {
			return fmt.Errorf("--root-ca-file: %w", err)
		}
	} else if len(cfg.CAData) > 0 {
		o.manager.RootCA = cfg.CAData
	} else if cfg.CAFile != "" {
		o.manager.RootCA, _ = os.ReadFile(cfg.CAFile)
	}
	return manager.Run(ctx, cfg, o.manager)
}

// controllerManagerRESTConfig reaches the API server from --kubeconfig, the usual kubeconfig
// files, or the in-cluster service account.
func controllerManagerRESTConfig(kubeconfig string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err == nil {
		return cfg, nil
	}
	if kubeconfig == "" {
		if in, inErr := rest.InClusterConfig(); inErr == nil {
			return in, nil
		}
	}
	return nil, fmt.Errorf("kubeconfig: %w", err)
}

// upControllerManager is the controller manager of `skiff up`: every controller, on the admin
// credentials, publishing the cluster CA, under a name that stays the same across restarts of
// the same machine so that a restarted `skiff up` takes its Lease back at once.
func upControllerManager(restConfig *rest.Config, network upNetwork, caFile, caKeyFile string) func(context.Context) error {
	return func(ctx context.Context) error {
		ca, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("cluster CA: %w", err)
		}
		host, _ := os.Hostname()
		return manager.Run(ctx, restConfig, manager.Options{
			LeaderElect: true,
			Identity:    "skiff-up_" + host,
			ClusterCIDR: network.clusterCIDR,
			RootCA:      ca,
			// the kubernetes.io signers issue with the cluster CA, as kubeadm configures them
			ClusterSigningCertFile: caFile,
			ClusterSigningKeyFile:  caKeyFile,
			TolerateServingFailure: true,
			// each controller as its own ServiceAccount, as kubeadm runs upstream's
			UseServiceAccountCredentials: true,
		})
	}
}
