package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/scheduler"
)

// schedulerOptions are the flags of `skiff scheduler`, named as kube-scheduler's.
type schedulerOptions struct {
	kubeconfig               string
	schedulerName            string
	leaderElect              bool
	leaseNamespace           string
	leaseName                string
	leaseDuration            time.Duration
	renewDeadline            time.Duration
	retryPeriod              time.Duration
	bindAddress              string
	port                     int
	profiling                bool
	percentageOfNodesToScore int32
	kubeAPIQPS               float32
	kubeAPIBurst             int
}

// defaultSchedulerPort is kube-scheduler's port for health and metrics.
const defaultSchedulerPort = 10259

func newSchedulerCommand(g *globalOptions) *cobra.Command {
	o := &schedulerOptions{}
	cmd := &cobra.Command{
		Use:   "scheduler",
		Short: "Assign pending pods to nodes, as kube-scheduler",
		Long: `Assign every pending pod whose spec.schedulerName is --scheduler-name to a node, the way
kube-scheduler does: filter the nodes by resources, taints, affinity, ports and spread, score the
rest, and bind the pod to the best. Pods that fit nowhere get the PodScheduled=False condition
and a FailedScheduling event, and may preempt lower-priority pods.

With --leader-elect (the default) several schedulers may run and only the holder of the Lease
kube-system/kube-scheduler acts. /healthz, /readyz and /metrics are served over plain HTTP on
--bind-address:--port.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			return runScheduler(ctx, o, g.verbosity)
		},
	}
	o.addFlags(cmd.Flags())
	return cmd
}

func (o *schedulerOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.kubeconfig, "kubeconfig", "",
		"kubeconfig of the cluster; empty uses $KUBECONFIG, ~/.kube/config, or the in-cluster service account")
	f.StringVar(&o.schedulerName, "scheduler-name", scheduler.DefaultSchedulerName,
		"schedule the pods whose spec.schedulerName is this, and report events as this")
	f.BoolVar(&o.leaderElect, "leader-elect", true,
		"act only while holding the leader Lease, so that several schedulers can run; false for a single one")
	f.StringVar(&o.leaseNamespace, "leader-elect-resource-namespace", "kube-system", "namespace of the leader Lease")
	f.StringVar(&o.leaseName, "leader-elect-resource-name", "kube-scheduler", "name of the leader Lease")
	f.DurationVar(&o.leaseDuration, "leader-elect-lease-duration", 15*time.Second,
		"how long others wait after the leader's last renewal before taking the Lease")
	f.DurationVar(&o.renewDeadline, "leader-elect-renew-deadline", 10*time.Second,
		"how long the leader keeps trying to renew before it gives up leading")
	f.DurationVar(&o.retryPeriod, "leader-elect-retry-period", 2*time.Second,
		"how often to try to acquire or renew the Lease")
	f.StringVar(&o.bindAddress, "bind-address", "0.0.0.0", "IP address to serve /healthz and /metrics on")
	f.IntVar(&o.port, "port", defaultSchedulerPort, "port to serve /healthz and /metrics on; 0 serves nothing")
	f.BoolVar(&o.profiling, "profiling", false, profilingUsage)
	f.Int32Var(&o.percentageOfNodesToScore, "percentage-of-nodes-to-score", 0,
		"share of the nodes to find feasible before scoring them; 0 is kube-scheduler's adaptive default")
	f.Float32Var(&o.kubeAPIQPS, "kube-api-qps", -1, "queries per second to the API server; negative for no limit")
	f.IntVar(&o.kubeAPIBurst, "kube-api-burst", 0, "burst of queries to the API server above --kube-api-qps")
}

func (o *schedulerOptions) validate() error {
	if o.schedulerName == "" {
		return errors.New("--scheduler-name must not be empty")
	}
	if net.ParseIP(o.bindAddress) == nil {
		return fmt.Errorf("--bind-address %q is not an IP address", o.bindAddress)
	}
	if o.port < 0 || o.port > 65535 {
		return fmt.Errorf("--port %d is not a port", o.port)
	}
	if o.percentageOfNodesToScore < 0 || o.percentageOfNodesToScore > 100 {
		return fmt.Errorf("--percentage-of-nodes-to-score %d is not between 0 and 100", o.percentageOfNodesToScore)
	}
	if o.leaderElect && (o.leaseDuration <= o.renewDeadline || o.renewDeadline <= o.retryPeriod || o.retryPeriod <= 0) {
		return errors.New("leader election needs --leader-elect-lease-duration > --leader-elect-renew-deadline > --leader-elect-retry-period > 0")
	}
	return nil
}

func (o *schedulerOptions) restConfig() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = o.kubeAPIQPS, o.kubeAPIBurst
	return cfg, nil
}

// runScheduler runs the scheduler until ctx is done.
func runScheduler(ctx context.Context, o *schedulerOptions, verbosity int) error {
	if err := o.validate(); err != nil {
		return err
	}
	cfg, err := o.restConfig()
	if err != nil {
		return err
	}
	opts := scheduler.Options{
		SchedulerName:            o.schedulerName,
		Verbosity:                verbosity,
		PercentageOfNodesToScore: o.percentageOfNodesToScore,
		Profiling:                o.profiling,
	}
	if o.leaderElect {
		opts.LeaderElection = &scheduler.LeaderElection{
			Namespace: o.leaseNamespace, Name: o.leaseName,
			LeaseDuration: o.leaseDuration, RenewDeadline: o.renewDeadline, RetryPeriod: o.retryPeriod,
		}
	}
	if o.port != 0 {
		l, err := net.Listen("tcp", net.JoinHostPort(o.bindAddress, strconv.Itoa(o.port)))
		if err != nil {
			return fmt.Errorf("serving /healthz and /metrics: %w", err)
		}
		opts.HealthzListener = l
	}
	s, err := scheduler.New(cfg, opts)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// upScheduler is the scheduler of `skiff up`: one instance, so no leader election unless
// leaderElect (one server of several), with the cluster's admin credentials and no client-side
// rate limit. It serves /healthz and /metrics on 127.0.0.1:10259, or on a free port when that
// one is taken.
func upScheduler(restConfig *rest.Config, verbosity int, leaderElect bool) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		for {
			err := runUpScheduler(ctx, restConfig, verbosity, leaderElect)
			if !errors.Is(err, scheduler.ErrLeaderElectionLost) || ctx.Err() != nil {
				return err
			}
			// upstream's scheduler exits and its kubelet starts it again: here a new one
			// stands for the Lease, rather than the whole server stopping (a loaded
			// server may miss a renewal)
			slog.Warn("the scheduler lost its lease; a new one stands for it")
		}
	}
}

// runUpScheduler runs one scheduler until ctx is done or it loses its Lease.
func runUpScheduler(ctx context.Context, restConfig *rest.Config, verbosity int, leaderElect bool) error {
	cfg := rest.CopyConfig(restConfig)
	cfg.QPS, cfg.Burst = -1, 0
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(defaultSchedulerPort)))
	if err != nil {
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return fmt.Errorf("serving the scheduler's /healthz and /metrics: %w", err)
		}
		slog.Info("scheduler health port taken, using another", "wanted", defaultSchedulerPort, "address", l.Addr().String())
	}
	opts := scheduler.Options{Verbosity: verbosity, HealthzListener: l}
	if leaderElect {
		// upstream's defaults: kube-system/kube-scheduler, 15 s lease
		opts.LeaderElection = &scheduler.LeaderElection{}
	}
	s, err := scheduler.New(cfg, opts)
	if err != nil {
		l.Close()
		return err
	}
	return s.Run(ctx)
}
