package deployment_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/deployment"
	"github.com/skiff-dev/skiff/controllers/garbagecollector"
	"github.com/skiff-dev/skiff/controllers/replicaset"
)

// cluster is an API server with the Deployment, ReplicaSet and garbage collector controllers,
// and a stand-in kubelet that runs every pod at once (Running and Ready) unless told otherwise.
type cluster struct {
	s      *apiservertest.Server
	client kubernetes.Interface
	// holdPods: pods created while it is set stay Pending and not ready.
	mu       sync.Mutex
	holdPods bool
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	s := apiservertest.Start(t)
	c := &cluster{s: s, client: s.Client}
	client := s.Client
	ctx, cancel := context.WithCancel(context.Background())
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	r := controllers.Reporting{Recorder: func(component string) record.EventRecorder {
		return broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component})
	}}
	factory := informers.NewSharedInformerFactory(client, 0)
	dc, err := deployment.New(factory.Apps().V1().Deployments(), factory.Apps().V1().ReplicaSets(), factory.Core().V1().Pods(), client, r)
	if err != nil {
		t.Fatal(err)
	}
	rsc, err := replicaset.New(factory.Apps().V1().ReplicaSets(), factory.Core().V1().Pods(), client, r)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	gc := garbagecollector.New(garbagecollector.NewDynamicInformerSource(factory, dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)),
		dyn, memory.NewMemCacheClient(client.Discovery()), r)
	// the stand-in kubelet
	factory.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.run(ctx, obj.(*corev1.Pod)) },
	})
	factory.Start(ctx.Done())
	var wg sync.WaitGroup
	for _, run := range []func(context.Context, int){dc.Run, rsc.Run, gc.Run} {
		wg.Go(func() { run(ctx, 5) })
	}
	t.Cleanup(func() { cancel(); wg.Wait(); factory.Shutdown(); broadcaster.Shutdown() })
	return c
}

func (c *cluster) hold(v bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holdPods = v
}

// run plays the kubelet for a new pod: Running and Ready at once.
func (c *cluster) run(ctx context.Context, p *corev1.Pod) {
	c.mu.Lock()
	held := c.holdPods
	c.mu.Unlock()
	if held || p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodRunning {
		return
	}
	go func() {
		p := p.DeepCopy()
		now := metav1.Now()
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}}
		c.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	}()
}

func newDeployment(name string, replicas int32, image string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			},
		},
	}
}

func poll(t *testing.T, what string, cond func(ctx context.Context) bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		return cond(ctx), nil
	}); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func (c *cluster) get(ctx context.Context, name string) *appsv1.Deployment {
	d, err := c.client.AppsV1().Deployments("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return &appsv1.Deployment{}
	}
	return d
}

// complete is what kubectl rollout status waits for.
func complete(d *appsv1.Deployment) bool {
	want := ptr.Deref(d.Spec.Replicas, 1)
	return d.Generation > 0 && d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas == want &&
		d.Status.Replicas == want && d.Status.AvailableReplicas == want
}

func (c *cluster) replicaSets(ctx context.Context, app string) []appsv1.ReplicaSet {
	l, err := c.client.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return nil
	}
	return l.Items
}

// livePods are the pods of app not being deleted, by image, and how many of them are ready.
func (c *cluster) livePods(ctx context.Context, app string) (byImage map[string]int, ready int, err error) {
	l, err := c.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return nil, 0, err
	}
	byImage = map[string]int{}
	for _, p := range l.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		byImage[p.Spec.Containers[0].Image]++
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	return byImage, ready, nil
}

