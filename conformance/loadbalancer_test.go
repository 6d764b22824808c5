package conformance

import (
	"fmt"
	"net"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var _ = Describe("[sig-network] LoadBalancers", Label("network"), func() {
	It("should answer a LoadBalancer service on the node's address, as k3s's ServiceLB", func(ctx SpecContext) {
		requireRealContainers(ctx)
		requireScheduler(ctx)
		ns := newNamespace(ctx)
		webService(ctx, ns, corev1.ServiceTypeLoadBalancer)
		startWebPods(ctx, ns, "client", "web-1")

		p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, "web-1", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		node, err := cluster.client.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		var nodeIPs []string
		for _, a := range node.Status.Addresses {
			if a.Type == corev1.NodeInternalIP || a.Type == corev1.NodeExternalIP {
				nodeIPs = append(nodeIPs, a.Address)
			}
		}

		By("the load balancer's ingress is the node's address")
		var ingress string
		Eventually(func(g Gomega) {
			svc, err := cluster.client.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(svc.Status.LoadBalancer.Ingress).NotTo(BeEmpty())
			ingress = svc.Status.LoadBalancer.Ingress[0].IP
			g.Expect(nodeIPs).To(ContainElement(ingress))
		}).WithContext(ctx).WithTimeout(longWait).WithPolling(poll).Should(Succeed())

		url := fmt.Sprintf("http://%s/", net.JoinHostPort(ingress, "80"))
		By("the service port answers on it: " + url)
		Eventually(func(g Gomega) {
			g.Expect(fetch(ctx, g, ns, "client", url, 5)).To(Equal(map[string]int{"web-1": 5}))
		}).WithContext(ctx).WithTimeout(longWait).WithPolling(time.Second).Should(Succeed())
	})
})
