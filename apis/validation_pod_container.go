package apis

// Container rules: names, images, ports, environment, mounts, probes and lifecycle hooks,
// resources and security contexts, for regular, init and ephemeral containers.

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// podAllowPrivileged is the API server's --allow-privileged. Upstream's flag defaults to
// false, but every cluster installer sets it and the conformance suite needs it.
var podAllowPrivileged = true

func (v *podSpecValidator) validateContainers(fldPath *field.Path) field.ErrorList {
	containers := v.spec.Containers
	if len(containers) == 0 {
		return field.ErrorList{field.Required(fldPath, "")}
	}
	var allErrs field.ErrorList
	names := sets.New[string]()
	for i := range containers {
		c, path := &containers[i], fldPath.Index(i)
		allErrs = append(allErrs, v.validateContainerCommon(c, path)...)
		// Collisions with init and ephemeral containers are reported on those.
		if names.Has(c.Name) {
			allErrs = append(allErrs, field.Duplicate(path.Child("name"), c.Name))
		} else {
			names.Insert(c.Name)
		}
		if c.Lifecycle != nil {
			allErrs = append(allErrs, v.validateLifecycle(c.Lifecycle, path.Child("lifecycle"))...)
		}
		allErrs = append(allErrs, v.validateProbes(c, path)...)
		if c.RestartPolicy != nil {
			allErrs = append(allErrs, field.Forbidden(path.Child("restartPolicy"), "may not be set for non-init containers"))
		}
	}
	// Regular containers run together, so their host ports must not collide.
	return append(allErrs, checkPodHostPortConflicts(containers, fldPath)...)
}

func (v *podSpecValidator) validateInitContainers(fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	names := sets.New[string]()
	for _, c := range v.spec.Containers {
		names.Insert(c.Name)
	}
	for i := range v.spec.InitContainers {
		c, path := &v.spec.InitContainers[i], fldPath.Index(i)
		allErrs = append(allErrs, v.validateContainerCommon(c, path)...)

		sidecar := false
		if c.RestartPolicy != nil {
			if *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
				allErrs = append(allErrs, field.NotSupported(path.Child("restartPolicy"), *c.RestartPolicy, []corev1.ContainerRestartPolicy{corev1.ContainerRestartPolicyAlways}))
			}
			sidecar = *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		}
		if names.Has(c.Name) {
			allErrs = append(allErrs, field.Duplicate(path.Child("name"), c.Name))
		} else if c.Name != "" {
			names.Insert(c.Name)
		}
		// Init containers run one at a time: only ports within one can collide.
		allErrs = append(allErrs, checkPodHostPortConflicts([]corev1.Container{*c}, fldPath)...)

		// A sidecar (restartPolicy Always) keeps running beside the app, so it may have hooks
		// and probes; an init container that runs to completion may not.
		if sidecar {
			if c.Lifecycle != nil {
				allErrs = append(allErrs, v.validateLifecycle(c.Lifecycle, path.Child("lifecycle"))...)
			}
			allErrs = append(allErrs, v.validateProbes(c, path)...)
		} else {
			const notInit = "may not be set for init containers without restartPolicy=Always"
			if c.Lifecycle != nil {
				allErrs = append(allErrs, field.Forbidden(path.Child("lifecycle"), notInit))
			}
			if c.LivenessProbe != nil {
				allErrs = append(allErrs, field.Forbidden(path.Child("livenessProbe"), notInit))
			}
			if c.ReadinessProbe != nil {
				allErrs = append(allErrs, field.Forbidden(path.Child("readinessProbe"), notInit))
			}
			if c.StartupProbe != nil {
				allErrs = append(allErrs, field.Forbidden(path.Child("startupProbe"), notInit))
			}
		}
	}
	return allErrs
}

// The fields an ephemeral (debug) container may set: nothing the pod's own services would
// rely on, like ports, probes or resources.
var podEphemeralContainerFields = sets.New("Name", "Image", "Command", "Args", "WorkingDir", "EnvFrom", "Env",
	"VolumeMounts", "VolumeDevices", "TerminationMessagePath", "TerminationMessagePolicy", "ImagePullPolicy",
	"SecurityContext", "Stdin", "StdinOnce", "TTY")

func (v *podSpecValidator) validateEphemeralContainers(fldPath *field.Path) field.ErrorList {
	if len(v.spec.EphemeralContainers) == 0 {
		return nil
	}
	var allErrs field.ErrorList
	others, all := sets.New[string](), sets.New[string]()
	for _, c := range v.spec.Containers {
		others.Insert(c.Name)
	}
	for _, c := range v.spec.InitContainers {
		others.Insert(c.Name)
	}
	all.Insert(others.UnsortedList()...)
	for i := range v.spec.EphemeralContainers {
		ec, path := &v.spec.EphemeralContainers[i], fldPath.Index(i)
		c := (*corev1.Container)(&ec.EphemeralContainerCommon)
		allErrs = append(allErrs, v.validateContainerCommon(c, path)...)
		allErrs = append(allErrs, validateImageUntrimmed(c, path)...)
		if all.Has(ec.Name) {
			allErrs = append(allErrs, field.Duplicate(path.Child("name"), ec.Name))
		} else {
			all.Insert(ec.Name)
		}
		if ec.TargetContainerName != "" && !others.Has(ec.TargetContainerName) {
			allErrs = append(allErrs, field.NotFound(path.Child("targetContainerName"), ec.TargetContainerName))
		}
		rv := reflect.ValueOf(ec.EphemeralContainerCommon)
		for f := 0; f < rv.NumField(); f++ {
			name := rv.Type().Field(f).Name
			if !podEphemeralContainerFields.Has(name) && !rv.Field(f).IsZero() {
				r, n := utf8.DecodeRuneInString(name)
				allErrs = append(allErrs, field.Forbidden(path.Child(string(unicode.ToLower(r))+name[n:]), "cannot be set for an Ephemeral Container"))
			}
		}
		// Sub-path mounts are bind mounts that outlive the container.
		for j, m := range ec.VolumeMounts {
			if m.SubPath != "" {
				allErrs = append(allErrs, field.Forbidden(path.Child("volumeMounts").Index(j).Child("subPath"), "cannot be set for an Ephemeral Container"))
			}
			if m.SubPathExpr != "" {
				allErrs = append(allErrs, field.Forbidden(path.Child("volumeMounts").Index(j).Child("subPathExpr"), "cannot be set for an Ephemeral Container"))
			}
		}
	}
	return allErrs
}

