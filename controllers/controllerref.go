package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/kubernetes"
)

// RefManager claims objects for one controller by upstream's ControllerRef rules:
//   - an object whose controller is someone else is left alone;
//   - an object we control that the selector no longer matches is released (unless we are
//     being deleted, when the garbage collector deals with it);
//   - an orphan the selector matches is adopted, unless it or we are being deleted, or it lives
//     in another namespace, and only after a fresh read shows we are not being deleted.
//
// Adoption and release are strategic merge patches of metadata.ownerReferences that carry the
// dependent's UID, so that they fail on an object recreated under the same name.
type RefManager struct {
	Controller metav1.Object
	Kind       schema.GroupVersionKind
	Selector   labels.Selector

	canAdoptOnce sync.Once
	canAdoptErr  error
	canAdopt     func(ctx context.Context) error
}

// NewRefManager makes the claims of controller, of kind, over objects matching selector.
// fresh reads the controller from the API server (not a cache): adoption needs proof that the
// controller is not being deleted, lest it adopt objects the garbage collector must orphan.
func NewRefManager(controller metav1.Object, kind schema.GroupVersionKind, selector labels.Selector,
	fresh func(ctx context.Context) (metav1.Object, error)) *RefManager {
	m := &RefManager{Controller: controller, Kind: kind, Selector: selector}
	m.canAdopt = func(ctx context.Context) error {
		obj, err := fresh(ctx)
		if err != nil {
			return err
		}
		if obj.GetUID() != controller.GetUID() {
			return fmt.Errorf("original %v %v/%v is gone: got uid %v, wanted %v",
				kind.Kind, controller.GetNamespace(), controller.GetName(), obj.GetUID(), controller.GetUID())
		}
		if obj.GetDeletionTimestamp() != nil {
			return fmt.Errorf("%v/%v has just been deleted at %v", controller.GetNamespace(), controller.GetName(), obj.GetDeletionTimestamp())
		}
		return nil
	}
	return m
}

// CanAdopt checks, once per RefManager, that the controller may adopt.
func (m *RefManager) CanAdopt(ctx context.Context) error {
	m.canAdoptOnce.Do(func() { m.canAdoptErr = m.canAdopt(ctx) })
	return m.canAdoptErr
}

