package apiserver_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func testPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: "busybox:1.36", Env: []corev1.EnvVar{{Name: "A", Value: "1"}},
		}}},
	}
}

func TestTypedClientCRUDOnEveryResource(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	c := s.Client

	t.Run("pods", func(t *testing.T) {
		p, err := c.CoreV1().Pods("default").Create(ctx, testPod("p1"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.UID == "" || p.ResourceVersion == "" || p.CreationTimestamp.IsZero() {
			t.Fatalf("server-set metadata missing: %+v", p.ObjectMeta)
		}
		if p.Status.Phase != corev1.PodPending {
			t.Errorf("new pod phase = %q, want Pending", p.Status.Phase)
		}
		if p.Spec.RestartPolicy != corev1.RestartPolicyAlways || p.Spec.SchedulerName != "default-scheduler" {
			t.Errorf("pod not defaulted: restartPolicy=%q schedulerName=%q", p.Spec.RestartPolicy, p.Spec.SchedulerName)
		}
		p.Labels["tier"] = "front"
		p2, err := c.CoreV1().Pods("default").Update(ctx, p, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p2.Labels["tier"] != "front" || p2.ResourceVersion == p.ResourceVersion {
			t.Errorf("update not applied: %v rv %s→%s", p2.Labels, p.ResourceVersion, p2.ResourceVersion)
		}
		list, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "tier=front"})
		if err != nil || len(list.Items) != 1 {
			t.Fatalf("list by label: %v items, err %v", len(list.Items), err)
		}
		// a pod not bound to a node is removed at once
		if err := c.CoreV1().Pods("default").Delete(ctx, "p1", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CoreV1().Pods("default").Get(ctx, "p1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("get after delete: %v, want NotFound", err)
		}
	})

	t.Run("nodes", func(t *testing.T) {
		n, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.Status.Capacity = corev1.ResourceList{corev1.ResourcePods: resource.MustParse("110")}
		n2, err := c.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n2.Status.Capacity.Pods().Value() != 110 {
			t.Errorf("status update lost: %v", n2.Status.Capacity)
		}
		list, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{FieldSelector: "spec.unschedulable=false"})
		if err != nil || len(list.Items) != 1 {
			t.Fatalf("list nodes by field: %d, %v", len(list.Items), err)
		}
		if err := c.CoreV1().Nodes().Delete(ctx, "n1", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("configmaps secrets serviceaccounts", func(t *testing.T) {
		if _, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}, Data: map[string]string{"a": "b"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		sec, err := c.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec"}, StringData: map[string]string{"pw": "x"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if sec.Type != corev1.SecretTypeOpaque || string(sec.Data["pw"]) != "x" {
			t.Errorf("secret: type %q data %v", sec.Type, sec.Data)
		}
		if _, err := c.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "sa"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, del := range []func() error{
			func() error { return c.CoreV1().ConfigMaps("default").Delete(ctx, "cm", metav1.DeleteOptions{}) },
			func() error { return c.CoreV1().Secrets("default").Delete(ctx, "sec", metav1.DeleteOptions{}) },
			func() error { return c.CoreV1().ServiceAccounts("default").Delete(ctx, "sa", metav1.DeleteOptions{}) },
		} {
			if err := del(); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("events in both groups share storage", func(t *testing.T) {
		ev := &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: "e1"},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "p1", Namespace: "default"},
			Reason:         "Started", Message: "started the thing", Type: corev1.EventTypeNormal,
			Source:         corev1.EventSource{Component: "kubelet"},
			FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now(), Count: 1,
		}
		if _, err := c.CoreV1().Events("default").Create(ctx, ev, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		got, err := c.EventsV1().Events("default").Get(ctx, "e1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Note != "started the thing" || got.Regarding.Name != "p1" || got.DeprecatedSource.Component != "kubelet" {
			t.Errorf("events.k8s.io view: note=%q regarding=%v source=%v", got.Note, got.Regarding, got.DeprecatedSource)
		}
		list, err := c.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=p1,reason=Started"})
		if err != nil || len(list.Items) != 1 {
			t.Fatalf("field-selected events: %d, %v", len(list.Items), err)
		}
		e2 := &eventsv1.Event{
			ObjectMeta: metav1.ObjectMeta{Name: "e2"}, EventTime: metav1.NowMicro(),
			ReportingController: "skiff.dev/test", ReportingInstance: "i1", Action: "Test",
			Reason: "Tested", Type: "Normal", Regarding: corev1.ObjectReference{Kind: "Pod", Name: "p1", Namespace: "default"},
		}
		if _, err := c.EventsV1().Events("default").Create(ctx, e2, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		core, err := c.CoreV1().Events("default").Get(ctx, "e2", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if core.ReportingController != "skiff.dev/test" || core.InvolvedObject.Name != "p1" {
			t.Errorf("v1 view of events.k8s.io event: %+v", core)
		}
	})

	t.Run("replicasets with scale and status", func(t *testing.T) {
		rs := &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: "rs"},
			Spec: appsv1.ReplicaSetSpec{
				Replicas: ptr.To[int32](2),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
				},
			},
		}
		created, err := c.AppsV1().ReplicaSets("default").Create(ctx, rs, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if created.Generation != 1 {
			t.Errorf("generation = %d, want 1", created.Generation)
		}
		scale, err := c.AppsV1().ReplicaSets("default").GetScale(ctx, "rs", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if scale.Spec.Replicas != 2 || scale.Status.Selector != "app=web" {
			t.Errorf("scale = %+v", scale)
		}
		scale.Spec.Replicas = 5
		if _, err := c.AppsV1().ReplicaSets("default").UpdateScale(ctx, "rs", scale, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		got, _ := c.AppsV1().ReplicaSets("default").Get(ctx, "rs", metav1.GetOptions{})
		if *got.Spec.Replicas != 5 || got.Generation != 2 {
			t.Errorf("after scale: replicas %d generation %d, want 5 and 2", *got.Spec.Replicas, got.Generation)
		}
		got.Status.Replicas = 3
		st, err := c.AppsV1().ReplicaSets("default").UpdateStatus(ctx, got, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if st.Status.Replicas != 3 || st.Generation != 2 {
			t.Errorf("status write: replicas %d generation %d", st.Status.Replicas, st.Generation)
		}
		// status is not written through the main resource
		st.Status.Replicas = 9
		up, err := c.AppsV1().ReplicaSets("default").Update(ctx, st, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if up.Status.Replicas != 3 {
			t.Errorf("status changed through the main resource: %d", up.Status.Replicas)
		}
	})

	t.Run("leases", func(t *testing.T) {
		l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "n1", Namespace: "kube-node-lease"},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("n1"), LeaseDurationSeconds: ptr.To[int32](40)}}
		created, err := c.CoordinationV1().Leases("kube-node-lease").Create(ctx, l, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		created.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
		if _, err := c.CoordinationV1().Leases("kube-node-lease").Update(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestDynamicClientCreatesAndPatches(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	dyn, err := dynamic.NewForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "dyn"},
		"data":     map[string]any{"a": "1"},
	}}
	if _, err := dyn.Resource(gvr).Namespace("default").Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		pt    types.PatchType
		patch string
		key   string
		want  string
	}{
		{types.MergePatchType, `{"data":{"b":"2"}}`, "b", "2"},
		{types.StrategicMergePatchType, `{"data":{"c":"3"}}`, "c", "3"},
		{types.JSONPatchType, `[{"op":"add","path":"/data/d","value":"4"}]`, "d", "4"},
	} {
		got, err := dyn.Resource(gvr).Namespace("default").Patch(ctx, "dyn", tc.pt, []byte(tc.patch), metav1.PatchOptions{})
		if err != nil {
			t.Fatalf("%s: %v", tc.pt, err)
		}
		if v, _, _ := unstructured.NestedString(got.Object, "data", tc.key); v != tc.want {
			t.Errorf("%s: data.%s = %q, want %q", tc.pt, tc.key, v, tc.want)
		}
	}
	list, err := dyn.Resource(gvr).Namespace("default").List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("dynamic list: %v, %v", list, err)
	}
}

func TestConcurrentUpdatesGetExactlyOneSuccessPerResourceVersion(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	cm, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "race"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const writers = 16
	var wg sync.WaitGroup
	results := make(chan error, writers)
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			mine := cm.DeepCopy()
			mine.Data = map[string]string{"writer": fmt.Sprint(i)}
			_, err := s.Client.CoreV1().ConfigMaps("default").Update(ctx, mine, metav1.UpdateOptions{})
			results <- err
		}(i)
	}
	wg.Wait()
	close(results)
	ok, conflicts := 0, 0
	for err := range results {
		switch {
		case err == nil:
			ok++
		case apierrors.IsConflict(err):
			conflicts++
			want := `Operation cannot be fulfilled on configmaps "race": the object has been modified; please apply your changes to the latest version and try again`
			if err.Error() != want {
				t.Errorf("conflict message = %q, want %q", err.Error(), want)
			}
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 || conflicts != writers-1 {
		t.Errorf("%d successes and %d conflicts, want 1 and %d", ok, conflicts, writers-1)
	}
}

func TestGenerateNameAndFinalizers(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	cms := s.Client.CoreV1().ConfigMaps("default")
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "gen-", Finalizers: []string{"skiff.dev/hold"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cm.Name) != len("gen-")+5 {
		t.Errorf("generated name %q", cm.Name)
	}
	if err := cms.Delete(ctx, cm.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	held, err := cms.Get(ctx, cm.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("object with a finalizer vanished: %v", err)
	}
	if held.DeletionTimestamp == nil {
		t.Fatal("no deletionTimestamp on an object being deleted")
	}
	held.Finalizers = nil
	if _, err := cms.Update(ctx, held, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, cm.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after the last finalizer went: %v, want NotFound", err)
	}
}

func TestDeleteWithOrphanPropagationRecordsFinalizer(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	rss := s.Client.AppsV1().ReplicaSets("default")
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "rs"},
		Spec: appsv1.ReplicaSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}
	if _, err := rss.Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := rss.Delete(ctx, "rs", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationOrphan)}); err != nil {
		t.Fatal(err)
	}
	got, err := rss.Get(ctx, "rs", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.DeletionTimestamp == nil || len(got.Finalizers) != 1 || got.Finalizers[0] != metav1.FinalizerOrphanDependents {
		t.Errorf("deletionTimestamp %v finalizers %v, want set and [orphan]", got.DeletionTimestamp, got.Finalizers)
	}
}

func TestDeletePreconditions(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	cms := s.Client.CoreV1().ConfigMaps("default")
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "pre"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := cms.Delete(ctx, "pre", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr.To(types.UID("nope"))}})
	if !apierrors.IsConflict(err) {
		t.Fatalf("delete with a wrong uid: %v, want Conflict", err)
	}
	if _, err := cms.Get(ctx, "pre", metav1.GetOptions{}); err != nil {
		t.Errorf("object gone after a failed precondition: %v", err)
	}
}

func TestWritesRecordManagedFields(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	cms := s.Client.CoreV1().ConfigMaps("default")
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "mf"}, Data: map[string]string{"a": "1"}},
		metav1.CreateOptions{FieldManager: "creator"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cm.ManagedFields) != 1 || cm.ManagedFields[0].Manager != "creator" || cm.ManagedFields[0].Operation != metav1.ManagedFieldsOperationUpdate {
		t.Fatalf("managedFields after create: %+v", cm.ManagedFields)
	}
	cm.Data["b"] = "2"
	up, err := cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "editor"})
	if err != nil {
		t.Fatal(err)
	}
	managers := map[string]bool{}
	for _, e := range up.ManagedFields {
		managers[e.Manager] = true
	}
	if !managers["creator"] || !managers["editor"] {
		t.Errorf("managedFields after update: %+v", up.ManagedFields)
	}
}
