package daemonset

import (
	"bytes"
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/deployment"
	"github.com/skiff-dev/skiff/controllers/history"
)

// A DaemonSet's revisions are named <name>-<hash>, where hash is the pod-template-hash of its
// template (and collision count), and labelled controller-revision-hash=<hash>, the label its
// pods carry too. The current revision is the one whose data is the template's patch; it is
// renumbered to be the newest when a rollback makes an old one current again.

// constructHistory returns ds's current revision, creating it if need be, and its old ones.
func (c *Controller) constructHistory(ctx context.Context, ds *appsv1.DaemonSet, selector labels.Selector) (*appsv1.ControllerRevision, []*appsv1.ControllerRevision, error) {
	revisions, err := c.controlledHistory(ctx, ds, selector)
	if err != nil {
		return nil, nil, err
	}
	patch, err := history.TemplatePatch(&ds.Spec.Template)
	if err != nil {
		return nil, nil, err
	}
	var current, old []*appsv1.ControllerRevision
	for _, r := range revisions {
		if _, ok := r.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]; !ok {
			// revisions of old controllers lack the label: their name stands in for the hash
			clone := r.DeepCopy()
			if clone.Labels == nil {
				clone.Labels = map[string]string{}
			}
			clone.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] = clone.Name
			if r, err = c.client.AppsV1().ControllerRevisions(ds.Namespace).Update(ctx, clone, metav1.UpdateOptions{}); err != nil {
				return nil, nil, err
			}
		}
		if bytes.Equal(r.Data.Raw, patch) {
			current = append(current, r)
		} else {
			old = append(old, r)
		}
	}
	next := history.Next(old)
	if len(current) == 0 {
		cur, err := c.snapshot(ctx, ds, patch, next)
		return cur, old, err
	}
	// keep the newest of equal revisions and delete the rest
	history.Sort(current)
	cur := current[len(current)-1]
	for _, dup := range current[:len(current)-1] {
		err := c.client.AppsV1().ControllerRevisions(ds.Namespace).Delete(ctx, dup.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, nil, err
		}
	}
	if cur.Revision < next {
		if cur, err = history.Renumber(ctx, c.client, cur, next); err != nil {
			return nil, nil, err
		}
	}
	return cur, old, nil
}

// controlledHistory claims the revisions ds's selector matches.
func (c *Controller) controlledHistory(ctx context.Context, ds *appsv1.DaemonSet, selector labels.Selector) ([]*appsv1.ControllerRevision, error) {
	all, err := c.historyLister.ControllerRevisions(ds.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	m := controllers.NewRefManager(ds, controllerKind, selector, func(ctx context.Context) (metav1.Object, error) {
		return c.client.AppsV1().DaemonSets(ds.Namespace).Get(ctx, ds.Name, metav1.GetOptions{})
	})
	return m.ClaimControllerRevisions(ctx, c.client, all)
}

// snapshot stores ds's template as revision number revision. A revision of that name with
// other data is a hash collision: the collision count goes up, and the next sync tries again.
func (c *Controller) snapshot(ctx context.Context, ds *appsv1.DaemonSet, patch []byte, revision int64) (*appsv1.ControllerRevision, error) {
	hash := deployment.ComputeHash(&ds.Spec.Template, ds.Status.CollisionCount)
	labels := map[string]string{appsv1.DefaultDaemonSetUniqueLabelKey: hash}
	for k, v := range ds.Spec.Template.Labels {
		labels[k] = v
	}
	cr := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{
			Name:            history.Name(ds.Name, hash),
			Namespace:       ds.Namespace,
			Labels:          labels,
			Annotations:     ds.Annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ds, controllerKind)},
		},
		Data:     runtime.RawExtension{Raw: patch},
		Revision: revision,
	}
	created, err := c.client.AppsV1().ControllerRevisions(ds.Namespace).Create(ctx, cr, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return created, err
	}
	existing, err := c.client.AppsV1().ControllerRevisions(ds.Namespace).Get(ctx, cr.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	if metav1.IsControlledBy(existing, ds) && bytes.Equal(existing.Data.Raw, patch) {
		return existing, nil
	}
	fresh, err := c.client.AppsV1().DaemonSets(ds.Namespace).Get(ctx, ds.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	count := int32(0)
	if fresh.Status.CollisionCount != nil {
		count = *fresh.Status.CollisionCount
	}
	count++
	fresh.Status.CollisionCount = &count
	if _, err := c.client.AppsV1().DaemonSets(ds.Namespace).UpdateStatus(ctx, fresh, metav1.UpdateOptions{}); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("found a stale revision %s of DaemonSet %s/%s: hash collision, collision count now %d", cr.Name, ds.Namespace, ds.Name, count)
}

// cleanupHistory deletes the oldest old revisions no pod still runs, beyond
// revisionHistoryLimit.
func (c *Controller) cleanupHistory(ctx context.Context, ds *appsv1.DaemonSet, selector labels.Selector, old []*appsv1.ControllerRevision) error {
	limit := 10
	if ds.Spec.RevisionHistoryLimit != nil {
		limit = int(*ds.Spec.RevisionHistoryLimit)
	}
	excess := len(old) - limit
	if excess <= 0 {
		return nil
	}
	nodeToPods, err := c.nodesToDaemonPods(ctx, ds, selector)
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, pods := range nodeToPods {
		for _, pod := range pods {
			live[pod.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]] = true
		}
	}
	var unused []*appsv1.ControllerRevision
	for _, r := range old {
		if !live[r.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]] {
			unused = append(unused, r)
		}
	}
	return history.Trim(ctx, c.client, unused, excess)
}
