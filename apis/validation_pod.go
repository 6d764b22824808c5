package apis

// Pod validation, as upstream's API server does it (pkg/apis/core/validation), with the same
// field paths, error types and details, so that a rejected request reads word for word like
// upstream's. The feature-dependent rules are those of a 1.37 API server with default gates.
//
// Files: this one holds the entry points, metadata and pod-wide spec rules;
// validation_pod_container.go the containers, validation_pod_volume.go the volumes,
// validation_pod_scheduling.go affinity, tolerations and spreading,
// validation_pod_update.go updates, status updates and bindings.

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidatePod checks a new pod as upstream's create validation does.
func ValidatePod(pod *corev1.Pod) field.ErrorList {
	allErrs := validatePodMetadataAndSpec(pod)
	specPath := field.NewPath("spec")
	// Ephemeral containers are only ever added through the ephemeralcontainers subresource.
	if len(pod.Spec.EphemeralContainers) > 0 {
		allErrs = append(allErrs, field.Forbidden(specPath.Child("ephemeralContainers"), "cannot be set on create"))
	}
	if pod.Spec.NodeName != "" && len(pod.Spec.SchedulingGates) != 0 {
		allErrs = append(allErrs, field.Forbidden(specPath.Child("nodeName"), "cannot be set until all schedulingGates have been cleared"))
	}
	allErrs = append(allErrs, validatePodSeccompAnnotationsMatchFields(pod.ObjectMeta, &pod.Spec, specPath)...)
	allErrs = append(allErrs, validatePodAppArmorAnnotationsMatchFields(pod.ObjectMeta, &pod.Spec, specPath)...)
	return allErrs
}

// ValidatePodTemplateSpec checks a pod template (in a ReplicaSet) at fldPath.
//
// Errors are reported under fldPath the way upstream does: fldPath.labels, fldPath.annotations
// and fldPath.spec.… (spec.template.spec.containers[0].image). Rules that belong to the owner
// are its caller's: a ReplicaSet adds that spec.template.spec.restartPolicy must be Always
// (field.NotSupported with []string{"Always"}) and that the selector matches the labels.
func ValidatePodTemplateSpec(spec *corev1.PodTemplateSpec, fldPath *field.Path) field.ErrorList {
	allErrs := metav1validation.ValidateLabels(spec.Labels, fldPath.Child("labels"))
	allErrs = append(allErrs, apivalidation.ValidateAnnotations(spec.Annotations, fldPath.Child("annotations"))...)
	allErrs = append(allErrs, validatePodAnnotations(spec.Annotations, &spec.Spec, fldPath.Child("annotations"))...)
	specPath := fldPath.Child("spec")
	allErrs = append(allErrs, validatePodSpec(&spec.Spec, nil, specPath, false)...)
	allErrs = append(allErrs, validatePodSeccompAnnotationsMatchFields(spec.ObjectMeta, &spec.Spec, specPath)...)
	allErrs = append(allErrs, validatePodAppArmorAnnotationsMatchFields(spec.ObjectMeta, &spec.Spec, specPath)...)
	if len(spec.Spec.EphemeralContainers) > 0 {
		allErrs = append(allErrs, field.Forbidden(specPath.Child("ephemeralContainers"), "ephemeral containers not allowed in pod template"))
	}
	return allErrs
}

