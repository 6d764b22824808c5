package apis

// Rules for where and how a pod runs: tolerations, affinity, topology spreading, the pod
// security context, resource claims and pod-level resources.

import (
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func validatePodTolerations(tolerations []corev1.Toleration, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i, t := range tolerations {
		path := fldPath.Index(i)
		if t.Key != "" {
			allErrs = append(allErrs, metav1validation.ValidateLabelName(t.Key, path.Child("key"))...)
		}
		// An empty key with Exists tolerates everything; with Equal it would match nothing.
		if t.Key == "" && t.Operator != corev1.TolerationOpExists {
			allErrs = append(allErrs, field.Invalid(path.Child("operator"), t.Operator, "operator must be Exists when `key` is empty, which means \"match all values and all keys\""))
		}
		// Only NoExecute evicts, so only it can be tolerated for a while.
		if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
			allErrs = append(allErrs, field.Invalid(path.Child("effect"), t.Effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
		}
		switch t.Operator {
		case corev1.TolerationOpEqual, "":
			if errs := validation.IsValidLabelValue(t.Value); len(errs) != 0 {
				allErrs = append(allErrs, field.Invalid(path.Child("operator"), t.Value, strings.Join(errs, ";")))
			}
		case corev1.TolerationOpExists:
			if t.Value != "" {
				allErrs = append(allErrs, field.Invalid(path.Child("operator"), t.Value, "value must be empty when `operator` is 'Exists'"))
			}
		default:
			allErrs = append(allErrs, field.NotSupported(path.Child("operator"), t.Operator, []corev1.TolerationOperator{corev1.TolerationOpEqual, corev1.TolerationOpExists}))
		}
		if t.Effect != "" {
			switch t.Effect {
			case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
			default:
				allErrs = append(allErrs, field.NotSupported(path.Child("effect"), t.Effect,
					[]corev1.TaintEffect{corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute}))
			}
		}
	}
	return allErrs
}

func validatePodAffinity(a *corev1.Affinity, fldPath *field.Path) field.ErrorList {
	if a == nil {
		return nil
	}
	var allErrs field.ErrorList
	if na := a.NodeAffinity; na != nil {
		path := fldPath.Child("nodeAffinity")
		if na.RequiredDuringSchedulingIgnoredDuringExecution != nil {
			allErrs = append(allErrs, validateNodeSelector(na.RequiredDuringSchedulingIgnoredDuringExecution, path.Child("requiredDuringSchedulingIgnoredDuringExecution"))...)
		}
		for i, term := range na.PreferredDuringSchedulingIgnoredDuringExecution {
			termPath := path.Child("preferredDuringSchedulingIgnoredDuringExecution").Index(i)
			if term.Weight <= 0 || term.Weight > 100 {
				allErrs = append(allErrs, field.Invalid(termPath.Child("weight"), term.Weight, "must be in the range 1-100"))
			}
			// Preferred terms may name label values no node has yet.
			allErrs = append(allErrs, validateNodeSelectorTerm(term.Preference, true, termPath.Child("preference"))...)
		}
	}
	if pa := a.PodAffinity; pa != nil {
		allErrs = append(allErrs, validatePodAffinityTerms(pa.RequiredDuringSchedulingIgnoredDuringExecution, pa.PreferredDuringSchedulingIgnoredDuringExecution, fldPath.Child("podAffinity"))...)
	}
	if pa := a.PodAntiAffinity; pa != nil {
		allErrs = append(allErrs, validatePodAffinityTerms(pa.RequiredDuringSchedulingIgnoredDuringExecution, pa.PreferredDuringSchedulingIgnoredDuringExecution, fldPath.Child("podAntiAffinity"))...)
	}
	return allErrs
}

func validateNodeSelector(s *corev1.NodeSelector, fldPath *field.Path) field.ErrorList {
	termsPath := fldPath.Child("nodeSelectorTerms")
	if len(s.NodeSelectorTerms) == 0 {
		return field.ErrorList{field.Required(termsPath, "must have at least one node selector term")}
	}
	var allErrs field.ErrorList
	for i, term := range s.NodeSelectorTerms {
		allErrs = append(allErrs, validateNodeSelectorTerm(term, false, termsPath.Index(i))...)
	}
	return allErrs
}

func validateNodeSelectorTerm(term corev1.NodeSelectorTerm, allowInvalidValues bool, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for j, req := range term.MatchExpressions {
		path := fldPath.Child("matchExpressions").Index(j)
		switch req.Operator {
		case corev1.NodeSelectorOpIn, corev1.NodeSelectorOpNotIn:
			if len(req.Values) == 0 {
				allErrs = append(allErrs, field.Required(path.Child("values"), "must be specified when `operator` is 'In' or 'NotIn'"))
			}
		case corev1.NodeSelectorOpExists, corev1.NodeSelectorOpDoesNotExist:
			if len(req.Values) > 0 {
				allErrs = append(allErrs, field.Forbidden(path.Child("values"), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
			}
		case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
			if len(req.Values) != 1 {
				allErrs = append(allErrs, field.Required(path.Child("values"), "must be specified single value when `operator` is 'Lt' or 'Gt'"))
			}
		default:
			allErrs = append(allErrs, field.Invalid(path.Child("operator"), req.Operator, "not a valid selector operator"))
		}
		allErrs = append(allErrs, metav1validation.ValidateLabelName(req.Key, path.Child("key"))...)
		if !allowInvalidValues {
			for k, value := range req.Values {
				allErrs = append(allErrs, podInvalidAll(path.Child("values").Index(k), value, validation.IsValidLabelValue(value))...)
			}
		}
	}
	for j, req := range term.MatchFields {
		path := fldPath.Child("matchFields").Index(j)
		switch req.Operator {
		case corev1.NodeSelectorOpIn, corev1.NodeSelectorOpNotIn:
			if len(req.Values) != 1 {
				allErrs = append(allErrs, field.Required(path.Child("values"), "must be only one value when `operator` is 'In' or 'NotIn' for node field selector"))
			}
		default:
			allErrs = append(allErrs, field.Invalid(path.Child("operator"), req.Operator, "not a valid selector operator"))
		}
		// metadata.name is the only node field a pod can select on.
		if req.Key != metav1.ObjectNameField {
			allErrs = append(allErrs, field.Invalid(path.Child("key"), req.Key, "not a valid field selector key"))
		} else {
			for k, value := range req.Values {
				allErrs = append(allErrs, podInvalidAll(path.Child("values").Index(k), value, apivalidation.NameIsDNSSubdomain(value, false))...)
			}
		}
	}
	return allErrs
}

func validatePodAffinityTerms(required []corev1.PodAffinityTerm, preferred []corev1.WeightedPodAffinityTerm, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i, term := range required {
		allErrs = append(allErrs, validatePodAffinityTerm(term, fldPath.Child("requiredDuringSchedulingIgnoredDuringExecution").Index(i))...)
	}
	for i, term := range preferred {
		path := fldPath.Child("preferredDuringSchedulingIgnoredDuringExecution").Index(i)
		if term.Weight <= 0 || term.Weight > 100 {
			allErrs = append(allErrs, field.Invalid(path.Child("weight"), term.Weight, "must be in the range 1-100"))
		}
		allErrs = append(allErrs, validatePodAffinityTerm(term.PodAffinityTerm, path.Child("podAffinityTerm"))...)
	}
	return allErrs
}

func validatePodAffinityTerm(term corev1.PodAffinityTerm, fldPath *field.Path) field.ErrorList {
	opts := metav1validation.LabelSelectorValidationOptions{}
	allErrs := metav1validation.ValidateLabelSelector(term.LabelSelector, opts, fldPath.Child("labelSelector"))
	allErrs = append(allErrs, metav1validation.ValidateLabelSelector(term.NamespaceSelector, opts, fldPath.Child("namespaceSelector"))...)
	for _, ns := range term.Namespaces {
		allErrs = append(allErrs, podInvalidAll(fldPath.Child("namespace"), ns, apivalidation.ValidateNamespaceName(ns, false))...)
	}
	allErrs = append(allErrs, validateAffinityLabelKeys(term.MatchLabelKeys, term.MismatchLabelKeys, term.LabelSelector, fldPath)...)
	if term.TopologyKey == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("topologyKey"), "can not be empty"))
	}
	return append(allErrs, metav1validation.ValidateLabelName(term.TopologyKey, fldPath.Child("topologyKey"))...)
}

// validateAffinityLabelKeys checks matchLabelKeys and mismatchLabelKeys: label names, a
// selector to add them to, and no key in both lists.
func validateAffinityLabelKeys(match, mismatch []string, selector *metav1.LabelSelector, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for _, list := range []struct {
		name string
		keys []string
	}{{"matchLabelKeys", match}, {"mismatchLabelKeys", mismatch}} {
		if len(list.keys) == 0 {
			continue
		}
		if selector == nil {
			allErrs = append(allErrs, field.Forbidden(fldPath.Child(list.name), "must not be specified when labelSelector is not set"))
			continue
		}
		for i, key := range list.keys {
			allErrs = append(allErrs, metav1validation.ValidateLabelName(key, fldPath.Child(list.name).Index(i))...)
		}
	}
	if selector != nil {
		index := map[string]int{}
		for i, key := range match {
			index[key] = i
		}
		keys := sets.New[string]()
		for key := range selector.MatchLabels {
			keys.Insert(key)
		}
		for _, expr := range selector.MatchExpressions {
			if i, ok := index[expr.Key]; ok && keys.Has(expr.Key) {
				allErrs = append(allErrs, field.Invalid(fldPath.Index(i), expr.Key, "exists in both matchLabelKeys and labelSelector"))
			}
			keys.Insert(expr.Key)
		}
	}
	mismatchKeys := sets.New(mismatch...)
	for i, key := range match {
		if mismatchKeys.Has(key) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("matchLabelKeys").Index(i), key, "exists in both matchLabelKeys and mismatchLabelKeys"))
		}
	}
	return allErrs
}

