package apiserver

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/registry"
)

// admission runs the checks upstream's admission plugins make before a write reaches the
// registry. Today that is NamespaceLifecycle: no content in a namespace that is missing or
// terminating, and the namespaces the system needs cannot be deleted.
type admission struct {
	namespaces *registry.Store
}

// immortalNamespaces cannot be deleted, as upstream.
var immortalNamespaces = sets.New(metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic)

func (a admission) admitCreate(ctx context.Context, res *apis.Resource, ns string, obj runtime.Object) error {
	if !res.Namespaced || a.namespaces == nil {
		return nil
	}
	// the cache answers almost always; a namespace created a moment ago may not have reached
	// it yet, so a miss is confirmed with a consistent read, as upstream's lifecycle plugin
	nsObj, err := a.namespaces.Get(ctx, "", ns, &metav1.GetOptions{ResourceVersion: "0"})
	if apierrors.IsNotFound(err) {
		nsObj, err = a.namespaces.Get(ctx, "", ns, &metav1.GetOptions{})
	}
	if err != nil {
		return err
	}
	if nsObj.(*corev1.Namespace).Status.Phase == corev1.NamespaceTerminating {
		err := apierrors.NewForbidden(res.GroupVersionResource().GroupResource(), "",
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", ns))
		err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
			Type:    corev1.NamespaceTerminatingCause,
			Message: fmt.Sprintf("namespace %s is being terminated", ns),
			Field:   "metadata.namespace",
		})
		return err
	}
	return nil
}

func (a admission) admitDelete(_ context.Context, res *apis.Resource, _ string, name string) error {
	if res.GroupVersion.Group == "" && res.Name == "namespaces" && immortalNamespaces.Has(name) {
		return apierrors.NewForbidden(res.GroupVersionResource().GroupResource(), name,
			fmt.Errorf("this namespace may not be deleted"))
	}
	return nil
}
