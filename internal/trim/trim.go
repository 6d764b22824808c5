// Package trim holds the informer transforms that keep what controllers never read out of their
// caches, as upstream's kube-controller-manager and kube-scheduler do, and share what many
// cached objects hold alike.
package trim

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/skiff-dev/skiff/internal/intern"
)

// ManagedFields drops metadata.managedFields from an object entering an informer's cache. No
// controller reads them (they serve server-side apply, which works on the server's copy), and
// they are often the largest part of a small object's metadata: a pod's are two to four entries
// of field sets. Objects without metadata pass unchanged.
func ManagedFields(obj any) (any, error) {
	if accessor, err := meta.Accessor(obj); err == nil && accessor.GetManagedFields() != nil {
		accessor.SetManagedFields(nil)
	}
	return obj, nil
}

// pods is shared by every informer of the process: a pod's parts are alike in the
// scheduler's pod informers and the controller manager's.
var pods = intern.NewPods()

// Informer is the transform of the typed informers of skiff's controller manager and
// scheduler: ManagedFields, and a pod's labels, owners, tolerations, resource lists and token
// volume shared with the equal ones of other cached pods (intern.Pods). Their users copy an
// object before they change it.
func Informer(obj any) (any, error) {
	if pod, ok := obj.(*corev1.Pod); ok {
		pods.Pod(pod)
	}
	return ManagedFields(obj)
}
