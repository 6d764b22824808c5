package garbagecollector_test

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/garbagecollector"
	"github.com/skiff-dev/skiff/controllers/replicaset"
)

// startControllers runs the ReplicaSet controller and the garbage collector against a real API
// server until the test ends, and waits for the collector's graph to sync.
func startControllers(t *testing.T, s *apiservertest.Server) {
	t.Helper()
	startControllersWith(t, s, false)
}

// startControllersWith is startControllers, with dynamic informers even when the API server
// serves metadata-only ones if forceDynamic.
func startControllersWith(t *testing.T, s *apiservertest.Server, forceDynamic bool) {
	t.Helper()
	client := s.Client
	ctx, cancel := context.WithCancel(context.Background())
	typed := informers.NewSharedInformerFactory(client, 0)
	md, err := metadata.NewForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	var source garbagecollector.InformerSource
	if !forceDynamic && garbagecollector.ServesMetadata(ctx, md, 5*time.Second) {
		source = garbagecollector.NewMetadataInformerSource(typed, metadatainformer.NewSharedInformerFactory(md, 0))
	} else {
		t.Log("dynamic informers")
		source = garbagecollector.NewDynamicInformerSource(typed, dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0))
	}
	rsc, err := replicaset.New(typed.Apps().V1().ReplicaSets(), typed.Core().V1().Pods(), client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	gc := garbagecollector.New(source, dyn, memory.NewMemCacheClient(client.Discovery()), controllers.Reporting{})
	typed.Start(ctx.Done())
	var done [2]chan struct{}
	for i, run := range []func(context.Context, int){rsc.Run, gc.Run} {
		done[i] = make(chan struct{})
		go func() { defer close(done[i]); run(ctx, 5) }()
	}
	t.Cleanup(func() {
		cancel()
		<-done[0]
		<-done[1]
		typed.Shutdown()
	})
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		return gc.Synced(), nil
	}); err != nil {
		t.Fatalf("garbage collector graph did not sync: %v", err)
	}
}