// validatePodMetadataAndSpec is what create and update both check of the pod they would store.
func validatePodMetadataAndSpec(pod *corev1.Pod) field.ErrorList {
	metaPath, specPath := field.NewPath("metadata"), field.NewPath("spec")
	allErrs := ValidateObjectMeta(&pod.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, metaPath)
	allErrs = append(allErrs, validatePodAnnotations(pod.Annotations, &pod.Spec, metaPath.Child("annotations"))...)
	allErrs = append(allErrs, validatePodSpec(&pod.Spec, &pod.ObjectMeta, specPath, true)...)

	// A bound token needs an account to be issued for.
	if pod.Spec.ServiceAccountName == "" {
		for vi, volume := range pod.Spec.Volumes {
			if volume.Projected == nil {
				continue
			}
			for si, source := range volume.Projected.Sources {
				if source.ServiceAccountToken != nil {
					path := specPath.Child("volumes").Index(vi).Child("projected", "sources").Index(si).Child("serviceAccountToken")
					allErrs = append(allErrs, field.Forbidden(path, "must not be specified when serviceAccountName is not set"))
				}
			}
		}
	}
	// Only pods, not templates: some templates use " " as a placeholder image.
	for i := range pod.Spec.Containers {
		allErrs = append(allErrs, validateImageUntrimmed(&pod.Spec.Containers[i], specPath.Child("containers").Index(i))...)
	}
	for i := range pod.Spec.InitContainers {
		allErrs = append(allErrs, validateImageUntrimmed(&pod.Spec.InitContainers[i], specPath.Child("initContainers").Index(i))...)
	}
	return allErrs
}

// validatePodAnnotations checks the annotations that carry pod behaviour.
func validatePodAnnotations(annotations map[string]string, spec *corev1.PodSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if value, isMirror := annotations[corev1.MirrorPodAnnotationKey]; isMirror && spec.NodeName == "" {
		allErrs = append(allErrs, field.Invalid(fldPath.Key(corev1.MirrorPodAnnotationKey), value, "must set spec.nodeName if mirror pod annotation is set"))
	}
	if raw := annotations[corev1.TolerationsAnnotationKey]; raw != "" {
		var tolerations []corev1.Toleration
		if err := json.Unmarshal([]byte(raw), &tolerations); err != nil {
			allErrs = append(allErrs, field.Invalid(fldPath, corev1.TolerationsAnnotationKey, err.Error()))
		} else if len(tolerations) > 0 {
			allErrs = append(allErrs, validatePodTolerations(tolerations, fldPath.Child(corev1.TolerationsAnnotationKey))...)
		}
	}
	if value, ok := annotations[corev1.PodDeletionCost]; ok && !isPodDeletionCost(value) {
		allErrs = append(allErrs, field.Invalid(fldPath.Key(corev1.PodDeletionCost), value, "must be a 32bit integer"))
	}
	if p, ok := annotations[corev1.SeccompPodAnnotationKey]; ok {
		allErrs = append(allErrs, validateSeccompAnnotationProfile(p, fldPath.Child(corev1.SeccompPodAnnotationKey))...)
	}
	for k, v := range annotations {
		if strings.HasPrefix(k, corev1.SeccompContainerAnnotationKeyPrefix) {
			allErrs = append(allErrs, validateSeccompAnnotationProfile(v, fldPath.Child(k))...)
		}
		if container, ok := strings.CutPrefix(k, corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix); ok {
			if !podSpecHasContainer(spec, container) {
				allErrs = append(allErrs, field.Invalid(fldPath.Key(k), container, "container not found"))
			}
			if v != "" && v != corev1.DeprecatedAppArmorBetaProfileRuntimeDefault && v != corev1.DeprecatedAppArmorBetaProfileNameUnconfined &&
				!strings.HasPrefix(v, corev1.DeprecatedAppArmorBetaProfileNamePrefix) {
				allErrs = append(allErrs, field.Invalid(fldPath.Key(k), v, fmt.Sprintf("invalid AppArmor profile name: %q", v)))
			}
		}
	}
	return allErrs
}

// isPodDeletionCost accepts what upstream parses: a base-10 int32 without "+" or leading zeros.
func isPodDeletionCost(value string) bool {
	if value == "" || !(value[0] == '-' || value == "0" || (value[0] >= '1' && value[0] <= '9')) {
		return false
	}
	_, err := strconv.ParseInt(value, 10, 32)
	return err == nil
}

