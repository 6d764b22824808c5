package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/proxy"
)

// namespace holds every object the bench makes.
const namespace = "proxy-bench"

// bench is one run: the API server's client, the proxy under test, and what was measured.
type bench struct {
	o        options
	client   kubernetes.Interface
	progress io.Writer
	logOut   io.Writer

	factory     informers.SharedInformerFactory
	proxy       *proxy.Proxy
	stopProxy   context.CancelFunc
	proxyExited chan struct{}

	sync       *syncResult
	throughput []throughputRow
	dns        *dnsResult
}

type syncResult struct {
	services, endpoints int
	// informers is how long the proxy's informers took to list everything; initial from
	// then until the first nft transaction had returned; nftInitial the first sync's own
	// duration as the proxy's histogram has it (building the rules and nft -f).
	informers, initial, nftInitial time.Duration
	// confirmed counts the bench's Services that nft showed in the service-ips map.
	confirmed int
	changes   []time.Duration
	missed    int
}

func serviceName(i int) string { return fmt.Sprintf("svc-%04d", i) }

// endpointIP is the address of endpoint j of Service i, all distinct, in 10.128.0.0/9.
func endpointIP(i, j int) string {
	a := netip.MustParseAddr("10.128.0.0").As4()
	n := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	n += uint32(i*1024 + j)
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}).String()
}

func endpointSlice(svc string, ips []string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: svc + "-1", Namespace: namespace, Labels: map[string]string{
			discoveryv1.LabelServiceName: svc, discoveryv1.LabelManagedBy: "skiff-proxy-bench"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for _, ip := range ips {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}, NodeName: ptr.To("bench-node"),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)}})
	}
	return s
}

func service(name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}}},
	}
}

func (b *bench) ensureNamespace(ctx context.Context) error {
	_, err := b.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// parallel runs f(0..n-1) on 16 workers and returns the first error.
func parallel(n int, f func(i int) error) error {
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
		next  = make(chan int)
	)
	for range 16 {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// startProxy runs the proxy in this process on this namespace's nftables, as `skiff proxy`
// does, and returns once its informers have synced. The first sync starts right after.
func (b *bench) startProxy(ctx context.Context) (informersSynced time.Time, runStarted time.Time, err error) {
	if b.proxy != nil {
		return time.Time{}, time.Time{}, nil
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(b.logOut, &slog.HandlerOptions{Level: slog.LevelDebug})))
	b.factory = informers.NewSharedInformerFactory(b.client, 0)
	p, err := proxy.New(b.factory.Core().V1().Services(), b.factory.Discovery().V1().EndpointSlices(), proxy.Config{
		Hostname: "bench-node", ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"),
	})
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	pctx, cancel := context.WithCancel(context.Background())
	b.proxy, b.stopProxy, b.proxyExited = p, cancel, make(chan struct{})
	b.factory.Start(pctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), b.factory.Discovery().V1().EndpointSlices().Informer().HasSynced,
		b.factory.Core().V1().Services().Informer().HasSynced) {
		return time.Time{}, time.Time{}, ctx.Err()
	}
	informersSynced = time.Now()
	go func() {
		defer close(b.proxyExited)
		_ = p.Run(pctx)
	}()
	return informersSynced, time.Now(), nil
}

// stop stops the proxy, which deletes its table.
func (b *bench) stop() {
	if b.proxy == nil {
		return
	}
	b.stopProxy()
	<-b.proxyExited
	b.factory.Shutdown()
	b.proxy = nil
}

// nextSync waits for a sync that ended after since, and returns when it ended.
func (b *bench) nextSync(ctx context.Context, since time.Time, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		if _, last := b.proxy.Healthy(); last.After(since) {
			return last, true
		}
		select {
		case <-ctx.Done():
			return time.Time{}, false
		case <-tick.C:
		}
	}
	return time.Time{}, false
}

