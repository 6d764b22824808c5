package apis

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// podStrategy is upstream's pod strategy: a pod starts Pending with its QoS class computed, its
// generation counts spec changes, and status is written only through pods/status.
type podStrategy struct{}

// PodStrategy is the strategy of pods.
var PodStrategy = podStrategy{}

var (
	_ Strategy        = podStrategy{}
	_ GracefulDeleter = podStrategy{}
)

func (podStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	pod := obj.(*corev1.Pod)
	pod.Generation = 1
	// Upstream keeps a qosClass the client sent and computes it otherwise.
	qos := pod.Status.QOSClass
	if qos == "" {
		qos = computePodQOS(pod)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: qos}
	if len(pod.Spec.SchedulingGates) > 0 {
		// A gated pod says why it is not scheduled yet.
		pod.Status.Conditions = []corev1.PodCondition{{
			Type:               corev1.PodScheduled,
			Status:             corev1.ConditionFalse,
			Reason:             corev1.PodReasonSchedulingGated,
			Message:            "Scheduling is blocked due to non-empty scheduling gates",
			LastTransitionTime: metav1.Now(),
		}}
	}
	mergeMatchLabelKeys(pod)
}

func (podStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return ValidatePod(obj.(*corev1.Pod))
}

func (podStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	pod, oldPod := obj.(*corev1.Pod), old.(*corev1.Pod)
	pod.Status = oldPod.Status
	bumpPodGeneration(pod, oldPod)
}

func (podStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidatePodUpdate(obj.(*corev1.Pod), old.(*corev1.Pod))
}

func (podStrategy) AllowCreateOnUpdate() bool      { return false }
func (podStrategy) AllowUnconditionalUpdate() bool { return true }

// CheckGracefulDelete picks the grace period as upstream: the request's, else the pod's
// terminationGracePeriodSeconds, else 0; a pod never scheduled or already finished goes at once
// (0); a negative request becomes 1. A period of 0 deletes the pod now, unless finalizers hold it.
func (podStrategy) CheckGracefulDelete(_ context.Context, obj runtime.Object, opts *metav1.DeleteOptions) bool {
	if opts == nil {
		return false
	}
	pod := obj.(*corev1.Pod)
	var period int64
	switch {
	case opts.GracePeriodSeconds != nil:
		period = *opts.GracePeriodSeconds
	case pod.Spec.TerminationGracePeriodSeconds != nil:
		period = *pod.Spec.TerminationGracePeriodSeconds
	}
	if pod.Spec.NodeName == "" {
		period = 0
	}
	if pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded {
		period = 0
	}
	if period < 0 {
		period = 1
	}
	opts.GracePeriodSeconds = &period
	return true
}

// bumpPodGeneration counts a spec change in metadata.generation, as upstream does since 1.33.
func bumpPodGeneration(pod, old *corev1.Pod) {
	if !apiequality.Semantic.DeepEqual(pod.Spec, old.Spec) {
		pod.Generation = old.Generation + 1
	}
}

// podStatusStrategy is the strategy of pods/status: everything but status comes from the stored
// pod, except labels and annotations, which a status write may change (as upstream); owner
// references never change here because old kubelets corrupted them.
type podStatusStrategy struct{ podStrategy }

// PodStatusStrategy is the strategy of pods/status.
var PodStatusStrategy = podStatusStrategy{}

func (podStatusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	pod, oldPod := obj.(*corev1.Pod), old.(*corev1.Pod)
	pod.Spec = oldPod.Spec
	pod.DeletionTimestamp = oldPod.DeletionTimestamp
	pod.OwnerReferences = oldPod.OwnerReferences
	// The QoS class is set once on create; old kubelets dropped it on rejected pods.
	if pod.Status.QOSClass == "" {
		pod.Status.QOSClass = oldPod.Status.QOSClass
	}
	preserveObservedGeneration(pod, oldPod)
}

func (podStatusStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidatePodStatusUpdate(obj.(*corev1.Pod), old.(*corev1.Pod))
}

// preserveObservedGeneration keeps observedGeneration (of the status and of each condition,
// matched by type in order) when a writer leaves it out.
func preserveObservedGeneration(pod, old *corev1.Pod) {
	if pod.Status.ObservedGeneration == 0 {
		pod.Status.ObservedGeneration = old.Status.ObservedGeneration
	}
	oldByType := map[corev1.PodConditionType][]int64{}
	for _, c := range old.Status.Conditions {
		oldByType[c.Type] = append(oldByType[c.Type], c.ObservedGeneration)
	}
	for i := range pod.Status.Conditions {
		c := &pod.Status.Conditions[i]
		var oldGeneration int64
		if gens := oldByType[c.Type]; len(gens) > 0 {
			oldGeneration, oldByType[c.Type] = gens[0], gens[1:]
		}
		if c.ObservedGeneration == 0 {
			c.ObservedGeneration = oldGeneration
		}
	}
}

