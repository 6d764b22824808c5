package daemonset_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/daemonset"
	"github.com/skiff-dev/skiff/controllers/garbagecollector"
	"github.com/skiff-dev/skiff/kubelet/fakeruntime"
	"github.com/skiff-dev/skiff/kubelet/kubelettest"
	"github.com/skiff-dev/skiff/scheduler"
)

// cluster is an API server with the scheduler, the DaemonSet controller, the garbage
// collector and simulated nodes (kubelets on the in-memory runtime).
type cluster struct {
	s      *apiservertest.Server
	client kubernetes.Interface
}

func startCluster(t *testing.T, nodes ...string) *cluster {
	t.Helper()
	s := apiservertest.Start(t)
	client := s.Client
	for i, name := range nodes {
		fake, err := fakeruntime.New(fmt.Sprintf("10.244.%d.0/24", i+1))
		if err != nil {
			t.Fatal(err)
		}
		kubelettest.StartFakeNode(t, client, fake, name)
	}
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactory(client, 0)
	dsc, err := daemonset.New(factory.Apps().V1().DaemonSets(), factory.Apps().V1().ControllerRevisions(),
		factory.Core().V1().Pods(), factory.Core().V1().Nodes(), client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	gc := garbagecollector.New(garbagecollector.NewDynamicInformerSource(factory, dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)),
		dyn, memory.NewMemCacheClient(client.Discovery()), controllers.Reporting{})
	sched, err := scheduler.NewWithClient(client, scheduler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	var wg sync.WaitGroup
	for _, run := range []func(context.Context, int){dsc.Run, gc.Run} {
		wg.Go(func() { run(ctx, 2) })
	}
	wg.Go(func() { sched.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait(); factory.Shutdown() })
	return &cluster{s: s, client: client}
}

func poll(t *testing.T, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 2*time.Minute, true, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func newDaemonSet(name string) *appsv1.DaemonSet {
	labels := map[string]string{"app": name}
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "busybox:1.36"}}},
			},
		},
	}
}

// nodesRunning are the nodes the DaemonSet's running pods of image are bound to.
func (c *cluster) nodesRunning(ctx context.Context, app, image string) ([]string, error) {
	pods, err := c.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return nil, err
	}
	var nodes []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && p.Spec.Containers[0].Image == image {
			nodes = append(nodes, p.Spec.NodeName)
		}
	}
	slices.Sort(nodes)
	return nodes, nil
}

