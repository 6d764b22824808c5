package rootcacertpublisher

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

const bundle = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

func newController(t *testing.T, client kubernetes.Interface, ca string) (*Controller, informers.SharedInformerFactory) {
	t.Helper()
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(factory.Core().V1().ConfigMaps(), factory.Core().V1().Namespaces(), client, []byte(ca), controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	return c, factory
}

func syncedFake(t *testing.T, objects ...runtime.Object) (*Controller, *fake.Clientset) {
	t.Helper()
	client := fake.NewClientset(objects...)
	c, factory := newController(t, client, bundle)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	return c, client
}

func active(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}}
}

func TestNamespaceGetsTheBundleWithUpstreamsDescription(t *testing.T) {
	c, client := syncedFake(t, active("team"))
	if err := c.sync(context.Background(), "team"); err != nil {
		t.Fatal(err)
	}
	cm, err := client.CoreV1().ConfigMaps("team").Get(context.Background(), "kube-root-ca.crt", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["ca.crt"] != bundle || cm.Annotations[DescriptionAnnotation] != Description {
		t.Errorf("configmap %+v, want the bundle and the description", cm)
	}
}

func TestChangedConfigMapIsRestored(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Namespace: "team", Labels: map[string]string{"kept": "yes"}},
		Data: map[string]string{"ca.crt": "tampered"}}
	c, client := syncedFake(t, active("team"), cm)
	if err := c.sync(context.Background(), "team"); err != nil {
		t.Fatal(err)
	}
	got, _ := client.CoreV1().ConfigMaps("team").Get(context.Background(), ConfigMapName, metav1.GetOptions{})
	if got.Data["ca.crt"] != bundle || got.Labels["kept"] != "yes" {
		t.Errorf("configmap %+v, want the bundle restored and other metadata kept", got)
	}
}

func TestEveryNamespaceGetsKubeRootCACrt(t *testing.T) {
	s := apiservertest.Start(t)
	c, factory := newController(t, s.Client, bundle)
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx, 1) }()
	defer func() { cancel(); <-done; factory.Shutdown() }()

	if _, err := s.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	published := func(namespace string) func(context.Context) (bool, error) {
		return func(ctx context.Context) (bool, error) {
			cm, err := s.Client.CoreV1().ConfigMaps(namespace).Get(ctx, ConfigMapName, metav1.GetOptions{})
			return err == nil && cm.Data["ca.crt"] == bundle, nil
		}
	}
	for _, n := range []string{"team", "default", "kube-system"} {
		if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, published(n)); err != nil {
			t.Fatalf("no %s in %s: %v", ConfigMapName, n, err)
		}
	}
	cm, err := s.Client.CoreV1().ConfigMaps("team").Get(ctx, ConfigMapName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["ca.crt"] = "tampered"
	if _, err := s.Client.CoreV1().ConfigMaps("team").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, published("team")); err != nil {
		t.Fatalf("tampered bundle not restored: %v", err)
	}
}
