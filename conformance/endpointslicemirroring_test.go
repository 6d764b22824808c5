package conformance

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var _ = Describe("[sig-network] EndpointSliceMirroring", Label("network"), func() {
	It("should mirror a custom Endpoints resource through create update and delete", func(ctx SpecContext) {
		ns := newNamespace(ctx)

		By("serving discovery.k8s.io/v1 endpointslices")
		resources, err := cluster.client.Discovery().ServerResourcesForGroupVersion("discovery.k8s.io/v1")
		Expect(err).NotTo(HaveOccurred())
		Expect(resources.APIResources).To(ContainElement(HaveField("Name", "endpointslices")))

		svc, err := cluster.client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "example-custom-endpoints"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "example", Port: 80, Protocol: corev1.ProtocolTCP}}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		endpoints := &corev1.Endpoints{
			ObjectMeta: metav1.ObjectMeta{Name: svc.Name},
			Subsets: []corev1.EndpointSubset{{
				Ports:     []corev1.EndpointPort{{Port: 80}},
				Addresses: []corev1.EndpointAddress{{IP: "10.1.2.3"}},
			}},
		}
		// the one address of the one mirrored slice, with the one port 80
		mirroredAddress := func(g Gomega) string {
			list, err := cluster.client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{
				LabelSelector: discoveryv1.LabelServiceName + "=" + svc.Name,
			})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(list.Items).To(HaveLen(1))
			s := list.Items[0]
			g.Expect(s.Labels).To(HaveKeyWithValue(discoveryv1.LabelManagedBy, "endpointslicemirroring-controller.k8s.io"))
			g.Expect(s.Ports).To(HaveLen(1))
			g.Expect(*s.Ports[0].Port).To(BeEquivalentTo(80))
			g.Expect(s.Endpoints).To(HaveLen(1))
			g.Expect(s.Endpoints[0].Addresses).To(HaveLen(1))
			return s.Endpoints[0].Addresses[0]
		}

		By("mirroring a new custom Endpoint")
		_, err = cluster.client.CoreV1().Endpoints(ns).Create(ctx, endpoints, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			g.Expect(mirroredAddress(g)).To(Equal("10.1.2.3"))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())

		By("mirroring an update to a custom Endpoint")
		endpoints.Subsets[0].Addresses = []corev1.EndpointAddress{{IP: "10.2.3.4"}}
		_, err = cluster.client.CoreV1().Endpoints(ns).Update(ctx, endpoints, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			g.Expect(mirroredAddress(g)).To(Equal("10.2.3.4"))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())

		By("mirroring deletion of a custom Endpoint")
		Expect(cluster.client.CoreV1().Endpoints(ns).Delete(ctx, endpoints.Name, metav1.DeleteOptions{})).To(Succeed())
		Eventually(func(g Gomega) {
			list, err := cluster.client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{
				LabelSelector: discoveryv1.LabelServiceName + "=" + svc.Name,
			})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(list.Items).To(BeEmpty())
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})
})