func validateTopologySpreadConstraints(constraints []corev1.TopologySpreadConstraint, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i, c := range constraints {
		path := fldPath.Index(i)
		if c.MaxSkew <= 0 {
			allErrs = append(allErrs, field.Invalid(path.Child("maxSkew"), c.MaxSkew, "must be greater than zero"))
		}
		if c.TopologyKey == "" {
			allErrs = append(allErrs, field.Required(path.Child("topologyKey"), "can not be empty"))
		}
		if c.WhenUnsatisfiable != corev1.DoNotSchedule && c.WhenUnsatisfiable != corev1.ScheduleAnyway {
			allErrs = append(allErrs, field.NotSupported(path.Child("whenUnsatisfiable"), c.WhenUnsatisfiable,
				[]corev1.UnsatisfiableConstraintAction{corev1.DoNotSchedule, corev1.ScheduleAnyway}))
		}
		// {topologyKey, whenUnsatisfiable} identifies a constraint.
		for _, later := range constraints[i+1:] {
			if c.TopologyKey == later.TopologyKey && c.WhenUnsatisfiable == later.WhenUnsatisfiable {
				allErrs = append(allErrs, field.Duplicate(path.Child("{topologyKey, whenUnsatisfiable}"), fmt.Sprintf("{%v, %v}", c.TopologyKey, c.WhenUnsatisfiable)))
				break
			}
		}
		if c.MinDomains != nil {
			if *c.MinDomains <= 0 {
				allErrs = append(allErrs, field.Invalid(path.Child("minDomains"), c.MinDomains, "must be greater than zero"))
			}
			if c.WhenUnsatisfiable != corev1.DoNotSchedule {
				allErrs = append(allErrs, field.Invalid(path.Child("minDomains"), c.MinDomains,
					fmt.Sprintf("can only use minDomains if whenUnsatisfiable=%s, not %s", corev1.DoNotSchedule, c.WhenUnsatisfiable)))
			}
		}
		policies := []corev1.NodeInclusionPolicy{corev1.NodeInclusionPolicyHonor, corev1.NodeInclusionPolicyIgnore}
		for _, p := range []struct {
			name   string
			policy *corev1.NodeInclusionPolicy
		}{{"nodeAffinityPolicy", c.NodeAffinityPolicy}, {"nodeTaintsPolicy", c.NodeTaintsPolicy}} {
			if p.policy != nil && *p.policy != corev1.NodeInclusionPolicyHonor && *p.policy != corev1.NodeInclusionPolicyIgnore {
				allErrs = append(allErrs, field.NotSupported(path.Child(p.name), p.policy, policies))
			}
		}
		if len(c.MatchLabelKeys) > 0 {
			keysPath := path.Child("matchLabelKeys")
			keys := sets.New[string]()
			if c.LabelSelector == nil {
				allErrs = append(allErrs, field.Forbidden(keysPath, "must not be specified when labelSelector is not set"))
			} else {
				for key := range c.LabelSelector.MatchLabels {
					keys.Insert(key)
				}
				for _, expr := range c.LabelSelector.MatchExpressions {
					keys.Insert(expr.Key)
				}
			}
			for j, key := range c.MatchLabelKeys {
				allErrs = append(allErrs, metav1validation.ValidateLabelName(key, keysPath.Index(j))...)
				if keys.Has(key) {
					allErrs = append(allErrs, field.Invalid(keysPath.Index(j), key, "exists in both matchLabelKeys and labelSelector"))
				}
			}
		}
		allErrs = append(allErrs, metav1validation.ValidateLabelSelector(c.LabelSelector, metav1validation.LabelSelectorValidationOptions{}, path.Child("labelSelector"))...)
	}
	return allErrs
}

