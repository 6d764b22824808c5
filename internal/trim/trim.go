// Package trim holds the informer transforms that keep what controllers never read out of their
// caches, as upstream's kube-controller-manager and kube-scheduler do.
package trim

import "k8s.io/apimachinery/pkg/api/meta"

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
