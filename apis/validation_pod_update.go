package apis

// Updates: what a pod's spec may still change, what a status write may do, and bindings.

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The spec fields an update may change, as upstream lists them in its error.
var podUpdatableSpecFields = []string{
	"`spec.containers[*].image`",
	"`spec.initContainers[*].image`",
	"`spec.activeDeadlineSeconds`",
	"`spec.tolerations` (only additions to existing tolerations)",
	"`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
}

// ValidatePodUpdate checks pod replacing old: the spec is immutable except what upstream allows.
//
// It also validates pod itself as a create would (metadata and spec), so a strategy calls it
// instead of ValidatePod on update, not in addition to it.
func ValidatePodUpdate(pod, old *corev1.Pod) field.ErrorList {
	metaPath, specPath := field.NewPath("metadata"), field.NewPath("spec")
	allErrs := ValidateObjectMetaUpdate(&pod.ObjectMeta, &old.ObjectMeta, metaPath)
	allErrs = append(allErrs, validatePodMetadataAndSpec(pod)...)
	allErrs = append(allErrs, validatePodAnnotationUpdates(pod, old, metaPath.Child("annotations"))...)

	// Containers keep their number: the images are matched up by position.
	errs, stop := validateContainerUpdates(pod.Spec.Containers, old.Spec.Containers, specPath.Child("containers"))
	if allErrs = append(allErrs, errs...); stop {
		return allErrs
	}
	errs, stop = validateContainerUpdates(pod.Spec.InitContainers, old.Spec.InitContainers, specPath.Child("initContainers"))
	if allErrs = append(allErrs, errs...); stop {
		return allErrs
	}

	// activeDeadlineSeconds may be set, or lowered, never raised or removed.
	adsPath := specPath.Child("activeDeadlineSeconds")
	if ads := pod.Spec.ActiveDeadlineSeconds; ads != nil {
		if *ads < 0 || *ads > math.MaxInt32 {
			return append(allErrs, field.Invalid(adsPath, *ads, validation.InclusiveRangeError(0, math.MaxInt32)))
		}
		if old.Spec.ActiveDeadlineSeconds != nil && *old.Spec.ActiveDeadlineSeconds < *ads {
			return append(allErrs, field.Invalid(adsPath, *ads, "must be less than or equal to previous value"))
		}
	} else if old.Spec.ActiveDeadlineSeconds != nil {
		allErrs = append(allErrs, field.Invalid(adsPath, pod.Spec.ActiveDeadlineSeconds, "must not update from a positive integer to nil value"))
	}

	allErrs = append(allErrs, validateOnlyAddedTolerations(pod.Spec.Tolerations, old.Spec.Tolerations, specPath.Child("tolerations"))...)
	allErrs = append(allErrs, validateOnlyDeletedSchedulingGates(pod.Spec.SchedulingGates, old.Spec.SchedulingGates, specPath.Child("schedulingGates"))...)

	if equality.Semantic.DeepEqual(pod.Spec, old.Spec) {
		return allErrs
	}
	// Copy the old values of what may change over the new spec; anything still different is
	// a change to an immutable field.
	munged := *pod.Spec.DeepCopy()
	for i := range munged.Containers {
		munged.Containers[i].Image = old.Spec.Containers[i].Image
	}
	for i := range munged.InitContainers {
		munged.InitContainers[i].Image = old.Spec.InitContainers[i].Image
	}
	munged.ActiveDeadlineSeconds = old.Spec.ActiveDeadlineSeconds
	munged.SchedulingGates = old.Spec.SchedulingGates
	munged.Tolerations = old.Spec.Tolerations
	// A negative grace period (which upstream never rejected) may be fixed to 1.
	if g := old.Spec.TerminationGracePeriodSeconds; g != nil && *g < 0 &&
		munged.TerminationGracePeriodSeconds != nil && *munged.TerminationGracePeriodSeconds == 1 {
		munged.TerminationGracePeriodSeconds = g
	}
	// While scheduling gates remain, the scheduler has not looked at the pod: its node
	// constraints may still be narrowed (only added to).
	if len(old.Spec.SchedulingGates) > 0 {
		if !equality.Semantic.DeepEqual(munged.NodeSelector, old.Spec.NodeSelector) {
			allErrs = append(allErrs, validateNodeSelectorOnlyAdded(munged.NodeSelector, old.Spec.NodeSelector, specPath.Child("nodeSelector"))...)
			munged.NodeSelector = old.Spec.NodeSelector
		}
		var oldNA, newNA *corev1.NodeAffinity
		if old.Spec.Affinity != nil {
			oldNA = old.Spec.Affinity.NodeAffinity
		}
		if munged.Affinity != nil {
			newNA = munged.Affinity.NodeAffinity
		}
		if !equality.Semantic.DeepEqual(oldNA, newNA) {
			allErrs = append(allErrs, validateNodeAffinityOnlyAdded(newNA, oldNA, specPath.Child("affinity", "nodeAffinity"))...)
			switch {
			case munged.Affinity == nil && oldNA == nil:
			case munged.Affinity == nil:
				munged.Affinity = &corev1.Affinity{NodeAffinity: oldNA}
			case old.Spec.Affinity == nil && munged.Affinity.PodAffinity == nil && munged.Affinity.PodAntiAffinity == nil:
				munged.Affinity = nil
			default:
				affinity := *munged.Affinity
				affinity.NodeAffinity = oldNA
				munged.Affinity = &affinity
			}
		}
	}
	if !equality.Semantic.DeepEqual(munged, old.Spec) {
		allErrs = append(allErrs, field.Forbidden(specPath, fmt.Sprintf("pod updates may not change fields other than %s\n%v",
			strings.Join(podUpdatableSpecFields, ","), podSpecDiff(old.Spec, munged))))
	}
	return allErrs
}

