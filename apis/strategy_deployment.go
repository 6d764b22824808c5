package apis

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// deploymentStrategy is upstream's deployment strategy: status only through
// deployments/status; generation starts at 1 and counts spec changes (and annotation changes,
// which carry rollback and restart requests in upstream's tools).
type deploymentStrategy struct{}

// DeploymentStrategy is the strategy of deployments (and of deployments/scale).
var DeploymentStrategy = deploymentStrategy{}

var _ Strategy = deploymentStrategy{}

func (deploymentStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	d := obj.(*appsv1.Deployment)
	d.Status = appsv1.DeploymentStatus{}
	d.Generation = 1
}

func (deploymentStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return ValidateDeployment(obj.(*appsv1.Deployment))
}

func (deploymentStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	d, oldD := obj.(*appsv1.Deployment), old.(*appsv1.Deployment)
	d.Status = oldD.Status
	if !apiequality.Semantic.DeepEqual(d.Spec, oldD.Spec) ||
		!apiequality.Semantic.DeepEqual(d.Annotations, oldD.Annotations) {
		d.Generation = oldD.Generation + 1
	}
}

func (deploymentStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidateDeploymentUpdate(obj.(*appsv1.Deployment), old.(*appsv1.Deployment))
}

func (deploymentStrategy) AllowCreateOnUpdate() bool      { return false }
func (deploymentStrategy) AllowUnconditionalUpdate() bool { return true }

// deploymentStatusStrategy is the strategy of deployments/status.
type deploymentStatusStrategy struct{ deploymentStrategy }

// DeploymentStatusStrategy is the strategy of deployments/status.
var DeploymentStatusStrategy = deploymentStatusStrategy{}

func (deploymentStatusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	d, oldD := obj.(*appsv1.Deployment), old.(*appsv1.Deployment)
	d.Spec = oldD.Spec
	d.Labels = oldD.Labels
}

func (deploymentStatusStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidateDeploymentStatusUpdate(obj.(*appsv1.Deployment), old.(*appsv1.Deployment))
}