// validateImageUntrimmed is a pod-only rule: templates may use " " as a placeholder image.
func validateImageUntrimmed(c *corev1.Container, path *field.Path) field.ErrorList {
	if len(c.Image) != len(strings.TrimSpace(c.Image)) {
		return field.ErrorList{field.Invalid(path.Child("image"), c.Image, "must not have leading or trailing whitespace")}
	}
	return nil
}

// validateContainerCommon is what every kind of container must satisfy.
func (v *podSpecValidator) validateContainerCommon(c *corev1.Container, path *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if c.Name == "" {
		allErrs = append(allErrs, field.Required(path.Child("name"), ""))
	} else {
		allErrs = append(allErrs, podDNSLabelErrs(c.Name, path.Child("name"))...)
	}
	// Blank-but-not-empty images are a pod-only error (validateImageUntrimmed).
	if c.Image == "" {
		allErrs = append(allErrs, field.Required(path.Child("image"), ""))
	}
	switch c.TerminationMessagePolicy {
	case corev1.TerminationMessageReadFile, corev1.TerminationMessageFallbackToLogsOnError:
	case "":
		allErrs = append(allErrs, field.Required(path.Child("terminationMessagePolicy"), ""))
	default:
		allErrs = append(allErrs, field.NotSupported(path.Child("terminationMessagePolicy"), c.TerminationMessagePolicy,
			[]corev1.TerminationMessagePolicy{corev1.TerminationMessageReadFile, corev1.TerminationMessageFallbackToLogsOnError}))
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	devices := map[string]string{}
	for _, d := range c.VolumeDevices {
		devices[d.Name] = d.DevicePath
	}
	allErrs = append(allErrs, validateContainerPorts(c.Ports, path.Child("ports"))...)
	allErrs = append(allErrs, validateContainerEnv(c.Env, path.Child("env"))...)
	allErrs = append(allErrs, validateContainerEnvFrom(c.EnvFrom, path.Child("envFrom"))...)
	allErrs = append(allErrs, v.validateVolumeMounts(c, devices, path.Child("volumeMounts"))...)
	allErrs = append(allErrs, v.validateVolumeDevices(c.VolumeDevices, mounts, path.Child("volumeDevices"))...)
	allErrs = append(allErrs, validatePullPolicy(c.ImagePullPolicy, path.Child("imagePullPolicy"))...)
	allErrs = append(allErrs, v.validateResourceRequirements(&c.Resources, validateContainerResourceName, path.Child("resources"))...)
	allErrs = append(allErrs, v.validateResizePolicy(c.ResizePolicy, path.Child("resizePolicy"))...)
	allErrs = append(allErrs, v.validateSecurityContext(c.SecurityContext, path.Child("securityContext"))...)
	return allErrs
}

var podPortProtocols = []corev1.Protocol{corev1.ProtocolSCTP, corev1.ProtocolTCP, corev1.ProtocolUDP}

func validateContainerPorts(ports []corev1.ContainerPort, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	names := sets.New[string]()
	for i, port := range ports {
		path := fldPath.Index(i)
		if port.Name != "" {
			if msgs := validation.IsValidPortName(port.Name); len(msgs) != 0 {
				allErrs = append(allErrs, podInvalidAll(path.Child("name"), port.Name, msgs)...)
			} else if names.Has(port.Name) {
				allErrs = append(allErrs, field.Duplicate(path.Child("name"), port.Name))
			} else {
				names.Insert(port.Name)
			}
		}
		if port.ContainerPort == 0 {
			allErrs = append(allErrs, field.Required(path.Child("containerPort"), ""))
		} else {
			allErrs = append(allErrs, podInvalidAll(path.Child("containerPort"), port.ContainerPort, validation.IsValidPortNum(int(port.ContainerPort)))...)
		}
		if port.HostPort != 0 {
			allErrs = append(allErrs, podInvalidAll(path.Child("hostPort"), port.HostPort, validation.IsValidPortNum(int(port.HostPort)))...)
		}
		switch {
		case port.Protocol == "":
			allErrs = append(allErrs, field.Required(path.Child("protocol"), ""))
		case port.Protocol != corev1.ProtocolTCP && port.Protocol != corev1.ProtocolUDP && port.Protocol != corev1.ProtocolSCTP:
			allErrs = append(allErrs, field.NotSupported(path.Child("protocol"), port.Protocol, podPortProtocols))
		}
	}
	return allErrs
}

// checkPodHostPortConflicts reports a host port bound twice (same protocol and host IP).
func checkPodHostPortConflicts(containers []corev1.Container, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	seen := sets.New[string]()
	for ci, c := range containers {
		for pi, p := range c.Ports {
			if p.HostPort == 0 {
				continue
			}
			key := fmt.Sprintf("%s/%s/%d", p.Protocol, p.HostIP, p.HostPort)
			if seen.Has(key) {
				allErrs = append(allErrs, field.Duplicate(fldPath.Index(ci).Child("ports").Index(pi).Child("hostPort"), key))
			}
			seen.Insert(key)
		}
	}
	return allErrs
}

// validateContainerEnv uses the relaxed name rule (GA in 1.34): any printable ASCII but "=".
func validateContainerEnv(vars []corev1.EnvVar, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i, ev := range vars {
		path := fldPath.Index(i)
		if ev.Name == "" {
			allErrs = append(allErrs, field.Required(path.Child("name"), ""))
		} else {
			allErrs = append(allErrs, podInvalidAll(path.Child("name"), ev.Name, validation.IsRelaxedEnvVarName(ev.Name))...)
		}
		allErrs = append(allErrs, validateEnvVarValueFrom(ev, path.Child("valueFrom"))...)
	}
	return allErrs
}

// What the downward API can expose: pod fields to env vars and to volume files, and container
// resources.
var (
	podEnvFieldPaths = sets.New("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
		"spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs")
	podVolumeFieldPaths       = sets.New("metadata.name", "metadata.namespace", "metadata.labels", "metadata.annotations", "metadata.uid")
	podResourceFieldSelectors = sets.New("limits.cpu", "limits.memory", "limits.ephemeral-storage",
		"requests.cpu", "requests.memory", "requests.ephemeral-storage")
)

func validateEnvVarValueFrom(ev corev1.EnvVar, fldPath *field.Path) field.ErrorList {
	from := ev.ValueFrom
	if from == nil {
		return nil
	}
	var allErrs field.ErrorList
	sources := 0
	if from.FieldRef != nil {
		sources++
		allErrs = append(allErrs, validateObjectFieldSelector(from.FieldRef, podEnvFieldPaths, fldPath.Child("fieldRef"))...)
	}
	if from.ResourceFieldRef != nil {
		sources++
		allErrs = append(allErrs, validateResourceFieldSelector(from.ResourceFieldRef, false, fldPath.Child("resourceFieldRef"))...)
	}
	if from.ConfigMapKeyRef != nil {
		sources++
		allErrs = append(allErrs, validateKeySelector(from.ConfigMapKeyRef.Name, from.ConfigMapKeyRef.Key, fldPath.Child("configMapKeyRef"))...)
	}
	if from.SecretKeyRef != nil {
		sources++
		allErrs = append(allErrs, validateKeySelector(from.SecretKeyRef.Name, from.SecretKeyRef.Key, fldPath.Child("secretKeyRef"))...)
	}
	if from.FileKeyRef != nil {
		sources++
		allErrs = append(allErrs, validateFileKeySelector(from.FileKeyRef, fldPath.Child("fileKeyRef"))...)
	}
	switch {
	case sources == 0:
		allErrs = append(allErrs, field.Invalid(fldPath, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"))
	case ev.Value != "":
		allErrs = append(allErrs, field.Invalid(fldPath, "", "may not be specified when `value` is not empty"))
	case sources > 1:
		allErrs = append(allErrs, field.Invalid(fldPath, "", "may not have more than one field specified at a time"))
	}
	return allErrs
}

func validateObjectFieldSelector(fs *corev1.ObjectFieldSelector, paths sets.Set[string], fldPath *field.Path) field.ErrorList {
	if fs.APIVersion == "" {
		return field.ErrorList{field.Required(fldPath.Child("apiVersion"), "")}
	}
	if fs.FieldPath == "" {
		return field.ErrorList{field.Required(fldPath.Child("fieldPath"), "")}
	}
	path, err := convertDownwardAPIFieldPath(fs.APIVersion, fs.FieldPath)
	if err != "" {
		return field.ErrorList{field.Invalid(fldPath.Child("fieldPath"), fs.FieldPath, "error converting fieldPath: "+err)}
	}
	if base, key, ok := splitSubscriptedFieldPath(path); ok {
		if base == "metadata.annotations" {
			key = strings.ToLower(key)
		}
		return podQualifiedNameErrs(key, fldPath)
	}
	if !paths.Has(path) {
		return field.ErrorList{field.NotSupported(fldPath.Child("fieldPath"), path, sets.List(paths))}
	}
	return nil
}

// The pod fields the downward API can name, in v1. spec.host is v1.0's spec.nodeName.
var podDownwardAPIFieldPaths = sets.New("metadata.annotations", "metadata.labels", "metadata.name",
	"metadata.namespace", "metadata.uid", "spec.nodeName", "spec.restartPolicy", "spec.serviceAccountName",
	"spec.schedulerName", "status.phase", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs")

// convertDownwardAPIFieldPath maps a versioned field path to the internal one, or says why not.
func convertDownwardAPIFieldPath(version, path string) (string, string) {
	if version != "v1" {
		return "", "unsupported pod version: " + version
	}
	if base, _, ok := splitSubscriptedFieldPath(path); ok {
		if base == "metadata.annotations" || base == "metadata.labels" {
			return path, ""
		}
		return "", "field label does not support subscript: " + path
	}
	if path == "spec.host" {
		return "spec.nodeName", ""
	}
	if !podDownwardAPIFieldPaths.Has(path) {
		return "", "field label not supported: " + path
	}
	return path, ""
}

// splitSubscriptedFieldPath splits "metadata.labels['key']" into its path and key.
func splitSubscriptedFieldPath(fieldPath string) (string, string, bool) {
	s, ok := strings.CutSuffix(fieldPath, "']")
	if !ok {
		return fieldPath, "", false
	}
	base, key, ok := strings.Cut(s, "['")
	if !ok || base == "" {
		return fieldPath, "", false
	}
	return base, key, true
}

func validateResourceFieldSelector(fs *corev1.ResourceFieldSelector, inVolume bool, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	switch {
	case inVolume && fs.ContainerName == "":
		allErrs = append(allErrs, field.Required(fldPath.Child("containerName"), ""))
	case fs.Resource == "":
		allErrs = append(allErrs, field.Required(fldPath.Child("resource"), ""))
	case !podResourceFieldSelectors.Has(fs.Resource) && !strings.HasPrefix(fs.Resource, "requests.hugepages-") && !strings.HasPrefix(fs.Resource, "limits.hugepages-"):
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("resource"), fs.Resource, sets.List(podResourceFieldSelectors)))
	}
	if fs.Divisor.IsZero() {
		return allErrs
	}
	const bytes = "1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei"
	byteDivisors := sets.New(strings.Split(strings.ReplaceAll(bytes, " ", ""), ",")...)
	d, r := fs.Divisor.String(), fs.Resource
	switch r {
	case "limits.cpu", "requests.cpu":
		if d != "1m" && d != "1" {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("divisor"), r, "only divisor's values 1m and 1 are supported with the cpu resource"))
		}
	case "limits.memory", "requests.memory":
		if !byteDivisors.Has(d) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("divisor"), r, "only divisor's values "+bytes+" are supported with the memory resource"))
		}
	case "limits.ephemeral-storage", "requests.ephemeral-storage":
		if !byteDivisors.Has(d) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("divisor"), r, "only divisor's values "+bytes+" are supported with the local ephemeral storage resource"))
		}
	}
	if (strings.HasPrefix(r, "requests.hugepages-") || strings.HasPrefix(r, "limits.hugepages-")) && !byteDivisors.Has(d) {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("divisor"), r, "only divisor's values "+bytes+" are supported with the hugepages resource"))
	}
	return allErrs
}

