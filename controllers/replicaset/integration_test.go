package replicaset_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
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
	"github.com/skiff-dev/skiff/controllers/replicaset"
)

// startController runs a ReplicaSet controller against a real API server until the test ends.
func startController(t *testing.T, client kubernetes.Interface) {
	t.Helper()
	factory := informers.NewSharedInformerFactory(client, 0)
	ctx, cancel := context.WithCancel(context.Background())
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	c, err := replicaset.New(factory.Apps().V1().ReplicaSets(), factory.Core().V1().Pods(), client, controllers.Reporting{
		Recorder: func(component string) record.EventRecorder {
			return broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component})
		},
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	factory.Start(ctx.Done())
	go func() { defer close(done); c.Run(ctx, 5) }()
	t.Cleanup(func() { cancel(); <-done; factory.Shutdown(); broadcaster.Shutdown() })
}

func webRS(name string, replicas int32) *appsv1.ReplicaSet {
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

// waitForPods waits until exactly want live pods carry the label app=name and the ReplicaSet's
// status says so, with a generous bound.
func waitForPods(t *testing.T, client kubernetes.Interface, name string, want int) []corev1.Pod {
	t.Helper()
	ctx := context.Background()
	var pods []corev1.Pod
	var rs *appsv1.ReplicaSet
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err != nil {
			return false, nil
		}
		pods = pods[:0]
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil {
				pods = append(pods, p)
			}
		}
		if rs, err = client.AppsV1().ReplicaSets("default").Get(ctx, name, metav1.GetOptions{}); err != nil {
			return false, nil
		}
		return len(pods) == want && rs.Status.Replicas == int32(want) && rs.Status.ObservedGeneration == rs.Generation, nil
	})
	if err != nil {
		t.Fatalf("waiting for %d pods of %s: have %d pods, status %+v", want, name, len(pods), rs.Status)
	}
	return pods
}

