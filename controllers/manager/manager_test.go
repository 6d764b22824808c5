package manager

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func TestControllersFlagSelectsByNameAliasAndExclusion(t *testing.T) {
	got, err := enabledControllers([]string{"*", "-podgc", "-garbage-collector-controller"})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range got {
		if n == "pod-garbage-collector-controller" || n == "garbage-collector-controller" {
			t.Errorf("%s enabled though excluded: %v", n, got)
		}
	}
	if len(got) != len(descriptors)-2 {
		t.Errorf("enabled %v, want all but two", got)
	}
	got, err = enabledControllers([]string{"replicaset", "namespace-controller"})
	if err != nil || len(got) != 2 || got[0] != "replicaset-controller" || got[1] != "namespace-controller" {
		t.Errorf("enabled %v (%v), want the two named", got, err)
	}
	if _, err := enabledControllers([]string{"bogus"}); err == nil || !strings.Contains(err.Error(), `"bogus" is not in the list of known controllers`) {
		t.Errorf("unknown controller: %v", err)
	}
	if got, _ := enabledControllers([]string{"-replicaset"}); len(got) != 0 {
		t.Errorf("only an exclusion enabled %v, want nothing", got)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startManager runs a controller manager until the test ends (or stop is called).
func startManager(t *testing.T, s *apiservertest.Server, o Options) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, s.Config, o) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

func poll(t *testing.T, what string, cond func(ctx context.Context) bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		return cond(ctx), nil
	}); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func testRS(name string, replicas int32) *appsv1.ReplicaSet {
	labels := map[string]string{"app": name}
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36"}}},
			},
		},
	}
}

func countPods(ctx context.Context, c kubernetes.Interface, ns, selector string) int {
	l, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return -1
	}
	return len(l.Items)
}

func TestManagerLeadsRunsControllersAndServesHealthAndMetrics(t *testing.T) {
	s := apiservertest.Start(t)
	port := freePort(t)
	startManager(t, s, Options{
		LeaderElect: true, Identity: "first", Port: port, Profiling: true,
		LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond,
		RootCA: []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
	})
	c := s.Client
	poll(t, "the Lease to name this manager", func(ctx context.Context) bool {
		l, err := c.CoordinationV1().Leases("kube-system").Get(ctx, "kube-controller-manager", metav1.GetOptions{})
		return err == nil && ptr.Deref(l.Spec.HolderIdentity, "") == "first"
	})
	if _, err := c.AppsV1().ReplicaSets("default").Create(context.Background(), testRS("web", 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the ReplicaSet's pods", func(ctx context.Context) bool { return countPods(ctx, c, "default", "app=web") == 2 })
	poll(t, "the default ServiceAccount and kube-root-ca.crt", func(ctx context.Context) bool {
		_, errSA := c.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		_, errCM := c.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return errSA == nil && errCM == nil
	})
	if err := c.AppsV1().ReplicaSets("default").Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the garbage collector to take the pods", func(ctx context.Context) bool { return countPods(ctx, c, "default", "app=web") == 0 })

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if code, body := get(t, base+"/healthz"); code != http.StatusOK || body != "ok" {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}
	if code, body := get(t, base+"/healthz?verbose"); code != http.StatusOK || !strings.Contains(body, "[+]leaderElection ok") {
		t.Errorf("/healthz?verbose = %d %q", code, body)
	}
	code, body := get(t, base+"/metrics")
	for _, want := range []string{
		`workqueue_depth{name="replicaset"}`,
		`workqueue_adds_total{name="garbage_collector_attempt_to_delete"}`,
		`controller_sync_duration_seconds_count{controller="replicaset",result="success"}`,
		`go_goroutines`,
	} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code, body := get(t, base+"/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(body, "controllers/manager") {
		t.Errorf("/debug/pprof/goroutine with Profiling = %d:\n%.500s", code, body)
	}
}

func TestOfTwoManagersOneActsAndTheOtherTakesOver(t *testing.T) {
	s := apiservertest.Start(t)
	fast := func(id string) Options {
		return Options{LeaderElect: true, Identity: id, Port: -1,
			LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 300 * time.Millisecond,
			Controllers: []string{"replicaset", "garbagecollector"}}
	}
	holder := func(ctx context.Context) string {
		l, err := s.Client.CoordinationV1().Leases("kube-system").Get(ctx, "kube-controller-manager", metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return ptr.Deref(l.Spec.HolderIdentity, "")
	}
	stopA := startManager(t, s, fast("a"))
	poll(t, "a to lead", func(ctx context.Context) bool { return holder(ctx) == "a" })
	startManager(t, s, fast("b"))
	ctx := context.Background()
	if _, err := s.Client.AppsV1().ReplicaSets("default").Create(ctx, testRS("web", 3), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "three pods", func(ctx context.Context) bool { return countPods(ctx, s.Client, "default", "app=web") == 3 })
	if h := holder(ctx); h != "a" {
		t.Fatalf("lease holder %q while a runs, want a", h)
	}
	stopA()
	poll(t, "b to take over", func(ctx context.Context) bool { return holder(ctx) == "b" })
	// b's controllers act: scaling works
	// no resourceVersion: the write does not race the controllers' status updates
	if _, err := s.Client.AppsV1().ReplicaSets("default").UpdateScale(ctx, "web", autoscalingScale{"web", 1}.scale(), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "b to scale down to one", func(ctx context.Context) bool { return countPods(ctx, s.Client, "default", "app=web") == 1 })
	// and stays at exactly one
	time.Sleep(time.Second)
	if n := countPods(ctx, s.Client, "default", "app=web"); n != 1 {
		t.Errorf("%d pods, want 1", n)
	}
}

func TestDeletingANamespaceWithPodsReplicaSetsAndConfigMapsRemovesIt(t *testing.T) {
	s := apiservertest.Start(t)
	startManager(t, s, Options{LeaderElect: false, Port: -1})
	c := s.Client
	ctx := context.Background()
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		if _, err := c.AppsV1().ReplicaSets("team").Create(ctx, testRS(name, 2), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CoreV1().ConfigMaps("team").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-" + name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	poll(t, "the pods", func(ctx context.Context) bool { return countPods(ctx, c, "team", "") == 4 })
	poll(t, "the default ServiceAccount", func(ctx context.Context) bool {
		_, err := c.CoreV1().ServiceAccounts("team").Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
	if err := c.CoreV1().Namespaces().Delete(ctx, "team", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the namespace to go", func(ctx context.Context) bool {
		_, err := c.CoreV1().Namespaces().Get(ctx, "team", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if n := countPods(ctx, c, "team", ""); n != 0 {
		t.Errorf("%d pods left", n)
	}
}