func validateSeccompAnnotationProfile(p string, fldPath *field.Path) field.ErrorList {
	switch {
	case p == corev1.SeccompProfileRuntimeDefault, p == corev1.DeprecatedSeccompProfileDockerDefault, p == corev1.SeccompProfileNameUnconfined:
		return nil
	case strings.HasPrefix(p, corev1.SeccompLocalhostProfileNamePrefix):
		return validateLocalDescendingPath(strings.TrimPrefix(p, corev1.SeccompLocalhostProfileNamePrefix), fldPath)
	}
	return field.ErrorList{field.Invalid(fldPath, p, "must be a valid seccomp profile")}
}

// validatePodSeccompAnnotationsMatchFields rejects a pod whose deprecated seccomp annotations
// say something else than its seccompProfile fields.
func validatePodSeccompAnnotationsMatchFields(meta metav1.ObjectMeta, spec *corev1.PodSpec, specPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if spec.SecurityContext != nil && spec.SecurityContext.SeccompProfile != nil {
		if annotation, ok := meta.Annotations[corev1.SeccompPodAnnotationKey]; ok {
			if err := seccompAnnotationMatchesField(annotation, spec.SecurityContext.SeccompProfile, specPath.Child("securityContext", "seccompProfile")); err != nil {
				allErrs = append(allErrs, err)
			}
		}
	}
	visitPodContainers(spec, specPath, func(c *corev1.Container, path *field.Path) {
		if c.SecurityContext == nil || c.SecurityContext.SeccompProfile == nil {
			return
		}
		if annotation, ok := meta.Annotations[corev1.SeccompContainerAnnotationKeyPrefix+c.Name]; ok {
			if err := seccompAnnotationMatchesField(annotation, c.SecurityContext.SeccompProfile, path.Child("securityContext", "seccompProfile")); err != nil {
				allErrs = append(allErrs, err)
			}
		}
	})
	return allErrs
}

func seccompAnnotationMatchesField(annotation string, profile *corev1.SeccompProfile, fldPath *field.Path) *field.Error {
	switch profile.Type {
	case corev1.SeccompProfileTypeUnconfined:
		if annotation != corev1.SeccompProfileNameUnconfined {
			return field.Forbidden(fldPath.Child("type"), "seccomp type in annotation and field must match")
		}
	case corev1.SeccompProfileTypeRuntimeDefault:
		if annotation != corev1.SeccompProfileRuntimeDefault && annotation != corev1.DeprecatedSeccompProfileDockerDefault {
			return field.Forbidden(fldPath.Child("type"), "seccomp type in annotation and field must match")
		}
	case corev1.SeccompProfileTypeLocalhost:
		if !strings.HasPrefix(annotation, corev1.SeccompLocalhostProfileNamePrefix) {
			return field.Forbidden(fldPath.Child("type"), "seccomp type in annotation and field must match")
		} else if profile.LocalhostProfile == nil || strings.TrimPrefix(annotation, corev1.SeccompLocalhostProfileNamePrefix) != *profile.LocalhostProfile {
			return field.Forbidden(fldPath.Child("localhostProfile"), "seccomp profile in annotation and field must match")
		}
	}
	return nil
}