func (c *cluster) label(t *testing.T, node, label string) {
	t.Helper()
	k, v, _ := strings.Cut(label, "=")
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, k, v)
	if _, err := c.client.CoreV1().Nodes().Patch(context.Background(), node, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// rolledOut is what kubectl rollout status waits for.
func rolledOut(ds *appsv1.DaemonSet, desired int32) bool {
	s := ds.Status
	return ds.Generation <= s.ObservedGeneration && s.DesiredNumberScheduled == desired &&
		s.UpdatedNumberScheduled == desired && s.NumberAvailable == desired
}

func TestDaemonSetRunsOnePodOnEachMatchingNodeAndRollsUpdatesOut(t *testing.T) {
	c := startCluster(t, "node-a", "node-b", "node-c")
	ctx := context.Background()
	c.label(t, "node-a", "disk=ssd")
	c.label(t, "node-b", "disk=ssd")
	ds := newDaemonSet("agent")
	ds.Spec.Template.Spec.NodeSelector = map[string]string{"disk": "ssd"}
	ds, err := c.client.AppsV1().DaemonSets("default").Create(ctx, ds, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Annotations[daemonset.TemplateGenerationAnnotation] != "1" {
		t.Errorf("template generation annotation %q, want 1", ds.Annotations[daemonset.TemplateGenerationAnnotation])
	}
	poll(t, "a pod running on node-a and node-b only", func(ctx context.Context) (bool, error) {
		nodes, err := c.nodesRunning(ctx, "agent", "busybox:1.36")
		return slices.Equal(nodes, []string{"node-a", "node-b"}), err
	})
	poll(t, "the status to count both nodes", func(ctx context.Context) (bool, error) {
		ds, err := c.client.AppsV1().DaemonSets("default").Get(ctx, "agent", metav1.GetOptions{})
		return err == nil && rolledOut(ds, 2) && ds.Status.CurrentNumberScheduled == 2 && ds.Status.NumberReady == 2, err
	})

	// a node that starts to match gets its pod
	c.label(t, "node-c", "disk=ssd")
	poll(t, "a pod on node-c too", func(ctx context.Context) (bool, error) {
		nodes, err := c.nodesRunning(ctx, "agent", "busybox:1.36")
		return len(nodes) == 3, err
	})

	// a new template rolls out node by node and leaves two revisions
	patch := `{"spec":{"template":{"spec":{"containers":[{"name":"agent","image":"busybox:1.37"}]}}}}`
	if _, err := c.client.AppsV1().DaemonSets("default").Patch(ctx, "agent", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the update to reach every node", func(ctx context.Context) (bool, error) {
		nodes, err := c.nodesRunning(ctx, "agent", "busybox:1.37")
		if err != nil || len(nodes) != 3 {
			return false, err
		}
		ds, err := c.client.AppsV1().DaemonSets("default").Get(ctx, "agent", metav1.GetOptions{})
		return err == nil && rolledOut(ds, 3), err
	})
	revs, err := c.client.AppsV1().ControllerRevisions("default").List(ctx, metav1.ListOptions{LabelSelector: "app=agent"})
	if err != nil {
		t.Fatal(err)
	}
	var numbers []int64
	for _, r := range revs.Items {
		numbers = append(numbers, r.Revision)
	}
	slices.Sort(numbers)
	if !slices.Equal(numbers, []int64{1, 2}) {
		t.Errorf("revisions numbered %v, want 1 and 2", numbers)
	}

	// deleting the DaemonSet takes its pods and revisions with it
	fg := metav1.DeletePropagationForeground
	if err := c.client.AppsV1().DaemonSets("default").Delete(ctx, "agent", metav1.DeleteOptions{PropagationPolicy: &fg}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the DaemonSet's pods and revisions to go", func(ctx context.Context) (bool, error) {
		revs, err := c.client.AppsV1().ControllerRevisions("default").List(ctx, metav1.ListOptions{LabelSelector: "app=agent"})
		if err != nil {
			return false, err
		}
		_, err = c.client.AppsV1().DaemonSets("default").Get(ctx, "agent", metav1.GetOptions{})
		return len(revs.Items) == 0 && err != nil, nil
	})
}