// The format of a sysctl name, dotted or slashed.
var podSysctlName = regexp.MustCompile(`^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$`)

const podSysctlMaxLength = 253

func (v *podSpecValidator) validatePodSecurityContext(fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	sc := v.spec.SecurityContext
	if sc != nil {
		if sc.FSGroup != nil {
			allErrs = append(allErrs, podInvalidAll(fldPath.Child("fsGroup"), *sc.FSGroup, validation.IsValidGroupID(*sc.FSGroup))...)
		}
		if sc.RunAsUser != nil {
			allErrs = append(allErrs, podInvalidAll(fldPath.Child("runAsUser"), *sc.RunAsUser, validation.IsValidUserID(*sc.RunAsUser))...)
		}
		if sc.RunAsGroup != nil {
			allErrs = append(allErrs, podInvalidAll(fldPath.Child("runAsGroup"), *sc.RunAsGroup, validation.IsValidGroupID(*sc.RunAsGroup))...)
		}
		for g, gid := range sc.SupplementalGroups {
			allErrs = append(allErrs, podInvalidAll(fldPath.Child("supplementalGroups").Index(g), gid, validation.IsValidGroupID(gid))...)
		}
	}
	// A shared process namespace would be the host's.
	if share := v.spec.ShareProcessNamespace; share != nil && *share && v.spec.HostPID {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("shareProcessNamespace"), *share, "ShareProcessNamespace and HostPID cannot both be enabled"))
	}
	if sc == nil {
		return allErrs
	}
	allErrs = append(allErrs, v.validateSysctls(sc.Sysctls, fldPath.Child("sysctls"))...)
	if p := sc.FSGroupChangePolicy; p != nil && *p != corev1.FSGroupChangeAlways && *p != corev1.FSGroupChangeOnRootMismatch {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("fsGroupChangePolicy"), p, []corev1.PodFSGroupChangePolicy{corev1.FSGroupChangeAlways, corev1.FSGroupChangeOnRootMismatch}))
	}
	allErrs = append(allErrs, validateSeccompProfileField(sc.SeccompProfile, fldPath.Child("seccompProfile"))...)
	allErrs = append(allErrs, validateWindowsSecurityContextOptions(sc.WindowsOptions, fldPath.Child("windowsOptions"))...)
	allErrs = append(allErrs, validateAppArmorProfileField(sc.AppArmorProfile, fldPath.Child("appArmorProfile"))...)
	if p := sc.SupplementalGroupsPolicy; p != nil && *p != corev1.SupplementalGroupsPolicyMerge && *p != corev1.SupplementalGroupsPolicyStrict {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("supplementalGroupsPolicy"), p, []corev1.SupplementalGroupsPolicy{corev1.SupplementalGroupsPolicyMerge, corev1.SupplementalGroupsPolicyStrict}))
	}
	if p := sc.SELinuxChangePolicy; p != nil && *p != corev1.SELinuxChangePolicyMountOption && *p != corev1.SELinuxChangePolicyRecursive {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("seLinuxChangePolicy"), *p, []corev1.PodSELinuxChangePolicy{corev1.SELinuxChangePolicyMountOption, corev1.SELinuxChangePolicyRecursive}))
	}
	return allErrs
}