func validateContainerUpdates(containers, old []corev1.Container, fldPath *field.Path) (field.ErrorList, bool) {
	if len(containers) != len(old) {
		return field.ErrorList{field.Forbidden(fldPath, "pod updates may not add or remove containers")}, true
	}
	var allErrs field.ErrorList
	for i, c := range containers {
		if c.Image == "" {
			allErrs = append(allErrs, field.Required(fldPath.Index(i).Child("image"), ""))
		}
		if len(strings.TrimSpace(c.Image)) != len(c.Image) {
			allErrs = append(allErrs, field.Invalid(fldPath.Index(i).Child("image"), c.Image, "must not have leading or trailing whitespace"))
		}
	}
	return allErrs, false
}

// validateOnlyAddedTolerations: existing tolerations stay (their tolerationSeconds may change).
func validateOnlyAddedTolerations(tolerations, old []corev1.Toleration, fldPath *field.Path) field.ErrorList {
	for _, o := range old {
		found := false
		for _, t := range tolerations {
			o.TolerationSeconds = t.TolerationSeconds
			if reflect.DeepEqual(o, t) {
				found = true
				break
			}
		}
		if !found {
			return field.ErrorList{field.Forbidden(fldPath, "existing toleration can not be modified except its tolerationSeconds")}
		}
	}
	return validatePodTolerations(tolerations, fldPath)
}

// validateOnlyDeletedSchedulingGates: gates are removed as their conditions are met, never added.
func validateOnlyDeletedSchedulingGates(gates, old []corev1.PodSchedulingGate, fldPath *field.Path) field.ErrorList {
	oldNames := sets.New[string]()
	for _, g := range old {
		oldNames.Insert(g.Name)
	}
	var allErrs field.ErrorList
	for i, g := range gates {
		if !oldNames.Has(g.Name) {
			allErrs = append(allErrs, field.Forbidden(fldPath.Index(i).Child("name"), fmt.Sprintf("only deletion is allowed, but found new scheduling gate '%s'", g.Name)))
		}
	}
	return allErrs
}

func validateNodeSelectorOnlyAdded(selector, old map[string]string, fldPath *field.Path) field.ErrorList {
	for k, v := range old {
		if nv, ok := selector[k]; !ok || nv != v {
			return field.ErrorList{field.Invalid(fldPath, selector, "only additions to spec.nodeSelector are allowed (no mutations or deletions)")}
		}
	}
	return nil
}

