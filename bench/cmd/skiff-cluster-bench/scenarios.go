package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/bench/stats"
)

const namespace = "cluster-bench"

// bench drives the scenarios through one client and sees pods through one informer.
type bench struct {
	o          options
	kubeconfig string
	client     kubernetes.Interface
	pods       *podTracker
}

func newBench(kubeconfig string, o options) (*bench, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS = -1 // the bench is not what is measured
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &bench{o: o, kubeconfig: kubeconfig, client: client, pods: newPodTracker()}, nil
}

// waitNodes waits until every simulated node is Ready without a NoSchedule taint (the
// not-ready taint new Nodes get is lifted by the node lifecycle controller once they report
// Ready), then makes the namespace, waits for its default ServiceAccount and starts the pod
// informer.
func (b *bench) waitNodes(ctx context.Context, c *cluster) error {
	if c.kwok {
		if err := b.createKwokNodes(ctx); err != nil {
			return err
		}
	}
	last := -1
	for {
		nodes, err := b.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err != nil {
			return err
		}
		usable := 0
		for _, n := range nodes.Items {
			if nodeUsable(&n) {
				usable++
			}
		}
		if usable != last {
			fmt.Fprintf(os.Stderr, "  %d/%d nodes Ready and schedulable\n", usable, b.o.nodes)
			last = usable
		}
		if usable >= b.o.nodes {
			break
		}
		if err := c.checkRunning(); err != nil {
			return err
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return fmt.Errorf("waiting for nodes (%d/%d usable): %w", usable, b.o.nodes, err)
		}
	}
	if _, err := b.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	for {
		if _, err := b.client.CoreV1().ServiceAccounts(namespace).Get(ctx, "default", metav1.GetOptions{}); err == nil {
			break
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("waiting for the default ServiceAccount: %w", err)
		}
	}
	factory := informers.NewSharedInformerFactoryWithOptions(b.client, 0, informers.WithNamespace(namespace))
	factory.Core().V1().Pods().Informer().AddEventHandler(b.pods)
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	return nil
}

// createKwokNodes registers --nodes Nodes for kwok to keep Ready, with the capacity `skiff
// sim` gives its nodes, as a kubelet registers itself (kwok does not create Nodes).
func (b *bench) createKwokNodes(ctx context.Context) error {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("32Gi"),
		corev1.ResourcePods: resource.MustParse("110"), corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
	for i := range b.o.nodes {
		name := fmt.Sprintf("kwok-node-%d", i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
				Labels: map[string]string{corev1.LabelHostname: name, corev1.LabelOSStable: "linux",
					corev1.LabelArchStable: "amd64", "type": "kwok"},
			},
			Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
		}
		if _, err := b.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating node %s for kwok: %w", name, err)
		}
	}
	return nil
}

// checkRunning reports a component that has exited.
func (c *cluster) checkRunning() error {
	for _, p := range c.procs {
		select {
		case <-p.P.Exited():
			return fmt.Errorf("%s exited", p.Name)
		default:
		}
	}
	return nil
}

func nodeUsable(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			return false
		}
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// realImage is the image of --runtime=real, built from busybox-static and imported by skiff
// up; simulated nodes run any image name.
const realImage = "skiff.local/bench-sleep:1"

// podTemplate is what every scenario runs: a small pod that fits a hundred to a node.
func (b *bench) podTemplate(labels map[string]string) corev1.PodTemplateSpec {
	image := "registry.k8s.io/pause:3.10"
	if b.o.runtime == "real" {
		image = realImage
	}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			Containers: []corev1.Container{{
				Name: "app", Image: image, ImagePullPolicy: corev1.PullIfNotPresent,
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi"),
				}},
			}},
		},
	}
}

