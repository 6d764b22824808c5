// Package services_test proves Services with real pods: a real API server, a real kubelet on
// a containerd of the test's own running busybox pods, the EndpointSlice controller, the
// proxy and the cluster DNS, all wired as `skiff up` wires them, and traffic that goes from
// one pod to others through a Service's name.
//
// The test process runs itself again in a network namespace of its own (TestMain), so that
// the node it builds (the pods' bridge, the proxy's nftables table, the DNS server on port 53,
// the kubelet's port) is private: nothing of it is seen by, or collides with, the host or
// other tests. The namespace goes when the process ends.
package services_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/endpointslice"
	"github.com/skiff-dev/skiff/dns"
	"github.com/skiff-dev/skiff/e2e/netnstest"
	"github.com/skiff-dev/skiff/kubelet"
	"github.com/skiff-dev/skiff/kubelet/kubelettest"
	"github.com/skiff-dev/skiff/proxy"
)

// The node, inside the test's network namespace:
//
//	node0 (empty bridge, 172.30.0.1: the node's address, where DNS listens and node ports answer)
//	skiff0 (the pods' bridge, made by CNI, 10.244.7.1/24) ── veth ── each pod (10.244.7.x)
const (
	nodeName    = "node-e2e"
	nodeIP      = "172.30.0.1"
	podCIDR     = "10.244.7.0/24"
	clusterCIDR = "10.244.0.0/16"
)

// TestMain runs the tests in a network namespace of their own (netnstest): the pods' bridge,
// the proxy's table, DNS on port 53 and the kubelet's port are theirs alone.
func TestMain(m *testing.M) { os.Exit(netnstest.Main(m, nil)) }

func requireNode(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("real containers are skipped with -short")
	}
	if why := netnstest.Why(); why != "" {
		t.Skip(why)
	}
	if m := kubelettest.Missing(); m != "" {
		t.Skipf("real containers cannot run here: %s", m)
	}
	for _, tool := range []string{"nft", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the proxy needs %s on PATH (apt-get install nftables iproute2)", tool)
		}
	}
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// cluster is one node's worth of skiff: what a Service needs to work.
type cluster struct {
	client kubernetes.Interface
	node   *kubelettest.Node
}

// startCluster starts, in this network namespace, an API server, containerd and a kubelet,
// the EndpointSlice controller, the proxy and the DNS server. All stop when the test ends.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	// the kernel here has no dummy links: an empty bridge holds the node's address
	run(t, "ip", "link", "add", "node0", "type", "bridge")
	run(t, "ip", "addr", "add", nodeIP+"/24", "dev", "node0")
	run(t, "ip", "link", "set", "node0", "up")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", "node0").Run() })

	ctrd, err := kubelettest.StartContainerd(context.Background())
	if err != nil {
		t.Fatalf("containerd: %v", err)
	}
	t.Cleanup(func() {
		if err := ctrd.Stop(); err != nil {
			t.Errorf("stopping containerd: %v", err)
		}
	})
	srv := apiservertest.Start(t)
	client := srv.Client
	ctx, cancel := context.WithCancel(context.Background())
	var stopped []chan struct{}
	var factories []informers.SharedInformerFactory
	t.Cleanup(func() {
		cancel()
		for _, c := range stopped {
			<-c
		}
		for _, f := range factories {
			f.Shutdown()
		}
	})
	goStopped := func(f func()) {
		done := make(chan struct{})
		stopped = append(stopped, done)
		go func() {
			defer close(done)
			f()
		}()
	}

	// the controller manager's part: EndpointSlices for Services with selectors
	cm := informers.NewSharedInformerFactory(client, 0)
	esc, err := endpointslice.New(cm.Core().V1().Pods(), cm.Core().V1().Services(), cm.Core().V1().Nodes(),
		cm.Discovery().V1().EndpointSlices(), cm.Core().V1().Endpoints(), client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Start(ctx.Done())
	factories = append(factories, cm)
	goStopped(func() { esc.Run(ctx, 2) })

	// the proxy, on this namespace's nftables
	pf := informers.NewSharedInformerFactory(client, 0)
	p, err := proxy.New(pf.Core().V1().Services(), pf.Discovery().V1().EndpointSlices(), proxy.Config{
		Hostname: nodeName, ClusterCIDR: netip.MustParsePrefix(clusterCIDR),
	})
	if err != nil {
		t.Fatal(err)
	}
	pf.Start(ctx.Done())
	factories = append(factories, pf)
	goStopped(func() {
		if err := p.Run(ctx); err != nil {
			t.Errorf("proxy: %v", err)
		}
	})

	// the cluster DNS on the node's address, published as kube-system/kube-dns
	df := informers.NewSharedInformerFactory(client, 0)
	ds, err := dns.New(df.Core().V1().Services(), df.Discovery().V1().EndpointSlices(), dns.Config{})
	if err != nil {
		t.Fatal(err)
	}
	df.Start(ctx.Done())
	factories = append(factories, df)
	pc, err := net.ListenPacket("udp", nodeIP+":53")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", nodeIP+":53")
	if err != nil {
		t.Fatal(err)
	}
	goStopped(func() {
		if err := ds.Serve(ctx, pc, l); err != nil {
			t.Errorf("dns: %v", err)
		}
	})
	if err := dns.NewPublisher(client, dns.DefaultServiceIP, dns.Endpoint{IP: netip.MustParseAddr(nodeIP), Port: 53, NodeName: nodeName}).Sync(ctx); err != nil {
		t.Fatal(err)
	}

	node := kubelettest.StartNode(t, client, ctrd, nodeName, func(c *kubelet.Config) {
		c.PodCIDR = podCIDR
		c.NodeIPs = []net.IP{net.ParseIP(nodeIP)}
		c.ClusterDNS = []string{dns.DefaultServiceIP}
	})
	return &cluster{client: client, node: node}
}