func validateNodeAffinityOnlyAdded(na, old *corev1.NodeAffinity, fldPath *field.Path) field.ErrorList {
	if old == nil || old.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return nil
	}
	termsPath := fldPath.Child("requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms")
	oldTerms := old.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	var terms []corev1.NodeSelectorTerm
	if na != nil && na.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		terms = na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	}
	if len(oldTerms) > 0 && len(oldTerms) != len(terms) {
		return field.ErrorList{field.Invalid(termsPath, terms, "no additions/deletions to non-empty NodeSelectorTerms list are allowed")}
	}
	var allErrs field.ErrorList
	for i := range oldTerms {
		if !nodeSelectorTermOnlyAdded(terms[i], oldTerms[i]) {
			allErrs = append(allErrs, field.Invalid(termsPath.Index(i), terms[i], "only additions are allowed (no mutations or deletions)"))
		}
	}
	return allErrs
}

func nodeSelectorTermOnlyAdded(term, old corev1.NodeSelectorTerm) bool {
	if len(old.MatchExpressions) == 0 && len(old.MatchFields) == 0 && (len(term.MatchExpressions) > 0 || len(term.MatchFields) > 0) {
		return false
	}
	if l := len(old.MatchExpressions); l > 0 && (len(term.MatchExpressions) < l || !equality.Semantic.DeepEqual(term.MatchExpressions[:l], old.MatchExpressions)) {
		return false
	}
	if l := len(old.MatchFields); l > 0 && (len(term.MatchFields) < l || !equality.Semantic.DeepEqual(term.MatchFields[:l], old.MatchFields)) {
		return false
	}
	return true
}

// validatePodAnnotationUpdates: the mirror pod annotation and the deprecated AppArmor
// annotations are fixed at creation.
func validatePodAnnotationUpdates(pod, old *corev1.Pod, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for _, k := range sets.List(sets.KeySet(old.Annotations)) {
		if v, ok := pod.Annotations[k]; ok && v == old.Annotations[k] {
			continue
		}
		if strings.HasPrefix(k, corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix) {
			allErrs = append(allErrs, field.Forbidden(fldPath.Key(k), "may not remove or update AppArmor annotations"))
		}
		if k == corev1.MirrorPodAnnotationKey {
			allErrs = append(allErrs, field.Forbidden(fldPath.Key(k), "may not remove or update mirror pod annotation"))
		}
	}
	for _, k := range sets.List(sets.KeySet(pod.Annotations)) {
		if _, ok := old.Annotations[k]; ok {
			continue
		}
		if strings.HasPrefix(k, corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix) {
			allErrs = append(allErrs, field.Forbidden(fldPath.Key(k), "may not add AppArmor annotations"))
		}
		if k == corev1.MirrorPodAnnotationKey {
			allErrs = append(allErrs, field.Forbidden(fldPath.Key(k), "may not add mirror pod annotation"))
		}
	}
	return append(allErrs, validatePodAnnotations(pod.Annotations, &pod.Spec, fldPath)...)
}

