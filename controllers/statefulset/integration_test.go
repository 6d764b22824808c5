package statefulset_test

import (
	"context"
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
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/garbagecollector"
	"github.com/skiff-dev/skiff/controllers/replicaset"
	"github.com/skiff-dev/skiff/controllers/statefulset"
)

// cluster is an API server with the StatefulSet, ReplicationController and garbage collector
// controllers, and a stand-in kubelet that makes every new pod Running and Ready after a
// moment.
type cluster struct {
	s      *apiservertest.Server
	client kubernetes.Interface
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	s := apiservertest.Start(t)
	client := s.Client
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactory(client, 0)
	ssc, err := statefulset.New(factory.Apps().V1().StatefulSets(), factory.Apps().V1().ControllerRevisions(), factory.Core().V1().Pods(), client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	rcc, err := replicaset.NewForReplicationControllers(factory.Core().V1().ReplicationControllers(), factory.Core().V1().Pods(), client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	gc := garbagecollector.New(garbagecollector.NewDynamicInformerSource(factory, dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)),
		dyn, memory.NewMemCacheClient(client.Discovery()), controllers.Reporting{})
	factory.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			p := obj.(*corev1.Pod).DeepCopy()
			if p.Status.Phase == corev1.PodRunning || p.DeletionTimestamp != nil {
				return
			}
			go func() {
				time.Sleep(50 * time.Millisecond) // long enough to catch a controller not waiting
				p.Spec.NodeName = "node-a"
				p.Status.Phase = corev1.PodRunning
				p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
				client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
			}()
		},
	})
	factory.Start(ctx.Done())
	var wg sync.WaitGroup
	for _, run := range []func(context.Context, int){ssc.Run, rcc.Run, gc.Run} {
		wg.Go(func() { run(ctx, 3) })
	}
	t.Cleanup(func() { cancel(); wg.Wait(); factory.Shutdown() })
	return &cluster{s: s, client: client}
}

func poll(t *testing.T, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 2*time.Minute, true, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func newSet(name string, replicas int32) *appsv1.StatefulSet {
	labels := map[string]string{"app": name}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To(replicas),
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "busybox:1.36"}}},
			},
		},
	}
}