// startupLatency creates pods one after another at a steady pace and measures, for each, the
// time from just before its create call to the watch event that shows all its containers
// running: SIG Scalability's pod startup latency.
func (b *bench) startupLatency(ctx context.Context, _ *cluster) ([]row, error) {
	pace := time.Second / time.Duration(b.o.startupQPS)
	tmpl := b.podTemplate(map[string]string{"scenario": "startup"})
	created := make(map[types.UID]time.Time, b.o.startup)
	start := time.Now()
	for i := range b.o.startup {
		t0 := time.Now()
		pod, err := b.client.CoreV1().Pods(namespace).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("startup-%d", i), Labels: tmpl.Labels},
			Spec:       tmpl.Spec,
		}, metav1.CreateOptions{})
		if err != nil {
			return nil, err
		}
		created[pod.UID] = t0
		if err := sleep(ctx, time.Until(t0.Add(pace))); err != nil {
			return nil, err
		}
	}
	if _, err := b.pods.waitRunning(ctx, "scenario", "startup", b.o.startup); err != nil {
		return nil, err
	}
	wall := time.Since(start)
	var latencies []time.Duration
	for uid, t0 := range created {
		latencies = append(latencies, b.pods.runningAt(uid).Sub(t0))
	}
	slices.Sort(latencies)
	r := row{scenario: "startup latency", count: len(latencies), wall: wall,
		p50: stats.Percentile(latencies, 50), p99: stats.Percentile(latencies, 99),
		note: fmt.Sprintf("created at %d/s; creation to all containers running, seen on a watch", b.o.startupQPS)}
	return []row{r}, b.deleteAll(ctx, "scenario", "startup")
}

// replicaSetScaleUp creates a ReplicaSet of 0 replicas, scales it to --replicas and measures
// until every replica runs.
func (b *bench) replicaSetScaleUp(ctx context.Context, _ *cluster) ([]row, error) {
	labels := map[string]string{"scenario": "replicaset"}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "scale-up"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To[int32](0),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: b.podTemplate(labels),
		},
	}
	if _, err := b.client.AppsV1().ReplicaSets(namespace).Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	start := time.Now()
	// a patch of the scale subresource, as kubectl scale sends: no resourceVersion to lose to
	// the controller's status writes
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, b.o.replicas)
	if _, err := b.client.AppsV1().ReplicaSets(namespace).Patch(ctx, rs.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "scale"); err != nil {
		return nil, err
	}
	last, err := b.pods.waitRunning(ctx, "scenario", "replicaset", b.o.replicas)
	if err != nil {
		return nil, err
	}
	r := row{scenario: "replicaset 0→N", count: b.o.replicas, wall: last.Sub(start), note: "scale update to the last pod seen running"}
	if err := b.client.AppsV1().ReplicaSets(namespace).Delete(ctx, rs.Name, metav1.DeleteOptions{}); err != nil {
		return []row{r}, err
	}
	return []row{r}, b.deleteAll(ctx, "scenario", "replicaset")
}

