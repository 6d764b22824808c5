package nodelifecycle_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/nodelifecycle"
	"github.com/skiff-dev/skiff/controllers/tainteviction"
)

// fakeKubelet posts its node Ready and renews its Lease until stopped, as a kubelet would.
type fakeKubelet struct {
	client kubernetes.Interface
	node   string
	stop   context.CancelFunc
	done   chan struct{}
}

func startKubelet(t *testing.T, client kubernetes.Interface, node string) *fakeKubelet {
	t.Helper()
	if _, err := client.CoreV1().Nodes().Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	k := startLeaseRenewer(t, client, node)
	if err := k.postReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	return k
}

// startLeaseRenewer renews the node's Lease until halted, and posts no status of its own.
func startLeaseRenewer(t *testing.T, client kubernetes.Interface, node string) *fakeKubelet {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	k := &fakeKubelet{client: client, node: node, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(k.done)
		wait.UntilWithContext(ctx, k.renew, 300*time.Millisecond)
	}()
	t.Cleanup(k.halt)
	return k
}

func (k *fakeKubelet) halt() {
	k.stop()
	<-k.done
}

// postReady reports the node Ready, and only Ready, reading it again when the controllers
// wrote it in between.
func (k *fakeKubelet) postReady(ctx context.Context) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := k.client.CoreV1().Nodes().Get(ctx, k.node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			LastHeartbeatTime: now, LastTransitionTime: now}}
		_, err = k.client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
}

func (k *fakeKubelet) renew(ctx context.Context) {
	leases := k.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	l, err := leases.Get(ctx, k.node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: k.node},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(k.node), LeaseDurationSeconds: ptr.To(int32(40)), RenewTime: &now}}, metav1.CreateOptions{})
		return
	}
	if err != nil {
		return
	}
	l.Spec.RenewTime = &now
	leases.Update(ctx, l, metav1.UpdateOptions{})
}

func startControllers(t *testing.T, s *apiservertest.Server) {
	t.Helper()
	client := s.Client
	ctx, cancel := context.WithCancel(context.Background())
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	r := controllers.Reporting{Recorder: func(c string) record.EventRecorder {
		return broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: c})
	}}
	factory := informers.NewSharedInformerFactory(client, 0)
	nlc, err := nodelifecycle.New(factory.Core().V1().Nodes(), factory.Coordination().V1().Leases(), factory.Core().V1().Pods(), client,
		nodelifecycle.Options{MonitorGracePeriod: 3 * time.Second, StartupGracePeriod: 3 * time.Second, MonitorPeriod: 200 * time.Millisecond}, r)
	if err != nil {
		t.Fatal(err)
	}
	tec, err := tainteviction.New(factory.Core().V1().Pods(), factory.Core().V1().Nodes(), client, r)
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	var wg sync.WaitGroup
	wg.Go(func() { nlc.Run(ctx, 2) })
	wg.Go(func() { tec.Run(ctx, 2) })
	t.Cleanup(func() { cancel(); wg.Wait(); factory.Shutdown(); broadcaster.Shutdown() })
}

func podOn(name, node string, tolerate *int64) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36"}}},
	}
	if tolerate != nil {
		for _, key := range []string{corev1.TaintNodeUnreachable, corev1.TaintNodeNotReady} {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists,
				Effect: corev1.TaintEffectNoExecute, TolerationSeconds: tolerate})
		}
	}
	return p
}

func poll(t *testing.T, what string, cond func(ctx context.Context) bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		return cond(ctx), nil
	}); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func nodeOf(ctx context.Context, c kubernetes.Interface, name string) *corev1.Node {
	n, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return &corev1.Node{}
	}
	return n
}

func readyOf(n *corev1.Node) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

func hasTaint(n *corev1.Node, key string, effect corev1.TaintEffect) bool {
	return slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == key && t.Effect == effect })
}

