package apis

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// checkErrorStrings fails the test unless errs print exactly as want, in order.
func checkErrorStrings(t *testing.T, errs field.ErrorList, want ...string) {
	t.Helper()
	if len(errs) != len(want) {
		t.Fatalf("errors = %v, want %q", errs, want)
	}
	for i := range errs {
		if errs[i].Error() != want[i] {
			t.Errorf("error %d = %s, want %s", i, errs[i].Error(), want[i])
		}
	}
}

func TestUpdateImmutableConfigMapIsRefused(t *testing.T) {
	yes := true
	old := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns", ResourceVersion: "2"}, Data: map[string]string{"k": "v"}, Immutable: &yes}
	cm := old.DeepCopy()
	cm.Data["k"] = "w"
	ConfigMapStrategy.PrepareForUpdate(context.Background(), cm, old)
	checkErrorStrings(t, ConfigMapStrategy.ValidateUpdate(context.Background(), cm, old),
		"data: Forbidden: field is immutable when `immutable` is set")
	if ConfigMapStrategy.AllowCreateOnUpdate() || !ConfigMapStrategy.AllowUnconditionalUpdate() {
		t.Error("config maps: want no create on update, unconditional updates allowed")
	}
}