// webPod serves a page naming itself on port 8080 ("http"); it is ready while /tmp/ready exists.
func webPod(name string) *corev1.Pod {
	pod := kubelettest.BusyboxPod(name, "mkdir -p /www && echo "+name+" > /www/index.html && touch /tmp/ready && exec httpd -f -p 8080 -h /www")
	pod.Labels = map[string]string{"app": "web"}
	c := &pod.Spec.Containers[0]
	c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}
	c.ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/ready"}}},
		PeriodSeconds: 1, FailureThreshold: 1, SuccessThreshold: 1, TimeoutSeconds: 5,
	}
	return pod
}

func (c *cluster) createService(t *testing.T, name string, typ corev1.ServiceType) *corev1.Service {
	t.Helper()
	svc, err := c.client.CoreV1().Services("default").Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Type:     typ,
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("http")}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create service %s: %v", name, err)
	}
	return svc
}

// fetch asks url n times with busybox wget from the pod and counts the answers (the pages
// name their pods); a failed request is counted as "error: <what wget said>".
func (c *cluster) fetch(from *corev1.Pod, url string, n int) map[string]int {
	script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do wget -q -O- %s 2>&1 || echo "error: wget exit $?"; i=$((i+1)); done`, n, url)
	stdout, stderr, err := c.node.Exec(from, "main", "sh", "-c", script)
	answers := map[string]int{}
	if err != nil {
		answers[fmt.Sprintf("error: exec: %v %s", err, stderr)]++
		return answers
	}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		answers[line]++
	}
	return answers
}

func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		ok, detail := cond()
		last = detail
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v; last: %s", what, err, last)
	}
}

func onlyFrom(answers map[string]int, pods ...string) bool {
	for answer, n := range answers {
		if n > 0 && !slices.Contains(pods, answer) {
			return false
		}
	}
	for _, p := range pods {
		if answers[p] == 0 {
			return false
		}
	}
	return true
}

func TestServiceReachesReadyPodsByNameAndNodePort(t *testing.T) {
	requireNode(t)
	c := startCluster(t)
	ctx := context.Background()

	backends := []string{"web-0", "web-1", "web-2"}
	var pods []*corev1.Pod
	for _, name := range backends {
		pods = append(pods, c.node.CreatePod(webPod(name)))
	}
	client := c.node.CreatePod(kubelettest.BusyboxPod("client", "exec sleep 3600"))
	web := c.createService(t, "web", corev1.ServiceTypeClusterIP)
	webNodePort := c.createService(t, "web-nodeport", corev1.ServiceTypeNodePort)
	for _, p := range pods {
		c.node.WaitPod(p, "ready", kubelettest.PodReady)
	}
	c.node.WaitPod(client, "running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })

	// the kubelet points the pod at the cluster DNS
	resolv, stderr, err := c.node.Exec(client, "main", "cat", "/etc/resolv.conf")
	if err != nil || !strings.Contains(resolv, "nameserver "+dns.DefaultServiceIP) || !strings.Contains(resolv, "search default.svc.cluster.local svc.cluster.local cluster.local") {
		t.Fatalf("the pod's resolv.conf (err %v %s):\n%s", err, stderr, resolv)
	}

	// the Service's name resolves, from a pod, to its cluster IP
	var lookup string
	eventually(t, "nslookup of the service from a pod", func() (bool, string) {
		lookup, stderr, err = c.node.Exec(client, "main", "nslookup", "web.default.svc.cluster.local")
		return err == nil && strings.Contains(lookup, "Address: "+web.Spec.ClusterIP), fmt.Sprintf("%q %q %v", lookup, stderr, err)
	})
	if !strings.Contains(lookup, "Name:\tweb.default.svc.cluster.local") && !strings.Contains(lookup, "Name: web.default.svc.cluster.local") {
		t.Errorf("nslookup answered for another name:\n%s", lookup)
	}

	// by its full name and through the search path, every ready backend answers
	fqdn := "http://web.default.svc.cluster.local:80/"
	eventually(t, "every backend answering "+fqdn, func() (bool, string) {
		answers := c.fetch(client, fqdn, 30)
		return onlyFrom(answers, backends...), fmt.Sprint(answers)
	})
	answers := c.fetch(client, "http://web/", 60)
	if !onlyFrom(answers, backends...) {
		t.Errorf("http://web/ through the search path: 60 requests should spread over %v, got %v", backends, answers)
	}
	t.Logf("60 requests to http://web/: %v", answers)

	// a pod that turns unready leaves the Service
	if _, stderr, err := c.node.Exec(pods[2], "main", "rm", "/tmp/ready"); err != nil {
		t.Fatalf("rm /tmp/ready: %v %s", err, stderr)
	}
	c.node.WaitPod(pods[2], "unready", kubelettest.PodNotReady)
	eventually(t, "web-2's endpoint not ready in the EndpointSlice", func() (bool, string) {
		slices, err := c.client.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
		if err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, s := range slices.Items {
			for _, e := range s.Endpoints {
				ready := e.Conditions.Ready != nil && *e.Conditions.Ready
				name := ""
				if e.TargetRef != nil {
					name = e.TargetRef.Name
				}
				seen = append(seen, fmt.Sprintf("%s ready=%v", name, ready))
				if name == "web-2" && !ready {
					return true, ""
				}
			}
		}
		return false, fmt.Sprint(seen)
	})
	eventually(t, "only web-0 and web-1 answering", func() (bool, string) {
		answers := c.fetch(client, "http://web/", 30)
		return onlyFrom(answers, "web-0", "web-1"), fmt.Sprint(answers)
	})
	if answers := c.fetch(client, "http://web/", 60); !onlyFrom(answers, "web-0", "web-1") {
		t.Errorf("after web-2 turned unready: 60 requests should spread over web-0 and web-1 only, got %v", answers)
	}

	// the node port answers on the node's address, from the node itself
	nodePortURL := fmt.Sprintf("http://%s/", net.JoinHostPort(nodeIP, fmt.Sprint(webNodePort.Spec.Ports[0].NodePort)))
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	eventually(t, "the node port answering from the node", func() (bool, string) {
		got := map[string]int{}
		for range 30 {
			resp, err := hc.Get(nodePortURL)
			if err != nil {
				return false, err.Error()
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got[strings.TrimSpace(string(b))]++
		}
		return onlyFrom(got, "web-0", "web-1"), fmt.Sprint(got)
	})
}
