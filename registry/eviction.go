package registry

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/apis"
)

// MaxDisruptedPodSize is the most evictions a budget may have granted and the disruption
// controller not yet seen; past it evictions are refused until the controller catches up
// (upstream's limit).
const MaxDisruptedPodSize = 2000

// evictionGR names pods in the conflicts an eviction reports, as upstream ("Pod").
var evictionGR = schema.GroupResource{Resource: "Pod"}

// Evict is pods/eviction: it deletes the pod ns/eviction.Name gracefully (with the eviction's
// DeleteOptions) unless that would break the PodDisruptionBudget that covers it, as upstream's
// eviction storage decides. Pods that are terminal, pending or already being deleted go at once;
// otherwise the one budget selecting the pod must allow a disruption, which the eviction takes
// by decrementing status.disruptionsAllowed and recording the pod in status.disruptedPods, so
// that two concurrent evictions never both spend the last one. An unready pod does not spend
// the budget when the budget is healthy without it, or always under the AlwaysAllow policy.
// budgets is the store of policy/v1 poddisruptionbudgets; dryRun is the request's.
func (s *Store) Evict(ctx context.Context, ns string, eviction *policyv1.Eviction, budgets *Store, dryRun []string) error {
	opts, err := evictionDeleteOptions(eviction, dryRun)
	if err != nil {
		return err
	}
	obj, err := s.Get(ctx, ns, eviction.Name, &metav1.GetOptions{})
	if err != nil {
		return err
	}
	pod := obj.(*corev1.Pod)
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed ||
		pod.Status.Phase == corev1.PodPending || pod.DeletionTimestamp != nil {
		// it has caused its disruption already, or never served: no budget is asked
		if pod.Status.Phase == corev1.PodPending && pod.DeletionTimestamp == nil && rvUnset(opts) {
			// but it must not become ready meanwhile
			opts = withResourceVersion(opts, pod.ResourceVersion)
		}
		return s.evictionDelete(ctx, pod, opts)
	}

	pdbs, err := coveringBudgets(ctx, budgets, pod)
	if err != nil {
		return err
	}
	if len(pdbs) > 1 {
		return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: 500,
			Message: "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."}}
	}
	if len(pdbs) == 0 {
		return s.evictionDelete(ctx, pod, opts)
	}
	pdb := pdbs[0]
	if !podReady(pod) && (pdb.Spec.UnhealthyPodEvictionPolicy != nil && *pdb.Spec.UnhealthyPodEvictionPolicy == policyv1.AlwaysAllow ||
		pdb.Status.CurrentHealthy >= pdb.Status.DesiredHealthy && pdb.Status.DesiredHealthy > 0) {
		// an unready pod does not count as healthy: deleting it spends nothing, as long as it
		// has not become ready since it was read
		guarded := opts
		if rvUnset(opts) {
			guarded = withResourceVersion(opts, pod.ResourceVersion)
		}
		err := s.evictionDelete(ctx, pod, guarded)
		if apierrors.IsConflict(err) && rvUnset(opts) {
			return budgetInProcess(pdb.Name)
		}
		return err
	}
	if err := spendDisruption(ctx, budgets, pdb, pod.Name, len(opts.DryRun) > 0); err != nil {
		return err
	}
	return s.evictionDelete(ctx, pod, opts)
}

// evictionDeleteOptions are the DeleteOptions an eviction deletes with, with the request's
// dryRun, which may not contradict the eviction's own.
func evictionDeleteOptions(eviction *policyv1.Eviction, dryRun []string) (*metav1.DeleteOptions, error) {
	if eviction.DeleteOptions == nil {
		return &metav1.DeleteOptions{DryRun: dryRun}, nil
	}
	opts := eviction.DeleteOptions.DeepCopy()
	switch {
	case len(opts.DryRun) == 0:
		opts.DryRun = dryRun
	case len(dryRun) > 0 && !reflect.DeepEqual(dryRun, opts.DryRun):
		return nil, fmt.Errorf("Non-matching dry-run options in request and content: %v and %v", dryRun, opts.DryRun)
	}
	return opts, nil
}