// validateKeySelector checks a configMapKeyRef or secretKeyRef (both named like secrets).
func validateKeySelector(name, key string, fldPath *field.Path) field.ErrorList {
	allErrs := podInvalidAll(fldPath.Child("name"), name, apivalidation.NameIsDNSSubdomain(name, false))
	if key == "" {
		return append(allErrs, field.Required(fldPath.Child("key"), ""))
	}
	return append(allErrs, podInvalidAll(fldPath.Child("key"), key, validation.IsConfigMapKey(key))...)
}

func validateFileKeySelector(s *corev1.FileKeySelector, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if s.VolumeName == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("volumeName"), ""))
	} else {
		allErrs = append(allErrs, podDNSLabelErrs(s.VolumeName, fldPath.Child("volumeName"))...)
	}
	if s.Path == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("path"), ""))
	} else {
		allErrs = append(allErrs, validateLocalNonReservedPath(s.Path, fldPath.Child("path"))...)
	}
	if s.Key == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("key"), ""))
	} else {
		allErrs = append(allErrs, podInvalidAll(fldPath.Child("key"), s.Key, validation.IsRelaxedEnvVarName(s.Key))...)
	}
	return allErrs
}

func validateContainerEnvFrom(sources []corev1.EnvFromSource, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i, ev := range sources {
		path := fldPath.Index(i)
		if ev.Prefix != "" {
			allErrs = append(allErrs, podInvalidAll(path.Child("prefix"), ev.Prefix, validation.IsRelaxedEnvVarName(ev.Prefix))...)
		}
		n := 0
		if ev.ConfigMapRef != nil {
			n++
			allErrs = append(allErrs, validateEnvFromName(ev.ConfigMapRef.Name, path.Child("configMapRef"))...)
		}
		if ev.SecretRef != nil {
			n++
			allErrs = append(allErrs, validateEnvFromName(ev.SecretRef.Name, path.Child("secretRef"))...)
		}
		// Upstream reports these at the list, not the item.
		if n == 0 {
			allErrs = append(allErrs, field.Invalid(fldPath, "", "must specify one of: `configMapRef` or `secretRef`"))
		} else if n > 1 {
			allErrs = append(allErrs, field.Invalid(fldPath, "", "may not have more than one field specified at a time"))
		}
	}
	return allErrs
}

