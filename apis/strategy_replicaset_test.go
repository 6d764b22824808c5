package apis

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCreateReplicaSetClearsStatusAndStartsAtGenerationOne(t *testing.T) {
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", Generation: 9}, Status: appsv1.ReplicaSetStatus{Replicas: 3}}
	ReplicaSetStrategy.PrepareForCreate(context.Background(), rs)
	if rs.Generation != 1 || rs.Status.Replicas != 0 {
		t.Errorf("generation %d, status %+v; want 1 and empty", rs.Generation, rs.Status)
	}
}

func TestUpdateReplicaSetBumpsGenerationOnSpecChangeOnly(t *testing.T) {
	two, three := int32(2), int32(3)
	old := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", Generation: 4},
		Spec:       appsv1.ReplicaSetSpec{Replicas: &two},
		Status:     appsv1.ReplicaSetStatus{Replicas: 2, ObservedGeneration: 4},
	}

	relabelled := old.DeepCopy()
	relabelled.Labels = map[string]string{"a": "b"}
	relabelled.Status = appsv1.ReplicaSetStatus{}
	ReplicaSetStrategy.PrepareForUpdate(context.Background(), relabelled, old)
	if relabelled.Generation != 4 || relabelled.Status.Replicas != 2 {
		t.Errorf("metadata update: generation %d, status %+v; want 4 and the stored status", relabelled.Generation, relabelled.Status)
	}

	scaled := old.DeepCopy()
	scaled.Spec.Replicas = &three
	ReplicaSetStrategy.PrepareForUpdate(context.Background(), scaled, old)
	if scaled.Generation != 5 {
		t.Errorf("spec update: generation %d, want 5", scaled.Generation)
	}

	status := old.DeepCopy()
	status.Spec.Replicas = &three
	status.Status.ReadyReplicas = 2
	ReplicaSetStatusStrategy.PrepareForUpdate(context.Background(), status, old)
	if *status.Spec.Replicas != 2 || status.Status.ReadyReplicas != 2 || status.Generation != 4 {
		t.Errorf("status update: replicas %d, ready %d, generation %d; want 2, 2, 4",
			*status.Spec.Replicas, status.Status.ReadyReplicas, status.Generation)
	}
}
