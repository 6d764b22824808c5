package endpointslice

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controllers"
)

type fixture struct {
	t      *testing.T
	client *fake.Clientset
	c      *Controller
}

var nameSeq atomic.Int64

func newFixture(t *testing.T, objects ...runtime.Object) *fixture {
	t.Helper()
	client := fake.NewClientset(objects...)
	// the fake tracker generates neither names nor UIDs
	client.PrependReactor("create", "*", func(a clienttesting.Action) (bool, runtime.Object, error) {
		obj := a.(clienttesting.CreateAction).GetObject().(metav1.Object)
		if obj.GetName() == "" && obj.GetGenerateName() != "" {
			obj.SetName(fmt.Sprintf("%s%05d", obj.GetGenerateName(), nameSeq.Add(1)))
		}
		if obj.GetUID() == "" {
			obj.SetUID(types.UID(fmt.Sprintf("uid-%d", nameSeq.Add(1))))
		}
		return false, nil, nil
	})
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(factory.Core().V1().Pods(), factory.Core().V1().Services(), factory.Core().V1().Nodes(),
		factory.Discovery().V1().EndpointSlices(), factory.Core().V1().Endpoints(), client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			t.Fatalf("informer of %v did not sync", typ)
		}
	}
	return &fixture{t: t, client: client, c: c}
}

// syncUntilCached syncs the Service, then waits until the controller's caches show every slice
// the API holds, so that the next sync sees this one's writes.
func (f *fixture) sync(key string) {
	f.t.Helper()
	if err := f.c.sync(context.Background(), key); err != nil {
		f.t.Fatalf("sync %s: %v", key, err)
	}
	ns, name := splitKey(key)
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		cached, _ := f.c.sliceLister.EndpointSlices(ns).List(everything)
		stored := f.slices(name)
		return len(cached) == len(stored), nil
	})
	if err != nil {
		f.t.Fatalf("the slice cache did not catch up: %v", err)
	}
}

func splitKey(key string) (string, string) {
	for i := range key {
		if key[i] == '/' {
			return key[:i], key[i+1:]
		}
	}
	return "", key
}

// slices are the Service's slices as stored, oldest name first.
func (f *fixture) slices(svc string) []discoveryv1.EndpointSlice {
	f.t.Helper()
	list, err := f.client.DiscoveryV1().EndpointSlices("ns").List(context.Background(), metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	if err != nil {
		f.t.Fatal(err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	return list.Items
}

func (f *fixture) endpoints(name string) *corev1.Endpoints {
	f.t.Helper()
	ep, err := f.client.CoreV1().Endpoints("ns").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatalf("get endpoints %s: %v", name, err)
	}
	return ep
}

// waitFor waits until the controller's caches satisfy cond.
func (f *fixture) waitFor(what string, cond func() bool) {
	f.t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 30*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		f.t.Fatalf("waiting for %s: %v", what, err)
	}
}

func service(name string, ports ...corev1.ServicePort) *corev1.Service {
	if len(ports) == 0 {
		ports = []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}
	}
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("svc-" + name), Labels: map[string]string{"team": "a"}},
		Spec: corev1.ServiceSpec{
			Selector:   map[string]string{"app": name},
			ClusterIP:  "10.96.0.20",
			Ports:      ports,
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
		},
	}
}

func pod(name, app, ip string, ready bool) *corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("pod-" + name), Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{
			{Name: "web", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}}}},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			PodIP:      ip,
			PodIPs:     []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}},
		},
	}
}

func byAddress(s discoveryv1.EndpointSlice) map[string]discoveryv1.Endpoint {
	out := map[string]discoveryv1.Endpoint{}
	for _, ep := range s.Endpoints {
		out[ep.Addresses[0]] = ep
	}
	return out
}

func conditions(ep discoveryv1.Endpoint) string {
	return fmt.Sprintf("ready=%v serving=%v terminating=%v",
		ptr.Deref(ep.Conditions.Ready, false), ptr.Deref(ep.Conditions.Serving, false), ptr.Deref(ep.Conditions.Terminating, false))
}