// validatePodAppArmorAnnotationsMatchFields is the AppArmor twin of the seccomp rule above;
// Windows pods are exempt.
func validatePodAppArmorAnnotationsMatchFields(meta metav1.ObjectMeta, spec *corev1.PodSpec, specPath *field.Path) field.ErrorList {
	if spec.OS != nil && spec.OS.Name == corev1.Windows {
		return nil
	}
	var podProfile *corev1.AppArmorProfile
	if spec.SecurityContext != nil {
		podProfile = spec.SecurityContext.AppArmorProfile
	}
	var allErrs field.ErrorList
	visitPodContainers(spec, specPath, func(c *corev1.Container, path *field.Path) {
		profile := podProfile
		if c.SecurityContext != nil && c.SecurityContext.AppArmorProfile != nil {
			profile = c.SecurityContext.AppArmorProfile
		}
		annotation, found := meta.Annotations[corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix+c.Name]
		if profile == nil || !found {
			return
		}
		apparmorPath := path.Child("securityContext", "appArmorProfile")
		switch profile.Type {
		case corev1.AppArmorProfileTypeUnconfined:
			if annotation != corev1.DeprecatedAppArmorBetaProfileNameUnconfined {
				allErrs = append(allErrs, field.Forbidden(apparmorPath.Child("type"), "apparmor type in annotation and field must match"))
			}
		case corev1.AppArmorProfileTypeRuntimeDefault:
			if annotation != corev1.DeprecatedAppArmorBetaProfileRuntimeDefault {
				allErrs = append(allErrs, field.Forbidden(apparmorPath.Child("type"), "apparmor type in annotation and field must match"))
			}
		case corev1.AppArmorProfileTypeLocalhost:
			if !strings.HasPrefix(annotation, corev1.DeprecatedAppArmorBetaProfileNamePrefix) {
				allErrs = append(allErrs, field.Forbidden(apparmorPath.Child("type"), "apparmor type in annotation and field must match"))
			} else if profile.LocalhostProfile == nil || strings.TrimPrefix(annotation, corev1.DeprecatedAppArmorBetaProfileNamePrefix) != *profile.LocalhostProfile {
				allErrs = append(allErrs, field.Forbidden(apparmorPath.Child("localhostProfile"), "apparmor profile in annotation and field must match"))
			}
		}
	})
	return allErrs
}

// visitPodContainers calls visit for every init, regular and ephemeral container, in that
// order, with its path.
func visitPodContainers(spec *corev1.PodSpec, specPath *field.Path, visit func(*corev1.Container, *field.Path)) {
	for i := range spec.InitContainers {
		visit(&spec.InitContainers[i], specPath.Child("initContainers").Index(i))
	}
	for i := range spec.Containers {
		visit(&spec.Containers[i], specPath.Child("containers").Index(i))
	}
	for i := range spec.EphemeralContainers {
		visit((*corev1.Container)(&spec.EphemeralContainers[i].EphemeralContainerCommon), specPath.Child("ephemeralContainers").Index(i))
	}
}

func podSpecHasContainer(spec *corev1.PodSpec, name string) bool {
	found := false
	visitPodContainers(spec, field.NewPath("spec"), func(c *corev1.Container, _ *field.Path) {
		found = found || c.Name == name
	})
	return found
}

// podSpecValidator carries what the rules for one spec share: which volumes and claims exist,
// whether the spec is a pod's (stricter) or a template's.
type podSpecValidator struct {
	spec       *corev1.PodSpec
	meta       *metav1.ObjectMeta // the pod's, for ephemeral volume claim names; nil in templates
	isPod      bool
	volumes    map[string]corev1.VolumeSource
	claimNames sets.Set[string]
	hostUsers  bool
}