// ValidatePodStatusUpdate checks a write to pods/status.
//
// Upstream validates only what a status writer could get wrong; it does not check phase
// transitions, nor that container statuses name containers of the pod.
func ValidatePodStatusUpdate(pod, old *corev1.Pod) field.ErrorList {
	metaPath := field.NewPath("metadata")
	allErrs := ValidateObjectMetaUpdate(&pod.ObjectMeta, &old.ObjectMeta, metaPath)
	allErrs = append(allErrs, validatePodAnnotationUpdates(pod, old, metaPath.Child("annotations"))...)
	// Upstream reports conditions under metadata; kept for identical messages.
	allErrs = append(allErrs, validatePodConditions(pod.Status.Conditions, metaPath.Child("conditions"))...)

	statusPath := field.NewPath("status")
	// Only pods/binding assigns a node.
	if pod.Spec.NodeName != old.Spec.NodeName {
		allErrs = append(allErrs, field.Forbidden(statusPath.Child("nodeName"), "may not be changed directly"))
	}
	if n := pod.Status.NominatedNodeName; n != old.Status.NominatedNodeName && n != "" {
		allErrs = append(allErrs, podInvalidAll(statusPath.Child("nominatedNodeName"), n, apivalidation.NameIsDNSSubdomain(n, false))...)
	}
	allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(pod.Status.ObservedGeneration, statusPath.Child("observedGeneration"))...)
	// The QoS class is computed once, at creation.
	allErrs = append(allErrs, apivalidation.ValidateImmutableField(pod.Status.QOSClass, old.Status.QOSClass, statusPath.Child("qosClass"))...)

	// A container that may not restart may not come back to life in the status either.
	allErrs = append(allErrs, validateContainerStateTransitions(pod.Status.ContainerStatuses, old.Status.ContainerStatuses, statusPath.Child("containerStatuses"), old.Spec.RestartPolicy, nil)...)
	allErrs = append(allErrs, validateContainerStateTransitions(pod.Status.InitContainerStatuses, old.Status.InitContainerStatuses, statusPath.Child("initContainerStatuses"), old.Spec.RestartPolicy, old.Spec.InitContainers)...)
	allErrs = append(allErrs, validateContainerStateTransitions(pod.Status.EphemeralContainerStatuses, old.Status.EphemeralContainerStatuses, statusPath.Child("ephemeralContainerStatuses"), corev1.RestartPolicyNever, nil)...)
	allErrs = append(allErrs, validateResourceClaimStatuses(pod, statusPath.Child("resourceClaimStatuses"))...)
	allErrs = append(allErrs, validatePodIPs(pod.Status.PodIPs, statusPath.Child("podIPs"))...)
	allErrs = append(allErrs, validateHostIPs(&pod.Status, statusPath.Child("hostIPs"))...)
	for _, statuses := range []struct {
		name string
		list []corev1.ContainerStatus
	}{{"containerStatuses", pod.Status.ContainerStatuses}, {"initContainerStatuses", pod.Status.InitContainerStatuses}, {"ephemeralContainerStatuses", pod.Status.EphemeralContainerStatuses}} {
		allErrs = append(allErrs, validateContainerStatusUsers(statuses.list, statusPath.Child(statuses.name), pod.Spec.OS)...)
	}
	allErrs = append(allErrs, validateAllocatedResourcesStatus(pod.Status.ContainerStatuses, pod.Spec.Containers, statusPath.Child("containerStatuses"))...)
	allErrs = append(allErrs, validateAllocatedResourcesStatus(pod.Status.InitContainerStatuses, pod.Spec.InitContainers, statusPath.Child("initContainerStatuses"))...)
	for i, s := range pod.Status.EphemeralContainerStatuses {
		if len(s.AllocatedResourcesStatus) != 0 {
			allErrs = append(allErrs, field.Forbidden(statusPath.Child("ephemeralContainerStatuses").Index(i).Child("allocatedResourcesStatus"), "must not be specified in container status"))
		}
	}
	return allErrs
}

var podSystemConditions = sets.New(corev1.PodScheduled, corev1.PodReady, corev1.PodInitialized)

func validatePodConditions(conditions []corev1.PodCondition, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i, c := range conditions {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(c.ObservedGeneration, fldPath.Index(i).Child("observedGeneration"))...)
		if !podSystemConditions.Has(c.Type) {
			allErrs = append(allErrs, podQualifiedNameErrs(string(c.Type), fldPath.Index(i).Child("Type"))...)
		}
	}
	return allErrs
}

// validateContainerStateTransitions forbids a terminated container to be reported running
// again unless the pod's restart policy (or, for sidecars, the container's) restarts it.
func validateContainerStateTransitions(statuses, old []corev1.ContainerStatus, fldPath *field.Path, policy corev1.RestartPolicy, initContainers []corev1.Container) field.ErrorList {
	if policy == corev1.RestartPolicyAlways {
		return nil
	}
	var allErrs field.ErrorList
	for i, o := range old {
		if o.State.Terminated == nil || (o.State.Terminated.ExitCode != 0 && policy == corev1.RestartPolicyOnFailure) {
			continue
		}
		if isSidecarName(initContainers, o.Name) {
			continue
		}
		for _, s := range statuses {
			if s.Name == o.Name && s.State.Terminated == nil {
				allErrs = append(allErrs, field.Forbidden(fldPath.Index(i).Child("state"), "may not be transitioned to non-terminated state"))
			}
		}
	}
	return allErrs
}

