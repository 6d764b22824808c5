package apis

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// defaultedReplicaSet is a valid replica set after defaulting, as the store sees it.
func defaultedReplicaSet() *appsv1.ReplicaSet {
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", ResourceVersion: "7"},
		Spec: appsv1.ReplicaSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web", "tier": "front"}},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyAlways,
					Containers:    []corev1.Container{{Name: "web", Image: "busybox:1.36"}},
				},
			},
		},
	}
	Scheme.Default(rs)
	return rs
}

func TestValidateReplicaSet(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*appsv1.ReplicaSet)
		want   []string
	}{
		{name: "valid", change: func(*appsv1.ReplicaSet) {}},
		{
			name:   "selector must match the template labels",
			change: func(rs *appsv1.ReplicaSet) { rs.Spec.Template.Labels = map[string]string{"app": "other"} },
			want:   []string{"spec.template.metadata.labels: Invalid value: {\"app\":\"other\"}: `selector` does not match template `labels`"},
		},
		{
			name:   "selector is required, and selecting nothing it matches no template",
			change: func(rs *appsv1.ReplicaSet) { rs.Spec.Selector = nil },
			want: []string{
				"spec.selector: Required value",
				"spec.template.metadata.labels: Invalid value: {\"app\":\"web\",\"tier\":\"front\"}: `selector` does not match template `labels`",
			},
		},
		{
			name:   "empty selector is invalid, in upstream's words",
			change: func(rs *appsv1.ReplicaSet) { rs.Spec.Selector = &metav1.LabelSelector{} },
			want:   []string{`spec.selector: Invalid value: {}: empty selector is invalid for deployment`},
		},
		{
			name: "selector operators are checked",
			change: func(rs *appsv1.ReplicaSet) {
				rs.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Near"}}}
			},
			want: []string{
				`spec.selector.matchExpressions[0].operator: Invalid value: "Near": not a valid selector operator`,
				`spec.selector: Invalid value: {"matchExpressions":[{"key":"app","operator":"Near"}]}: invalid label selector`,
			},
		},
		{
			name:   "replicas may not be negative",
			change: func(rs *appsv1.ReplicaSet) { n := int32(-1); rs.Spec.Replicas = &n },
			want:   []string{`spec.replicas: Invalid value: -1: must be greater than or equal to 0`},
		},
		{
			name:   "template restarts always",
			change: func(rs *appsv1.ReplicaSet) { rs.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure },
			want:   []string{`spec.template.spec.restartPolicy: Unsupported value: "OnFailure": supported values: "Always"`},
		},
		{
			name:   "template has no deadline",
			change: func(rs *appsv1.ReplicaSet) { d := int64(5); rs.Spec.Template.Spec.ActiveDeadlineSeconds = &d },
			want:   []string{`spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := defaultedReplicaSet()
			tc.change(rs)
			checkFieldErrors(t, ValidateReplicaSet(rs), tc.want...)
		})
	}
}

func TestValidateReplicaSetUpdateKeepsSelector(t *testing.T) {
	old, rs := defaultedReplicaSet(), defaultedReplicaSet()
	rs.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "front"}}
	checkFieldErrors(t, ValidateReplicaSetUpdate(rs, old),
		`spec.selector: Invalid value: {"matchLabels":{"tier":"front"}}: field is immutable`)

	scaled := defaultedReplicaSet()
	three := int32(3)
	scaled.Spec.Replicas = &three
	checkFieldErrors(t, ValidateReplicaSetUpdate(scaled, old))
}

func TestValidateReplicaSetStatusUpdate(t *testing.T) {
	old, rs := defaultedReplicaSet(), defaultedReplicaSet()
	rs.Status = appsv1.ReplicaSetStatus{Replicas: 2, ReadyReplicas: 3, AvailableReplicas: 4, ObservedGeneration: -1}
	checkFieldErrors(t, ValidateReplicaSetStatusUpdate(rs, old),
		`status.observedGeneration: Invalid value: -1: must be greater than or equal to 0`,
		`status.readyReplicas: Invalid value: 3: cannot be greater than status.replicas`,
		`status.availableReplicas: Invalid value: 4: cannot be greater than status.replicas`,
		`status.availableReplicas: Invalid value: 4: cannot be greater than readyReplicas`)
}

func TestValidateScaleRejectsNegativeReplicas(t *testing.T) {
	scale := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"}, Spec: autoscalingv1.ScaleSpec{Replicas: -1}}
	checkFieldErrors(t, ValidateScale(scale), `spec.replicas: Invalid value: -1: must be greater than or equal to 0`)
	scale.Spec.Replicas = 0
	checkFieldErrors(t, ValidateScale(scale))
}