func (v *podSpecValidator) validateSysctls(sysctls []corev1.Sysctl, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	names := sets.New[string]()
	for i, s := range sysctls {
		path := fldPath.Index(i).Child("name")
		switch {
		case s.Name == "":
			allErrs = append(allErrs, field.Required(path, ""))
		case len(s.Name) > podSysctlMaxLength || !podSysctlName.MatchString(s.Name):
			allErrs = append(allErrs, field.Invalid(path, s.Name, fmt.Sprintf("must have at most %d characters and match regex %s", podSysctlMaxLength, podSysctlName)))
		case names.Has(s.Name):
			allErrs = append(allErrs, field.Duplicate(path, s.Name))
		}
		// A namespaced sysctl would change the host's namespace the pod shares.
		switch sysctlNamespace(s.Name) {
		case "net":
			if v.spec.HostNetwork {
				allErrs = append(allErrs, field.Invalid(path, s.Name, "may not be specified when 'hostNetwork' is true"))
			}
		case "ipc":
			if v.spec.HostIPC {
				allErrs = append(allErrs, field.Invalid(path, s.Name, "may not be specified when 'hostIPC' is true"))
			}
		}
		names.Insert(s.Name)
	}
	return allErrs
}

// sysctlNamespace names the kernel namespace a sysctl belongs to ("net", "ipc" or "").
func sysctlNamespace(name string) string {
	// Slashed names ("net/ipv4/ip_forward") are the dotted ones with the separators swapped.
	if i := strings.IndexAny(name, "./"); i >= 0 && name[i] == '/' {
		name = strings.Map(func(r rune) rune {
			switch r {
			case '/':
				return '.'
			case '.':
				return '/'
			}
			return r
		}, name)
	}
	switch name {
	case "kernel.sem", "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
		"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni":
		return "ipc"
	}
	switch {
	case strings.HasPrefix(name, "net."):
		return "net"
	case strings.HasPrefix(name, "fs.mqueue."):
		return "ipc"
	}
	return ""
}