func isSidecarName(initContainers []corev1.Container, name string) bool {
	for _, c := range initContainers {
		if c.Name == name {
			return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		}
	}
	return false
}

func validateResourceClaimStatuses(pod *corev1.Pod, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	declared := sets.New[string]()
	for _, c := range pod.Spec.ResourceClaims {
		declared.Insert(c.Name)
	}
	seen := sets.New[string]()
	for i, s := range pod.Status.ResourceClaimStatuses {
		path := fldPath.Index(i)
		if !declared.Has(s.Name) {
			allErrs = append(allErrs, field.Invalid(path.Child("name"), s.Name, "must match the name of an entry in `spec.resourceClaims`"))
		}
		if seen.Has(s.Name) {
			allErrs = append(allErrs, field.Duplicate(path.Child("name"), s.Name))
		}
		seen.Insert(s.Name)
		if s.ResourceClaimName != nil {
			allErrs = append(allErrs, podInvalidAll(path.Child("name"), s.ResourceClaimName, apivalidation.NameIsDNSSubdomain(*s.ResourceClaimName, false))...)
		}
	}
	return allErrs
}

// validatePodIPs: valid IPs, at most one per family.
func validatePodIPs(ips []corev1.PodIP, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	strs := make([]string, 0, len(ips))
	for i, ip := range ips {
		allErrs = append(allErrs, validation.IsValidIP(fldPath.Index(i), ip.IP)...)
		strs = append(strs, ip.IP)
	}
	if len(ips) > 1 {
		if dual, err := isDualStackIPs(strs); err != nil {
			allErrs = append(allErrs, field.InternalError(fldPath, fmt.Errorf("failed to check for dual stack with error:%v", err)))
		} else if !dual || len(ips) > 2 {
			allErrs = append(allErrs, field.Invalid(fldPath, ips, "may specify no more than one IP for each IP family"))
		}
		seen := sets.New[string]()
		for i, ip := range ips {
			if seen.Has(ip.IP) {
				allErrs = append(allErrs, field.Duplicate(fldPath.Index(i), ip))
			}
			seen.Insert(ip.IP)
		}
	}
	return allErrs
}

// validateHostIPs: hostIPs[0] is hostIP; valid IPs, at most one per family.
func validateHostIPs(status *corev1.PodStatus, fldPath *field.Path) field.ErrorList {
	ips := status.HostIPs
	if len(ips) == 0 {
		return nil
	}
	var allErrs field.ErrorList
	if status.HostIP != ips[0].IP {
		allErrs = append(allErrs, field.Invalid(fldPath.Index(0).Child("ip"), ips[0].IP, "must be equal to `hostIP`"))
	}
	strs := make([]string, 0, len(ips))
	for i, ip := range ips {
		allErrs = append(allErrs, validation.IsValidIP(fldPath.Index(i), ip.IP)...)
		strs = append(strs, ip.IP)
	}
	if len(ips) > 1 {
		seen := sets.New[string]()
		for i, ip := range ips {
			if seen.Has(ip.IP) {
				allErrs = append(allErrs, field.Duplicate(fldPath.Index(i), ip))
			}
			seen.Insert(ip.IP)
		}
		if dual, err := isDualStackIPs(strs); err != nil {
			allErrs = append(allErrs, field.InternalError(fldPath, fmt.Errorf("failed to check for dual stack with error:%v", err)))
		} else if !dual || len(ips) > 2 {
			allErrs = append(allErrs, field.Invalid(fldPath, ips, "may specify no more than one IP for each IP family"))
		}
	}
	return allErrs
}

// isDualStackIPs reports whether the IPs include both an IPv4 and an IPv6 address.
func isDualStackIPs(ips []string) (bool, error) {
	v4, v6 := false, false
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			return false, fmt.Errorf("ip %v is invalid", s)
		}
		if ip.To4() != nil {
			v4 = true
		} else {
			v6 = true
		}
	}
	return v4 && v6, nil
}

