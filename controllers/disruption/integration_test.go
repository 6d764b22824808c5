package disruption_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/scale"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/disruption"
	"github.com/skiff-dev/skiff/kubelet/fakeruntime"
	"github.com/skiff-dev/skiff/kubelet/kubelettest"
)

// startController runs a disruption controller against a real API server until the test ends.
func startController(t *testing.T, s *apiservertest.Server) {
	t.Helper()
	client := s.Client
	factory := informers.NewSharedInformerFactory(client, 0)
	cached := memory.NewMemCacheClient(client.Discovery())
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(cached)
	scales, err := scale.NewForConfig(s.Config, mapper, dynamic.LegacyAPIPathResolverFunc, scale.NewDiscoveryScaleKindResolver(cached))
	if err != nil {
		t.Fatal(err)
	}
	c, err := disruption.New(factory.Policy().V1().PodDisruptionBudgets(), factory.Core().V1().Pods(),
		factory.Apps().V1().ReplicaSets(), factory.Apps().V1().Deployments(), client, scales, mapper, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	factory.Start(ctx.Done())
	go func() { defer close(done); c.Run(ctx, 2) }()
	t.Cleanup(func() { cancel(); <-done; factory.Shutdown() })
}

// replicaSetPods makes a ReplicaSet (no controller runs for it) and its pods, bound to the
// given nodes, one pod per node name.
func replicaSetPods(t *testing.T, client kubernetes.Interface, name string, nodes ...string) []*corev1.Pod {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{"app": name}
	rs, err := client.AppsV1().ReplicaSets("default").Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(int32(len(nodes))), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36"}}}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var pods []*corev1.Pod
	for i, node := range nodes {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name + "-" + string(rune('a'+i)), Labels: labels,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true)}}},
			Spec: corev1.PodSpec{NodeName: node, TerminationGracePeriodSeconds: ptr.To[int64](1),
				Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36"}}},
		}
		created, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pods = append(pods, created)
	}
	return pods
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, what string, cond func(ctx context.Context) bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		return cond(ctx), nil
	}); err != nil {
		t.Fatalf("%s: never happened", what)
	}
}

// waitBudget waits until the budget's status says it allows want disruptions of the
// generation it has.
func waitBudget(t *testing.T, client kubernetes.Interface, name string, want int32) *policyv1.PodDisruptionBudget {
	t.Helper()
	var pdb *policyv1.PodDisruptionBudget
	waitFor(t, "budget "+name+" allows "+string(rune('0'+want)), func(ctx context.Context) bool {
		var err error
		pdb, err = client.PolicyV1().PodDisruptionBudgets("default").Get(ctx, name, metav1.GetOptions{})
		return err == nil && pdb.Status.ObservedGeneration == pdb.Generation && pdb.Status.DisruptionsAllowed == want
	})
	return pdb
}

func runningPods(ctx context.Context, client kubernetes.Interface, node string) int {
	pods, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return -1
	}
	return len(pods.Items)
}

