package endpointslicemirroring

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers"
)

// startController runs the controller against a real API server until the test ends.
func startController(t *testing.T) kubernetes.Interface {
	t.Helper()
	srv := apiservertest.Start(t)
	factory := informers.NewSharedInformerFactory(srv.Client, 0)
	c, err := New(factory.Core().V1().Services(), factory.Core().V1().Endpoints(),
		factory.Discovery().V1().EndpointSlices(), srv.Client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	factory.Start(ctx.Done())
	go func() { defer close(done); c.Run(ctx, 2) }()
	t.Cleanup(func() {
		cancel()
		<-done
		factory.Shutdown()
	})
	return srv.Client
}

func mirrored(t *testing.T, client kubernetes.Interface, name string) []discoveryv1.EndpointSlice {
	t.Helper()
	l, err := client.DiscoveryV1().EndpointSlices("default").List(context.Background(),
		metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + name})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// waitFor polls until cond holds of the mirrored slices of name, and fails with the last ones
// seen otherwise.
func waitFor(t *testing.T, client kubernetes.Interface, name, what string, cond func([]discoveryv1.EndpointSlice) bool) []discoveryv1.EndpointSlice {
	t.Helper()
	var last []discoveryv1.EndpointSlice
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		last = mirrored(t, client, name)
		return cond(last), nil
	})
	if err != nil {
		t.Fatalf("%s: slices are %+v", what, last)
	}
	return last
}

func oneSliceWith(ips ...string) func([]discoveryv1.EndpointSlice) bool {
	return func(s []discoveryv1.EndpointSlice) bool {
		if len(s) != 1 || len(s[0].Endpoints) != len(ips) {
			return false
		}
		for i, e := range s[0].Endpoints {
			if e.Addresses[0] != ips[i] {
				return false
			}
		}
		return true
	}
}