func validateContainerStatusUsers(statuses []corev1.ContainerStatus, fldPath *field.Path, os *corev1.PodOS) field.ErrorList {
	var allErrs field.ErrorList
	windows := os != nil && os.Name == corev1.Windows
	for i, s := range statuses {
		if s.User == nil {
			continue
		}
		path := fldPath.Index(i).Child("linux")
		if windows {
			if s.User.Linux != nil {
				allErrs = append(allErrs, field.Forbidden(path, "cannot be set for a windows pod"))
			}
			continue
		}
		if u := s.User.Linux; u != nil {
			allErrs = append(allErrs, podInvalidAll(path.Child("uid"), u.UID, validation.IsValidUserID(u.UID))...)
			allErrs = append(allErrs, podInvalidAll(path.Child("gid"), u.GID, validation.IsValidGroupID(u.GID))...)
			for g, gid := range u.SupplementalGroups {
				allErrs = append(allErrs, podInvalidAll(path.Child("supplementalGroups").Index(g), gid, validation.IsValidGroupID(gid))...)
			}
		}
	}
	return allErrs
}

var podResourceHealth = []corev1.ResourceHealthStatus{corev1.ResourceHealthStatusHealthy, corev1.ResourceHealthStatusUnhealthy, corev1.ResourceHealthStatusUnknown}

// validateAllocatedResourcesStatus: device health is reported for resources the container
// requested, once per device.
func validateAllocatedResourcesStatus(statuses []corev1.ContainerStatus, containers []corev1.Container, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i, s := range statuses {
		for j, allocated := range s.AllocatedResourcesStatus {
			path := fldPath.Index(i).Child("allocatedResourcesStatus").Index(j)
			// Statuses of containers the spec does not have are ignored, as upstream does.
			for _, c := range containers {
				if c.Name != s.Name {
					continue
				}
				found, detail := false, "must match one of the container's resource requests"
				if strings.HasPrefix(string(allocated.Name), "claim:") {
					detail = "must match one of the container's resource claims in a format 'claim:<claimName>/<request>' or 'claim:<claimName>' if request is empty"
					for _, claim := range c.Resources.Claims {
						name := "claim:" + claim.Name
						if claim.Request != "" {
							name += "/" + claim.Request
						}
						found = found || name == string(allocated.Name)
					}
				} else {
					_, found = c.Resources.Requests[allocated.Name]
				}
				if !found {
					allErrs = append(allErrs, field.Invalid(path.Child("name"), allocated.Name, detail))
				}
				break
			}
			ids := sets.New[corev1.ResourceID]()
			for k, r := range allocated.Resources {
				rPath := path.Child("resources").Index(k)
				if !sets.New(podResourceHealth...).Has(r.Health) {
					allErrs = append(allErrs, field.NotSupported(rPath.Child("health"), r.Health, podResourceHealth))
				}
				if ids.Has(r.ResourceID) {
					allErrs = append(allErrs, field.Duplicate(rPath.Child("resourceID"), r.ResourceID))
				}
				ids.Insert(r.ResourceID)
			}
		}
	}
	return allErrs
}

// ValidatePodBinding checks a pods/binding request.
func ValidatePodBinding(binding *corev1.Binding) field.ErrorList {
	var allErrs field.ErrorList
	if binding.Target.Kind != "" && binding.Target.Kind != "Node" {
		allErrs = append(allErrs, field.NotSupported(field.NewPath("target", "kind"), binding.Target.Kind, []string{"Node", "<empty>"}))
	}
	if binding.Target.Name == "" {
		allErrs = append(allErrs, field.Required(field.NewPath("target", "name"), ""))
	}
	return allErrs
}