func TestSliceListsSelectedPodsWithTheirConditions(t *testing.T) {
	terminating := pod("c", "web", "10.244.0.3", true)
	terminating.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	finished := pod("d", "web", "10.244.0.4", false)
	finished.Status.Phase = corev1.PodSucceeded
	noIP := pod("e", "web", "", false)
	noIP.Status.PodIPs = nil
	other := pod("f", "other", "10.244.0.6", true)
	f := newFixture(t, service("web"), pod("a", "web", "10.244.0.1", true), pod("b", "web", "10.244.0.2", false),
		terminating, finished, noIP, other,
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1", Labels: map[string]string{zoneLabel: "zone-a"}}})
	f.sync("ns/web")

	slices := f.slices("web")
	if len(slices) != 1 {
		t.Fatalf("want one slice, got %d", len(slices))
	}
	s := slices[0]
	if s.AddressType != discoveryv1.AddressTypeIPv4 {
		t.Errorf("address type %s", s.AddressType)
	}
	if s.Labels[discoveryv1.LabelServiceName] != "web" || s.Labels[discoveryv1.LabelManagedBy] != ManagedBy || s.Labels["team"] != "a" {
		t.Errorf("labels %v", s.Labels)
	}
	if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].Kind != "Service" || s.OwnerReferences[0].Name != "web" ||
		!ptr.Deref(s.OwnerReferences[0].Controller, false) {
		t.Errorf("owner references %+v", s.OwnerReferences)
	}
	if len(s.Ports) != 1 || *s.Ports[0].Name != "http" || *s.Ports[0].Port != 8080 || *s.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("ports %+v", s.Ports)
	}
	eps := byAddress(s)
	want := map[string]string{
		"10.244.0.1": "ready=true serving=true terminating=false",
		"10.244.0.2": "ready=false serving=false terminating=false",
		"10.244.0.3": "ready=false serving=true terminating=true",
	}
	if len(eps) != len(want) {
		t.Errorf("endpoints %v, want %v", eps, want)
	}
	for addr, cond := range want {
		ep, ok := eps[addr]
		if !ok {
			t.Errorf("no endpoint %s", addr)
			continue
		}
		if got := conditions(ep); got != cond {
			t.Errorf("%s: %s, want %s", addr, got, cond)
		}
		if ptr.Deref(ep.NodeName, "") != "node-1" || ptr.Deref(ep.Zone, "") != "zone-a" {
			t.Errorf("%s: node %v zone %v", addr, ep.NodeName, ep.Zone)
		}
		if ep.TargetRef == nil || ep.TargetRef.Kind != "Pod" || ep.TargetRef.Namespace != "ns" {
			t.Errorf("%s: target %+v", addr, ep.TargetRef)
		}
	}
}

func TestNamedTargetPortIsResolvedPerPod(t *testing.T) {
	svc := service("web", corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromString("web"), Protocol: corev1.ProtocolTCP})
	a := pod("a", "web", "10.244.0.1", true)
	b := pod("b", "web", "10.244.0.2", true)
	b.Spec.Containers[0].Ports[0].ContainerPort = 9090
	missing := pod("c", "web", "10.244.0.3", true)
	missing.Spec.Containers[0].Ports = nil
	f := newFixture(t, svc, a, b, missing)
	f.sync("ns/web")

	got := map[string]string{} // address → ports
	for _, s := range f.slices("web") {
		for _, ep := range s.Endpoints {
			got[ep.Addresses[0]] = portsKey(s.Ports)
		}
	}
	want := map[string]string{"10.244.0.1": "http/TCP/8080/;", "10.244.0.2": "http/TCP/9090/;", "10.244.0.3": ""}
	for addr, ports := range want {
		if got[addr] != ports {
			t.Errorf("%s in a slice with ports %q, want %q", addr, got[addr], ports)
		}
	}
	if n := len(f.slices("web")); n != 3 {
		t.Errorf("want a slice per port set (3), got %d", n)
	}
	// the Endpoints leave out a pod that has none of the Service's ports
	ep := f.endpoints("web")
	if len(ep.Subsets) != 2 {
		t.Fatalf("want a subset per port set, got %+v", ep.Subsets)
	}
}