// TestKubectlRolloutOfADaemonSet drives a DaemonSet through stock kubectl: rollout status,
// set image, rollout history, rollout undo, get.
func TestKubectlRolloutOfADaemonSet(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("no kubectl on PATH")
	}
	c := startCluster(t, "node-a", "node-b")
	kubeconfig := filepath.Join(c.s.DataDir, "kubeconfig")
	if err := c.s.PKI.WriteKubeconfig(kubeconfig, c.s.URL); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(kubectl, args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "HOME="+home)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	ctx := context.Background()
	if _, err := c.client.AppsV1().DaemonSets("default").Create(ctx, newDaemonSet("agent"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if out := run("rollout", "status", "daemonset/agent", "--timeout=90s"); !strings.Contains(out, `daemon set "agent" successfully rolled out`) {
		t.Errorf("rollout status:\n%s", out)
	}
	get := run("get", "ds", "agent")
	if !strings.Contains(get, "NAME    DESIRED   CURRENT   READY   UP-TO-DATE   AVAILABLE   NODE SELECTOR   AGE") ||
		!strings.Contains(get, "agent   2         2         2       2            2           <none>") {
		t.Errorf("kubectl get ds:\n%s", get)
	}
	if out := run("describe", "ds", "agent"); !strings.Contains(out, "Desired Number of Nodes Scheduled: 2") ||
		!strings.Contains(out, "Pods Status:  2 Running / 0 Waiting / 0 Succeeded / 0 Failed") {
		t.Errorf("kubectl describe ds:\n%s", out)
	}
	run("set", "image", "daemonset/agent", "agent=busybox:1.37")
	run("rollout", "status", "daemonset/agent", "--timeout=90s")
	history := run("rollout", "history", "daemonset/agent")
	if !strings.Contains(history, "REVISION") || !strings.Contains(history, "1 ") || !strings.Contains(history, "2 ") {
		t.Errorf("rollout history:\n%s", history)
	}
	if out := run("rollout", "history", "daemonset/agent", "--revision=1"); !strings.Contains(out, "busybox:1.36") {
		t.Errorf("rollout history --revision=1:\n%s", out)
	}
	run("rollout", "undo", "daemonset/agent")
	run("rollout", "status", "daemonset/agent", "--timeout=90s")
	poll(t, "the pods to run the old image again", func(ctx context.Context) (bool, error) {
		nodes, err := c.nodesRunning(ctx, "agent", "busybox:1.36")
		return len(nodes) == 2, err
	})
	revs := run("get", "controllerrevisions")
	// the rolled-back revision is renumbered 3
	if !strings.Contains(revs, "CONTROLLER") || !strings.Contains(revs, "daemonset.apps/agent   3") || !strings.Contains(revs, "daemonset.apps/agent   2") {
		t.Errorf("kubectl get controllerrevisions:\n%s", revs)
	}
}

// TestDaemonSetPodsMarkedNotReadyByNodeLifecycleCountAsAvailableAgain: the node lifecycle
// controller sets the Ready condition of a silent node's pods False. When the node is heard
// again its kubelet puts Ready back, and the DaemonSet counts the pod available again: a
// rolling update, which waits while updated pods are unavailable, does not stall on them.
func TestDaemonSetPodsMarkedNotReadyByNodeLifecycleCountAsAvailableAgain(t *testing.T) {
	c := startCluster(t, "node-a", "node-b", "node-c")
	ctx := context.Background()
	if _, err := c.client.AppsV1().DaemonSets("default").Create(ctx, newDaemonSet("agent"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rolled := func(ctx context.Context) (bool, error) {
		ds, err := c.client.AppsV1().DaemonSets("default").Get(ctx, "agent", metav1.GetOptions{})
		return err == nil && rolledOut(ds, 3), err
	}
	poll(t, "the DaemonSet on every node", rolled)
	pods, err := c.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=agent"})
	if err != nil {
		t.Fatal(err)
	}
	// what the node lifecycle controller's markPodsNotReady writes for node-a's pod
	i := slices.IndexFunc(pods.Items, func(p corev1.Pod) bool { return p.Spec.NodeName == "node-a" })
	if i < 0 {
		t.Fatal("no pod on node-a")
	}
	pod := &pods.Items[i]
	for j := range pod.Status.Conditions {
		if pod.Status.Conditions[j].Type == corev1.PodReady {
			pod.Status.Conditions[j].Status = corev1.ConditionFalse
			pod.Status.Conditions[j].LastTransitionTime = metav1.Now()
		}
	}
	marked, err := c.client.CoreV1().Pods("default").UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	poll(t, "node-a's pod to be ready again and counted available", func(ctx context.Context) (bool, error) {
		p, err := c.client.CoreV1().Pods("default").Get(ctx, marked.Name, metav1.GetOptions{})
		if err != nil || p.ResourceVersion == marked.ResourceVersion || !isReady(p) {
			return false, err
		}
		return rolled(ctx)
	})
}

func isReady(p *corev1.Pod) bool {
	return slices.ContainsFunc(p.Status.Conditions, func(c corev1.PodCondition) bool {
		return c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue
	})
}