// claim decides one object: whether it is ours after adopting or releasing it as needed.
func (m *RefManager) claim(ctx context.Context, obj metav1.Object, match bool, adopt, release func(context.Context, metav1.Object) error) (bool, error) {
	if ref := metav1.GetControllerOfNoCopy(obj); ref != nil {
		if ref.UID != m.Controller.GetUID() {
			return false, nil // someone else's
		}
		if match {
			return true, nil
		}
		if m.Controller.GetDeletionTimestamp() != nil {
			return false, nil
		}
		if err := release(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
			return false, err
		}
		return false, nil
	}
	// an orphan
	if m.Controller.GetDeletionTimestamp() != nil || !match || obj.GetDeletionTimestamp() != nil {
		return false, nil
	}
	if ns := m.Controller.GetNamespace(); ns != "" && ns != obj.GetNamespace() {
		return false, nil
	}
	if err := adopt(ctx, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// ClaimPods returns the pods that belong to the controller, adopting and releasing as the rules
// say. Errors of single pods are aggregated; the pods claimed so far are returned with them.
func (m *RefManager) ClaimPods(ctx context.Context, client kubernetes.Interface, pods []*corev1.Pod) ([]*corev1.Pod, error) {
	var claimed []*corev1.Pod
	var errs []error
	patch := func(ctx context.Context, obj metav1.Object, data []byte) error {
		_, err := client.CoreV1().Pods(obj.GetNamespace()).Patch(ctx, obj.GetName(), types.StrategicMergePatchType, data, metav1.PatchOptions{})
		return err
	}
	adopt := func(ctx context.Context, obj metav1.Object) error {
		if err := m.CanAdopt(ctx); err != nil {
			return fmt.Errorf("can't adopt Pod %v/%v (%v): %v", obj.GetNamespace(), obj.GetName(), obj.GetUID(), err)
		}
		return patch(ctx, obj, ControllerRefPatch(m.Controller, m.Kind, obj.GetUID()))
	}
	release := func(ctx context.Context, obj metav1.Object) error {
		err := patch(ctx, obj, DeleteOwnerRefPatch(obj.GetUID(), m.Controller.GetUID()))
		if apierrors.IsInvalid(err) {
			return nil // the pod was replaced by one with another UID: nothing to release
		}
		return err
	}
	for _, pod := range pods {
		ok, err := m.claim(ctx, pod, m.Selector.Matches(labels.Set(pod.Labels)), adopt, release)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			claimed = append(claimed, pod)
		}
	}
	return claimed, utilerrors.NewAggregate(errs)
}

// ClaimReplicaSets is ClaimPods for the ReplicaSets of a Deployment.
func (m *RefManager) ClaimReplicaSets(ctx context.Context, client kubernetes.Interface, sets []*appsv1.ReplicaSet) ([]*appsv1.ReplicaSet, error) {
	return claimOwned(ctx, m, "ReplicaSet", sets, func(ctx context.Context, obj metav1.Object, data []byte) error {
		_, err := client.AppsV1().ReplicaSets(obj.GetNamespace()).Patch(ctx, obj.GetName(), types.StrategicMergePatchType, data, metav1.PatchOptions{})
		return err
	})
}

// ClaimControllerRevisions is ClaimPods for the ControllerRevisions of a DaemonSet or a
// StatefulSet.
func (m *RefManager) ClaimControllerRevisions(ctx context.Context, client kubernetes.Interface, revisions []*appsv1.ControllerRevision) ([]*appsv1.ControllerRevision, error) {
	return claimOwned(ctx, m, "ControllerRevision", revisions, func(ctx context.Context, obj metav1.Object, data []byte) error {
		_, err := client.AppsV1().ControllerRevisions(obj.GetNamespace()).Patch(ctx, obj.GetName(), types.StrategicMergePatchType, data, metav1.PatchOptions{})
		return err
	})
}

// claimOwned adopts the objects of kind that match the selector and have no controller, and
// releases those it controls that no longer match, through patch; it returns the objects it
// controls afterwards.
func claimOwned[T metav1.Object](ctx context.Context, m *RefManager, kind string, objs []T, patch func(ctx context.Context, obj metav1.Object, data []byte) error) ([]T, error) {
	var claimed []T
	var errs []error
	adopt := func(ctx context.Context, obj metav1.Object) error {
		if err := m.CanAdopt(ctx); err != nil {
			return fmt.Errorf("can't adopt %s %v/%v (%v): %v", kind, obj.GetNamespace(), obj.GetName(), obj.GetUID(), err)
		}
		return patch(ctx, obj, ControllerRefPatch(m.Controller, m.Kind, obj.GetUID()))
	}
	release := func(ctx context.Context, obj metav1.Object) error {
		err := patch(ctx, obj, DeleteOwnerRefPatch(obj.GetUID(), m.Controller.GetUID()))
		if apierrors.IsInvalid(err) {
			return nil
		}
		return err
	}
	for _, obj := range objs {
		ok, err := m.claim(ctx, obj, m.Selector.Matches(labels.Set(obj.GetLabels())), adopt, release)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			claimed = append(claimed, obj)
		}
	}
	return claimed, utilerrors.NewAggregate(errs)
}

type metadataPatch struct {
	Metadata patchMeta `json:"metadata"`
}

type patchMeta struct {
	OwnerReferences []map[string]any `json:"ownerReferences"`
	UID             types.UID        `json:"uid"`
}

// ControllerRefPatch is the strategic merge patch that makes owner the controller of the object
// with UID dependent.
func ControllerRefPatch(owner metav1.Object, kind schema.GroupVersionKind, dependent types.UID) []byte {
	ref := map[string]any{
		"apiVersion":         kind.GroupVersion().String(),
		"kind":               kind.Kind,
		"name":               owner.GetName(),
		"uid":                owner.GetUID(),
		"controller":         true,
		"blockOwnerDeletion": true,
	}
	b, _ := json.Marshal(metadataPatch{Metadata: patchMeta{OwnerReferences: []map[string]any{ref}, UID: dependent}})
	return b
}

// DeleteOwnerRefPatch is the strategic merge patch that removes the owner references with the
// given owner UIDs from the object with UID dependent.
func DeleteOwnerRefPatch(dependent types.UID, owners ...types.UID) []byte {
	refs := make([]map[string]any, 0, len(owners))
	for _, uid := range owners {
		refs = append(refs, map[string]any{"$patch": "delete", "uid": uid})
	}
	b, _ := json.Marshal(metadataPatch{Metadata: patchMeta{OwnerReferences: refs, UID: dependent}})
	return b
}
