package serviceaccount

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers"
)

func newController(t *testing.T, client kubernetes.Interface) (*Controller, informers.SharedInformerFactory) {
	t.Helper()
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(factory.Core().V1().ServiceAccounts(), factory.Core().V1().Namespaces(), client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	return c, factory
}

func syncedFake(t *testing.T, objects ...runtime.Object) (*Controller, *fake.Clientset) {
	t.Helper()
	client := fake.NewClientset(objects...)
	c, factory := newController(t, client)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	return c, client
}

func ns(name string, phase corev1.NamespacePhase) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NamespaceStatus{Phase: phase}}
}

func TestActiveNamespaceGetsADefaultServiceAccount(t *testing.T) {
	c, client := syncedFake(t, ns("team", corev1.NamespaceActive))
	if err := c.sync(context.Background(), "team"); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().ServiceAccounts("team").Get(context.Background(), "default", metav1.GetOptions{}); err != nil {
		t.Errorf("default ServiceAccount: %v", err)
	}
}

func TestTerminatingNamespaceGetsNothing(t *testing.T) {
	c, client := syncedFake(t, ns("going", corev1.NamespaceTerminating))
	if err := c.sync(context.Background(), "going"); err != nil {
		t.Fatal(err)
	}
	for _, a := range client.Actions() {
		if a.GetVerb() == "create" {
			t.Errorf("created %v in a terminating namespace", a)
		}
	}
}

func TestExistingServiceAccountIsLeftAlone(t *testing.T) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "team"}}
	c, client := syncedFake(t, ns("team", corev1.NamespaceActive), sa)
	if err := c.sync(context.Background(), "team"); err != nil {
		t.Fatal(err)
	}
	for _, a := range client.Actions() {
		if a.GetVerb() == "create" || a.GetVerb() == "update" {
			t.Errorf("wrote %v", a)
		}
	}
}

func TestEveryNamespaceHasADefaultServiceAccountMadeAgainIfDeleted(t *testing.T) {
	s := apiservertest.Start(t)
	c, factory := newController(t, s.Client)
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx, 1) }()
	defer func() { cancel(); <-done; factory.Shutdown() }()

	if _, err := s.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitForSA := func(namespace string) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
			_, err := s.Client.CoreV1().ServiceAccounts(namespace).Get(ctx, "default", metav1.GetOptions{})
			return err == nil, nil
		}); err != nil {
			t.Fatalf("no default ServiceAccount in %s: %v", namespace, err)
		}
	}
	waitForSA("team")
	waitForSA("default")
	if err := s.Client.CoreV1().ServiceAccounts("team").Delete(ctx, "default", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitForSA("team")
}
