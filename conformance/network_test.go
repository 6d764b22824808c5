package conformance

import (
	"fmt"
	"net"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var _ = Describe("[sig-network] Services", Label("network"), func() {
	It("should allocate a cluster IP and a node port", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		svc, err := cluster.client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "np"},
			Spec: corev1.ServiceSpec{
				Type:     corev1.ServiceTypeNodePort,
				Selector: map[string]string{"app": "np"},
				Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(net.ParseIP(svc.Spec.ClusterIP)).NotTo(BeNil(), "cluster IP %q", svc.Spec.ClusterIP)
		Expect(svc.Spec.ClusterIPs).To(ContainElement(svc.Spec.ClusterIP))
		Expect(svc.Spec.Ports[0].NodePort).To(BeNumerically(">", 0))
		Expect(svc.Spec.Ports[0].Protocol).To(Equal(corev1.ProtocolTCP))

		// A second service asking for the same node port is refused.
		_, err = cluster.client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "np-dup"},
			Spec: corev1.ServiceSpec{
				Type:  corev1.ServiceTypeNodePort,
				Ports: []corev1.ServicePort{{Port: 80, NodePort: svc.Spec.Ports[0].NodePort}},
			},
		}, metav1.CreateOptions{})
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring(fmt.Sprintf("provided port is already allocated")))
	})

	It("should publish EndpointSlices that follow the ready pods a service selects", func(ctx SpecContext) {
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		waitForServiceAccount(ctx, ns)
		_, err := cluster.client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": "web"},
				Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		for _, name := range []string{"web-1", "web-2"} {
			pod := pausePod(name, map[string]string{"app": "web"})
			pod.Spec.NodeName = node.Name
			_, err := cluster.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		readyTargets := func(g Gomega) []string {
			slices, err := cluster.client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
			g.Expect(err).NotTo(HaveOccurred())
			var names []string
			for _, s := range slices.Items {
				g.Expect(s.Ports).To(HaveLen(1))
				g.Expect(*s.Ports[0].Port).To(BeEquivalentTo(8080))
				for _, e := range s.Endpoints {
					if e.Conditions.Ready != nil && *e.Conditions.Ready && e.TargetRef != nil {
						names = append(names, e.TargetRef.Name)
					}
				}
			}
			return names
		}
		Eventually(func(g Gomega) {
			g.Expect(readyTargets(g)).To(ConsistOf("web-1", "web-2"))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())

		Expect(cluster.client.CoreV1().Pods(ns).Delete(ctx, "web-1", metav1.DeleteOptions{})).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(readyTargets(g)).To(ConsistOf("web-2"))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})
})