// waitForEvent waits for an Event of the replicaset-controller on the ReplicaSet name.
func waitForEvent(t *testing.T, client kubernetes.Interface, name, reason, messagePrefix string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		events, err := client.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for _, e := range events.Items {
			if e.InvolvedObject.Kind == "ReplicaSet" && e.InvolvedObject.Name == name && e.Source.Component == "replicaset-controller" &&
				e.Reason == reason && strings.Contains(e.Message, messagePrefix) {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Errorf("no %s event %q… on ReplicaSet %s: %v", reason, messagePrefix, name, err)
	}
}

func scale(t *testing.T, client kubernetes.Interface, name string, replicas int32) {
	t.Helper()
	ctx := context.Background()
	// the controller's status writes move the resourceVersion the scale carries
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := client.AppsV1().ReplicaSets("default").GetScale(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Spec.Replicas = replicas
		_, err = client.AppsV1().ReplicaSets("default").UpdateScale(ctx, name, s, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func TestScaleReplicaSetFromZeroToAHundredToThree(t *testing.T) {
	s := apiservertest.Start(t)
	startController(t, s.Client)
	ctx := context.Background()
	if _, err := s.Client.AppsV1().ReplicaSets("default").Create(ctx, webRS("web", 0), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitForPods(t, s.Client, "web", 0)

	scale(t, s.Client, "web", 100)
	pods := waitForPods(t, s.Client, "web", 100)
	for _, p := range pods {
		ref := metav1.GetControllerOf(&p)
		if ref == nil || ref.Name != "web" || ref.Kind != "ReplicaSet" {
			t.Fatalf("pod %s has controllerRef %+v, want the ReplicaSet web", p.Name, ref)
		}
	}

	scale(t, s.Client, "web", 3)
	waitForPods(t, s.Client, "web", 3)
	// and it stays at three: nothing more is created or deleted
	time.Sleep(time.Second)
	waitForPods(t, s.Client, "web", 3)

	// kubectl describe rs web shows what the controller did (upstream's spam filter keeps the
	// first 25 events of an object, so only the creations are certain here)
	waitForEvent(t, s.Client, "web", "SuccessfulCreate", "Created pod: web-")
}

func TestDeletedPodIsReplaced(t *testing.T) {
	s := apiservertest.Start(t)
	startController(t, s.Client)
	ctx := context.Background()
	if _, err := s.Client.AppsV1().ReplicaSets("default").Create(ctx, webRS("web", 3), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := waitForPods(t, s.Client, "web", 3)
	victim := pods[0].Name
	if err := s.Client.CoreV1().Pods("default").Delete(ctx, victim, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := s.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(list.Items) != 3 {
			return false, nil
		}
		for _, p := range list.Items {
			if p.Name == victim {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("pod %s not replaced: %v", victim, err)
	}
	scale(t, s.Client, "web", 1)
	waitForPods(t, s.Client, "web", 1)
	waitForEvent(t, s.Client, "web", "SuccessfulDelete", "Deleted pod: web-")
}

func TestOrphanPodIsAdoptedAndRelabelledPodReleased(t *testing.T) {
	s := apiservertest.Start(t)
	startController(t, s.Client)
	ctx := context.Background()
	orphan := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "orphan", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36"}}},
	}
	if _, err := s.Client.CoreV1().Pods("default").Create(ctx, orphan, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rs, err := s.Client.AppsV1().ReplicaSets("default").Create(ctx, webRS("web", 2), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods := waitForPods(t, s.Client, "web", 2)
	adopted := false
	for _, p := range pods {
		if p.Name == "orphan" {
			ref := metav1.GetControllerOf(&p)
			adopted = ref != nil && ref.UID == rs.UID
		}
	}
	if !adopted {
		t.Fatalf("orphan not adopted: pods %v", pods)
	}

	// relabel the adopted pod: it is released and replaced
	p, err := s.Client.CoreV1().Pods("default").Get(ctx, "orphan", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Labels = map[string]string{"app": "gone"}
	if _, err := s.Client.CoreV1().Pods("default").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitForPods(t, s.Client, "web", 2)
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := s.Client.CoreV1().Pods("default").Get(ctx, "orphan", metav1.GetOptions{})
		return err == nil && len(p.OwnerReferences) == 0, nil
	})
	if err != nil {
		t.Fatalf("relabelled pod still owned: %v", err)
	}
}

func TestStatusReportsReadyAndAvailablePods(t *testing.T) {
	s := apiservertest.Start(t)
	startController(t, s.Client)
	ctx := context.Background()
	rs := webRS("web", 2)
	if _, err := s.Client.AppsV1().ReplicaSets("default").Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := waitForPods(t, s.Client, "web", 2)
	// no kubelet yet: the test plays it, running the pods and marking them ready
	for i, p := range pods {
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
		if _, err := s.Client.CoreV1().Pods("default").UpdateStatus(ctx, &p, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("pod %d status: %v", i, err)
		}
	}
	var got appsv1.ReplicaSetStatus
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		rs, err := s.Client.AppsV1().ReplicaSets("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		got = rs.Status
		return got.ReadyReplicas == 2 && got.AvailableReplicas == 2 && got.FullyLabeledReplicas == 2, nil
	})
	if err != nil {
		t.Fatalf("status = %+v, want 2 ready and available", got)
	}
}

func TestMinReadySecondsDelaysAvailability(t *testing.T) {
	s := apiservertest.Start(t)
	startController(t, s.Client)
	ctx := context.Background()
	rs := webRS("slow", 1)
	rs.Spec.MinReadySeconds = 2
	if _, err := s.Client.AppsV1().ReplicaSets("default").Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := waitForPods(t, s.Client, "slow", 1)
	p := pods[0]
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
	if _, err := s.Client.CoreV1().Pods("default").UpdateStatus(ctx, &p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// ready at once, available only after minReadySeconds, without any further event
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		rs, err := s.Client.AppsV1().ReplicaSets("default").Get(ctx, "slow", metav1.GetOptions{})
		return err == nil && rs.Status.AvailableReplicas == 1, nil
	})
	if err != nil {
		t.Fatal(fmt.Errorf("pod never counted available: %w", err))
	}
}
