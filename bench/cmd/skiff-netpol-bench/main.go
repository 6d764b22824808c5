// Command skiff-netpol-bench measures how long skiff's NetworkPolicy agent takes to program a
// node's nftables: the first full sync for --pods pods under --policies policies, then
// --changes single-pod changes (a pod replaced by one with a new address, or relabelled into
// other policies), each one sync of its own.
//
// It times the agent's Sync (reading the informers' caches, building the rules, the diff with
// the rules applied, and the `nft -f` transaction) on informers it fills itself, so that the
// figure is the agent's work, not an API server's or a watch's. It runs itself again in a
// network namespace of its own, so the table it programs never touches the host's network and
// goes with the namespace when the bench ends. It needs root and nft. See bench/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/bench/skiffproc"
	"github.com/skiff-dev/skiff/bench/stats"
	"github.com/skiff-dev/skiff/proxy"
)

// netnsEnv marks the bench running inside the network namespace it made for itself.
const netnsEnv = "SKIFF_NETPOL_BENCH_NETNS"

const (
	nodeName   = "bench-node"
	namespaces = 10
	apps       = 20 // app labels per namespace
)

func main() {
	pods := flag.Int("pods", 1000, "pods, all on this node (the worst case: every policy selects some)")
	policies := flag.Int("policies", 100, "NetworkPolicies, spread over 10 namespaces")
	changes := flag.Int("changes", 200, "single-pod changes, each synced and timed on its own")
	phases := flag.String("phases", "sync,packets", "phases to run, comma-separated: sync, packets")
	rounds := flag.Int("rounds", 3, "packets phase: runs with and without the table")
	conns := flag.Int("conns", 4, "packets phase: concurrent clients")
	duration := flag.Duration("duration", 3*time.Second, "packets phase: length of one run")
	logSyncs := flag.Bool("log", false, "log each sync's build time and how it was written to standard error")
	flag.Parse()
	if *logSyncs {
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})))
	}
	if *pods < namespaces || *policies < 1 || *changes < 0 || *rounds < 1 || *conns < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "skiff-netpol-bench: --pods at least 10, --policies, --rounds and --conns at least 1, and there are no arguments")
		os.Exit(2)
	}
	if os.Getenv(netnsEnv) == "" {
		skiffproc.ExitOn("skiff-netpol-bench", skiffproc.ReexecInNetns(netnsEnv, "nft"))
		return
	}
	skiffproc.ExitOn("skiff-netpol-bench", run(*pods, *policies, *changes, strings.Split(*phases, ","), *rounds, *conns, *duration))
}

func nsName(i int) string  { return fmt.Sprintf("team-%02d", i) }
func appName(i int) string { return fmt.Sprintf("app-%02d", i) }

// podIP is a synthetic pod's address, apart from the packets phase's real pods in 10.244.
func podIP(i int) string { return fmt.Sprintf("10.250.%d.%d", i/250, 1+i%250) }

func newPod(i, app int, ip string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: nsName(i % namespaces), Name: fmt.Sprintf("pod-%04d", i), Labels: map[string]string{"app": appName(app)}},
		Spec: corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "c",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "metrics", ContainerPort: 9090}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}},
	}
}

// newPolicy is one of a mix: every policy isolates its app for ingress, from pods of another
// app of its namespace, from a namespace, and from an ipBlock with an exception, on a
// numeric port, a named port and a range; every fourth also isolates for egress.
func newPolicy(i int) *networkingv1.NetworkPolicy {
	ns := i % namespaces
	app := (i / namespaces) % apps
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: nsName(ns), Name: fmt.Sprintf("policy-%03d", i)},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": appName(app)}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{
					{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": appName((app + 1) % apps)}}},
					{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": nsName((ns + 1) % namespaces)}}},
					{IPBlock: &networkingv1.IPBlock{CIDR: "192.168.0.0/16", Except: []string{fmt.Sprintf("192.168.%d.0/24", i%256)}}},
				},
				Ports: []networkingv1.NetworkPolicyPort{
					{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(80))},
					{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromString("http"))},
					{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(30000)), EndPort: ptr.To[int32](30100)},
				},
			}},
		},
	}
	if i%4 == 0 {
		np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
		np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{
			{Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To(intstr.FromInt32(53))}}},
			{To: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromString("metrics"))}}},
		}
	}
	return np
}