func TestSlicesHoldAtMostMaxEndpointsAndShrinkAsPodsGo(t *testing.T) {
	objects := []runtime.Object{service("web")}
	for i := range 250 {
		objects = append(objects, pod(fmt.Sprintf("p%03d", i), "web", fmt.Sprintf("10.244.%d.%d", i/200, i%200+1), true))
	}
	f := newFixture(t, objects...)
	f.sync("ns/web")
	slices := f.slices("web")
	total := 0
	for _, s := range slices {
		if len(s.Endpoints) > MaxEndpointsPerSlice {
			t.Errorf("slice %s holds %d endpoints", s.Name, len(s.Endpoints))
		}
		total += len(s.Endpoints)
	}
	if len(slices) != 3 || total != 250 {
		t.Fatalf("want 250 endpoints in 3 slices, got %d in %d", total, len(slices))
	}

	// deleting 200 pods leaves 50 endpoints in one slice
	for i := range 200 {
		if err := f.client.CoreV1().Pods("ns").Delete(context.Background(), fmt.Sprintf("p%03d", i), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 { // the fake watch holds 100 events at most
			f.waitFor("pods gone from the cache", func() bool {
				pods, _ := f.c.podLister.List(everything)
				return len(pods) == 250-i-1
			})
		}
	}
	f.sync("ns/web")
	total = 0
	for _, s := range f.slices("web") {
		total += len(s.Endpoints)
	}
	if total != 50 {
		t.Errorf("want 50 endpoints left, got %d", total)
	}
	if n := len(f.slices("web")); n > 1 {
		t.Errorf("emptied slices were not deleted: %d left", n)
	}
}

func TestServiceWithoutPodsHasOnePlaceholderSlice(t *testing.T) {
	f := newFixture(t, service("web"))
	f.sync("ns/web")
	f.sync("ns/web")
	slices := f.slices("web")
	if len(slices) != 1 || len(slices[0].Endpoints) != 0 {
		t.Fatalf("want one empty slice, got %+v", slices)
	}
	ep := f.endpoints("web")
	if len(ep.Subsets) != 0 {
		t.Errorf("endpoints of no pods have subsets: %+v", ep.Subsets)
	}
}

func TestEndpointsMirrorReadyAndNotReadyAddresses(t *testing.T) {
	svc := service("web")
	terminating := pod("c", "web", "10.244.0.3", true)
	terminating.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	f := newFixture(t, svc, pod("a", "web", "10.244.0.1", true), pod("b", "web", "10.244.0.2", false), terminating)
	f.sync("ns/web")
	ep := f.endpoints("web")
	if ep.Labels[discoveryv1.LabelSkipMirror] != "true" || ep.Labels["team"] != "a" {
		t.Errorf("labels %v", ep.Labels)
	}
	if len(ep.Subsets) != 1 {
		t.Fatalf("subsets %+v", ep.Subsets)
	}
	s := ep.Subsets[0]
	if len(s.Addresses) != 1 || s.Addresses[0].IP != "10.244.0.1" || ptr.Deref(s.Addresses[0].NodeName, "") != "node-1" {
		t.Errorf("ready addresses %+v", s.Addresses)
	}
	if len(s.NotReadyAddresses) != 1 || s.NotReadyAddresses[0].IP != "10.244.0.2" {
		t.Errorf("not-ready addresses %+v (the terminating pod must not be listed)", s.NotReadyAddresses)
	}
	if len(s.Ports) != 1 || s.Ports[0].Name != "http" || s.Ports[0].Port != 8080 {
		t.Errorf("ports %+v", s.Ports)
	}
	// a second sync with nothing changed writes nothing
	f.waitFor("endpoints cached", func() bool {
		_, err := f.c.endpointLister.Endpoints("ns").Get("web")
		return err == nil
	})
	f.client.ClearActions()
	f.sync("ns/web")
	for _, a := range f.client.Actions() {
		if a.GetVerb() != "list" && a.GetVerb() != "watch" {
			t.Errorf("unexpected write on an unchanged service: %v %v", a.GetVerb(), a.GetResource().Resource)
		}
	}
}

func TestPodHostnameUnderItsSubdomainService(t *testing.T) {
	svc := service("db")
	svc.Spec.ClusterIP = corev1.ClusterIPNone
	p := pod("db-0", "db", "10.244.0.9", true)
	p.Spec.Hostname, p.Spec.Subdomain = "db-0", "db"
	f := newFixture(t, svc, p)
	f.sync("ns/db")
	s := f.slices("db")[0]
	if _, ok := s.Labels[headlessLabel]; !ok {
		t.Errorf("a headless service's slice lacks %s: %v", headlessLabel, s.Labels)
	}
	if h := ptr.Deref(s.Endpoints[0].Hostname, ""); h != "db-0" {
		t.Errorf("hostname %q", h)
	}
	if h := f.endpoints("db").Subsets[0].Addresses[0].Hostname; h != "db-0" {
		t.Errorf("endpoints hostname %q", h)
	}
}

func TestDeletedServiceLosesItsSlicesAndEndpoints(t *testing.T) {
	svc := service("web")
	f := newFixture(t, svc, pod("a", "web", "10.244.0.1", true))
	f.sync("ns/web")
	if err := f.client.CoreV1().Services("ns").Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitFor("service gone from the cache", func() bool {
		_, err := f.c.serviceLister.Services("ns").Get("web")
		return err != nil
	})
	f.waitFor("endpoints cached", func() bool {
		_, err := f.c.endpointLister.Endpoints("ns").Get("web")
		return err == nil
	})
	f.sync("ns/web")
	if s := f.slices("web"); len(s) != 0 {
		t.Errorf("slices left: %d", len(s))
	}
	if _, err := f.client.CoreV1().Endpoints("ns").Get(context.Background(), "web", metav1.GetOptions{}); err == nil {
		t.Errorf("endpoints left")
	}
}

func TestServiceWithoutSelectorIsLeftToItsOwner(t *testing.T) {
	svc := service("manual")
	svc.Spec.Selector = nil
	own := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "manual", Namespace: "ns"},
		Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "192.0.2.1"}}}}}
	f := newFixture(t, svc, own)
	f.sync("ns/manual")
	if s := f.slices("manual"); len(s) != 0 {
		t.Errorf("slices made for a service without selector: %d", len(s))
	}
	if ep := f.endpoints("manual"); len(ep.Subsets) != 1 || ep.Subsets[0].Addresses[0].IP != "192.0.2.1" {
		t.Errorf("the user's endpoints were changed: %+v", ep.Subsets)
	}
}