// validatePodSpec is upstream's ValidatePodSpec.
func validatePodSpec(spec *corev1.PodSpec, meta *metav1.ObjectMeta, fldPath *field.Path, isPod bool) field.ErrorList {
	v := &podSpecValidator{spec: spec, meta: meta, isPod: isPod, claimNames: sets.New[string]()}
	// hostUsers defaults to true; only an explicit false puts the pod in a user namespace.
	v.hostUsers = spec.HostUsers == nil || *spec.HostUsers
	for _, claim := range spec.ResourceClaims {
		if claim.Name != "" {
			v.claimNames.Insert(claim.Name)
		}
	}

	var allErrs field.ErrorList
	if spec.TerminationGracePeriodSeconds == nil {
		allErrs = append(allErrs, field.Required(fldPath.Child("terminationGracePeriodSeconds"), ""))
	}
	var volErrs field.ErrorList
	v.volumes, volErrs = v.validateVolumes(fldPath.Child("volumes"))
	allErrs = append(allErrs, volErrs...)
	allErrs = append(allErrs, v.validateResourceClaims(fldPath.Child("resourceClaims"))...)
	allErrs = append(allErrs, v.validateContainers(fldPath.Child("containers"))...)
	allErrs = append(allErrs, v.validateInitContainers(fldPath.Child("initContainers"))...)
	allErrs = append(allErrs, v.validateEphemeralContainers(fldPath.Child("ephemeralContainers"))...)
	allErrs = append(allErrs, v.validatePodResources(fldPath.Child("resources"))...)
	allErrs = append(allErrs, v.validateHostNetworkPorts(fldPath)...)
	allErrs = append(allErrs, validatePodRestartPolicy(spec.RestartPolicy, fldPath.Child("restartPolicy"))...)
	allErrs = append(allErrs, validatePodDNSPolicy(spec.DNSPolicy, fldPath.Child("dnsPolicy"))...)
	allErrs = append(allErrs, metav1validation.ValidateLabels(spec.NodeSelector, fldPath.Child("nodeSelector"))...)
	allErrs = append(allErrs, v.validatePodSecurityContext(fldPath.Child("securityContext"))...)
	allErrs = append(allErrs, validateImagePullSecrets(spec.ImagePullSecrets, fldPath.Child("imagePullSecrets"))...)
	allErrs = append(allErrs, validatePodAffinity(spec.Affinity, fldPath.Child("affinity"))...)
	allErrs = append(allErrs, validatePodDNSConfig(spec.DNSConfig, spec.DNSPolicy, fldPath.Child("dnsConfig"))...)
	for i, gate := range spec.ReadinessGates {
		path := fldPath.Child("readinessGates").Index(i).Child("conditionType")
		allErrs = append(allErrs, podQualifiedNameErrs(string(gate.ConditionType), path)...)
	}
	allErrs = append(allErrs, validateSchedulingGates(spec.SchedulingGates, fldPath.Child("schedulingGates"))...)
	allErrs = append(allErrs, validateTopologySpreadConstraints(spec.TopologySpreadConstraints, fldPath.Child("topologySpreadConstraints"))...)
	allErrs = append(allErrs, v.validateWindowsHostProcess(fldPath)...)
	allErrs = append(allErrs, validateHostUsers(spec, fldPath)...)
	if spec.ServiceAccountName != "" {
		allErrs = append(allErrs, podSubdomainErrs(spec.ServiceAccountName, fldPath.Child("serviceAccountName"))...)
	}
	if spec.NodeName != "" {
		allErrs = append(allErrs, podSubdomainErrs(spec.NodeName, fldPath.Child("nodeName"))...)
	}
	if spec.ActiveDeadlineSeconds != nil {
		if value := *spec.ActiveDeadlineSeconds; value < 1 || value > math.MaxInt32 {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("activeDeadlineSeconds"), value, validation.InclusiveRangeError(1, math.MaxInt32)))
		}
	}
	if spec.Hostname != "" {
		allErrs = append(allErrs, podDNSLabelErrs(spec.Hostname, fldPath.Child("hostname"))...)
	}
	if spec.Subdomain != "" {
		allErrs = append(allErrs, podDNSLabelErrs(spec.Subdomain, fldPath.Child("subdomain"))...)
	}
	if len(spec.Tolerations) > 0 {
		allErrs = append(allErrs, validatePodTolerations(spec.Tolerations, fldPath.Child("tolerations"))...)
	}
	for i, alias := range spec.HostAliases {
		allErrs = append(allErrs, validation.IsValidIP(fldPath.Child("hostAliases").Index(i).Child("ip"), alias.IP)...)
		for j, hostname := range alias.Hostnames {
			allErrs = append(allErrs, podSubdomainErrs(hostname, fldPath.Child("hostAliases").Index(i).Child("hostnames").Index(j))...)
		}
	}
	if spec.PriorityClassName != "" {
		allErrs = append(allErrs, podSubdomainErrs(spec.PriorityClassName, fldPath.Child("priorityClassName"))...)
	}
	if spec.RuntimeClassName != nil {
		allErrs = append(allErrs, podSubdomainErrs(*spec.RuntimeClassName, fldPath.Child("runtimeClassName"))...)
	}
	if spec.PreemptionPolicy != nil {
		switch p := *spec.PreemptionPolicy; p {
		case corev1.PreemptLowerPriority, corev1.PreemptNever:
		case "":
			allErrs = append(allErrs, field.Required(fldPath.Child("preemptionPolicy"), ""))
		default:
			allErrs = append(allErrs, field.NotSupported(fldPath.Child("preemptionPolicy"), p, []corev1.PreemptionPolicy{corev1.PreemptLowerPriority, corev1.PreemptNever}))
		}
	}
	if spec.Overhead != nil {
		overhead := &corev1.ResourceRequirements{Limits: spec.Overhead}
		allErrs = append(allErrs, v.validateResourceRequirements(overhead, validateContainerResourceName, fldPath.Child("overhead"))...)
	}
	if spec.OS != nil {
		allErrs = append(allErrs, validatePodOS(spec, fldPath)...)
	}
	return allErrs
}