// validateWindowsHostProcess: a Windows host-process pod runs on the host, all of it.
func (v *podSpecValidator) validateWindowsHostProcess(fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	var podHostProcess *bool
	if sc := v.spec.SecurityContext; sc != nil && sc.WindowsOptions != nil {
		podHostProcess = sc.WindowsOptions.HostProcess
	}
	containers, hostProcess := 0, 0
	visitPodContainers(v.spec, fldPath, func(c *corev1.Container, path *field.Path) {
		containers++
		var ctrHostProcess *bool
		if c.SecurityContext != nil && c.SecurityContext.WindowsOptions != nil {
			ctrHostProcess = c.SecurityContext.WindowsOptions.HostProcess
		}
		if podHostProcess != nil && ctrHostProcess != nil && *podHostProcess != *ctrHostProcess {
			allErrs = append(allErrs, field.Invalid(path.Child("securityContext", "windowsOptions", "hostProcess"), *ctrHostProcess,
				fmt.Sprintf("pod hostProcess value must be identical if both are specified, was %v", *podHostProcess)))
		}
		if (ctrHostProcess != nil && *ctrHostProcess) || (ctrHostProcess == nil && podHostProcess != nil && *podHostProcess) {
			hostProcess++
		}
	})
	if hostProcess == 0 {
		return allErrs
	}
	if hostProcess != containers {
		allErrs = append(allErrs, field.Invalid(fldPath, "", "If pod contains any hostProcess containers then all containers must be HostProcess containers"))
	}
	if !v.spec.HostNetwork {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("hostNetwork"), v.spec.HostNetwork, "hostNetwork must be true if pod contains any hostProcess containers"))
	}
	if !podAllowPrivileged {
		allErrs = append(allErrs, field.Forbidden(fldPath, "hostProcess containers are disallowed by cluster policy"))
	}
	return allErrs
}

