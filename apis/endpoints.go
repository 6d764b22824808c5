package apis

import corev1 "k8s.io/api/core/v1"

// defaultEndpoints gives every port of an Endpoints object a protocol, TCP when it has none,
// as upstream: readers (the mirroring controller, proxies) can rely on it.
func defaultEndpoints(ep *corev1.Endpoints) {
	for i := range ep.Subsets {
		for j := range ep.Subsets[i].Ports {
			if ep.Subsets[i].Ports[j].Protocol == "" {
				ep.Subsets[i].Ports[j].Protocol = corev1.ProtocolTCP
			}
		}
	}
}