// podSpecDiff renders what an update changed the way upstream's message does since 1.34
// (k8s.io/apimachinery/pkg/util/diff.Diff): a unified diff, three lines of context, of the two
// specs as JSON indented by one space. Upstream marshals its internal type, whose keys are Go
// field names; ours are the v1 JSON names.
func podSpecDiff(old, updated corev1.PodSpec) string {
	a, errA := json.MarshalIndent(old, "", " ")
	b, errB := json.MarshalIndent(updated, "", " ")
	if errA != nil || errB != nil {
		return fmt.Sprintf("%+v\n%+v", old, updated)
	}
	return unifiedDiff(strings.Split(string(a), "\n"), strings.Split(string(b), "\n"), 3)
}

// unifiedDiff is a line diff in unified format (hunks "@@ -a,b +c,d @@", then " ", "-" and
// "+" lines), built on a longest common subsequence of what lies between the common head and
// tail. A very large middle is shown as replaced wholesale, to bound the work a request can cause.
func unifiedDiff(a, b []string, context int) string {
	head := 0
	for head < len(a) && head < len(b) && a[head] == b[head] {
		head++
	}
	tail := 0
	for tail < len(a)-head && tail < len(b)-head && a[len(a)-1-tail] == b[len(b)-1-tail] {
		tail++
	}
	midA, midB := a[head:len(a)-tail], b[head:len(b)-tail]

	type line struct {
		op   byte
		text string
		i, j int // positions in a and b before this line
	}
	var lines []line
	for k := 0; k < head; k++ {
		lines = append(lines, line{' ', a[k], k, k})
	}
	const maxCells = 1 << 20
	// lcs[i][j] is the length of the longest common subsequence of midA[i:] and midB[j:].
	var lcs [][]int
	if len(midA)*len(midB) <= maxCells {
		lcs = make([][]int, len(midA)+1)
		for i := range lcs {
			lcs[i] = make([]int, len(midB)+1)
		}
		for i := len(midA) - 1; i >= 0; i-- {
			for j := len(midB) - 1; j >= 0; j-- {
				if midA[i] == midB[j] {
					lcs[i][j] = lcs[i+1][j+1] + 1
				} else {
					lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
				}
			}
		}
	}
	i, j := 0, 0
	for i < len(midA) || j < len(midB) {
		switch {
		case lcs != nil && i < len(midA) && j < len(midB) && midA[i] == midB[j]:
			lines = append(lines, line{' ', midA[i], head + i, head + j})
			i, j = i+1, j+1
		case j < len(midB) && (i == len(midA) || (lcs != nil && lcs[i][j+1] > lcs[i+1][j])):
			lines = append(lines, line{'+', midB[j], head + i, head + j})
			j++
		default:
			lines = append(lines, line{'-', midA[i], head + i, head + j})
			i++
		}
	}
	for k := 0; k < tail; k++ {
		lines = append(lines, line{' ', a[len(a)-tail+k], len(a) - tail + k, len(b) - tail + k})
	}
	var out strings.Builder
	for start := 0; start < len(lines); {
		// Find the next change, and extend the hunk over every change that follows within
		// 2*context unchanged lines.
		first := start
		for first < len(lines) && lines[first].op == ' ' {
			first++
		}
		if first == len(lines) {
			break
		}
		last := first
		for k := first + 1; k < len(lines); k++ {
			if lines[k].op != ' ' {
				if k-last-1 > 2*context {
					break
				}
				last = k
			}
		}
		from, to := max(first-context, 0), min(last+context+1, len(lines))
		countA, countB := 0, 0
		for _, l := range lines[from:to] {
			if l.op != '+' {
				countA++
			}
			if l.op != '-' {
				countB++
			}
		}
		fmt.Fprintf(&out, "@@ -%s +%s @@\n", unifiedRange(lines[from].i, countA), unifiedRange(lines[from].j, countB))
		for _, l := range lines[from:to] {
			out.WriteByte(l.op)
			out.WriteString(l.text)
			out.WriteByte('\n')
		}
		start = to
	}
	return out.String()
}

// unifiedRange is a hunk range as diff prints it: "start,count", 1-based, "start" alone for
// one line, and the line before for none.
func unifiedRange(start, count int) string {
	switch count {
	case 0:
		return fmt.Sprintf("%d,0", start)
	case 1:
		return fmt.Sprintf("%d", start+1)
	}
	return fmt.Sprintf("%d,%d", start+1, count)
}
