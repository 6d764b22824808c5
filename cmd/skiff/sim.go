package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/kubelet"
	"github.com/skiff-dev/skiff/kubelet/fakeruntime"
)

// simOptions are the flags of `skiff sim`.
type simOptions struct {
	kubeconfig string
	nodes      int
	namePrefix string
	cpu        string
	memory     string
	maxPods    int
	qps        float32
}

func newSimCommand(g *globalOptions) *cobra.Command {
	o := &simOptions{}
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run many simulated nodes in this process, for scale tests",
		Long: `Run --nodes kubelets in this process against the API server of --kubeconfig, each
registering its own Node and renewing its own Lease, all on the in-memory runtime: pods bound
to them "run" (scripted by fake.skiff.dev/<container> annotations) without starting anything,
like upstream's hollow nodes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			if o.kubeconfig == "" {
				return errors.New("--kubeconfig is required")
			}
			cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
			if err != nil {
				return err
			}
			return runSim(ctx, o, cfg, nil)
		},
	}
	o.addFlags(cmd.Flags())
	return cmd
}

func (o *simOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig that reaches the API server")
	f.IntVar(&o.nodes, "nodes", 10, "how many nodes to simulate")
	f.StringVar(&o.namePrefix, "name-prefix", "sim-node-", "the nodes are named this prefix and their index")
	f.StringVar(&o.cpu, "cpu", "8", "each node's CPU capacity")
	f.StringVar(&o.memory, "memory", "32Gi", "each node's memory capacity")
	f.IntVar(&o.maxPods, "max-pods", 110, "each node's pod capacity")
	f.Float32Var(&o.qps, "qps", 0, "client requests per second, shared by all nodes; 0: unlimited")
}

// simNodeIP is the made-up InternalIP of simulated node i, from the shared address space
// 100.64.0.0/10; nothing is ever sent to it.
func simNodeIP(i int) net.IP {
	return net.IPv4(100, byte(64+i>>16&0x3f), byte(i>>8), byte(i))
}

// simPodCIDR is simulated node i's pod range, 10.(128+i/256).(i%256).0/24; never reached.
func simPodCIDR(i int) string {
	return fmt.Sprintf("10.%d.%d.0/24", 128+i/256%128, i%256)
}

// runSim runs o.nodes kubelets on fake runtimes until ctx is done. started, when set, is
// called with each kubelet once it is ready.
func runSim(ctx context.Context, o *simOptions, restConfig *rest.Config, started func(*kubelet.Kubelet)) error {
	if o.nodes <= 0 {
		return fmt.Errorf("--nodes must be positive, not %d", o.nodes)
	}
	cpu, err := resource.ParseQuantity(o.cpu)
	if err != nil {
		return fmt.Errorf("--cpu: %w", err)
	}
	memory, err := resource.ParseQuantity(o.memory)
	if err != nil {
		return fmt.Errorf("--memory: %w", err)
	}
	restConfig = rest.CopyConfig(restConfig)
	restConfig.QPS, restConfig.Burst = o.qps, int(o.qps*2)
	if o.qps <= 0 {
		restConfig.QPS = -1 // no client-side rate limit
	}
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for i := range o.nodes {
		rt, err := fakeruntime.New(simPodCIDR(i))
		if err != nil {
			return err
		}
		name := fmt.Sprintf("%s%d", o.namePrefix, i)
		k, err := kubelet.New(kubelet.Config{
			NodeName: name, Client: client, Runtime: rt, RuntimeEndpoint: fakeRuntimeEndpoint,
			KubeletVersion: apis.VersionInfo().GitVersion,
			Machine: kubelet.MachineInfo{
				CPUs: int(cpu.Value()), MemoryBytes: memory.Value(), EphemeralStorageBytes: 100 << 30,
				MachineID: name, SystemUUID: name, BootID: name, KernelVersion: "simulated",
				OSImage: "skiff simulated node", OperatingSystem: "linux", Architecture: "amd64",
			},
			NodeIPs:    []net.IP{simNodeIP(i)},
			MaxPods:    o.maxPods,
			PodCIDR:    simPodCIDR(i),
			NodeLabels: map[string]string{"skiff.dev/simulated": "true"},
		})
		if err != nil {
			return err
		}
		wg.Go(func() {
			if err := k.Run(ctx); err != nil && ctx.Err() == nil {
				cancel(fmt.Errorf("%s: %w", name, err))
			}
		})
		if started != nil {
			wg.Go(func() {
				select {
				case <-k.Ready():
					started(k)
				case <-ctx.Done():
				}
			})
		}
		// a gentle start: a thousand registrations at once only make a queue
		if i%50 == 49 {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	slog.Info("simulated nodes running", "nodes", o.nodes)
	<-ctx.Done()
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return nil
}
