package conformance

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"

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

// Specs of traffic through Services: pods reach busybox httpd backends through a Service's
// cluster IP, its node port and its DNS name. Each needs a runtime that runs the containers'
// commands, a scheduler to place the pods, and kubectl to exec into the client pod.

// webPod is a busybox httpd on port 8080 labelled app=web, whose index page names the pod. It
// is ready while /tmp/ready exists (it does from the start), so a spec can take it out of
// service by removing the file.
func webPod(name string) *corev1.Pod {
	pod := shellPod(name, "", corev1.RestartPolicyAlways,
		"mkdir -p /www && echo "+name+" > /www/index.html && touch /tmp/ready && exec httpd -f -p 8080 -h /www")
	pod.Labels = map[string]string{"app": "web"}
	pod.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
	pod.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/ready"}}},
		PeriodSeconds: 1, FailureThreshold: 1,
	}
	return pod
}

// clientPod is a busybox pod that sleeps until it is deleted, to exec wget and nslookup in.
func clientPod(name string) *corev1.Pod {
	return shellPod(name, "", corev1.RestartPolicyAlways, "trap 'exit 0' TERM; sleep 2147483647 & wait")
}

// podIsReady is a waitForPod check for the pod's Ready condition.
func podIsReady(ready bool) func(g Gomega, p *corev1.Pod) {
	want := corev1.ConditionFalse
	if ready {
		want = corev1.ConditionTrue
	}
	return func(g Gomega, p *corev1.Pod) {
		status := corev1.ConditionUnknown
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				status = c.Status
			}
		}
		g.Expect(status).To(Equal(want), "pod %s Ready", p.Name)
	}
}

// webService creates the Service web in ns selecting the webPods, port 80 to their 8080.
func webService(ctx context.Context, ns string, typ corev1.ServiceType) *corev1.Service {
	GinkgoHelper()
	svc, err := cluster.client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			Type:     typ,
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	return svc
}

// startWebPods creates the webPods and a client pod, and waits until all are ready.
func startWebPods(ctx context.Context, ns, client string, names ...string) {
	GinkgoHelper()
	for _, name := range names {
		createPod(ctx, ns, webPod(name))
	}
	createPod(ctx, ns, clientPod(client))
	for _, name := range append(names, client) {
		mustKubectl(ctx, "-n", ns, "wait", "--for=condition=Ready", "pod/"+name, "--timeout=120s")
	}
}