func run(pods, policies, changes int, phases []string, rounds, conns int, duration time.Duration) error {
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("ip link set lo up: %v: %s", err, out)
	}
	factory := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	podInformer, nsInformer, npInformer := factory.Core().V1().Pods(), factory.Core().V1().Namespaces(), factory.Networking().V1().NetworkPolicies()
	newAgent := func() (*proxy.NetworkPolicyAgent, error) {
		return proxy.NewNetworkPolicyAgent(podInformer, nsInformer, npInformer, proxy.NetworkPolicyConfig{Hostname: nodeName})
	}
	// the informers are never started: the bench fills their caches itself
	podStore, nsStore, npStore := podInformer.Informer().GetIndexer(), nsInformer.Informer().GetIndexer(), npInformer.Informer().GetIndexer()
	for i := range namespaces {
		must(nsStore.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsName(i), Labels: map[string]string{"team": nsName(i)}}}))
	}
	for i := range pods {
		must(podStore.Add(newPod(i, i/namespaces%apps, podIP(i))))
	}
	for i := range policies {
		must(npStore.Add(newPolicy(i)))
	}
	packetObjects(podStore, nsStore, npStore)
	ctx := context.Background()
	fmt.Printf("pods %d (all on this node) and the packets phase's 2, policies %d and its 1, namespaces %d and its 1\n", pods, policies, namespaces)
	for _, phase := range phases {
		var err error
		switch phase {
		case "sync":
			err = syncPhase(ctx, newAgent, podStore, pods, changes)
		case "packets":
			err = packetsPhase(ctx, newAgent, rounds, conns, duration)
		default:
			err = fmt.Errorf("no phase %q (sync, packets)", phase)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", phase, err)
		}
	}
	return nil
}

// syncPhase times the first full sync, then changes single-pod changes each synced alone.
func syncPhase(ctx context.Context, newAgent func() (*proxy.NetworkPolicyAgent, error), podStore cache.Indexer, pods, changes int) error {
	agent, err := newAgent()
	if err != nil {
		return err
	}

	start := time.Now()
	if err := agent.Sync(ctx); err != nil {
		return fmt.Errorf("first sync: %w", err)
	}
	full := time.Since(start)
	out, err := exec.Command("nft", "list", "table", "ip", proxy.DefaultNetworkPolicyTable).Output()
	if err != nil {
		return fmt.Errorf("nft list: %w", err)
	}

	rng := rand.New(rand.NewPCG(1, 2))
	nextIP := pods
	var latencies, cpu []time.Duration
	for c := range changes {
		i := rng.IntN(pods)
		obj, _, _ := podStore.GetByKey(fmt.Sprintf("%s/pod-%04d", nsName(i%namespaces), i))
		pod := obj.(*corev1.Pod).DeepCopy()
		if c%2 == 0 {
			// the pod replaced: a new address
			ip := podIP(nextIP % 60000)
			nextIP++
			pod.Status.PodIP, pod.Status.PodIPs = ip, []corev1.PodIP{{IP: ip}}
		} else {
			// relabelled into other policies
			pod.Labels = map[string]string{"app": appName(rng.IntN(apps))}
		}
		must(podStore.Update(pod))
		start, startCPU := time.Now(), processCPU()
		if err := agent.Sync(ctx); err != nil {
			return fmt.Errorf("change %d: %w", c, err)
		}
		latencies = append(latencies, time.Since(start))
		cpu = append(cpu, processCPU()-startCPU)
	}
	slices.Sort(latencies)
	slices.Sort(cpu)

	fmt.Printf("table: %d lines of `nft list table`\n", countLines(out))
	fmt.Printf("first full sync: %v\n", full.Round(time.Millisecond))
	if len(latencies) > 0 {
		fmt.Printf("single-pod change, sync: p50 %v, p90 %v, p99 %v, max %v (%d changes)\n",
			stats.Percentile(latencies, 50).Round(100*time.Microsecond), stats.Percentile(latencies, 90).Round(100*time.Microsecond),
			stats.Percentile(latencies, 99).Round(100*time.Microsecond), latencies[len(latencies)-1].Round(100*time.Microsecond), len(latencies))
		fmt.Printf("single-pod change, CPU time of the process (user+system): p50 %v, p90 %v; fastest sync %v\n",
			stats.Percentile(cpu, 50).Round(100*time.Microsecond), stats.Percentile(cpu, 90).Round(100*time.Microsecond), latencies[0].Round(100*time.Microsecond))
	}
	return nil
}

// processCPU is the CPU time this process has used, all threads (the garbage collector's too).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func countLines(b []byte) int {
	n := 0
	for _, c := range b {
		if c == '\n' {
			n++
		}
	}
	return n
}