func validatePodRestartPolicy(policy corev1.RestartPolicy, fldPath *field.Path) field.ErrorList {
	switch policy {
	case corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever:
		return nil
	case "":
		return field.ErrorList{field.Required(fldPath, "")}
	}
	return field.ErrorList{field.NotSupported(fldPath, policy, []corev1.RestartPolicy{corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever})}
}

func validatePodDNSPolicy(policy corev1.DNSPolicy, fldPath *field.Path) field.ErrorList {
	switch policy {
	case corev1.DNSClusterFirstWithHostNet, corev1.DNSClusterFirst, corev1.DNSDefault, corev1.DNSNone:
		return nil
	case "":
		return field.ErrorList{field.Required(fldPath, "")}
	}
	return field.ErrorList{field.NotSupported(fldPath, policy, []corev1.DNSPolicy{corev1.DNSClusterFirstWithHostNet, corev1.DNSClusterFirst, corev1.DNSDefault, corev1.DNSNone})}
}

// Limits of the libc resolver, which the kubelet writes resolv.conf for.
const (
	podMaxDNSNameservers     = 3
	podMaxDNSSearchPaths     = 32
	podMaxDNSSearchListChars = 2048
)

func validatePodDNSConfig(config *corev1.PodDNSConfig, policy corev1.DNSPolicy, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if policy == corev1.DNSNone {
		if config == nil {
			return field.ErrorList{field.Required(fldPath, fmt.Sprintf("must provide `dnsConfig` when `dnsPolicy` is %s", corev1.DNSNone))}
		}
		if len(config.Nameservers) == 0 {
			return field.ErrorList{field.Required(fldPath.Child("nameservers"), fmt.Sprintf("must provide at least one DNS nameserver when `dnsPolicy` is %s", corev1.DNSNone))}
		}
	}
	if config == nil {
		return nil
	}
	if len(config.Nameservers) > podMaxDNSNameservers {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("nameservers"), config.Nameservers, fmt.Sprintf("must not have more than %v nameservers", podMaxDNSNameservers)))
	}
	for i, ns := range config.Nameservers {
		allErrs = append(allErrs, validation.IsValidIP(fldPath.Child("nameservers").Index(i), ns)...)
	}
	if len(config.Searches) > podMaxDNSSearchPaths {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("searches"), config.Searches, fmt.Sprintf("must not have more than %v search paths", podMaxDNSSearchPaths)))
	}
	if len(strings.Join(config.Searches, " ")) > podMaxDNSSearchListChars {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("searches"), config.Searches, fmt.Sprintf("must not have more than %v characters (including spaces) in the search list", podMaxDNSSearchListChars)))
	}
	// The relaxed rule (GA): "." alone is allowed, and underscores, as DNS-SD names use them.
	for i, search := range config.Searches {
		if search == "." {
			continue
		}
		search = strings.TrimSuffix(search, ".")
		allErrs = append(allErrs, podInvalidAll(fldPath.Child("searches").Index(i), search, validation.IsDNS1123SubdomainWithUnderscore(search))...)
	}
	for i, option := range config.Options {
		if option.Name == "" {
			allErrs = append(allErrs, field.Required(fldPath.Child("options").Index(i), "must not be empty"))
		}
	}
	return allErrs
}