// readyPods are the names of the set's running, ready pods.
func (c *cluster) readyPods(ctx context.Context, app string) ([]string, error) {
	pods, err := c.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && controllers.IsPodReady(&p) {
			names = append(names, p.Name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// TestStatefulSetCreatesAndRemovesPodsInOrder watches an OrderedReady set come up one pod at
// a time, each after the one before is ready, and go down from the highest ordinal.
func TestStatefulSetCreatesAndRemovesPodsInOrder(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	w, err := c.client.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{LabelSelector: "app=db"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := c.client.AppsV1().StatefulSets("default").Create(ctx, newSet("db", 3), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ready := map[string]bool{}
	var created []string
	for len(ready) < 3 {
		select {
		case ev := <-w.ResultChan():
			pod := ev.Object.(*corev1.Pod)
			if ev.Type == watch.Added {
				// every pod before this one is ready already
				_, ord, _ := strings.Cut(pod.Name, "db-")
				for i := range len(created) {
					if !ready[created[i]] {
						t.Errorf("%s created while %s was not ready", pod.Name, created[i])
					}
				}
				created = append(created, pod.Name)
				if pod.Spec.Hostname != pod.Name || pod.Spec.Subdomain != "db" || pod.Labels[statefulset.PodIndexLabel] != ord {
					t.Errorf("pod %s: hostname %q subdomain %q labels %v", pod.Name, pod.Spec.Hostname, pod.Spec.Subdomain, pod.Labels)
				}
			}
			if controllers.IsPodReady(pod) {
				ready[pod.Name] = true
			}
		case <-time.After(time.Minute):
			t.Fatalf("pods created so far: %v", created)
		}
	}
	if !slices.Equal(created, []string{"db-0", "db-1", "db-2"}) {
		t.Errorf("created %v, want db-0, db-1, db-2 in order", created)
	}
	poll(t, "the status to count three ready pods", func(ctx context.Context) (bool, error) {
		set, err := c.client.AppsV1().StatefulSets("default").Get(ctx, "db", metav1.GetOptions{})
		return err == nil && set.Status.ReadyReplicas == 3 && set.Status.CurrentReplicas == 3 && set.Status.AvailableReplicas == 3 &&
			set.Status.UpdateRevision != "" && set.Status.CurrentRevision == set.Status.UpdateRevision, err
	})

	// scaling down goes from the top
	patch := []byte(`{"spec":{"replicas":1}}`)
	if _, err := c.client.AppsV1().StatefulSets("default").Patch(ctx, "db", "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	var deleted []string
	for len(deleted) < 2 {
		select {
		case ev := <-w.ResultChan():
			if ev.Type == watch.Deleted {
				deleted = append(deleted, ev.Object.(*corev1.Pod).Name)
			}
		case <-time.After(time.Minute):
			t.Fatalf("pods deleted so far: %v", deleted)
		}
	}
	if !slices.Equal(deleted, []string{"db-2", "db-1"}) {
		t.Errorf("deleted %v, want db-2 then db-1", deleted)
	}

	// deleting the set takes its pods and revisions
	fg := metav1.DeletePropagationForeground
	if err := c.client.AppsV1().StatefulSets("default").Delete(ctx, "db", metav1.DeleteOptions{PropagationPolicy: &fg}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the set's pods and revisions to go", func(ctx context.Context) (bool, error) {
		pods, err := c.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=db"})
		if err != nil {
			return false, err
		}
		revs, err := c.client.AppsV1().ControllerRevisions("default").List(ctx, metav1.ListOptions{LabelSelector: "app=db"})
		return err == nil && len(pods.Items) == 0 && len(revs.Items) == 0, err
	})
}

// TestKubectlScalesStatefulSetsAndReplicationControllers drives both kinds through stock
// kubectl: create, rollout status, scale, get (upstream's columns), rollout history and undo.
func TestKubectlScalesStatefulSetsAndReplicationControllers(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("no kubectl on PATH")
	}
	c := startCluster(t)
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
	if _, err := c.client.AppsV1().StatefulSets("default").Create(ctx, newSet("web", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if out := run("rollout", "status", "statefulset/web", "--timeout=90s"); !strings.Contains(out, "partitioned roll out complete") {
		t.Errorf("rollout status:\n%s", out)
	}
	if out := run("scale", "statefulset", "web", "--replicas=3"); !strings.Contains(out, "statefulset.apps/web scaled") {
		t.Errorf("scale:\n%s", out)
	}
	poll(t, "three ready pods", func(ctx context.Context) (bool, error) {
		names, err := c.readyPods(ctx, "web")
		return slices.Equal(names, []string{"web-0", "web-1", "web-2"}), err
	})
	poll(t, "kubectl get sts to show 3/3", func(ctx context.Context) (bool, error) {
		return strings.Contains(run("get", "sts", "web"), "web    3/3"), nil
	})
	if out := run("get", "sts", "web", "-o", "wide"); !strings.Contains(out, "NAME   READY   AGE") || !strings.Contains(out, "CONTAINERS   IMAGES") || !strings.Contains(out, "db           busybox:1.36") {
		t.Errorf("kubectl get sts -o wide:\n%s", out)
	}
	if out := run("describe", "sts", "web"); !strings.Contains(out, "Replicas:           3 desired | 3 total") ||
		!strings.Contains(out, "Pods Status:        3 Running / 0 Waiting / 0 Succeeded / 0 Failed") {
		t.Errorf("kubectl describe sts:\n%s", out)
	}
	run("set", "image", "statefulset/web", "db=busybox:1.37")
	run("rollout", "status", "statefulset/web", "--timeout=90s")
	if out := run("rollout", "history", "statefulset/web"); !strings.Contains(out, "1 ") || !strings.Contains(out, "2 ") {
		t.Errorf("rollout history:\n%s", out)
	}
	run("rollout", "undo", "statefulset/web")
	poll(t, "the rollback to reach every pod", func(ctx context.Context) (bool, error) {
		pods, err := c.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(pods.Items) != 3 {
			return false, err
		}
		for _, p := range pods.Items {
			if p.Spec.Containers[0].Image != "busybox:1.36" || !controllers.IsPodReady(&p) {
				return false, nil
			}
		}
		return true, nil
	})

	// a ReplicationController, scaled the same way
	rc := &corev1.ReplicationController{
		ObjectMeta: metav1.ObjectMeta{Name: "legacy"},
		Spec: corev1.ReplicationControllerSpec{
			Replicas: ptr.To[int32](1),
			Template: &corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "legacy"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox:1.36"}}},
			},
		},
	}
	if _, err := c.client.CoreV1().ReplicationControllers("default").Create(ctx, rc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if out := run("scale", "rc", "legacy", "--replicas=3"); !strings.Contains(out, "replicationcontroller/legacy scaled") {
		t.Errorf("scale rc:\n%s", out)
	}
	poll(t, "three ready pods of the RC", func(ctx context.Context) (bool, error) {
		names, err := c.readyPods(ctx, "legacy")
		return len(names) == 3, err
	})
	poll(t, "kubectl get rc to count them", func(ctx context.Context) (bool, error) {
		out := run("get", "rc", "legacy", "-o", "wide")
		return strings.Contains(out, "NAME     DESIRED   CURRENT   READY   AGE") && strings.Contains(out, "legacy   3         3         3") &&
			strings.Contains(out, "app=legacy"), nil
	})
	if out := run("get", "rc", "--field-selector", "status.replicas=3", "-o", "name"); strings.TrimSpace(out) != "replicationcontroller/legacy" {
		t.Errorf("get rc by status.replicas:\n%s", out)
	}
	if out := run("get", "all"); !strings.Contains(out, "statefulset.apps/web") || !strings.Contains(out, "replicationcontroller/legacy") {
		t.Errorf("kubectl get all:\n%s", out)
	}

	// the garbage collector takes an RC's pods with it
	run("delete", "rc", "legacy")
	poll(t, "the RC's pods to go", func(ctx context.Context) (bool, error) {
		pods, err := c.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=legacy"})
		return err == nil && len(pods.Items) == 0, err
	})
}