func rvUnset(opts *metav1.DeleteOptions) bool {
	return opts.Preconditions == nil || opts.Preconditions.ResourceVersion == nil
}

func withResourceVersion(opts *metav1.DeleteOptions, rv string) *metav1.DeleteOptions {
	opts = opts.DeepCopy()
	if opts.Preconditions == nil {
		opts.Preconditions = &metav1.Preconditions{}
	}
	opts.Preconditions.ResourceVersion = &rv
	return opts
}

// podReady is whether the pod's Ready condition is true: what a budget counts as healthy.
func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// coveringBudgets are the budgets in the pod's namespace whose selector matches it; a budget
// with an invalid selector covers nothing.
func coveringBudgets(ctx context.Context, budgets *Store, pod *corev1.Pod) ([]*policyv1.PodDisruptionBudget, error) {
	list, err := budgets.List(ctx, pod.Namespace, ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []*policyv1.PodDisruptionBudget
	for i := range list.(*policyv1.PodDisruptionBudgetList).Items {
		pdb := &list.(*policyv1.PodDisruptionBudgetList).Items[i]
		selector, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || !selector.Matches(labels.Set(pod.Labels)) {
			continue
		}
		out = append(out, pdb)
	}
	return out, nil
}

// budgetInProcess is the 429 of a budget whose status does not yet reflect its spec or pods.
func budgetInProcess(name string) error {
	err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 10)
	err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
		Type: policyv1.DisruptionBudgetCause, Message: fmt.Sprintf("The disruption budget %s is still being processed by the server.", name)})
	return err
}

// errDryRunChecked ends a dry-run update once the budget has been checked.
var errDryRunChecked = errors.New("dry run: budget checked")

// spendDisruption takes one of the budget's allowed disruptions for podName, refusing with
// upstream's errors when none is left, all in one compare-and-swap on the budget.
func spendDisruption(ctx context.Context, budgets *Store, pdb *policyv1.PodDisruptionBudget, podName string, dryRun bool) error {
	_, _, err := budgets.Update(ctx, pdb.Namespace, pdb.Name, apis.PodDisruptionBudgetStatusStrategy, func(_ context.Context, current runtime.Object) (runtime.Object, error) {
		if current == nil {
			return nil, apierrors.NewNotFound(budgets.GroupResource(), pdb.Name)
		}
		pdb := current.(*policyv1.PodDisruptionBudget)
		if err := checkDisruptionAllowed(pdb); err != nil {
			return nil, err
		}
		pdb.Status.DisruptionsAllowed--
		if pdb.Status.DisruptionsAllowed == 0 {
			setDisruptionAllowedCondition(pdb)
		}
		if dryRun {
			return nil, errDryRunChecked
		}
		if pdb.Status.DisruptedPods == nil {
			pdb.Status.DisruptedPods = map[string]metav1.Time{}
		}
		// the controller counts this pod out until it sees it go, or for two minutes
		pdb.Status.DisruptedPods[podName] = metav1.Now()
		return pdb, nil
	}, false)
	if errors.Is(err, errDryRunChecked) {
		return nil
	}
	return err
}

// checkDisruptionAllowed refuses an eviction the budget's status does not allow.
func checkDisruptionAllowed(pdb *policyv1.PodDisruptionBudget) error {
	budgetGR := schema.GroupResource{Group: policyv1.GroupName, Resource: "poddisruptionbudget"}
	switch {
	case pdb.Status.ObservedGeneration < pdb.Generation:
		return budgetInProcess(pdb.Name)
	case pdb.Status.DisruptionsAllowed < 0:
		return apierrors.NewForbidden(budgetGR, pdb.Name, fmt.Errorf("pdb disruptions allowed is negative"))
	case len(pdb.Status.DisruptedPods) > MaxDisruptedPodSize:
		return apierrors.NewForbidden(budgetGR, pdb.Name, fmt.Errorf("DisruptedPods map too big - too many evictions not confirmed by PDB controller"))
	case pdb.Status.DisruptionsAllowed == 0:
		err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
		err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
			Type: policyv1.DisruptionBudgetCause,
			Message: fmt.Sprintf("The disruption budget %s needs %d healthy pods and has %d currently",
				pdb.Name, pdb.Status.DesiredHealthy, pdb.Status.CurrentHealthy)})
		return err
	}
	return nil
}

