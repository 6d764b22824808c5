package manager

import (
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// autoscalingScale is a scale subresource write: name to replicas.
type autoscalingScale struct {
	name     string
	replicas int32
}

func (s autoscalingScale) scale() *autoscalingv1.Scale {
	return &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: "default"}, Spec: autoscalingv1.ScaleSpec{Replicas: s.replicas}}
}
