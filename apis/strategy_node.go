package apis

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// nodeStrategy is upstream's node strategy. A node may be created with its status (the kubelet
// registers itself that way); after that status changes only through nodes/status. The removed
// dynamic kubelet config (spec.configSource, status.config) is dropped.
type nodeStrategy struct{}

// NodeStrategy is the strategy of nodes.
var NodeStrategy = nodeStrategy{}

var _ Strategy = nodeStrategy{}

func (nodeStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	node := obj.(*corev1.Node)
	node.Spec.ConfigSource = nil
	node.Status.Config = nil
}

func (nodeStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return ValidateNode(obj.(*corev1.Node))
}

func (nodeStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	node, oldNode := obj.(*corev1.Node), old.(*corev1.Node)
	node.Status = oldNode.Status
	if oldNode.Spec.ConfigSource == nil {
		node.Spec.ConfigSource = nil
	}
}

func (nodeStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	node := obj.(*corev1.Node)
	allErrs := ValidateNode(node)
	return append(allErrs, ValidateNodeUpdate(node, old.(*corev1.Node))...)
}

func (nodeStrategy) AllowCreateOnUpdate() bool      { return false }
func (nodeStrategy) AllowUnconditionalUpdate() bool { return true }

// nodeStatusStrategy is the strategy of nodes/status: the spec comes from the stored node;
// metadata and status may change.
type nodeStatusStrategy struct{ nodeStrategy }

// NodeStatusStrategy is the strategy of nodes/status.
var NodeStatusStrategy = nodeStatusStrategy{}

func (nodeStatusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	node, oldNode := obj.(*corev1.Node), old.(*corev1.Node)
	node.Spec = oldNode.Spec
	if oldNode.Status.Config == nil {
		node.Status.Config = nil
	}
}

func (nodeStatusStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidateNodeUpdate(obj.(*corev1.Node), old.(*corev1.Node))
}