func newRS(name string, replicas int32) *appsv1.ReplicaSet {
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

func podsOf(t *testing.T, client kubernetes.Interface, app string) []corev1.Pod {
	t.Helper()
	list, err := client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func waitFor(t *testing.T, what string, cond func(ctx context.Context) bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		return cond(ctx), nil
	}); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// createRSWithPods creates a ReplicaSet and waits for its pods.
func createRSWithPods(t *testing.T, client kubernetes.Interface, name string, n int) *appsv1.ReplicaSet {
	t.Helper()
	rs, err := client.AppsV1().ReplicaSets("default").Create(context.Background(), newRS(name, int32(n)), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ReplicaSet's pods", func(context.Context) bool { return len(podsOf(t, client, name)) == n })
	return rs
}

func rsGone(client kubernetes.Interface, name string) func(ctx context.Context) bool {
	return func(ctx context.Context) bool {
		_, err := client.AppsV1().ReplicaSets("default").Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}
}

func TestDeletingAReplicaSetInTheBackgroundDeletesItsPods(t *testing.T) {
	s := apiservertest.Start(t)
	startControllers(t, s)
	createRSWithPods(t, s.Client, "web", 3)
	policy := metav1.DeletePropagationBackground
	if err := s.Client.AppsV1().ReplicaSets("default").Delete(context.Background(), "web", metav1.DeleteOptions{PropagationPolicy: &policy}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ReplicaSet to go", rsGone(s.Client, "web"))
	waitFor(t, "its pods to be collected", func(context.Context) bool { return len(podsOf(t, s.Client, "web")) == 0 })
}

func TestCollectorOnDynamicInformersDeletesDependents(t *testing.T) {
	s := apiservertest.Start(t)
	startControllersWith(t, s, true)
	createRSWithPods(t, s.Client, "web", 2)
	if err := s.Client.AppsV1().ReplicaSets("default").Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "its pods to be collected", func(context.Context) bool { return len(podsOf(t, s.Client, "web")) == 0 })
}

func TestDeletingAReplicaSetWithoutAPolicyDeletesItsPods(t *testing.T) {
	s := apiservertest.Start(t)
	startControllers(t, s)
	createRSWithPods(t, s.Client, "web", 2)
	if err := s.Client.AppsV1().ReplicaSets("default").Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "its pods to be collected", func(context.Context) bool { return len(podsOf(t, s.Client, "web")) == 0 })
}

func TestDeletingAReplicaSetInTheForegroundDeletesItsPodsFirst(t *testing.T) {
	s := apiservertest.Start(t)
	startControllers(t, s)
	ctx := context.Background()
	createRSWithPods(t, s.Client, "web", 3)
	// a finalizer of the test's keeps one pod, and so the ReplicaSet, until the test lets go
	pod := podsOf(t, s.Client, "web")[0]
	pod.Finalizers = append(pod.Finalizers, "test.skiff.dev/hold")
	if _, err := s.Client.CoreV1().Pods("default").Update(ctx, &pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	policy := metav1.DeletePropagationForeground
	if err := s.Client.AppsV1().ReplicaSets("default").Delete(ctx, "web", metav1.DeleteOptions{PropagationPolicy: &policy}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the other pods to be collected", func(context.Context) bool {
		pods := podsOf(t, s.Client, "web")
		return len(pods) == 1 && pods[0].Name == pod.Name && pods[0].DeletionTimestamp != nil
	})
	rs, err := s.Client.AppsV1().ReplicaSets("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("ReplicaSet gone while a pod blocks it: %v", err)
	}
	if rs.DeletionTimestamp == nil || len(rs.Finalizers) != 1 || rs.Finalizers[0] != metav1.FinalizerDeleteDependents {
		t.Fatalf("ReplicaSet deletionTimestamp %v finalizers %v, want being deleted with foregroundDeletion", rs.DeletionTimestamp, rs.Finalizers)
	}
	held, err := s.Client.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	held.Finalizers = nil
	if _, err := s.Client.CoreV1().Pods("default").Update(ctx, held, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ReplicaSet to go after its last pod", rsGone(s.Client, "web"))
	if n := len(podsOf(t, s.Client, "web")); n != 0 {
		t.Errorf("%d pods left", n)
	}
}

func TestDeletingAReplicaSetWithOrphanLeavesItsPodsWithoutOwner(t *testing.T) {
	s := apiservertest.Start(t)
	startControllers(t, s)
	ctx := context.Background()
	createRSWithPods(t, s.Client, "web", 3)
	policy := metav1.DeletePropagationOrphan
	if err := s.Client.AppsV1().ReplicaSets("default").Delete(ctx, "web", metav1.DeleteOptions{PropagationPolicy: &policy}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ReplicaSet to go", rsGone(s.Client, "web"))
	pods := podsOf(t, s.Client, "web")
	if len(pods) != 3 {
		t.Fatalf("%d pods left, want the 3 orphans", len(pods))
	}
	for _, p := range pods {
		if len(p.OwnerReferences) != 0 || p.DeletionTimestamp != nil {
			t.Errorf("pod %s: ownerReferences %v deletionTimestamp %v, want an orphan", p.Name, p.OwnerReferences, p.DeletionTimestamp)
		}
	}
	// and they stay
	time.Sleep(2 * time.Second)
	if n := len(podsOf(t, s.Client, "web")); n != 3 {
		t.Errorf("%d orphans left after a while, want 3", n)
	}
}

func TestDependentOfAMissingOwnerIsCollected(t *testing.T) {
	s := apiservertest.Start(t)
	startControllers(t, s)
	ctx := context.Background()
	owner, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ref := func(name string, uid string) []metav1.OwnerReference {
		return []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: name, UID: typesUID(uid)}}
	}
	// one dependent of an owner that never existed, one of an existing owner, one of both
	for name, refs := range map[string][]metav1.OwnerReference{
		"dangling": ref("nobody", "0000-never"),
		"owned":    ref("owner", string(owner.UID)),
		"both":     append(ref("owner", string(owner.UID)), ref("nobody", "0000-never")...),
	} {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: refs}}
		if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the dangling dependent to be collected", func(ctx context.Context) bool {
		_, err := s.Client.CoreV1().ConfigMaps("default").Get(ctx, "dangling", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	waitFor(t, "the dangling reference of a dependent with an owner to be dropped", func(ctx context.Context) bool {
		cm, err := s.Client.CoreV1().ConfigMaps("default").Get(ctx, "both", metav1.GetOptions{})
		return err == nil && len(cm.OwnerReferences) == 1 && cm.OwnerReferences[0].UID == owner.UID
	})
	if _, err := s.Client.CoreV1().ConfigMaps("default").Get(ctx, "owned", metav1.GetOptions{}); err != nil {
		t.Errorf("a dependent of an existing owner: %v", err)
	}
	// deleting the owner takes both remaining dependents
	if err := s.Client.CoreV1().ConfigMaps("default").Delete(ctx, "owner", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the owner's dependents to be collected", func(ctx context.Context) bool {
		list, err := s.Client.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		for _, cm := range list.Items {
			if cm.Name == "owned" || cm.Name == "both" {
				return false
			}
		}
		return true
	})
}