func validateEnvFromName(name string, fldPath *field.Path) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(fldPath.Child("name"), "")}
	}
	return podInvalidAll(fldPath.Child("name"), name, apivalidation.NameIsDNSSubdomain(name, true))
}

func (v *podSpecValidator) validateVolumeMounts(c *corev1.Container, devices map[string]string, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	mountPoints := sets.New[string]()
	for i, m := range c.VolumeMounts {
		path := fldPath.Index(i)
		if m.Name == "" {
			allErrs = append(allErrs, field.Required(path.Child("name"), ""))
		}
		// image volumes take subPath and subPathExpr too, as upstream since 1.33 (KEP-4639 beta)
		_, found := v.volumes[m.Name]
		if !found {
			allErrs = append(allErrs, field.NotFound(path.Child("name"), m.Name))
		}
		if m.MountPath == "" {
			allErrs = append(allErrs, field.Required(path.Child("mountPath"), ""))
		}
		if mountPoints.Has(m.MountPath) {
			allErrs = append(allErrs, field.Invalid(path.Child("mountPath"), m.MountPath, "must be unique"))
		}
		mountPoints.Insert(m.MountPath)
		if _, ok := devices[m.Name]; ok {
			allErrs = append(allErrs, field.Invalid(path.Child("name"), m.Name, "must not already exist in volumeDevices"))
		}
		for _, devicePath := range devices {
			if devicePath == m.MountPath {
				allErrs = append(allErrs, field.Invalid(path.Child("mountPath"), m.MountPath, "must not already exist as a path in volumeDevices"))
				break
			}
		}
		// Upstream reports the sub-path rules at the list's path, not the item's.
		if m.SubPath != "" {
			allErrs = append(allErrs, validateLocalDescendingPath(m.SubPath, fldPath.Child("subPath"))...)
		}
		if m.SubPathExpr != "" {
			if m.SubPath != "" {
				allErrs = append(allErrs, field.Invalid(path.Child("subPathExpr"), m.SubPathExpr, "subPathExpr and subPath are mutually exclusive"))
			}
			allErrs = append(allErrs, validateLocalDescendingPath(m.SubPathExpr, fldPath.Child("subPathExpr"))...)
		}
		if m.MountPropagation != nil {
			allErrs = append(allErrs, validateMountPropagation(*m.MountPropagation, c, fldPath.Child("mountPropagation"))...)
		}
		allErrs = append(allErrs, validateRecursiveReadOnly(m, fldPath.Child("recursiveReadOnly"))...)
	}
	return allErrs
}

func validateMountPropagation(mode corev1.MountPropagationMode, c *corev1.Container, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	switch mode {
	case corev1.MountPropagationBidirectional, corev1.MountPropagationHostToContainer, corev1.MountPropagationNone:
	default:
		allErrs = append(allErrs, field.NotSupported(fldPath, mode, []corev1.MountPropagationMode{
			corev1.MountPropagationBidirectional, corev1.MountPropagationHostToContainer, corev1.MountPropagationNone}))
	}
	// Mounts propagating back to the host are a privileged container's power.
	privileged := c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged
	if mode == corev1.MountPropagationBidirectional && !privileged {
		allErrs = append(allErrs, field.Forbidden(fldPath, "Bidirectional mount propagation is available only to privileged containers"))
	}
	return allErrs
}

func validateRecursiveReadOnly(m corev1.VolumeMount, fldPath *field.Path) field.ErrorList {
	if m.RecursiveReadOnly == nil {
		return nil
	}
	var allErrs field.ErrorList
	switch *m.RecursiveReadOnly {
	case corev1.RecursiveReadOnlyDisabled:
	case corev1.RecursiveReadOnlyEnabled, corev1.RecursiveReadOnlyIfPossible:
		if !m.ReadOnly {
			allErrs = append(allErrs, field.Forbidden(fldPath, "may only be specified when readOnly is true"))
		}
		if m.MountPropagation != nil && *m.MountPropagation != corev1.MountPropagationNone {
			allErrs = append(allErrs, field.Forbidden(fldPath, "may only be specified when mountPropagation is None or not specified"))
		}
	default:
		allErrs = append(allErrs, field.NotSupported(fldPath, *m.RecursiveReadOnly, []corev1.RecursiveReadOnlyMode{
			corev1.RecursiveReadOnlyDisabled, corev1.RecursiveReadOnlyEnabled, corev1.RecursiveReadOnlyIfPossible}))
	}
	return allErrs
}