func TestEvictionRespectsTheBudgetTheControllerKeeps(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	fake, err := fakeruntime.New("")
	if err != nil {
		t.Fatal(err)
	}
	node := kubelettest.StartFakeNode(t, s.Client, fake, "node-a")
	startController(t, s)
	pods := replicaSetPods(t, s.Client, "web", "node-a", "node-a", "node-a")
	for _, p := range pods {
		node.WaitPod(p, "ready", kubelettest.PodReady)
	}
	pdbs := s.Client.PolicyV1().PodDisruptionBudgets("default")
	maxUnavailable := intstr.FromInt32(1)
	if _, err := pdbs.Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &maxUnavailable,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pdb := waitBudget(t, s.Client, "web", 1)
	if pdb.Status.CurrentHealthy != 3 || pdb.Status.DesiredHealthy != 2 || pdb.Status.ExpectedPods != 3 {
		t.Errorf("status %+v, want 3 healthy of 3 expected, 2 desired", pdb.Status)
	}
	if c := pdb.Status.Conditions; len(c) != 1 || c[0].Type != "DisruptionAllowed" || c[0].Status != metav1.ConditionTrue || c[0].Reason != "SufficientPods" {
		t.Errorf("conditions %+v", c)
	}

	evict := func(name string) error {
		return s.Client.PolicyV1().Evictions("default").Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}})
	}
	if err := evict(pods[0].Name); err != nil {
		t.Fatalf("first eviction: %v", err)
	}
	err = evict(pods[1].Name)
	status, ok := err.(apierrors.APIStatus)
	if !ok || status.Status().Code != 429 || status.Status().Message != "Cannot evict pod as it would violate the pod's disruption budget." {
		t.Fatalf("second eviction: %v, want 429 with upstream's message", err)
	}
	if d := status.Status().Details; d == nil || len(d.Causes) != 1 || d.Causes[0].Type != policyv1.DisruptionBudgetCause ||
		d.Causes[0].Message != "The disruption budget web needs 2 healthy pods and has 2 currently" {
		t.Errorf("details %+v", status.Status().Details)
	}
	waitFor(t, "the evicted pod to go", func(ctx context.Context) bool {
		_, err := s.Client.CoreV1().Pods("default").Get(ctx, pods[0].Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	pdb = waitBudget(t, s.Client, "web", 0)
	if pdb.Status.CurrentHealthy != 2 || len(pdb.Status.DisruptedPods) != 0 {
		t.Errorf("after the eviction: %+v", pdb.Status)
	}
	if c := pdb.Status.Conditions[0]; c.Status != metav1.ConditionFalse || c.Reason != "InsufficientPods" {
		t.Errorf("condition after the eviction %+v", c)
	}

	// the ReplicaSet wants one more: the budget counts from its scale, 2 of 4 may go
	rs, _ := s.Client.AppsV1().ReplicaSets("default").Get(ctx, "web", metav1.GetOptions{})
	rs.Spec.Replicas = ptr.To[int32](4)
	if _, err := s.Client.AppsV1().ReplicaSets("default").Update(ctx, rs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// the controller sees the change through the pods; touch one
	p, _ := s.Client.CoreV1().Pods("default").Get(ctx, pods[1].Name, metav1.GetOptions{})
	p.Labels["touched"] = "yes"
	if _, err := s.Client.CoreV1().Pods("default").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pdb = waitBudget(t, s.Client, "web", 0)
	waitFor(t, "expectedPods to follow the ReplicaSet's scale", func(ctx context.Context) bool {
		pdb, _ = pdbs.Get(ctx, "web", metav1.GetOptions{})
		return pdb.Status.ExpectedPods == 4 && pdb.Status.DesiredHealthy == 3
	})
}

// kubectl runs the stock kubectl on PATH against the server as its admin.
func kubectl(t *testing.T, s *apiservertest.Server) func(args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("no kubectl on PATH")
	}
	kubeconfig := filepath.Join(s.DataDir, "kubeconfig")
	if err := s.PKI.WriteKubeconfig(kubeconfig, s.URL); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	return func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "HOME="+home)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
}

func TestKubectlDrainEvictsWithinTheBudgetAndCordonsTheNode(t *testing.T) {
	s := apiservertest.Start(t)
	run := kubectl(t, s)
	ctx := context.Background()
	fakeA, _ := fakeruntime.New("10.88.1.0/24")
	fakeB, _ := fakeruntime.New("10.88.2.0/24")
	nodeA := kubelettest.StartFakeNode(t, s.Client, fakeA, "node-a")
	nodeB := kubelettest.StartFakeNode(t, s.Client, fakeB, "node-b")
	startController(t, s)
	pods := replicaSetPods(t, s.Client, "web", "node-a", "node-a", "node-b")
	nodeA.WaitPod(pods[0], "ready", kubelettest.PodReady)
	nodeA.WaitPod(pods[1], "ready", kubelettest.PodReady)
	nodeB.WaitPod(pods[2], "ready", kubelettest.PodReady)
	if out, err := run("create", "poddisruptionbudget", "web", "--selector=app=web", "--min-available=1"); err != nil {
		t.Fatalf("create pdb: %v\n%s", err, out)
	}
	waitBudget(t, s.Client, "web", 2)
	out, err := run("get", "pdb", "web")
	if err != nil || !strings.Contains(out, "MIN AVAILABLE") || !regexpLine(out, `^web\s+1\s+N/A\s+2\s+`) {
		t.Errorf("kubectl get pdb: %v\n%s", err, out)
	}

	// cordon and uncordon flip spec.unschedulable
	if out, err := run("cordon", "node-b"); err != nil || !strings.Contains(out, "node/node-b cordoned") {
		t.Fatalf("cordon: %v\n%s", err, out)
	}
	if n, _ := s.Client.CoreV1().Nodes().Get(ctx, "node-b", metav1.GetOptions{}); !n.Spec.Unschedulable {
		t.Errorf("node-b is not unschedulable after cordon")
	}
	if out, err := run("uncordon", "node-b"); err != nil || !strings.Contains(out, "node/node-b uncordoned") {
		t.Fatalf("uncordon: %v\n%s", err, out)
	}
	if n, _ := s.Client.CoreV1().Nodes().Get(ctx, "node-b", metav1.GetOptions{}); n.Spec.Unschedulable {
		t.Errorf("node-b is still unschedulable after uncordon")
	}

	// two of three may go: node-a drains
	out, err = run("drain", "node-a", "--ignore-daemonsets", "--timeout=60s")
	if err != nil || !strings.Contains(out, "node/node-a cordoned") || !strings.Contains(out, "pod/"+pods[0].Name+" evicted") ||
		!strings.Contains(out, "node/node-a drained") {
		t.Fatalf("drain node-a: %v\n%s", err, out)
	}
	if n := runningPods(ctx, s.Client, "node-a"); n != 0 {
		t.Errorf("node-a still has %d pods after drain", n)
	}
	// the last one may not: drain node-b gives up, saying why
	waitBudget(t, s.Client, "web", 0)
	out, err = run("drain", "node-b", "--ignore-daemonsets", "--timeout=8s")
	if err == nil || !strings.Contains(out, "Cannot evict pod as it would violate the pod's disruption budget.") {
		t.Fatalf("drain node-b: %v\n%s", err, out)
	}
	if n := runningPods(ctx, s.Client, "node-b"); n != 1 {
		t.Errorf("node-b has %d pods after a refused drain, want 1", n)
	}
	if out, err := run("uncordon", "node-b"); err != nil {
		t.Fatalf("uncordon: %v\n%s", err, out)
	}
}

func regexpLine(out, pattern string) bool {
	re := regexp.MustCompile(pattern)
	for _, line := range strings.Split(out, "\n") {
		if re.MatchString(line) {
			return true
		}
	}
	return false
}
