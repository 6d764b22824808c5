package endpointslicemirroring

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func addresses(n int, prefix string) []corev1.EndpointAddress {
	var out []corev1.EndpointAddress
	for i := range n {
		out = append(out, corev1.EndpointAddress{IP: fmt.Sprintf("%s.%d.%d", prefix, i/250, i%250+1)})
	}
	return out
}

func TestReadyAndNotReadyAddressesBecomeReadyConditions(t *testing.T) {
	ep := &corev1.Endpoints{Subsets: []corev1.EndpointSubset{{
		Addresses: []corev1.EndpointAddress{{IP: "10.0.0.2", Hostname: "web-0", NodeName: ptr.To("node-1"),
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "web-0", UID: "u0"}}},
		NotReadyAddresses: []corev1.EndpointAddress{{IP: "10.0.0.3"}},
		Ports:             []corev1.EndpointPort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
	}}}
	got := desiredSlices(ep, MaxEndpointsPerSubset)
	if len(got.slices) != 1 {
		t.Fatalf("slices: %+v", got.slices)
	}
	for _, s := range got.slices {
		if s.addressType != discoveryv1.AddressTypeIPv4 || len(s.ports) != 1 || *s.ports[0].Port != 80 || *s.ports[0].Name != "http" {
			t.Errorf("slice: %+v", s)
		}
		if len(s.endpoints) != 2 {
			t.Fatalf("endpoints: %+v", s.endpoints)
		}
		ready, notReady := s.endpoints[0], s.endpoints[1]
		if !*ready.Conditions.Ready || *ready.Hostname != "web-0" || *ready.NodeName != "node-1" || ready.TargetRef.Name != "web-0" {
			t.Errorf("ready endpoint: %+v", ready)
		}
		if *notReady.Conditions.Ready || notReady.Hostname != nil || notReady.NodeName != nil || notReady.TargetRef != nil {
			t.Errorf("not-ready endpoint: %+v", notReady)
		}
	}
}

func TestEachAddressTypeAndPortSetGetsItsOwnSlice(t *testing.T) {
	ep := &corev1.Endpoints{Subsets: []corev1.EndpointSubset{
		{Addresses: []corev1.EndpointAddress{{IP: "10.0.0.1"}, {IP: "fd00::1"}}, Ports: []corev1.EndpointPort{{Port: 80}}},
		{Addresses: []corev1.EndpointAddress{{IP: "10.0.0.2"}}, Ports: []corev1.EndpointPort{{Port: 443}}},
		{Addresses: []corev1.EndpointAddress{{IP: "not-an-ip"}}, Ports: []corev1.EndpointPort{{Port: 443}}},
	}}
	got := desiredSlices(ep, MaxEndpointsPerSubset)
	if len(got.slices) != 3 {
		t.Fatalf("want IPv4/80, IPv6/80 and IPv4/443, got %d slices", len(got.slices))
	}
	if got.invalid != 1 {
		t.Errorf("invalid addresses: %d, want 1", got.invalid)
	}
	if s := got.slices[keyOf(discoveryv1.AddressTypeIPv6, []discoveryv1.EndpointPort{{Name: ptr.To(""), Port: ptr.To[int32](80), Protocol: ptr.To(corev1.ProtocolTCP)}})]; s == nil || s.endpoints[0].Addresses[0] != "fd00::1" {
		t.Errorf("IPv6 slice: %+v", s)
	}
}

func TestSubsetsServingTheSameAddressesAreMergedAsUpstreamRepacksThem(t *testing.T) {
	ep := &corev1.Endpoints{Subsets: []corev1.EndpointSubset{
		{Addresses: []corev1.EndpointAddress{{IP: "10.0.0.1"}}, Ports: []corev1.EndpointPort{{Name: "a", Port: 80}}},
		{Addresses: []corev1.EndpointAddress{{IP: "10.0.0.1"}}, Ports: []corev1.EndpointPort{{Name: "b", Port: 81}}},
	}}
	got := desiredSlices(ep, MaxEndpointsPerSubset)
	if len(got.slices) != 1 {
		t.Fatalf("want one slice with both ports, got %d", len(got.slices))
	}
	for _, s := range got.slices {
		if len(s.ports) != 2 || len(s.endpoints) != 1 {
			t.Errorf("slice: %+v", s)
		}
	}
}

func TestAnAddressNotReadyOnAnySubsetIsNotReady(t *testing.T) {
	ep := &corev1.Endpoints{Subsets: []corev1.EndpointSubset{
		{Addresses: []corev1.EndpointAddress{{IP: "10.0.0.1"}}, Ports: []corev1.EndpointPort{{Port: 80}}},
		{NotReadyAddresses: []corev1.EndpointAddress{{IP: "10.0.0.1"}}, Ports: []corev1.EndpointPort{{Port: 80}}},
	}}
	got := desiredSlices(ep, MaxEndpointsPerSubset)
	for _, s := range got.slices {
		if len(s.endpoints) != 1 || *s.endpoints[0].Conditions.Ready {
			t.Errorf("endpoints: %+v", s.endpoints)
		}
	}
}

func TestAtMostMaxAddressesPerSubsetAreMirroredReadyOnesFirst(t *testing.T) {
	ep := &corev1.Endpoints{Subsets: []corev1.EndpointSubset{{
		Addresses:         addresses(1001, "10.1"),
		NotReadyAddresses: addresses(5, "10.2"),
		Ports:             []corev1.EndpointPort{{Port: 80}},
	}}}
	got := desiredSlices(ep, MaxEndpointsPerSubset)
	if got.overCapacity != 6 {
		t.Errorf("skipped %d addresses, want 6", got.overCapacity)
	}
	for _, s := range got.slices {
		if len(s.endpoints) != MaxEndpointsPerSubset {
			t.Errorf("mirrored %d endpoints, want %d", len(s.endpoints), MaxEndpointsPerSubset)
		}
		for _, e := range s.endpoints {
			if !*e.Conditions.Ready {
				t.Fatalf("a not-ready address was mirrored before every ready one: %s", e.Addresses[0])
			}
		}
	}
}

func TestSliceMetadataMirrorsTheEndpointsButTheExcludedAnnotations(t *testing.T) {
	ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "ns", UID: "uid-1",
		Labels: map[string]string{"team": "a", discoveryv1.LabelManagedBy: "someone"},
		Annotations: map[string]string{"note": "x", corev1.EndpointsLastChangeTriggerTime: "t",
			corev1.LastAppliedConfigAnnotation: "{}", "endpoints.kubernetes.io/over-capacity": "warning"}}}
	l := sliceLabels(ep)
	if l["team"] != "a" || l[discoveryv1.LabelServiceName] != "db" || l[discoveryv1.LabelManagedBy] != ManagedBy || len(l) != 3 {
		t.Errorf("labels: %v", l)
	}
	a := sliceAnnotations(ep)
	if a["note"] != "x" || a["endpoints.kubernetes.io/over-capacity"] != "warning" || len(a) != 2 {
		t.Errorf("annotations: %v", a)
	}
	o := sliceOwners(ep)
	if len(o) != 1 || o[0].Kind != "Endpoints" || o[0].APIVersion != "v1" || o[0].UID != "uid-1" || !*o[0].Controller {
		t.Errorf("owners: %+v", o)
	}
}
