package namespace_test

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/namespace"
	"github.com/skiff-dev/skiff/controllers/replicaset"
)

func TestDeletingANamespaceEmptiesAndRemovesIt(t *testing.T) {
	s := apiservertest.Start(t)
	client := s.Client
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dyn, err := dynamic.NewForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	nsc, err := namespace.New(factory.Core().V1().Namespaces(), client, dyn, client.Discovery().ServerPreferredNamespacedResources, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	// the ReplicaSet controller keeps trying to replace the pods the namespace controller deletes
	rsc, err := replicaset.New(factory.Apps().V1().ReplicaSets(), factory.Core().V1().Pods(), client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	done := make(chan struct{}, 2)
	go func() { nsc.Run(ctx, 2); done <- struct{}{} }()
	go func() { rsc.Run(ctx, 2); done <- struct{}{} }()
	defer func() { cancel(); <-done; <-done; factory.Shutdown() }()

	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "doomed"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "web"}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(int32(3)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36"}}},
			},
		},
	}
	if _, err := client.AppsV1().ReplicaSets("doomed").Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"one", "two"} {
		if _, err := client.CoreV1().ConfigMaps("doomed").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	lone := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "lone"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36"}}},
	}
	if _, err := client.CoreV1().Pods("doomed").Create(ctx, lone, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := client.CoreV1().Pods("doomed").List(ctx, metav1.ListOptions{})
		return err == nil && len(pods.Items) == 4, nil
	}); err != nil {
		t.Fatalf("the ReplicaSet's pods never came: %v", err)
	}

	if err := client.CoreV1().Namespaces().Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var last *corev1.Namespace
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		ns, err := client.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err == nil {
			last = ns
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("namespace not removed: last seen %+v", last)
	}
	for what, n := range map[string]func() (int, error){
		"pods": func() (int, error) {
			l, err := client.CoreV1().Pods("doomed").List(ctx, metav1.ListOptions{})
			return len(l.Items), err
		},
		"replicasets": func() (int, error) {
			l, err := client.AppsV1().ReplicaSets("doomed").List(ctx, metav1.ListOptions{})
			return len(l.Items), err
		},
		"configmaps": func() (int, error) {
			l, err := client.CoreV1().ConfigMaps("doomed").List(ctx, metav1.ListOptions{})
			return len(l.Items), err
		},
	} {
		if count, err := n(); err != nil || count != 0 {
			t.Errorf("%s left in the removed namespace: %d (%v)", what, count, err)
		}
	}
}
