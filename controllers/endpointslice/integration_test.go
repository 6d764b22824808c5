package endpointslice

import (
	"context"
	"fmt"
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
)

// startController runs the controller against a real API server until the test ends.
func startController(t *testing.T) kubernetes.Interface {
	t.Helper()
	srv := apiservertest.Start(t)
	factory := informers.NewSharedInformerFactory(srv.Client, 0)
	c, err := New(factory.Core().V1().Pods(), factory.Core().V1().Services(), factory.Core().V1().Nodes(),
		factory.Discovery().V1().EndpointSlices(), factory.Core().V1().Endpoints(), srv.Client, controllers.Reporting{})
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

// runningPod creates a pod on node-1 and writes the status a kubelet would: an IP and a Ready
// condition.
func runningPod(t *testing.T, client kubernetes.Interface, name, ip string, ready bool) {
	t.Helper()
	ctx := context.Background()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "web", Image: "busybox",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
	}
	created, err := client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", name, err)
	}
	setPodStatus(t, client, created, ip, ready)
}

func setPodStatus(t *testing.T, client kubernetes.Interface, p *corev1.Pod, ip string, ready bool) {
	t.Helper()
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p = p.DeepCopy()
	p.Status = corev1.PodStatus{
		Phase:  corev1.PodRunning,
		PodIP:  ip,
		PodIPs: []corev1.PodIP{{IP: ip}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status,
			LastTransitionTime: metav1.Now()}},
	}
	if _, err := client.CoreV1().Pods("default").UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("pod status %s: %v", p.Name, err)
	}
}

// readyAddresses are the ready addresses of the Service's slices, and every address listed.
func readyAddresses(t *testing.T, client kubernetes.Interface, svc string) (ready, all map[string]bool) {
	t.Helper()
	list, err := client.DiscoveryV1().EndpointSlices("default").List(context.Background(), metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	if err != nil {
		t.Fatal(err)
	}
	ready, all = map[string]bool{}, map[string]bool{}
	for _, s := range list.Items {
		if s.Labels[discoveryv1.LabelManagedBy] != ManagedBy {
			continue
		}
		for _, ep := range s.Endpoints {
			all[ep.Addresses[0]] = true
			if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
				ready[ep.Addresses[0]] = true
			}
		}
	}
	return ready, all
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, time.Minute, true,
		func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func TestSlicesAndEndpointsFollowPodsOnARealAPIServer(t *testing.T) {
	client := startController(t)
	ctx := context.Background()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
	}
	if _, err := client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		runningPod(t, client, fmt.Sprintf("web-%d", i), fmt.Sprintf("10.244.0.%d", i), i != 3)
	}

	eventually(t, "two ready and one unready endpoint", func() bool {
		ready, all := readyAddresses(t, client, "web")
		return len(ready) == 2 && len(all) == 3 && ready["10.244.0.1"] && ready["10.244.0.2"]
	})
	eventually(t, "the Endpoints mirror", func() bool {
		ep, err := client.CoreV1().Endpoints("default").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && len(ep.Subsets) == 1 && len(ep.Subsets[0].Addresses) == 2 &&
			len(ep.Subsets[0].NotReadyAddresses) == 1 && ep.Subsets[0].Ports[0].Port == 8080
	})

	// the third becomes ready, the first is deleted
	p3, err := client.CoreV1().Pods("default").Get(ctx, "web-3", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	setPodStatus(t, client, p3, "10.244.0.3", true)
	if err := client.CoreV1().Pods("default").Delete(ctx, "web-1", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "web-2 and web-3 ready, web-1 gone", func() bool {
		ready, all := readyAddresses(t, client, "web")
		return len(all) == 2 && ready["10.244.0.2"] && ready["10.244.0.3"]
	})
	eventually(t, "the Endpoints follow", func() bool {
		ep, err := client.CoreV1().Endpoints("default").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && len(ep.Subsets) == 1 && len(ep.Subsets[0].Addresses) == 2 && len(ep.Subsets[0].NotReadyAddresses) == 0
	})

	// deleting the Service takes its slices and Endpoints with it
	if err := client.CoreV1().Services("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "slices and endpoints gone", func() bool {
		_, all := readyAddresses(t, client, "web")
		_, err := client.CoreV1().Endpoints("default").Get(ctx, "web", metav1.GetOptions{})
		return len(all) == 0 && err != nil
	})
}