func (v *podSpecValidator) validateResourceClaims(fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	names := sets.New[string]()
	for i, claim := range v.spec.ResourceClaims {
		path := fldPath.Index(i)
		switch {
		case claim.Name == "":
			allErrs = append(allErrs, field.Required(path.Child("name"), ""))
		case names.Has(claim.Name):
			allErrs = append(allErrs, field.Duplicate(path.Child("name"), claim.Name))
		default:
			allErrs = append(allErrs, podDNSLabelErrs(claim.Name, path.Child("name"))...)
			names.Insert(claim.Name)
		}
		if claim.ResourceClaimName != nil && claim.ResourceClaimTemplateName != nil {
			allErrs = append(allErrs, field.Invalid(path, claim, "at most one of `resourceClaimName` or `resourceClaimTemplateName` may be specified"))
		}
		if claim.ResourceClaimName == nil && claim.ResourceClaimTemplateName == nil {
			allErrs = append(allErrs, field.Invalid(path, claim, "must specify one of: `resourceClaimName`, `resourceClaimTemplateName`"))
		}
		if n := claim.ResourceClaimName; n != nil {
			allErrs = append(allErrs, podInvalidAll(path.Child("resourceClaimName"), *n, apivalidation.NameIsDNSSubdomain(*n, false))...)
		}
		if n := claim.ResourceClaimTemplateName; n != nil {
			allErrs = append(allErrs, podInvalidAll(path.Child("resourceClaimTemplateName"), *n, apivalidation.NameIsDNSSubdomain(*n, false))...)
		}
	}
	return allErrs
}

// validatePodResources checks pod-level resources (beta, on by default): names the pod level
// supports, and consistency with what the containers ask for.
func (v *podSpecValidator) validatePodResources(fldPath *field.Path) field.ErrorList {
	r := v.spec.Resources
	if r == nil {
		return nil
	}
	var allErrs field.ErrorList
	if r.Claims != nil {
		allErrs = append(allErrs, field.Forbidden(fldPath.Child("claims"), "claims cannot be set for Resources at pod-level"))
	}
	allErrs = append(allErrs, v.validateResourceRequirements(r, validatePodLevelResourceName, fldPath)...)

	reqPath := fldPath.Child("requests")
	need := aggregatePodContainerResources(v.spec, containerRequests)
	for _, name := range sets.List(sets.KeySet(need)) {
		need, have := need[name], r.Requests[name]
		if need.Cmp(have) > 0 {
			allErrs = append(allErrs, field.Invalid(reqPath.Key(string(name)), have.String(),
				fmt.Sprintf("must be greater than or equal to aggregate container requests of %s", need.String())))
		}
	}
	for i, c := range v.spec.Containers {
		for name, limit := range c.Resources.Limits {
			podLimit, ok := r.Limits[name]
			if ok && limit.Cmp(podLimit) > 0 {
				allErrs = append(allErrs, field.Invalid(fldPath.Child("containers").Index(i).Key(string(name)).Child("limits"), limit.String(),
					fmt.Sprintf("must be less than or equal to pod limits of %s", podLimit.String())))
			}
		}
	}
	return allErrs
}

func validatePodLevelResourceName(name corev1.ResourceName, fldPath *field.Path) field.ErrorList {
	if errs := validateComputeResourceName(name, fldPath); len(errs) != 0 {
		return errs
	}
	if name != corev1.ResourceCPU && name != corev1.ResourceMemory && !isHugePageResource(name) {
		return field.ErrorList{field.NotSupported(fldPath, name, []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory})}
	}
	return nil
}