func TestReadinessChangeUpdatesTheSliceInPlace(t *testing.T) {
	f := newFixture(t, service("web"), pod("a", "web", "10.244.0.1", false))
	f.sync("ns/web")
	before := f.slices("web")
	p := pod("a", "web", "10.244.0.1", true)
	if _, err := f.client.CoreV1().Pods("ns").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitFor("ready pod cached", func() bool {
		got, err := f.c.podLister.Pods("ns").Get("a")
		return err == nil && isPodReady(got)
	})
	f.sync("ns/web")
	after := f.slices("web")
	if len(after) != 1 || after[0].Name != before[0].Name {
		t.Fatalf("want the same slice updated, got %v then %v", before, after)
	}
	if got := conditions(after[0].Endpoints[0]); got != "ready=true serving=true terminating=false" {
		t.Errorf("conditions %s", got)
	}
}

var everything = labels.Everything()

// As upstream's Endpoints controller (and its conformance test of the Endpoints lifecycle):
// Endpoints that no Service owns are the writer's, and changing them is not a reason to sync;
// those of a Service with a selector are put back.
func TestEndpointsUpdateQueuesOnlyTheEndpointsOfAKeptService(t *testing.T) {
	orphan := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "orphan", Namespace: "ns"}}
	kept := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"}}
	f := newFixture(t, service("web"), orphan, kept)
	ctx := context.Background()
	for _, ep := range []*corev1.Endpoints{orphan, kept} {
		ep = ep.DeepCopy()
		ep.Labels = map[string]string{"touched": "yes"}
		if _, err := f.client.CoreV1().Endpoints("ns").Update(ctx, ep, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		f.waitFor("the update cached", func() bool {
			got, err := f.c.endpointLister.Endpoints("ns").Get(ep.Name)
			return err == nil && got.Labels["touched"] == "yes"
		})
	}
	// the service's own add queued ns/web once; drain it and look for anything else
	f.waitFor("ns/web queued", func() bool { return f.c.queue.Len() > 0 })
	var queued []string
	for f.c.queue.Len() > 0 {
		key, _ := f.c.queue.Get()
		queued = append(queued, key)
		f.c.queue.Done(key)
	}
	if !slices.Equal(queued, []string{"ns/web"}) {
		t.Errorf("queued %v, want only ns/web", queued)
	}
	if _, err := f.client.CoreV1().Endpoints("ns").Get(ctx, "orphan", metav1.GetOptions{}); err != nil {
		t.Errorf("the orphan Endpoints: %v", err)
	}
}