func TestSilentNodeIsMarkedUnknownTaintedAndItsPodsEvictedAsTolerationsRunOut(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.EnableAdmission("TaintNodesByCondition"))
	c := s.Client
	ctx := context.Background()
	failing := startKubelet(t, c, "failing")
	startKubelet(t, c, "healthy")
	startControllers(t, s)

	for _, p := range []*corev1.Pod{
		podOn("at-once", "failing", ptr.To(int64(0))),
		podOn("after-two-seconds", "failing", ptr.To(int64(2))),
		podOn("forever", "failing", nil),
		podOn("elsewhere", "healthy", ptr.To(int64(0))),
	} {
		if p.Name == "forever" {
			p.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
		}
		created, err := c.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		created.Status.Phase = corev1.PodRunning
		created.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
		if _, err := c.CoreV1().Pods("default").UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// both nodes ready: no NoExecute taint, nothing evicted
	poll(t, "the not-ready NoSchedule taint of new nodes to go", func(ctx context.Context) bool {
		return !hasTaint(nodeOf(ctx, c, "healthy"), corev1.TaintNodeNotReady, corev1.TaintEffectNoSchedule) &&
			!hasTaint(nodeOf(ctx, c, "failing"), corev1.TaintNodeNotReady, corev1.TaintEffectNoSchedule)
	})

	failing.halt()
	poll(t, "the silent node to be Ready=Unknown", func(ctx context.Context) bool {
		r := readyOf(nodeOf(ctx, c, "failing"))
		return r != nil && r.Status == corev1.ConditionUnknown && r.Reason == "NodeStatusUnknown" && r.Message == "Kubelet stopped posting node status."
	})
	poll(t, "the unreachable NoExecute and NoSchedule taints", func(ctx context.Context) bool {
		n := nodeOf(ctx, c, "failing")
		return hasTaint(n, corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute) && hasTaint(n, corev1.TaintNodeUnreachable, corev1.TaintEffectNoSchedule)
	})
	beingDeleted := func(ctx context.Context, name string) bool {
		p, err := c.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err) || (err == nil && p.DeletionTimestamp != nil)
	}
	poll(t, "the intolerant pod to be evicted", func(ctx context.Context) bool { return beingDeleted(ctx, "at-once") })
	poll(t, "the pod tolerating two seconds to be evicted", func(ctx context.Context) bool { return beingDeleted(ctx, "after-two-seconds") })
	p, err := c.CoreV1().Pods("default").Get(ctx, "forever", metav1.GetOptions{})
	if err != nil || p.DeletionTimestamp != nil {
		t.Errorf("the pod tolerating forever: %v, deletionTimestamp %v", err, p.DeletionTimestamp)
	}
	if r := readyCondition(p); r == nil || r.Status != corev1.ConditionFalse {
		t.Errorf("pod on the silent node: Ready %+v, want False", r)
	}
	if beingDeleted(ctx, "elsewhere") {
		t.Error("a pod on the healthy node was evicted")
	}
	poll(t, "the NodeNotReady and TaintManagerEviction events", func(ctx context.Context) bool {
		events, err := c.CoreV1().Events("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		var notReady, evicted bool
		for _, e := range events.Items {
			notReady = notReady || (e.Reason == "NodeNotReady" && e.Message == "Node failing status is now: NodeNotReady")
			evicted = evicted || (e.Reason == "TaintManagerEviction" && e.Message == "Marking for deletion Pod default/at-once")
		}
		return notReady && evicted
	})

	// the kubelet comes back: taints go
	startKubelet(t, c, "failing")
	poll(t, "the NoExecute taint to go once the node is back", func(ctx context.Context) bool {
		n := nodeOf(ctx, c, "failing")
		return !hasTaint(n, corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute) && !hasTaint(n, corev1.TaintNodeUnreachable, corev1.TaintEffectNoSchedule)
	})
}

func readyCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func TestNewNodeIsTaintedNotReadyUntilReadyAndUnreachableWhenItsLeaseStops(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.EnableAdmission("TaintNodesByCondition"))
	c := s.Client
	ctx := context.Background()
	// registered as a kubelet whose runtime is not up yet: NotReady, and short of memory
	now := metav1.Now()
	created, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "fresh"},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionFalse, Reason: "KubeletNotReady", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionTrue, Reason: "KubeletHasInsufficientMemory", LastHeartbeatTime: now, LastTransitionTime: now},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !hasTaint(created, corev1.TaintNodeNotReady, corev1.TaintEffectNoSchedule) {
		t.Fatalf("created node's taints %v, want not-ready:NoSchedule from admission", created.Spec.Taints)
	}
	kubelet := startLeaseRenewer(t, c, "fresh")
	startControllers(t, s)

	// the pass that adds memory-pressure has seen the node NotReady: not-ready must stay
	poll(t, "the memory-pressure NoSchedule taint", func(ctx context.Context) bool {
		return hasTaint(nodeOf(ctx, c, "fresh"), corev1.TaintNodeMemoryPressure, corev1.TaintEffectNoSchedule)
	})
	if n := nodeOf(ctx, c, "fresh"); !hasTaint(n, corev1.TaintNodeNotReady, corev1.TaintEffectNoSchedule) {
		t.Errorf("a NotReady node lost its not-ready:NoSchedule taint: taints %v", n.Spec.Taints)
	}

	if err := kubelet.postReady(ctx); err != nil {
		t.Fatal(err)
	}
	poll(t, "the not-ready and memory-pressure taints to go once the node is Ready", func(ctx context.Context) bool {
		n := nodeOf(ctx, c, "fresh")
		return readyOf(n) != nil && !hasTaint(n, corev1.TaintNodeNotReady, corev1.TaintEffectNoSchedule) &&
			!hasTaint(n, corev1.TaintNodeMemoryPressure, corev1.TaintEffectNoSchedule)
	})

	kubelet.halt()
	poll(t, "the unreachable NoSchedule taint once the Lease stops", func(ctx context.Context) bool {
		n := nodeOf(ctx, c, "fresh")
		return hasTaint(n, corev1.TaintNodeUnreachable, corev1.TaintEffectNoSchedule)
	})
	n := nodeOf(ctx, c, "fresh")
	if r := readyOf(n); r == nil || r.Status != corev1.ConditionUnknown {
		t.Errorf("silent node's Ready %+v, want Unknown", r)
	}
	if hasTaint(n, corev1.TaintNodeNotReady, corev1.TaintEffectNoSchedule) {
		t.Errorf("silent node's taints %v: not-ready:NoSchedule beside unreachable", n.Spec.Taints)
	}
}
