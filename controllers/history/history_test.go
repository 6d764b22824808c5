package history

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

var setKind = appsv1.SchemeGroupVersion.WithKind("StatefulSet")

func TestTemplatePatchReplacesTheTemplate(t *testing.T) {
	tmpl := &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "busybox"}}},
	}
	got, err := TemplatePatch(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"spec":{"template":{"$patch":"replace","metadata":{"labels":{"app":"db"}},"spec":{"containers":[{"image":"busybox","name":"db","resources":{}}]}}}}`
	if string(got) != want {
		t.Errorf("patch = %s\nwant    %s", got, want)
	}
}

func TestCreateResolvesHashCollisions(t *testing.T) {
	set := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default", UID: "db-uid"}}
	client := fake.NewClientset()
	var collisions int32
	first := New(set, setKind, nil, []byte(`{"a":1}`), 1, &collisions)
	// another revision squats on the name the next one hashes to
	other := New(set, setKind, nil, []byte(`{"a":2}`), 2, &collisions)
	other.Name = first.Name
	if _, err := client.AppsV1().ControllerRevisions("default").Create(context.Background(), other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	created, err := Create(context.Background(), client, set.Name, first, &collisions)
	if err != nil {
		t.Fatal(err)
	}
	if collisions != 1 || created.Name == first.Name || string(created.Data.Raw) != `{"a":1}` {
		t.Errorf("created %s after %d collisions", created.Name, collisions)
	}
	again, err := Create(context.Background(), client, set.Name, first, &collisions)
	if err != nil || again.Name != created.Name || collisions != 1 {
		t.Errorf("creating the same revision again: %v, %v, %d collisions", again, err, collisions)
	}
}