// mergeMatchLabelKeys turns the matchLabelKeys (and mismatchLabelKeys) of pod affinity terms and
// topology spread constraints into requirements of their label selectors, with the values of the
// pod's own labels, as upstream does on create (MatchLabelKeysInPodAffinity, GA, and
// MatchLabelKeysInPodTopologySpreadSelectorMerge, on by default). Keys the pod has no label for
// are left out.
func mergeMatchLabelKeys(pod *corev1.Pod) {
	if a := pod.Spec.Affinity; a != nil {
		if a.PodAffinity != nil {
			mergeAffinityTermsKeys(a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution,
				a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution, pod.Labels)
		}
		if a.PodAntiAffinity != nil {
			mergeAffinityTermsKeys(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution,
				a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution, pod.Labels)
		}
	}
	for i := range pod.Spec.TopologySpreadConstraints {
		c := &pod.Spec.TopologySpreadConstraints[i]
		if len(c.MatchLabelKeys) > 0 && c.LabelSelector != nil {
			addLabelRequirements(c.LabelSelector, c.MatchLabelKeys, metav1.LabelSelectorOpIn, pod.Labels)
		}
	}
}

func mergeAffinityTermsKeys(required []corev1.PodAffinityTerm, preferred []corev1.WeightedPodAffinityTerm, podLabels map[string]string) {
	for i := range required {
		mergeAffinityTermKeys(&required[i], podLabels)
	}
	for i := range preferred {
		mergeAffinityTermKeys(&preferred[i].PodAffinityTerm, podLabels)
	}
}

// mergeAffinityTermKeys adds "key In (value)" for matchLabelKeys and "key NotIn (value)" for
// mismatchLabelKeys. A nil selector matches nothing and stays nil.
func mergeAffinityTermKeys(term *corev1.PodAffinityTerm, podLabels map[string]string) {
	if term.LabelSelector == nil || len(term.MatchLabelKeys)+len(term.MismatchLabelKeys) == 0 {
		return
	}
	addLabelRequirements(term.LabelSelector, term.MatchLabelKeys, metav1.LabelSelectorOpIn, podLabels)
	addLabelRequirements(term.LabelSelector, term.MismatchLabelKeys, metav1.LabelSelectorOpNotIn, podLabels)
}

func addLabelRequirements(selector *metav1.LabelSelector, keys []string, op metav1.LabelSelectorOperator, podLabels map[string]string) {
	for _, key := range keys {
		if value, ok := podLabels[key]; ok {
			selector.MatchExpressions = append(selector.MatchExpressions, metav1.LabelSelectorRequirement{
				Key: key, Operator: op, Values: []string{value},
			})
		}
	}
}

// qosResources are the resources a QoS class is computed from.
var qosResources = []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory}

// computePodQOS is upstream's ComputePodQOS: with pod-level resources, those decide; otherwise
// a pod is BestEffort when no container asks for cpu or memory, Guaranteed when every container
// has equal non-zero requests and limits for both, and Burstable in between.
func computePodQOS(pod *corev1.Pod) corev1.PodQOSClass {
	if pod.Spec.Resources != nil {
		return requirementsQOS(pod.Spec.Resources)
	}
	var podQOS corev1.PodQOSClass
	containers := append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...)
	for i := range containers {
		qos := requirementsQOS(&containers[i].Resources)
		switch {
		case qos == corev1.PodQOSBurstable:
			return qos
		case podQOS == "":
			podQOS = qos
		case podQOS != qos:
			// one container BestEffort, another Guaranteed
			return corev1.PodQOSBurstable
		}
	}
	if podQOS == "" {
		return corev1.PodQOSBestEffort
	}
	return podQOS
}

// requirementsQOS classifies one set of requirements.
func requirementsQOS(r *corev1.ResourceRequirements) corev1.PodQOSClass {
	if len(r.Requests) == 0 && len(r.Limits) == 0 {
		return corev1.PodQOSBestEffort
	}
	var qos corev1.PodQOSClass
	for _, name := range qosResources {
		req, lim := r.Requests[name], r.Limits[name]
		var resQOS corev1.PodQOSClass
		switch {
		case !req.Equal(lim):
			return corev1.PodQOSBurstable
		case req.IsZero():
			resQOS = corev1.PodQOSBestEffort
		default:
			resQOS = corev1.PodQOSGuaranteed
		}
		if qos == "" {
			qos = resQOS
		} else if qos != resQOS {
			// some but not all of cpu and memory are set
			return corev1.PodQOSBurstable
		}
	}
	return qos
}