// fetch asks url n times with busybox wget from the client pod and counts the answers (the
// pages name their pods); a failed request counts as "error: wget exit <code>".
func fetch(ctx context.Context, g Gomega, ns, client, url string, n int) map[string]int {
	script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do wget -q -O- %s || echo "error: wget exit $?"; i=$((i+1)); done`, n, url)
	out, err := kubectl(ctx, "", "-n", ns, "exec", client, "--", "sh", "-c", script)
	g.Expect(err).NotTo(HaveOccurred())
	answers := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		answers[strings.TrimSpace(line)]++
	}
	return answers
}

// fromEvery matches a fetch whose every answer came from one of backends, and from each of them.
func fromEvery(backends ...string) OmegaMatcher {
	matchers := make([]OmegaMatcher, 0, len(backends)+1)
	for _, b := range backends {
		matchers = append(matchers, HaveKey(b))
	}
	// no key but the backends' names: no error, no other answer
	matchers = append(matchers, WithTransform(func(m map[string]int) []string {
		var other []string
		for k := range m {
			if !slices.Contains(backends, k) {
				other = append(other, k)
			}
		}
		return other
	}, BeEmpty()))
	return And(matchers...)
}

var _ = Describe("[sig-network] Services", Label("network"), func() {
	It("should serve a basic endpoint from pods", func(ctx SpecContext) {
		requireRealContainers(ctx)
		requireScheduler(ctx)
		ns := newNamespace(ctx)
		svc := webService(ctx, ns, corev1.ServiceTypeClusterIP)
		backends := []string{"web-1", "web-2", "web-3"}
		startWebPods(ctx, ns, "client", backends...)
		url := fmt.Sprintf("http://%s/", net.JoinHostPort(svc.Spec.ClusterIP, "80"))

		By("one request to the cluster IP answers from a backend")
		Eventually(func(g Gomega) {
			answers := fetch(ctx, g, ns, "client", url, 1)
			g.Expect(answers).To(HaveLen(1))
			for answer := range answers {
				g.Expect(backends).To(ContainElement(answer), "the answer of %s", url)
			}
		}).WithContext(ctx).WithTimeout(longWait).WithPolling(time.Second).Should(Succeed())

		By("many requests reach every backend, and only them")
		Eventually(func(g Gomega) {
			g.Expect(fetch(ctx, g, ns, "client", url, 30)).To(fromEvery(backends...))
		}).WithContext(ctx).WithTimeout(longWait).WithPolling(time.Second).Should(Succeed())
	})

	It("should be able to create a functioning NodePort service", func(ctx SpecContext) {
		requireRealContainers(ctx)
		requireScheduler(ctx)
		ns := newNamespace(ctx)
		svc := webService(ctx, ns, corev1.ServiceTypeNodePort)
		nodePort := svc.Spec.Ports[0].NodePort
		Expect(nodePort).To(BeNumerically(">", 0))
		startWebPods(ctx, ns, "client", "web-1")

		p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, "web-1", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		node, err := cluster.client.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		var internalIP string
		for _, a := range node.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				internalIP = a.Address
			}
		}
		Expect(internalIP).NotTo(BeEmpty(), "node %s has no InternalIP", node.Name)

		url := fmt.Sprintf("http://%s/", net.JoinHostPort(internalIP, fmt.Sprint(nodePort)))
		By("the node port answers on the node's InternalIP: " + url)
		Eventually(func(g Gomega) {
			g.Expect(fetch(ctx, g, ns, "client", url, 5)).To(Equal(map[string]int{"web-1": 5}))
		}).WithContext(ctx).WithTimeout(longWait).WithPolling(time.Second).Should(Succeed())
	})

	It("should stop sending traffic to a backend that is not ready", func(ctx SpecContext) {
		requireRealContainers(ctx)
		requireScheduler(ctx)
		ns := newNamespace(ctx)
		svc := webService(ctx, ns, corev1.ServiceTypeClusterIP)
		startWebPods(ctx, ns, "client", "web-1", "web-2")
		url := fmt.Sprintf("http://%s/", net.JoinHostPort(svc.Spec.ClusterIP, "80"))
		Eventually(func(g Gomega) {
			g.Expect(fetch(ctx, g, ns, "client", url, 20)).To(fromEvery("web-1", "web-2"))
		}).WithContext(ctx).WithTimeout(longWait).WithPolling(time.Second).Should(Succeed())

		By("web-2's readiness probe fails: only web-1 answers")
		mustKubectl(ctx, "-n", ns, "exec", "web-2", "--", "rm", "/tmp/ready")
		waitForPod(ctx, ns, "web-2", podIsReady(false))
		Eventually(func(g Gomega) {
			g.Expect(fetch(ctx, g, ns, "client", url, 20)).To(Equal(map[string]int{"web-1": 20}))
		}).WithContext(ctx).WithTimeout(longWait).WithPolling(time.Second).Should(Succeed())

		By("web-2 is ready again: both answer")
		mustKubectl(ctx, "-n", ns, "exec", "web-2", "--", "touch", "/tmp/ready")
		waitForPod(ctx, ns, "web-2", podIsReady(true))
		Eventually(func(g Gomega) {
			g.Expect(fetch(ctx, g, ns, "client", url, 20)).To(fromEvery("web-1", "web-2"))
		}).WithContext(ctx).WithTimeout(longWait).WithPolling(time.Second).Should(Succeed())
	})
})

var _ = Describe("[sig-network] DNS", Label("network"), func() {
	It("should provide DNS for services", func(ctx SpecContext) {
		requireRealContainers(ctx)
		requireScheduler(ctx)
		ns := newNamespace(ctx)
		svc := webService(ctx, ns, corev1.ServiceTypeClusterIP)
		startWebPods(ctx, ns, "client", "web-1")

		name := "web." + ns + ".svc.cluster.local"
		By("nslookup " + name + " answers the cluster IP " + svc.Spec.ClusterIP)
		Eventually(func(g Gomega) {
			out, err := kubectl(ctx, "", "-n", ns, "exec", "client", "--", "nslookup", name)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(out).To(MatchRegexp(`(?m)^Address( \d+)?:\s*` + regexp.QuoteMeta(svc.Spec.ClusterIP) + `(\s|$)`))
		}).WithContext(ctx).WithTimeout(longWait).WithPolling(time.Second).Should(Succeed())

		By("wget http://web:80/ through the search path")
		Eventually(func(g Gomega) {
			g.Expect(fetch(ctx, g, ns, "client", "http://web:80/", 3)).To(Equal(map[string]int{"web-1": 3}))
		}).WithContext(ctx).WithTimeout(longWait).WithPolling(time.Second).Should(Succeed())
	})
})
