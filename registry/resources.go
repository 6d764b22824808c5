package registry

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// deleteTerminating is two-phase deletion (apis.Terminating), as upstream deletes namespaces:
// the first delete only marks the object with a deletionTimestamp, the finalizers the
// propagation policy asks for and its Terminating mark, so that its controller can empty it;
// once the controller is done, a delete removes it for good.
func (s *Store) deleteTerminating(ctx context.Context, ns, name string, opts *metav1.DeleteOptions) (runtime.Object, bool, error) {
	current, err := s.Get(ctx, ns, name, &metav1.GetOptions{})
	if err != nil {
		return nil, false, err
	}
	if err := s.checkPreconditions(name, current, opts.Preconditions); err != nil {
		return nil, false, err
	}
	if s.AdmitDelete != nil {
		if err := s.AdmitDelete(ctx, current, opts); err != nil {
			return nil, false, err
		}
	}
	cm, _ := meta.Accessor(current)
	if cm.GetDeletionTimestamp() == nil {
		obj, _, err := s.Update(ctx, ns, name, markStrategy{}, func(_ context.Context, cur runtime.Object) (runtime.Object, error) {
			if cur == nil {
				return nil, apierrors.NewNotFound(s.GroupResource(), name)
			}
			if err := s.checkPreconditions(name, cur, opts.Preconditions); err != nil {
				return nil, err
			}
			m, _ := meta.Accessor(cur)
			if m.GetDeletionTimestamp() == nil {
				now := metav1.NewTime(time.Now().Truncate(time.Second))
				m.SetDeletionTimestamp(&now)
			}
			s.Resource.Terminating.Mark(cur)
			m.SetFinalizers(deletionFinalizers(m, opts))
			return cur, nil
		}, len(opts.DryRun) > 0)
		return obj, false, err
	}
	if !s.Resource.Terminating.Done(current) {
		return current, false, nil
	}
	return s.GenericDelete(ctx, ns, name, opts)
}
