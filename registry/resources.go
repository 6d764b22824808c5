package registry

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/registry/storage"
)

// strategies is the registry half of each apis table entry: how a resource and its writable
// subresources are prepared and validated, keyed by group and resource (every version of a
// resource shares its strategies, as they share storage).
type strategies struct {
	main, status, finalize Strategy
	// returnDeletedObject: a completed delete answers with the object (pods) rather than a
	// Success Status.
	returnDeletedObject bool
	deleteFunc          func(ctx context.Context, s *Store, ns, name string, opts *metav1.DeleteOptions) (runtime.Object, bool, error)
	deleteDuringUpdate  func(obj runtime.Object) bool
}

var byResource = map[schema.GroupResource]strategies{
	{Resource: "pods"}:  {main: PodStrategy, status: PodStatusStrategy, returnDeletedObject: true},
	{Resource: "nodes"}: {main: NodeStrategy, status: NodeStatusStrategy},
	{Resource: "namespaces"}: {main: NamespaceStrategy, status: NamespaceStatusStrategy, finalize: NamespaceFinalizeStrategy,
		deleteFunc: deleteNamespace, deleteDuringUpdate: namespaceFinalized},
	{Resource: "events"}:                                      {main: EventStrategy},
	{Group: "events.k8s.io", Resource: "events"}:              {main: EventsV1Strategy},
	{Resource: "configmaps"}:                                  {main: ConfigMapStrategy},
	{Resource: "secrets"}:                                     {main: SecretStrategy},
	{Resource: "services"}:                                    {main: ServiceStrategy, status: ServiceStatusStrategy, returnDeletedObject: true},
	{Resource: "endpoints"}:                                   {main: EndpointsStrategy},
	{Group: "discovery.k8s.io", Resource: "endpointslices"}:   {main: EndpointSliceStrategy},
	{Resource: "serviceaccounts"}:                             {main: ServiceAccountStrategy},
	{Group: "apps", Resource: "replicasets"}:                  {main: ReplicaSetStrategy, status: ReplicaSetStatusStrategy},
	{Group: "apps", Resource: "deployments"}:                  {main: DeploymentStrategy, status: DeploymentStatusStrategy},
	{Group: "coordination.k8s.io", Resource: "leases"}:        {main: LeaseStrategy},
	{Group: "scheduling.k8s.io", Resource: "priorityclasses"}: {main: PriorityClassStrategy},
}

func strategiesFor(r *apis.Resource) (strategies, error) {
	st, ok := byResource[r.GroupVersionResource().GroupResource()]
	if !ok {
		return strategies{}, fmt.Errorf("registry: no strategy for %s", r.GroupVersionResource())
	}
	return st, nil
}

// NewStore builds the store of a served resource on the given storage.
func NewStore(r *apis.Resource, s storage.Interface) (*Store, error) {
	st, err := strategiesFor(r)
	if err != nil {
		return nil, err
	}
	return &Store{Resource: r, Strategy: st.main, Storage: s,
		ReturnDeletedObject: st.returnDeletedObject, DeleteFunc: st.deleteFunc, DeleteDuringUpdate: st.deleteDuringUpdate}, nil
}

// StatusStrategyFor is the strategy of a resource's status subresource.
func StatusStrategyFor(r *apis.Resource) Strategy {
	st, _ := strategiesFor(r)
	return st.status
}

// FinalizeStrategyFor is the strategy of a resource's finalize subresource (namespaces).
func FinalizeStrategyFor(r *apis.Resource) Strategy {
	st, _ := strategiesFor(r)
	return st.finalize
}

// deleteNamespace is upstream's namespace deletion: the first delete only marks the namespace
// Terminating (with a deletionTimestamp) so that the namespace controller can empty it; once
// the controller has removed every spec finalizer, a delete removes it for good.
func deleteNamespace(ctx context.Context, s *Store, ns, name string, opts *metav1.DeleteOptions) (runtime.Object, bool, error) {
	current, err := s.Get(ctx, "", name, &metav1.GetOptions{})
	if err != nil {
		return nil, false, err
	}
	if err := s.checkPreconditions(name, current, opts.Preconditions); err != nil {
		return nil, false, err
	}
	namespace := current.(*corev1.Namespace)
	if namespace.DeletionTimestamp == nil {
		obj, _, err := s.Update(ctx, "", name, markStrategy{}, func(_ context.Context, cur runtime.Object) (runtime.Object, error) {
			if cur == nil {
				return nil, apierrors.NewNotFound(s.GroupResource(), name)
			}
			if err := s.checkPreconditions(name, cur, opts.Preconditions); err != nil {
				return nil, err
			}
			n := cur.(*corev1.Namespace)
			if n.DeletionTimestamp == nil {
				now := metav1.NewTime(time.Now().Truncate(time.Second))
				n.DeletionTimestamp = &now
			}
			n.Status.Phase = corev1.NamespaceTerminating
			n.Finalizers = deletionFinalizers(n, opts)
			return n, nil
		}, len(opts.DryRun) > 0)
		return obj, false, err
	}
	if len(namespace.Spec.Finalizers) != 0 {
		return namespace, false, nil
	}
	return s.GenericDelete(ctx, ns, name, opts)
}

// namespaceFinalized reports whether the namespace controller is done with a namespace.
func namespaceFinalized(obj runtime.Object) bool {
	return len(obj.(*corev1.Namespace).Spec.Finalizers) == 0
}