func validateImagePullSecrets(secrets []corev1.LocalObjectReference, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i, secret := range secrets {
		if secret != (corev1.LocalObjectReference{Name: secret.Name}) {
			allErrs = append(allErrs, field.Invalid(fldPath.Index(i), secret, "only name may be set"))
		}
	}
	return allErrs
}

func validateSchedulingGates(gates []corev1.PodSchedulingGate, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	seen := sets.New[string]()
	for i, gate := range gates {
		allErrs = append(allErrs, podQualifiedNameErrs(gate.Name, fldPath.Index(i))...)
		if seen.Has(gate.Name) {
			allErrs = append(allErrs, field.Duplicate(fldPath.Index(i), gate.Name))
		}
		seen.Insert(gate.Name)
	}
	return allErrs
}

// validateHostUsers keeps user-namespaced pods out of the host's other namespaces.
func validateHostUsers(spec *corev1.PodSpec, fldPath *field.Path) field.ErrorList {
	if spec.HostUsers == nil || *spec.HostUsers {
		return nil
	}
	var allErrs field.ErrorList
	if spec.HostNetwork {
		allErrs = append(allErrs, field.Forbidden(fldPath.Child("hostNetwork"), "when `pod.Spec.HostUsers` is false"))
	}
	if spec.HostPID {
		allErrs = append(allErrs, field.Forbidden(fldPath.Child("HostPID"), "when `pod.Spec.HostUsers` is false"))
	}
	if spec.HostIPC {
		allErrs = append(allErrs, field.Forbidden(fldPath.Child("HostIPC"), "when `pod.Spec.HostUsers` is false"))
	}
	return allErrs
}

// validateHostNetworkPorts: with hostNetwork the host port is the container port. A template
// may leave it 0 (its pods get it defaulted); a pod may not.
func (v *podSpecValidator) validateHostNetworkPorts(fldPath *field.Path) field.ErrorList {
	if !v.spec.HostNetwork {
		return nil
	}
	var allErrs field.ErrorList
	for i, c := range v.spec.Containers {
		for j, port := range c.Ports {
			if hp, cp := port.HostPort, port.ContainerPort; (v.isPod || hp != 0) && hp != cp {
				allErrs = append(allErrs, field.Invalid(fldPath.Child("containers").Index(i).Child("ports").Index(j).Child("hostPort"), port.HostPort, "must match `containerPort` when `hostNetwork` is true"))
			}
		}
	}
	return allErrs
}

var podValidOSNames = []corev1.OSName{corev1.Linux, corev1.Windows}

// validatePodOS checks spec.os and, once it names an OS, the fields that OS cannot honour.
func validatePodOS(spec *corev1.PodSpec, fldPath *field.Path) field.ErrorList {
	osPath := fldPath.Child("os")
	switch spec.OS.Name {
	case "":
		return field.ErrorList{field.Required(osPath.Child("name"), "cannot be empty")}
	case corev1.Linux:
		return validateLinuxPod(spec, fldPath)
	case corev1.Windows:
		return validateWindowsPod(spec, fldPath)
	}
	return field.ErrorList{field.NotSupported(osPath, spec.OS.Name, podValidOSNames)}
}

func validateLinuxPod(spec *corev1.PodSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if sc := spec.SecurityContext; sc != nil && sc.WindowsOptions != nil {
		allErrs = append(allErrs, field.Forbidden(fldPath.Child("securityContext", "windowsOptions"), "windows options cannot be set for a linux pod"))
	}
	visitPodContainers(spec, fldPath, func(c *corev1.Container, path *field.Path) {
		if c.SecurityContext != nil && c.SecurityContext.WindowsOptions != nil {
			allErrs = append(allErrs, field.Forbidden(path.Child("securityContext", "windowsOptions"), "windows options cannot be set for a linux pod"))
		}
	})
	return allErrs
}