func nft(args ...string) (string, error) {
	out, err := exec.Command("nft", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("nft %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (b *bench) syncPhase(ctx context.Context) error {
	o := b.o
	if err := b.ensureNamespace(ctx); err != nil {
		return err
	}
	fmt.Fprintf(b.progress, "creating %d Services with %d endpoints each\n", o.services, o.endpoints)
	slicesByService := make([]*discoveryv1.EndpointSlice, o.services)
	err := parallel(o.services, func(i int) error {
		if _, err := b.client.CoreV1().Services(namespace).Create(ctx, service(serviceName(i)), metav1.CreateOptions{}); err != nil {
			return err
		}
		ips := make([]string, o.endpoints)
		for j := range ips {
			ips[j] = endpointIP(i, j)
		}
		s, err := b.client.DiscoveryV1().EndpointSlices(namespace).Create(ctx, endpointSlice(serviceName(i), ips), metav1.CreateOptions{})
		slicesByService[i] = s
		return err
	})
	if err != nil {
		return err
	}

	fmt.Fprintln(b.progress, "starting the proxy")
	start := time.Now()
	synced, runStarted, err := b.startProxy(ctx)
	if err != nil {
		return err
	}
	first, ok := b.nextSync(ctx, time.Time{}, 5*time.Minute)
	if !ok {
		return fmt.Errorf("the proxy's first sync did not finish within 5 minutes")
	}
	r := &syncResult{services: o.services, endpoints: o.endpoints, informers: synced.Sub(start), initial: first.Sub(runStarted)}
	r.nftInitial = b.syncDurationSum()
	out, err := nft("list", "map", "ip", proxy.DefaultTable, "service-ips")
	if err != nil {
		return err
	}
	r.confirmed = strings.Count(out, "-"+namespace+"/svc-")
	fmt.Fprintf(b.progress, "initial sync: %v after the informers synced (%v); nft shows %d of the bench's Services\n", r.initial, r.informers, r.confirmed)

	// one change at a time: a new address for one endpoint of a random Service; it is in
	// place once the sync that ended after the change shows its endpoint chain
	fmt.Fprintf(b.progress, "timing %d EndpointSlice changes\n", o.changes)
	rng := rand.New(rand.NewPCG(1, 2))
	for k := range o.changes {
		i := rng.IntN(o.services)
		s := slicesByService[i].DeepCopy()
		newIP := endpointIP(o.services+k/o.endpoints, k%o.endpoints)
		s.Endpoints[k%len(s.Endpoints)].Addresses = []string{newIP}
		want := namespace + "/" + serviceName(i) + "/tcp/http__" + newIP + "/8080"
		sent := time.Now()
		updated, err := b.client.DiscoveryV1().EndpointSlices(namespace).Update(ctx, s, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
		slicesByService[i] = updated
		since := sent
		applied := false
		for !applied {
			end, ok := b.nextSync(ctx, since, 30*time.Second)
			if !ok {
				break
			}
			chains, err := nft("list", "chains", "ip")
			if err != nil {
				return err
			}
			if strings.Contains(chains, want) {
				r.changes = append(r.changes, end.Sub(sent))
				applied = true
			}
			since = end
		}
		if !applied {
			r.missed++
		}
		// the proxy waits MinSyncInterval (100 ms) after each sync; a change in that window
		// would time the wait, not the work
		time.Sleep(150*time.Millisecond + time.Duration(rng.IntN(50))*time.Millisecond)
	}
	slices.Sort(r.changes)
	b.sync = r
	return nil
}

// syncDurationSum is the total time the proxy's syncs have spent writing rules, from its
// sync_proxy_rules_duration_seconds histogram.
func (b *bench) syncDurationSum() time.Duration {
	families, err := b.proxy.Metrics().Registry.Gather()
	if err != nil {
		return 0
	}
	for _, f := range families {
		if f.GetName() == "kubeproxy_sync_proxy_rules_duration_seconds" {
			for _, m := range f.GetMetric() {
				return time.Duration(m.GetHistogram().GetSampleSum() * float64(time.Second))
			}
		}
	}
	return 0
}