func (v *podSpecValidator) validateVolumeDevices(devices []corev1.VolumeDevice, mounts map[string]string, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	paths, names := sets.New[string](), sets.New[string]()
	for i, d := range devices {
		path := fldPath.Index(i)
		source, found := v.volumes[d.Name]
		if d.Name == "" {
			allErrs = append(allErrs, field.Required(path.Child("name"), ""))
		}
		if names.Has(d.Name) {
			allErrs = append(allErrs, field.Invalid(path.Child("name"), d.Name, "must be unique"))
		}
		// Raw block devices come only from claims.
		if found && source.PersistentVolumeClaim == nil && source.Ephemeral == nil {
			allErrs = append(allErrs, field.Invalid(path.Child("name"), d.Name, "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode"))
		}
		if !found {
			allErrs = append(allErrs, field.NotFound(path.Child("name"), d.Name))
		}
		if d.DevicePath == "" {
			allErrs = append(allErrs, field.Required(path.Child("devicePath"), ""))
		}
		if paths.Has(d.DevicePath) {
			allErrs = append(allErrs, field.Invalid(path.Child("devicePath"), d.DevicePath, "must be unique"))
		}
		if d.DevicePath != "" && len(validatePathNoBacksteps(d.DevicePath, fldPath)) > 0 {
			allErrs = append(allErrs, field.Invalid(path.Child("devicePath"), d.DevicePath, "can not contain backsteps ('..')"))
		} else {
			paths.Insert(d.DevicePath)
		}
		if _, ok := mounts[d.Name]; ok {
			allErrs = append(allErrs, field.Invalid(path.Child("name"), d.Name, "must not already exist in volumeMounts"))
		}
		for _, mountPath := range mounts {
			if mountPath == d.DevicePath {
				allErrs = append(allErrs, field.Invalid(path.Child("devicePath"), d.DevicePath, "must not already exist as a path in volumeMounts"))
				break
			}
		}
		if d.Name != "" {
			names.Insert(d.Name)
		}
	}
	return allErrs
}

var podPullPolicies = []corev1.PullPolicy{corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever}

func validatePullPolicy(policy corev1.PullPolicy, fldPath *field.Path) field.ErrorList {
	switch policy {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
		return nil
	case "":
		return field.ErrorList{field.Required(fldPath, "")}
	}
	return field.ErrorList{field.NotSupported(fldPath, policy, podPullPolicies)}
}

// validateProbes checks a container's three probes; liveness and startup decide success on
// one result, so their success threshold is 1.
func (v *podSpecValidator) validateProbes(c *corev1.Container, path *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if p := c.LivenessProbe; p != nil {
		allErrs = append(allErrs, v.validateProbe(p, path.Child("livenessProbe"))...)
		if p.SuccessThreshold != 1 {
			allErrs = append(allErrs, field.Invalid(path.Child("livenessProbe", "successThreshold"), p.SuccessThreshold, "must be 1"))
		}
	}
	if p := c.ReadinessProbe; p != nil {
		allErrs = append(allErrs, v.validateProbe(p, path.Child("readinessProbe"))...)
		if p.TerminationGracePeriodSeconds != nil {
			allErrs = append(allErrs, field.Invalid(path.Child("readinessProbe", "terminationGracePeriodSeconds"), p.TerminationGracePeriodSeconds, "must not be set for readinessProbes"))
		}
	}
	if p := c.StartupProbe; p != nil {
		allErrs = append(allErrs, v.validateProbe(p, path.Child("startupProbe"))...)
		if p.SuccessThreshold != 1 {
			allErrs = append(allErrs, field.Invalid(path.Child("startupProbe", "successThreshold"), p.SuccessThreshold, "must be 1"))
		}
	}
	return allErrs
}

func (v *podSpecValidator) validateProbe(p *corev1.Probe, fldPath *field.Path) field.ErrorList {
	h := p.ProbeHandler
	allErrs := v.validateHandler(h.Exec, h.HTTPGet, h.TCPSocket, h.GRPC, nil, fldPath)
	allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(p.InitialDelaySeconds), fldPath.Child("initialDelaySeconds"))...)
	allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(p.TimeoutSeconds), fldPath.Child("timeoutSeconds"))...)
	allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(p.PeriodSeconds), fldPath.Child("periodSeconds"))...)
	allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(p.SuccessThreshold), fldPath.Child("successThreshold"))...)
	allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(p.FailureThreshold), fldPath.Child("failureThreshold"))...)
	if p.TerminationGracePeriodSeconds != nil && *p.TerminationGracePeriodSeconds <= 0 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("terminationGracePeriodSeconds"), *p.TerminationGracePeriodSeconds, "must be greater than 0"))
	}
	return allErrs
}

func (v *podSpecValidator) validateLifecycle(l *corev1.Lifecycle, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if h := l.PostStart; h != nil {
		allErrs = append(allErrs, v.validateHandler(h.Exec, h.HTTPGet, h.TCPSocket, nil, h.Sleep, fldPath.Child("postStart"))...)
	}
	if h := l.PreStop; h != nil {
		allErrs = append(allErrs, v.validateHandler(h.Exec, h.HTTPGet, h.TCPSocket, nil, h.Sleep, fldPath.Child("preStop"))...)
	}
	return allErrs
}