func validateWindowsPod(spec *corev1.PodSpec, fldPath *field.Path) field.ErrorList {
	const notOnWindows = "cannot be set for a windows pod"
	var allErrs field.ErrorList
	forbid := func(set bool, path *field.Path) {
		if set {
			allErrs = append(allErrs, field.Forbidden(path, notOnWindows))
		}
	}
	scPath := fldPath.Child("securityContext")
	if sc := spec.SecurityContext; sc != nil {
		forbid(sc.AppArmorProfile != nil, scPath.Child("appArmorProfile"))
		forbid(sc.SELinuxOptions != nil, scPath.Child("seLinuxOptions"))
	}
	forbid(spec.HostUsers != nil, fldPath.Child("hostUsers"))
	forbid(spec.HostPID, fldPath.Child("hostPID"))
	forbid(spec.HostIPC, fldPath.Child("hostIPC"))
	if sc := spec.SecurityContext; sc != nil {
		forbid(sc.SeccompProfile != nil, scPath.Child("seccompProfile"))
		forbid(sc.FSGroup != nil, scPath.Child("fsGroup"))
		forbid(sc.FSGroupChangePolicy != nil, scPath.Child("fsGroupChangePolicy"))
		forbid(len(sc.Sysctls) > 0, scPath.Child("sysctls"))
	}
	forbid(spec.ShareProcessNamespace != nil, fldPath.Child("shareProcessNamespace"))
	if sc := spec.SecurityContext; sc != nil {
		forbid(sc.RunAsUser != nil, scPath.Child("runAsUser"))
		forbid(sc.RunAsGroup != nil, scPath.Child("runAsGroup"))
		forbid(sc.SupplementalGroups != nil, scPath.Child("supplementalGroups"))
		forbid(sc.SupplementalGroupsPolicy != nil, scPath.Child("supplementalGroupsPolicy"))
		forbid(sc.SELinuxChangePolicy != nil, scPath.Child("seLinuxChangePolicy"))
	}
	visitPodContainers(spec, fldPath, func(c *corev1.Container, path *field.Path) {
		sc := c.SecurityContext
		if sc == nil {
			return
		}
		p := path.Child("securityContext")
		forbid(sc.AppArmorProfile != nil, p.Child("appArmorProfile"))
		forbid(sc.SELinuxOptions != nil, p.Child("seLinuxOptions"))
		forbid(sc.SeccompProfile != nil, p.Child("seccompProfile"))
		forbid(sc.Capabilities != nil, p.Child("capabilities"))
		forbid(sc.ReadOnlyRootFilesystem != nil, p.Child("readOnlyRootFilesystem"))
		forbid(sc.Privileged != nil, p.Child("privileged"))
		forbid(sc.AllowPrivilegeEscalation != nil, p.Child("allowPrivilegeEscalation"))
		forbid(sc.ProcMount != nil, p.Child("procMount"))
		forbid(sc.RunAsUser != nil, p.Child("runAsUser"))
		forbid(sc.RunAsGroup != nil, p.Child("runAsGroup"))
	})
	return allErrs
}

// Small helpers shared by the pod rules.

// podInvalidAll turns the messages of a k8s.io/apimachinery/pkg/util/validation check into
// Invalid errors at one path.
func podInvalidAll(fldPath *field.Path, value any, msgs []string) field.ErrorList {
	var allErrs field.ErrorList
	for _, msg := range msgs {
		allErrs = append(allErrs, field.Invalid(fldPath, value, msg))
	}
	return allErrs
}

func podDNSLabelErrs(value string, fldPath *field.Path) field.ErrorList {
	return podInvalidAll(fldPath, value, validation.IsDNS1123Label(value))
}

// podSubdomainErrs is the rule for names of objects: a DNS subdomain (service accounts,
// nodes, classes, host aliases).
func podSubdomainErrs(value string, fldPath *field.Path) field.ErrorList {
	return podInvalidAll(fldPath, value, validation.IsDNS1123Subdomain(value))
}

func podQualifiedNameErrs(value string, fldPath *field.Path) field.ErrorList {
	return podInvalidAll(fldPath, value, validation.IsQualifiedName(value))
}