// setDisruptionAllowedCondition sets the budget's DisruptionAllowed condition from
// status.disruptionsAllowed, as upstream's helper: True (SufficientPods) while a disruption is
// allowed, False (InsufficientPods) otherwise.
func setDisruptionAllowedCondition(pdb *policyv1.PodDisruptionBudget) {
	c := metav1.Condition{Type: policyv1.DisruptionAllowedCondition, ObservedGeneration: pdb.Status.ObservedGeneration}
	if pdb.Status.DisruptionsAllowed > 0 {
		c.Status, c.Reason = metav1.ConditionTrue, policyv1.SufficientPodsReason
	} else {
		c.Status, c.Reason = metav1.ConditionFalse, policyv1.InsufficientPodsReason
	}
	meta.SetStatusCondition(&pdb.Status.Conditions, c)
}

// evictionDelete marks the pod with the DisruptionTarget condition, as upstream does so that
// its controller and the kubelet know why it goes, then deletes it with opts. The condition
// write honours opts' preconditions, and the delete then expects the pod as that write left it.
func (s *Store) evictionDelete(ctx context.Context, pod *corev1.Pod, opts *metav1.DeleteOptions) error {
	if len(opts.DryRun) == 0 {
		out, _, err := s.Update(ctx, pod.Namespace, pod.Name, apis.PodStatusStrategy, func(_ context.Context, current runtime.Object) (runtime.Object, error) {
			if current == nil {
				return nil, apierrors.NewNotFound(s.GroupResource(), pod.Name)
			}
			latest := current.(*corev1.Pod)
			if p := opts.Preconditions; p != nil {
				if p.UID != nil && *p.UID != "" && *p.UID != latest.UID {
					return nil, apierrors.NewConflict(evictionGR, latest.Name, fmt.Errorf("the UID in the precondition (%s) does not match the UID in record (%s). The object might have been deleted and then recreated", *p.UID, latest.UID))
				}
				if p.ResourceVersion != nil && *p.ResourceVersion != "" && *p.ResourceVersion != latest.ResourceVersion {
					return nil, apierrors.NewConflict(evictionGR, latest.Name, fmt.Errorf("the ResourceVersion in the precondition (%s) does not match the ResourceVersion in record (%s). The object might have been modified", *p.ResourceVersion, latest.ResourceVersion))
				}
			}
			setDisruptionTarget(latest)
			return latest, nil
		}, false)
		if err != nil {
			return err
		}
		if !rvUnset(opts) {
			m, _ := meta.Accessor(out)
			opts = withResourceVersion(opts, m.GetResourceVersion())
		}
	}
	_, _, err := s.Delete(ctx, pod.Namespace, pod.Name, opts)
	return err
}

// setDisruptionTarget records that the Eviction API is evicting the pod.
func setDisruptionTarget(pod *corev1.Pod) {
	c := corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
		Reason: "EvictionByEvictionAPI", Message: "Eviction API: evicting", LastTransitionTime: metav1.NewTime(time.Now().Truncate(time.Second))}
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.DisruptionTarget {
			if pod.Status.Conditions[i].Status == c.Status {
				c.LastTransitionTime = pod.Status.Conditions[i].LastTransitionTime
			}
			pod.Status.Conditions[i] = c
			return
		}
	}
	pod.Status.Conditions = append(pod.Status.Conditions, c)
}