func selectorless(t *testing.T, client kubernetes.Interface, name string) *corev1.Service {
	t.Helper()
	svc, err := client.CoreV1().Services("default").Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "db", Port: 5432}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func TestCustomEndpointsAreMirroredThroughCreateUpdateAndDelete(t *testing.T) {
	client := startController(t)
	ctx := context.Background()
	selectorless(t, client, "db")
	ep, err := client.CoreV1().Endpoints("default").Create(ctx, &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Labels: map[string]string{"team": "a"},
			Annotations: map[string]string{"note": "x", corev1.LastAppliedConfigAnnotation: "{}"}},
		Subsets: []corev1.EndpointSubset{{
			Addresses:         []corev1.EndpointAddress{{IP: "10.1.2.3", Hostname: "db-0", NodeName: ptr.To("node-1")}},
			NotReadyAddresses: []corev1.EndpointAddress{{IP: "10.1.2.4"}},
			Ports:             []corev1.EndpointPort{{Name: "db", Port: 5432, Protocol: corev1.ProtocolTCP}},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := waitFor(t, client, "db", "mirrored on create", oneSliceWith("10.1.2.3", "10.1.2.4"))[0]
	if s.Labels[discoveryv1.LabelManagedBy] != ManagedBy || s.Labels["team"] != "a" ||
		s.Annotations["note"] != "x" || s.Annotations[corev1.LastAppliedConfigAnnotation] != "" {
		t.Errorf("metadata: labels %v annotations %v", s.Labels, s.Annotations)
	}
	if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].UID != ep.UID || s.OwnerReferences[0].Kind != "Endpoints" {
		t.Errorf("owner references: %+v", s.OwnerReferences)
	}
	if s.AddressType != discoveryv1.AddressTypeIPv4 || len(s.Ports) != 1 || *s.Ports[0].Port != 5432 {
		t.Errorf("slice: %+v", s)
	}
	if e := s.Endpoints[0]; !*e.Conditions.Ready || *e.Hostname != "db-0" || *e.NodeName != "node-1" {
		t.Errorf("ready endpoint: %+v", e)
	}
	if e := s.Endpoints[1]; *e.Conditions.Ready {
		t.Errorf("not-ready endpoint: %+v", e)
	}
	// what the server stored is what the controller wants: no sync rewrites it again
	for _, d := range desiredSlices(ep, MaxEndpointsPerSubset).slices {
		if !sameSlice(&s, d, sliceLabels(ep), sliceAnnotations(ep), sliceOwners(ep)) {
			t.Errorf("the stored slice differs from the desired one, so every sync would rewrite it:\n%+v\n%+v", s, d)
		}
	}

	ep.Subsets[0].Addresses = []corev1.EndpointAddress{{IP: "10.2.3.4"}}
	ep.Subsets[0].NotReadyAddresses = nil
	if ep, err = client.CoreV1().Endpoints("default").Update(ctx, ep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	updated := waitFor(t, client, "db", "mirrored on update", oneSliceWith("10.2.3.4"))[0]
	if updated.Name != s.Name {
		t.Errorf("the update made a new slice %s instead of updating %s", updated.Name, s.Name)
	}

	// a new port set: the slice is rewritten for it, never a second one left behind
	ep.Subsets[0].Ports = []corev1.EndpointPort{{Name: "db", Port: 6432, Protocol: corev1.ProtocolTCP}}
	if _, err = client.CoreV1().Endpoints("default").Update(ctx, ep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, client, "db", "mirrored with the new port", func(s []discoveryv1.EndpointSlice) bool {
		return len(s) == 1 && *s[0].Ports[0].Port == 6432
	})

	if err := client.CoreV1().Endpoints("default").Delete(ctx, "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, client, "db", "removed with the Endpoints", func(s []discoveryv1.EndpointSlice) bool { return len(s) == 0 })
}

func TestASliceDeletedBySomeoneElseIsPutBack(t *testing.T) {
	client := startController(t)
	ctx := context.Background()
	selectorless(t, client, "db")
	if _, err := client.CoreV1().Endpoints("default").Create(ctx, &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "10.1.2.3"}},
			Ports: []corev1.EndpointPort{{Port: 5432}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s := waitFor(t, client, "db", "mirrored", oneSliceWith("10.1.2.3"))[0]
	if err := client.DiscoveryV1().EndpointSlices("default").Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, client, "db", "put back", func(l []discoveryv1.EndpointSlice) bool {
		return oneSliceWith("10.1.2.3")(l) && l[0].Name != s.Name
	})
}

func TestSlicesGoWhenTheServiceGoesOrGetsASelector(t *testing.T) {
	client := startController(t)
	ctx := context.Background()
	for _, name := range []string{"gone", "selected"} {
		selectorless(t, client, name)
		if _, err := client.CoreV1().Endpoints("default").Create(ctx, &corev1.Endpoints{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "10.1.2.3"}},
				Ports: []corev1.EndpointPort{{Port: 5432}}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, client, name, name+" mirrored", oneSliceWith("10.1.2.3"))
	}
	if err := client.CoreV1().Services("default").Delete(ctx, "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, client, "gone", "removed with the Service", func(s []discoveryv1.EndpointSlice) bool { return len(s) == 0 })

	svc, err := client.CoreV1().Services("default").Get(ctx, "selected", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Spec.Selector = map[string]string{"app": "db"}
	if _, err := client.CoreV1().Services("default").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, client, "selected", "removed once the Service selects pods", func(s []discoveryv1.EndpointSlice) bool { return len(s) == 0 })
}

func TestEndpointsMarkedSkipMirrorOrOfNoServiceAreNotMirrored(t *testing.T) {
	client := startController(t)
	ctx := context.Background()
	selectorless(t, client, "skipped")
	for _, ep := range []*corev1.Endpoints{
		{ObjectMeta: metav1.ObjectMeta{Name: "skipped", Labels: map[string]string{discoveryv1.LabelSkipMirror: "true"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "orphan"}},
	} {
		ep.Subsets = []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "10.1.2.3"}}, Ports: []corev1.EndpointPort{{Port: 80}}}}
		if _, err := client.CoreV1().Endpoints("default").Create(ctx, ep, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// a mirrored one, made after the others, shows the controller has looked at them
	selectorless(t, client, "witness")
	if _, err := client.CoreV1().Endpoints("default").Create(ctx, &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "witness"},
		Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "10.1.2.3"}}, Ports: []corev1.EndpointPort{{Port: 80}}}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, client, "witness", "witness mirrored", oneSliceWith("10.1.2.3"))
	for _, name := range []string{"skipped", "orphan"} {
		if s := mirrored(t, client, name); len(s) != 0 {
			t.Errorf("%s was mirrored: %+v", name, s)
		}
	}

	// a skip-mirror label taken away makes it mirrored
	ep, err := client.CoreV1().Endpoints("default").Get(ctx, "skipped", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	delete(ep.Labels, discoveryv1.LabelSkipMirror)
	if _, err := client.CoreV1().Endpoints("default").Update(ctx, ep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, client, "skipped", "mirrored once the label is gone", oneSliceWith("10.1.2.3"))
}