// validateHandler checks that exactly one action is given, and that action.
func (v *podSpecValidator) validateHandler(exec *corev1.ExecAction, get *corev1.HTTPGetAction, tcp *corev1.TCPSocketAction,
	grpc *corev1.GRPCAction, sleep *corev1.SleepAction, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	n := 0
	one := func(set bool, name string, check func() field.ErrorList) {
		if !set {
			return
		}
		if n > 0 {
			allErrs = append(allErrs, field.Forbidden(fldPath.Child(name), "may not specify more than 1 handler type"))
			return
		}
		n++
		allErrs = append(allErrs, check()...)
	}
	one(exec != nil, "exec", func() field.ErrorList {
		if len(exec.Command) == 0 {
			return field.ErrorList{field.Required(fldPath.Child("exec", "command"), "")}
		}
		return nil
	})
	one(get != nil, "httpGet", func() field.ErrorList { return validateHTTPGetAction(get, fldPath.Child("httpGet")) })
	one(tcp != nil, "tcpSocket", func() field.ErrorList { return validatePortNumOrName(tcp.Port, fldPath.Child("tcpSocket", "port")) })
	one(grpc != nil, "grpc", func() field.ErrorList {
		return validatePortNumOrName(intstr.FromInt32(grpc.Port), fldPath.Child("grpc", "port"))
	})
	one(sleep != nil, "sleep", func() field.ErrorList {
		// Zero is allowed (GA); the sleep must end within the grace period.
		if g := v.spec.TerminationGracePeriodSeconds; g != nil && (sleep.Seconds < 0 || sleep.Seconds > *g) {
			return field.ErrorList{field.Invalid(fldPath.Child("sleep"), sleep.Seconds, fmt.Sprintf("must be non-negative and less than terminationGracePeriodSeconds (%d)", *g))}
		}
		return nil
	})
	if n == 0 {
		allErrs = append(allErrs, field.Required(fldPath, "must specify a handler type"))
	}
	return allErrs
}

var podHTTPSchemes = []corev1.URIScheme{corev1.URISchemeHTTP, corev1.URISchemeHTTPS}

func validateHTTPGetAction(get *corev1.HTTPGetAction, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if get.Path == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("path"), ""))
	}
	allErrs = append(allErrs, validatePortNumOrName(get.Port, fldPath.Child("port"))...)
	if get.Scheme != corev1.URISchemeHTTP && get.Scheme != corev1.URISchemeHTTPS {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("scheme"), get.Scheme, podHTTPSchemes))
	}
	for _, header := range get.HTTPHeaders {
		allErrs = append(allErrs, podInvalidAll(fldPath.Child("httpHeaders"), header.Name, validation.IsHTTPHeaderName(header.Name))...)
	}
	return allErrs
}

func validatePortNumOrName(port intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	if port.Type == intstr.String {
		return podInvalidAll(fldPath, port.StrVal, validation.IsValidPortName(port.StrVal))
	}
	return podInvalidAll(fldPath, port.IntValue(), validation.IsValidPortNum(port.IntValue()))
}

func (v *podSpecValidator) validateResizePolicy(policies []corev1.ContainerResizePolicy, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	seen := sets.New[corev1.ResourceName]()
	for i, p := range policies {
		if seen.Has(p.ResourceName) {
			allErrs = append(allErrs, field.Duplicate(fldPath.Index(i), p.ResourceName))
		}
		seen.Insert(p.ResourceName)
		switch p.ResourceName {
		case corev1.ResourceCPU, corev1.ResourceMemory:
		case "":
			allErrs = append(allErrs, field.Required(fldPath, ""))
		default:
			allErrs = append(allErrs, field.NotSupported(fldPath, p.ResourceName, []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory}))
		}
		switch p.RestartPolicy {
		case corev1.NotRequired, corev1.RestartContainer:
		case "":
			allErrs = append(allErrs, field.Required(fldPath, ""))
		default:
			allErrs = append(allErrs, field.NotSupported(fldPath, p.RestartPolicy, []corev1.ResourceResizeRestartPolicy{corev1.NotRequired, corev1.RestartContainer}))
		}
		// A pod that never restarts cannot restart a container to resize it.
		if v.spec.RestartPolicy == corev1.RestartPolicyNever && p.RestartPolicy != corev1.NotRequired {
			allErrs = append(allErrs, field.Invalid(fldPath, p.RestartPolicy, "must be 'NotRequired' when `restartPolicy` is 'Never'"))
		}
	}
	return allErrs
}

// validateSecurityContext is the container security context.
func (v *podSpecValidator) validateSecurityContext(sc *corev1.SecurityContext, fldPath *field.Path) field.ErrorList {
	if sc == nil {
		return nil
	}
	var allErrs field.ErrorList
	if sc.Privileged != nil && *sc.Privileged && !podAllowPrivileged {
		allErrs = append(allErrs, field.Forbidden(fldPath.Child("privileged"), "disallowed by cluster policy"))
	}
	if sc.RunAsUser != nil {
		allErrs = append(allErrs, podInvalidAll(fldPath.Child("runAsUser"), *sc.RunAsUser, validation.IsValidUserID(*sc.RunAsUser))...)
	}
	if sc.RunAsGroup != nil {
		allErrs = append(allErrs, podInvalidAll(fldPath.Child("runAsGroup"), *sc.RunAsGroup, validation.IsValidGroupID(*sc.RunAsGroup))...)
	}
	if sc.ProcMount != nil {
		if pm := *sc.ProcMount; pm != corev1.DefaultProcMount && pm != corev1.UnmaskedProcMount {
			allErrs = append(allErrs, field.NotSupported(fldPath.Child("procMount"), pm, []corev1.ProcMountType{corev1.DefaultProcMount, corev1.UnmaskedProcMount}))
		}
		// An unmasked /proc is only safe inside a user namespace.
		if v.hostUsers && *sc.ProcMount == corev1.UnmaskedProcMount {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("procMount"), sc.ProcMount, "`hostUsers` must be false to use `Unmasked`"))
		}
	}
	allErrs = append(allErrs, validateSeccompProfileField(sc.SeccompProfile, fldPath.Child("seccompProfile"))...)
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		if sc.Privileged != nil && *sc.Privileged {
			allErrs = append(allErrs, field.Invalid(fldPath, sc, "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"))
		}
		if sc.Capabilities != nil {
			for _, c := range sc.Capabilities.Add {
				if c == "CAP_SYS_ADMIN" {
					allErrs = append(allErrs, field.Invalid(fldPath, sc, "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN"))
				}
			}
		}
	}
	allErrs = append(allErrs, validateWindowsSecurityContextOptions(sc.WindowsOptions, fldPath.Child("windowsOptions"))...)
	allErrs = append(allErrs, validateAppArmorProfileField(sc.AppArmorProfile, fldPath.Child("appArmorProfile"))...)
	return allErrs
}

