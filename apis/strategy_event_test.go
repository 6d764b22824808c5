package apis

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestEventStrategiesValidateByTheirAPI(t *testing.T) {
	// A kubectl-style event: fine through v1, not through events.k8s.io/v1.
	event := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "web.1", Namespace: "ns"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "web"},
		Reason:         "Started",
		Type:           corev1.EventTypeNormal,
		Count:          1,
	}
	checkErrorStrings(t, EventStrategy.Validate(context.Background(), event))
	checkErrorStrings(t, EventsV1Strategy.Validate(context.Background(), event),
		`eventTime: Required value`,
		`count: Invalid value: "": needs to be unset`)

	for _, s := range []eventStrategy{EventStrategy, EventsV1Strategy} {
		if !s.AllowCreateOnUpdate() || !s.AllowUnconditionalUpdate() {
			t.Errorf("%v: want create on update and unconditional updates, as upstream", s.requestVersion)
		}
	}
}
