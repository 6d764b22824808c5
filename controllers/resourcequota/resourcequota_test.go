package resourcequota

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/skiff-dev/skiff/controllers"
)

func TestSyncCountsPodsAndObjectsTheQuotaSelects(t *testing.T) {
	q := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "q", Namespace: "ns"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{
			corev1.ResourcePods: resource.MustParse("10"), corev1.ResourceRequestsCPU: resource.MustParse("2"),
			"count/configmaps": resource.MustParse("5"), corev1.ResourceServicesNodePorts: resource.MustParse("3"),
		}},
	}
	running := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "run", Namespace: "ns"}, Spec: corev1.PodSpec{Containers: []corev1.Container{
		{Name: "c", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}}}}}}
	done := running.DeepCopy()
	done.Name, done.Status.Phase = "done", corev1.PodSucceeded
	elsewhere := running.DeepCopy()
	elsewhere.Name, elsewhere.Namespace = "other", "other-ns"
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "ns"}}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "svc", Namespace: "ns"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 80}, {Port: 443}}}}

	client := fake.NewClientset(q, running, done, elsewhere)
	dyn := dynamicfake.NewSimpleDynamicClient(scheme.Scheme, cm, svc)
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, meta.RESTScopeNamespace)
	mapper.Add(schema.GroupVersionKind{Version: "v1", Kind: "Service"}, meta.RESTScopeNamespace)
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(factory.Core().V1().ResourceQuotas(), factory.Core().V1().Pods(), client, dyn, nil, mapper, time.Minute, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range []runtime.Object{running, done, elsewhere} {
		if err := factory.Core().V1().Pods().Informer().GetIndexer().Add(obj); err != nil {
			t.Fatal(err)
		}
	}
	if err := factory.Core().V1().ResourceQuotas().Informer().GetIndexer().Add(q); err != nil {
		t.Fatal(err)
	}

	err = c.sync(context.Background(), "ns/q")
	if err == nil || err.Error() != "requeue after 1m0s: periodic recount" {
		t.Errorf("sync: %v, want a periodic recount", err)
	}
	got, _ := client.CoreV1().ResourceQuotas("ns").Get(context.Background(), "q", metav1.GetOptions{})
	want := map[corev1.ResourceName]string{"pods": "1", "requests.cpu": "250m", "count/configmaps": "1", "services.nodeports": "2"}
	for k, v := range want {
		if u := got.Status.Used[k]; u.Cmp(resource.MustParse(v)) != 0 {
			t.Errorf("used[%s] = %s, want %s", k, u.String(), v)
		}
	}
	if len(got.Status.Used) != len(want) || len(got.Status.Hard) != 4 {
		t.Errorf("status %+v", got.Status)
	}
}