func validateSeccompProfileField(sp *corev1.SeccompProfile, fldPath *field.Path) field.ErrorList {
	if sp == nil {
		return nil
	}
	var allErrs field.ErrorList
	switch sp.Type {
	case corev1.SeccompProfileTypeLocalhost, corev1.SeccompProfileTypeRuntimeDefault, corev1.SeccompProfileTypeUnconfined:
	case "":
		allErrs = append(allErrs, field.Required(fldPath.Child("type"), "type is required when seccompProfile is set"))
	default:
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("type"), sp.Type, []corev1.SeccompProfileType{
			corev1.SeccompProfileTypeLocalhost, corev1.SeccompProfileTypeRuntimeDefault, corev1.SeccompProfileTypeUnconfined}))
	}
	if sp.Type == corev1.SeccompProfileTypeLocalhost {
		if sp.LocalhostProfile == nil {
			allErrs = append(allErrs, field.Required(fldPath.Child("localhostProfile"), "must be set when seccomp type is Localhost"))
		} else {
			allErrs = append(allErrs, validateLocalDescendingPath(*sp.LocalhostProfile, fldPath.Child("localhostProfile"))...)
		}
	} else if sp.LocalhostProfile != nil {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("localhostProfile"), sp, "can only be set when seccomp type is Localhost"))
	}
	return allErrs
}

func validateAppArmorProfileField(p *corev1.AppArmorProfile, fldPath *field.Path) field.ErrorList {
	if p == nil {
		return nil
	}
	var allErrs field.ErrorList
	switch p.Type {
	case corev1.AppArmorProfileTypeLocalhost:
		if p.LocalhostProfile == nil {
			allErrs = append(allErrs, field.Required(fldPath.Child("localhostProfile"), "must be set when AppArmor type is Localhost"))
			break
		}
		trimmed := strings.TrimSpace(*p.LocalhostProfile)
		if trimmed != *p.LocalhostProfile {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("localhostProfile"), *p.LocalhostProfile, "must not be padded with whitespace"))
		} else if trimmed == "" {
			allErrs = append(allErrs, field.Required(fldPath.Child("localhostProfile"), "must be set when AppArmor type is Localhost"))
		}
		const maxLocalhostProfileLength = 4095 // PATH_MAX - 1
		if len(*p.LocalhostProfile) > maxLocalhostProfileLength {
			allErrs = append(allErrs, field.TooLong(fldPath.Child("localhostProfile"), "", maxLocalhostProfileLength))
		}
	case corev1.AppArmorProfileTypeRuntimeDefault, corev1.AppArmorProfileTypeUnconfined:
		if p.LocalhostProfile != nil {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("localhostProfile"), p.LocalhostProfile, "can only be set when AppArmor type is Localhost"))
		}
	case "":
		allErrs = append(allErrs, field.Required(fldPath.Child("type"), "type is required when appArmorProfile is set"))
	default:
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("type"), p.Type, []corev1.AppArmorProfileType{
			corev1.AppArmorProfileTypeLocalhost, corev1.AppArmorProfileTypeRuntimeDefault, corev1.AppArmorProfileTypeUnconfined}))
	}
	return allErrs
}

// Windows account names: a NetBIOS or DNS domain, a backslash, and a user.
var (
	podCtrlChars          = regexp.MustCompile(`[[:cntrl:]]+`)
	podNetBiosDomain      = regexp.MustCompile(`^[^\\/:\*\?"<>|\.][^\\/:\*\?"<>|]{0,14}$`)
	podDNSDomain          = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$`)
	podInvalidUserChars   = regexp.MustCompile(`["/\\:;|=,\+\*\?<>@\[\]]`)
	podOnlyDotsSpacesUser = regexp.MustCompile(`^[\. ]+$`)
)

func validateWindowsSecurityContextOptions(o *corev1.WindowsSecurityContextOptions, fldPath *field.Path) field.ErrorList {
	if o == nil {
		return nil
	}
	var allErrs field.ErrorList
	if o.GMSACredentialSpecName != nil {
		allErrs = append(allErrs, podInvalidAll(fldPath.Child("gmsaCredentialSpecName"), o.GMSACredentialSpecName, validation.IsDNS1123Subdomain(*o.GMSACredentialSpecName))...)
	}
	if o.GMSACredentialSpec != nil {
		if l := len(*o.GMSACredentialSpec); l == 0 {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("gmsaCredentialSpec"), o.GMSACredentialSpec, "gmsaCredentialSpec cannot be an empty string"))
		} else if l > 64*1024 {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("gmsaCredentialSpec"), o.GMSACredentialSpec, "gmsaCredentialSpec size must be under 64 KiB"))
		}
	}
	if o.RunAsUserName == nil {
		return allErrs
	}
	name, path := *o.RunAsUserName, fldPath.Child("runAsUserName")
	invalid := func(msg string) { allErrs = append(allErrs, field.Invalid(path, o.RunAsUserName, msg)) }
	parts := strings.Split(name, "\\")
	switch {
	case name == "":
		invalid("runAsUserName cannot be an empty string")
	case podCtrlChars.MatchString(name):
		invalid("runAsUserName cannot contain control characters")
	case len(parts) > 2:
		invalid("runAsUserName cannot contain more than one backslash")
	default:
		domain, user := "", parts[0]
		if len(parts) == 2 {
			domain, user = parts[0], parts[1]
		}
		if len(domain) >= 256 {
			invalid("runAsUserName's Domain length must be under 256 characters")
		}
		if len(parts) == 2 && !podNetBiosDomain.MatchString(domain) && !podDNSDomain.MatchString(domain) {
			invalid("runAsUserName's Domain doesn't match the NetBios nor the DNS format")
		}
		if len(user) == 0 {
			invalid("runAsUserName's User cannot be empty")
		} else if len(user) > 104 {
			invalid("runAsUserName's User length must not be longer than 104 characters")
		}
		if podOnlyDotsSpacesUser.MatchString(user) {
			invalid("runAsUserName's User cannot contain only periods or spaces")
		}
		if podInvalidUserChars.MatchString(user) {
			invalid(`runAsUserName's User cannot contain the following characters: "/\:;|=,+*?<>@[]`)
		}
	}
	return allErrs
}