// update changes a Deployment, retrying conflicts with the controller's status writes.
func (c *cluster) update(t *testing.T, name string, change func(*appsv1.Deployment)) {
	t.Helper()
	ctx := context.Background()
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := c.client.AppsV1().Deployments("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(d)
		_, err = c.client.AppsV1().Deployments("default").Update(ctx, d, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) setImage(t *testing.T, name, image string) {
	t.Helper()
	c.update(t, name, func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = image })
}

func TestRollingUpdateStaysWithinMaxSurgeAndMaxUnavailable(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	d := newDeployment("web", 6, "busybox:1.36")
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
		MaxSurge: ptr.To(intstr.FromInt32(2)), MaxUnavailable: ptr.To(intstr.FromInt32(1)),
	}}
	if _, err := c.client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the first rollout", func(ctx context.Context) bool { return complete(c.get(ctx, "web")) })
	rss := c.replicaSets(ctx, "web")
	if len(rss) != 1 || rss[0].Annotations[deployment.RevisionAnnotation] != "1" || rss[0].Labels[appsv1.DefaultDeploymentUniqueLabelKey] == "" {
		t.Fatalf("replica sets %v, want one with revision 1 and a pod-template-hash", rss)
	}
	if want := "web-" + rss[0].Labels[appsv1.DefaultDeploymentUniqueLabelKey]; rss[0].Name != want {
		t.Errorf("replica set named %s, want %s", rss[0].Name, want)
	}

	// watch the rollout closely: never more than 6+2 replicas asked for, never fewer than 6-1 ready
	stop := make(chan struct{})
	violations := make(chan string, 100)
	var watcher sync.WaitGroup
	watcher.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			total := int32(0)
			rss := c.replicaSets(ctx, "web")
			desc := ""
			for _, rs := range rss {
				total += ptr.Deref(rs.Spec.Replicas, 0)
				desc += fmt.Sprintf(" %s=%d(rv %s, avail %d)", rs.Name, ptr.Deref(rs.Spec.Replicas, 0), rs.ResourceVersion, rs.Status.AvailableReplicas)
			}
			if total > 8 {
				violations <- fmt.Sprintf("replica sets ask for %d pods, more than replicas+maxSurge=8:%s", total, desc)
			}
			if _, ready, err := c.livePods(ctx, "web"); err == nil && ready < 5 {
				violations <- fmt.Sprintf("%d pods ready, fewer than replicas-maxUnavailable=5", ready)
			}
		}
	})
	c.setImage(t, "web", "busybox:1.37")
	poll(t, "the second rollout", func(ctx context.Context) bool {
		d := c.get(ctx, "web")
		byImage, _, _ := c.livePods(ctx, "web")
		return complete(d) && byImage["busybox:1.36"] == 0 && byImage["busybox:1.37"] == 6
	})
	close(stop)
	watcher.Wait()
	close(violations)
	for v := range violations {
		t.Error(v)
	}
	got := c.get(ctx, "web")
	if got.Annotations[deployment.RevisionAnnotation] != "2" {
		t.Errorf("deployment revision %q, want 2", got.Annotations[deployment.RevisionAnnotation])
	}
	var progressing, available *appsv1.DeploymentCondition
	for i := range got.Status.Conditions {
		switch got.Status.Conditions[i].Type {
		case appsv1.DeploymentProgressing:
			progressing = &got.Status.Conditions[i]
		case appsv1.DeploymentAvailable:
			available = &got.Status.Conditions[i]
		}
	}
	if progressing == nil || progressing.Reason != "NewReplicaSetAvailable" || available == nil || available.Status != corev1.ConditionTrue {
		t.Errorf("conditions %+v, want Progressing NewReplicaSetAvailable and Available True", got.Status.Conditions)
	}
}