// deploymentRollout creates a Deployment of --replicas, waits until all are available, then
// changes its template and waits for the rollout to complete.
func (b *bench) deploymentRollout(ctx context.Context, _ *cluster) ([]row, error) {
	labels := map[string]string{"scenario": "deployment"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "rollout"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(b.o.replicas)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: b.podTemplate(labels),
		},
	}
	start := time.Now()
	d, err := b.client.AppsV1().Deployments(namespace).Create(ctx, d, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	if err := b.waitDeployment(ctx, d.Name, d.Generation); err != nil {
		return nil, err
	}
	rows := []row{{scenario: "deployment create", count: b.o.replicas, wall: time.Since(start), note: "create to all replicas available"}}

	start = time.Now()
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"bench.skiff.dev/restartedAt":%q}}}}}`, start.Format(time.RFC3339Nano))
	d, err = b.client.AppsV1().Deployments(namespace).Patch(ctx, d.Name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		return rows, err
	}
	if err := b.waitDeployment(ctx, d.Name, d.Generation); err != nil {
		return rows, err
	}
	rows = append(rows, row{scenario: "deployment rollout", count: b.o.replicas, wall: time.Since(start),
		note: "template change to rollout complete (maxSurge/maxUnavailable 25%)"})
	if err := b.client.AppsV1().Deployments(namespace).Delete(ctx, d.Name, metav1.DeleteOptions{}); err != nil {
		return rows, err
	}
	return rows, b.deleteAll(ctx, "scenario", "deployment")
}

// waitDeployment waits until the deployment has observed generation and every replica is
// updated and available, as `kubectl rollout status` does.
func (b *bench) waitDeployment(ctx context.Context, name string, generation int64) error {
	want := int32(b.o.replicas)
	return b.poll(ctx, func() (bool, string, error) {
		d, err := b.client.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		s := d.Status
		done := s.ObservedGeneration >= generation && s.UpdatedReplicas == want && s.Replicas == want && s.AvailableReplicas == want
		return done, fmt.Sprintf("deployment %s: %d updated, %d replicas, %d available of %d",
			name, s.UpdatedReplicas, s.Replicas, s.AvailableReplicas, want), nil
	})
}

// scaleHeld runs --scale-pods pods in ReplicaSets of --replicas each and reports how long it
// took; the memory table printed after the run is what holding them costs.
func (b *bench) scaleHeld(ctx context.Context, _ *cluster) ([]row, error) {
	labels := map[string]string{"scenario": "scale"}
	start := time.Now()
	for i, left := 0, b.o.scale; left > 0; i++ {
		n := min(left, b.o.replicas)
		left -= n
		rsLabels := map[string]string{"scenario": "scale", "set": fmt.Sprint(i)}
		rs := &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("scale-%d", i)},
			Spec: appsv1.ReplicaSetSpec{
				Replicas: ptr.To(int32(n)),
				Selector: &metav1.LabelSelector{MatchLabels: rsLabels},
				Template: b.podTemplate(rsLabels),
			},
		}
		if _, err := b.client.AppsV1().ReplicaSets(namespace).Create(ctx, rs, metav1.CreateOptions{}); err != nil {
			return nil, err
		}
	}
	last, err := b.pods.waitRunning(ctx, "scenario", labels["scenario"], b.o.scale)
	if err != nil {
		return nil, err
	}
	return []row{{scenario: "scale held", count: b.o.scale, wall: last.Sub(start),
		note: fmt.Sprintf("%d ReplicaSets created to the last pod running", (b.o.scale+b.o.replicas-1)/b.o.replicas)}}, nil
}

// deleteAll deletes the pods labelled key=value that remain and waits until none is left, so
// the next scenario starts on empty nodes.
func (b *bench) deleteAll(ctx context.Context, key, value string) error {
	err := b.client.CoreV1().Pods(namespace).DeleteCollection(ctx, metav1.DeleteOptions{},
		metav1.ListOptions{LabelSelector: key + "=" + value})
	if err != nil {
		return err
	}
	for b.pods.count(key, value) > 0 {
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return fmt.Errorf("waiting for %s=%s pods to go (%d left): %w", key, value, b.pods.count(key, value), err)
		}
	}
	return nil
}

// podTracker remembers, per pod, its labels and when a watch event first showed all its
// containers running.
type podTracker struct {
	mu      sync.Mutex
	labels  map[types.UID]map[string]string
	running map[types.UID]time.Time
}

var _ cache.ResourceEventHandler = &podTracker{}

func newPodTracker() *podTracker {
	return &podTracker{labels: map[types.UID]map[string]string{}, running: map[types.UID]time.Time{}}
}

func (t *podTracker) OnAdd(obj any, _ bool) { t.observe(obj.(*corev1.Pod)) }
func (t *podTracker) OnUpdate(_, obj any)   { t.observe(obj.(*corev1.Pod)) }
func (t *podTracker) OnDelete(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.labels, pod.UID)
	delete(t.running, pod.UID)
}

func (t *podTracker) observe(pod *corev1.Pod) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.labels[pod.UID] = pod.Labels
	if _, seen := t.running[pod.UID]; !seen && allRunning(pod) {
		t.running[pod.UID] = now
	}
}

func allRunning(pod *corev1.Pod) bool {
	if pod.Status.Phase != corev1.PodRunning || len(pod.Status.ContainerStatuses) < len(pod.Spec.Containers) {
		return false
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.State.Running == nil {
			return false
		}
	}
	return true
}

func (t *podTracker) runningAt(uid types.UID) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.running[uid]
}

// count is how many existing pods carry key=value.
func (t *podTracker) count(key, value string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, l := range t.labels {
		if l[key] == value {
			n++
		}
	}
	return n
}

// waitRunning waits until n pods labelled key=value have been seen running and returns when
// the last of them was, printing progress every few seconds.
func (t *podTracker) waitRunning(ctx context.Context, key, value string, n int) (time.Time, error) {
	lastReport := time.Now()
	for {
		t.mu.Lock()
		var times []time.Time
		for uid, at := range t.running {
			if t.labels[uid][key] == value {
				times = append(times, at)
			}
		}
		t.mu.Unlock()
		if len(times) >= n {
			slices.SortFunc(times, time.Time.Compare)
			return times[n-1], nil
		}
		if time.Since(lastReport) > 5*time.Second {
			fmt.Fprintf(os.Stderr, "  %d/%d pods running\n", len(times), n)
			lastReport = time.Now()
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return time.Time{}, fmt.Errorf("%d of %d pods running: %w", len(times), n, err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