// validateResourceRequirements checks resource names and quantities, and that a request is
// within its limit (equal to it for resources that cannot be overcommitted).
func (v *podSpecValidator) validateResourceRequirements(r *corev1.ResourceRequirements, nameFn func(corev1.ResourceName, *field.Path) field.ErrorList, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	limPath, reqPath := fldPath.Child("limits"), fldPath.Child("requests")
	cpuOrMemory, hugePages := false, false
	for name, q := range r.Limits {
		path := limPath.Key(string(name))
		allErrs = append(allErrs, nameFn(name, path)...)
		allErrs = append(allErrs, validateResourceQuantityValue(name, q, path)...)
		if isHugePageResource(name) {
			hugePages = true
			allErrs = append(allErrs, validateHugePageQuantity(name, q, path)...)
		}
		cpuOrMemory = cpuOrMemory || name == corev1.ResourceCPU || name == corev1.ResourceMemory
	}
	for name, q := range r.Requests {
		path := reqPath.Key(string(name))
		allErrs = append(allErrs, nameFn(name, path)...)
		allErrs = append(allErrs, validateResourceQuantityValue(name, q, path)...)
		if limit, ok := r.Limits[name]; ok {
			if q.Cmp(limit) != 0 && !isOvercommitAllowed(name) {
				allErrs = append(allErrs, field.Invalid(reqPath, q.String(), fmt.Sprintf("must be equal to %s limit of %s", name, limit.String())))
			} else if q.Cmp(limit) > 0 {
				allErrs = append(allErrs, field.Invalid(reqPath, q.String(), fmt.Sprintf("must be less than or equal to %s limit of %s", name, limit.String())))
			}
		} else if !isOvercommitAllowed(name) {
			allErrs = append(allErrs, field.Required(limPath, "Limit must be set for non overcommitable resources"))
		}
		if isHugePageResource(name) {
			hugePages = true
			allErrs = append(allErrs, validateHugePageQuantity(name, q, path)...)
		}
		cpuOrMemory = cpuOrMemory || name == corev1.ResourceCPU || name == corev1.ResourceMemory
	}
	if hugePages && !cpuOrMemory {
		allErrs = append(allErrs, field.Forbidden(fldPath, "HugePages require cpu or memory"))
	}
	return append(allErrs, v.validateResourceClaimRefs(r.Claims, fldPath.Child("claims"))...)
}

// validateResourceClaimRefs: a container may only use claims the pod declares.
func (v *podSpecValidator) validateResourceClaimRefs(claims []corev1.ResourceClaim, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	seen := sets.New[string]()
	for i, claim := range claims {
		path := fldPath.Index(i)
		if claim.Name == "" {
			allErrs = append(allErrs, field.Required(path, ""))
			continue
		}
		if seen.Has(claim.Name) {
			allErrs = append(allErrs, field.Duplicate(path, claim.Name))
		} else {
			key := claim.Name
			if claim.Request != "" {
				allErrs = append(allErrs, podDNSLabelErrs(claim.Request, path.Child("request"))...)
				key += "/" + claim.Request
			}
			if seen.Has(key) {
				allErrs = append(allErrs, field.Duplicate(path, key))
			} else if claim.Request == "" {
				for k := range seen {
					if before, _, ok := strings.Cut(k, "/"); ok && before == claim.Name {
						allErrs = append(allErrs, field.Duplicate(path, claim.Name))
					}
				}
			}
			seen.Insert(key)
		}
		if !v.claimNames.Has(claim.Name) {
			err := field.NotFound(path, claim.Name)
			err.Detail = "must be one of the names in pod.spec.resourceClaims"
			if v.claimNames.Len() == 0 {
				err.Detail += " which is empty"
			} else {
				err.Detail += ": " + strings.Join(sets.List(v.claimNames), ", ")
			}
			allErrs = append(allErrs, err)
		}
	}
	return allErrs
}

// Resource names. Unqualified names belong to Kubernetes and must be ones it knows.
var podStandardResources = sets.New("cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory",
	"requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage", "pods", "resourcequotas",
	"services", "replicationcontrollers", "secrets", "configmaps", "persistentvolumeclaims", "storage",
	"requests.storage", "services.nodeports", "services.loadbalancers")

func validateComputeResourceName(name corev1.ResourceName, fldPath *field.Path) field.ErrorList {
	if errs := podInvalidAll(fldPath, name, validation.IsQualifiedName(string(name))); len(errs) != 0 {
		return errs
	}
	if !strings.Contains(string(name), "/") && !podStandardResources.Has(string(name)) &&
		!strings.HasPrefix(string(name), corev1.ResourceHugePagesPrefix) && !strings.HasPrefix(string(name), corev1.ResourceRequestsHugePagesPrefix) {
		return field.ErrorList{field.Invalid(fldPath, name, "must be a standard resource type or fully qualified")}
	}
	return nil
}

func validateContainerResourceName(name corev1.ResourceName, fldPath *field.Path) field.ErrorList {
	allErrs := validateComputeResourceName(name, fldPath)
	if !strings.Contains(string(name), "/") {
		if name != corev1.ResourceCPU && name != corev1.ResourceMemory && name != corev1.ResourceEphemeralStorage && !isHugePageResource(name) {
			return append(allErrs, field.Invalid(fldPath, name, "must be a standard resource for containers"))
		}
	} else if !isNativeResource(name) && !isExtendedResourceName(name) {
		return append(allErrs, field.Invalid(fldPath, name, "doesn't follow extended resource name standard"))
	}
	return allErrs
}

// validateHugePageQuantity: huge pages come whole, so the amount is a multiple of the page.
func validateHugePageQuantity(name corev1.ResourceName, q resource.Quantity, fldPath *field.Path) field.ErrorList {
	page, err := resource.ParseQuantity(strings.TrimPrefix(string(name), corev1.ResourceHugePagesPrefix))
	if err == nil && page.Sign() > 0 && page.MilliValue()%1000 == 0 && q.Value()%page.Value() == 0 {
		return nil
	}
	return field.ErrorList{field.Invalid(fldPath, q.String(), fmt.Sprintf("%s is not positive integer multiple of %s", q.String(), name))}
}

func isHugePageResource(name corev1.ResourceName) bool {
	return strings.HasPrefix(string(name), corev1.ResourceHugePagesPrefix)
}

// isNativeResource: unprefixed names and names under kubernetes.io/ are Kubernetes'.
func isNativeResource(name corev1.ResourceName) bool {
	return !strings.Contains(string(name), "/") || strings.Contains(string(name), corev1.ResourceDefaultNamespacePrefix)
}

// isOvercommitAllowed: devices and huge pages are handed out whole.
func isOvercommitAllowed(name corev1.ResourceName) bool {
	return isNativeResource(name) && !isHugePageResource(name)
}