func TestRecreateRemovesEveryOldPodBeforeTheNewOnes(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	d := newDeployment("db", 3, "busybox:1.36")
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	if _, err := c.client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the first rollout", func(ctx context.Context) bool { return complete(c.get(ctx, "db")) })
	stop := make(chan struct{})
	mixed := make(chan map[string]int, 10)
	var watcher sync.WaitGroup
	watcher.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if byImage, _, err := c.livePods(ctx, "db"); err == nil && byImage["busybox:1.36"] > 0 && byImage["busybox:1.37"] > 0 {
				select {
				case mixed <- byImage:
				default:
				}
			}
		}
	})
	c.setImage(t, "db", "busybox:1.37")
	poll(t, "the recreate", func(ctx context.Context) bool {
		byImage, _, _ := c.livePods(ctx, "db")
		return complete(c.get(ctx, "db")) && byImage["busybox:1.37"] == 3 && byImage["busybox:1.36"] == 0
	})
	close(stop)
	watcher.Wait()
	close(mixed)
	for m := range mixed {
		t.Errorf("old and new pods ran together: %v", m)
	}
}

func TestScalingDuringARolloutIsProportional(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	d := newDeployment("api", 10, "busybox:1.36")
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
		MaxSurge: ptr.To(intstr.FromInt32(3)), MaxUnavailable: ptr.To(intstr.FromInt32(2)),
	}}
	if _, err := c.client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the first rollout", func(ctx context.Context) bool { return complete(c.get(ctx, "api")) })
	// new pods never become ready: the rollout stalls with old and new replica sets
	c.hold(true)
	c.setImage(t, "api", "busybox:does-not-start")
	sizes := func(ctx context.Context) (old, cur int32) {
		for _, rs := range c.replicaSets(ctx, "api") {
			if rs.Spec.Template.Spec.Containers[0].Image == "busybox:1.36" {
				old = ptr.Deref(rs.Spec.Replicas, 0)
			} else {
				cur = ptr.Deref(rs.Spec.Replicas, 0)
			}
		}
		return old, cur
	}
	// new pods never become ready: old 10 -> 8 (maxUnavailable), new 0 -> 5 (maxSurge), and
	// there it stays
	poll(t, "the rollout to stall at 8 old and 5 new", func(ctx context.Context) bool {
		old, cur := sizes(ctx)
		return old == 8 && cur == 5
	})
	oldBefore, newBefore := sizes(ctx)
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := c.client.AppsV1().Deployments("default").GetScale(ctx, "api", metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Spec.Replicas = 20
		_, err = c.client.AppsV1().Deployments("default").UpdateScale(ctx, "api", s, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	poll(t, "both replica sets to grow to 20+maxSurge(3) in proportion", func(ctx context.Context) bool {
		old, cur := sizes(ctx)
		return old+cur == 23 && old > oldBefore && cur > newBefore
	})
	old, cur := sizes(ctx)
	// 8 old and 5 new of 13 (with surge) become 14 and 9 of 23
	if old != 14 || cur != 9 {
		if events, err := c.client.CoreV1().Events("default").List(ctx, metav1.ListOptions{}); err == nil {
			for _, e := range events.Items {
				if e.Reason == "ScalingReplicaSet" {
					t.Logf("%s %s", e.LastTimestamp, e.Message)
				}
			}
		}
		t.Errorf("old replica set scaled to %d and new to %d from %d and %d: not in proportion", old, cur, oldBefore, newBefore)
	}
}

func TestPausedDeploymentDoesNotRollOutUntilResumed(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	if _, err := c.client.AppsV1().Deployments("default").Create(ctx, newDeployment("web", 2, "busybox:1.36"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the first rollout", func(ctx context.Context) bool { return complete(c.get(ctx, "web")) })
	c.update(t, "web", func(d *appsv1.Deployment) {
		d.Spec.Paused = true
		d.Spec.Template.Spec.Containers[0].Image = "busybox:1.37"
	})
	poll(t, "the paused condition", func(ctx context.Context) bool {
		for _, cond := range c.get(ctx, "web").Status.Conditions {
			if cond.Type == appsv1.DeploymentProgressing && cond.Reason == "DeploymentPaused" && cond.Status == corev1.ConditionUnknown {
				return true
			}
		}
		return false
	})
	time.Sleep(time.Second)
	if rss := c.replicaSets(ctx, "web"); len(rss) != 1 {
		t.Fatalf("%d replica sets while paused, want the one", len(rss))
	}
	c.update(t, "web", func(d *appsv1.Deployment) { d.Spec.Paused = false })
	poll(t, "the rollout after resuming", func(ctx context.Context) bool {
		byImage, _, _ := c.livePods(ctx, "web")
		return complete(c.get(ctx, "web")) && byImage["busybox:1.37"] == 2 && byImage["busybox:1.36"] == 0
	})
}

func TestOldReplicaSetsBeyondTheHistoryLimitAreDeleted(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	d := newDeployment("web", 1, "busybox:1.30")
	d.Spec.RevisionHistoryLimit = ptr.To(int32(2))
	if _, err := c.client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := 31; i <= 35; i++ {
		poll(t, "a rollout", func(ctx context.Context) bool { return complete(c.get(ctx, "web")) })
		c.setImage(t, "web", fmt.Sprintf("busybox:1.%d", i))
	}
	poll(t, "the history to be cut to the new and two old replica sets", func(ctx context.Context) bool {
		return complete(c.get(ctx, "web")) && len(c.replicaSets(ctx, "web")) == 3
	})
	revisions := map[string]bool{}
	for _, rs := range c.replicaSets(ctx, "web") {
		revisions[rs.Annotations[deployment.RevisionAnnotation]] = true
	}
	if !revisions["4"] || !revisions["5"] || !revisions["6"] {
		t.Errorf("revisions kept %v, want 4, 5 and 6", revisions)
	}
}

func TestRolloutWithoutProgressTimesOut(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	c.hold(true)
	d := newDeployment("stuck", 2, "busybox:never")
	d.Spec.ProgressDeadlineSeconds = ptr.To(int32(2))
	if _, err := c.client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "ProgressDeadlineExceeded", func(ctx context.Context) bool {
		for _, cond := range c.get(ctx, "stuck").Status.Conditions {
			if cond.Type == appsv1.DeploymentProgressing && cond.Status == corev1.ConditionFalse && cond.Reason == "ProgressDeadlineExceeded" &&
				len(cond.Message) > 0 {
				return true
			}
		}
		return false
	})
}

func TestRollbackAnnotationRestoresTheTemplateOfARevision(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	if _, err := c.client.AppsV1().Deployments("default").Create(ctx, newDeployment("web", 2, "busybox:1.36"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the first rollout", func(ctx context.Context) bool { return complete(c.get(ctx, "web")) })
	c.setImage(t, "web", "busybox:1.37")
	poll(t, "the second rollout", func(ctx context.Context) bool {
		byImage, _, _ := c.livePods(ctx, "web")
		return complete(c.get(ctx, "web")) && byImage["busybox:1.37"] == 2 && byImage["busybox:1.36"] == 0
	})
	c.update(t, "web", func(d *appsv1.Deployment) { d.Annotations[appsv1.DeprecatedRollbackTo] = "1" })
	poll(t, "the rollback to revision 1 as revision 3", func(ctx context.Context) bool {
		d := c.get(ctx, "web")
		byImage, _, _ := c.livePods(ctx, "web")
		_, asked := d.Annotations[appsv1.DeprecatedRollbackTo]
		return !asked && d.Spec.Template.Spec.Containers[0].Image == "busybox:1.36" && complete(d) &&
			d.Annotations[deployment.RevisionAnnotation] == "3" && byImage["busybox:1.36"] == 2 && byImage["busybox:1.37"] == 0
	})
	for _, rs := range c.replicaSets(ctx, "web") {
		if rs.Spec.Template.Spec.Containers[0].Image == "busybox:1.36" && rs.Annotations[deployment.RevisionHistoryAnnotation] != "1" {
			t.Errorf("rolled-back replica set revision-history %q, want 1", rs.Annotations[deployment.RevisionHistoryAnnotation])
		}
	}
}
