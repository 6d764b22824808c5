package apis

// Pod defaulting: what a Pod looks like after upstream's API server has decoded it and run the
// mutating admission every default cluster runs. Upstream spreads this over three places, and
// all three change what gets stored, so all three live here:
//
//   - the v1 defaulters (pkg/apis/core/v1/defaults.go and the generated declarative defaults);
//   - the v1→internal conversion, which aliases spec.serviceAccount and status.podIP;
//   - the DefaultTolerationSeconds admission plugin, which only ever fills in (Priority
//     admission needs the PriorityClasses, so it is the API server's, at create).
//
// Every function here is idempotent: it runs on each decode, including objects read back
// from etcd, and must leave an already-defaulted pod unchanged.

import (
	"reflect"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

// DefaultPod fills in what upstream's API server defaults on a pod.
func DefaultPod(pod *corev1.Pod) {
	spec := &pod.Spec
	// Requests default to limits only on pods, never on templates: a ReplicaSet's template keeps
	// what its author wrote, and each pod created from it gets the requests here.
	for i := range spec.Containers {
		defaultRequestsFromLimits(&spec.Containers[i].Resources)
	}
	for i := range spec.InitContainers {
		defaultRequestsFromLimits(&spec.InitContainers[i].Resources)
	}
	if spec.EnableServiceLinks == nil {
		spec.EnableServiceLinks = ptr.To(corev1.DefaultEnableServiceLinks)
	}
	// A host-network container listens on the node, so its host port is its container port.
	// Templates keep 0 here; the pods created from them get it.
	if spec.HostNetwork {
		defaultHostNetworkPorts(spec.Containers)
		defaultHostNetworkPorts(spec.InitContainers)
	}
	defaultPodLevelResources(spec)
	DefaultPodSpec(spec)
	defaultNodeProblemTolerations(spec)
	defaultPodIPs(&pod.Status)
}

// DefaultPodSpec fills in what upstream defaults in a pod spec (also used for pod templates).
func DefaultPodSpec(spec *corev1.PodSpec) {
	// ClusterFirst even with hostNetwork: the kubelet, not the API, falls back to the node's
	// resolver for that combination.
	if spec.DNSPolicy == "" {
		spec.DNSPolicy = corev1.DNSClusterFirst
	}
	if spec.RestartPolicy == "" {
		spec.RestartPolicy = corev1.RestartPolicyAlways
	}
	if spec.SecurityContext == nil {
		spec.SecurityContext = &corev1.PodSecurityContext{}
	}
	if spec.TerminationGracePeriodSeconds == nil {
		spec.TerminationGracePeriodSeconds = ptr.To(int64(corev1.DefaultTerminationGracePeriodSeconds))
	}
	if spec.SchedulerName == "" {
		spec.SchedulerName = corev1.DefaultSchedulerName
	}
	// serviceAccount is the v1.0 name of serviceAccountName. Upstream's conversion lets the new
	// field win when both are set and always writes the old one back as an alias.
	if spec.ServiceAccountName == "" {
		spec.ServiceAccountName = spec.DeprecatedServiceAccount
	}
	spec.DeprecatedServiceAccount = spec.ServiceAccountName

	for i := range spec.Volumes {
		defaultPodVolume(&spec.Volumes[i])
	}
	for i := range spec.InitContainers {
		defaultPodContainer(&spec.InitContainers[i])
	}
	for i := range spec.Containers {
		defaultPodContainer(&spec.Containers[i])
	}
	for i := range spec.EphemeralContainers {
		defaultPodContainer((*corev1.Container)(&spec.EphemeralContainers[i].EphemeralContainerCommon))
	}
	roundPodQuantities(spec.Overhead)
	if spec.Resources != nil {
		roundPodQuantities(spec.Resources.Limits)
		roundPodQuantities(spec.Resources.Requests)
	}
}

func defaultPodContainer(c *corev1.Container) {
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = defaultPullPolicy(c.Image)
	}
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = corev1.TerminationMessagePathDefault
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = corev1.ProtocolTCP
		}
	}
	for i := range c.Env {
		if from := c.Env[i].ValueFrom; from != nil {
			if from.FieldRef != nil && from.FieldRef.APIVersion == "" {
				from.FieldRef.APIVersion = "v1"
			}
			if from.FileKeyRef != nil && from.FileKeyRef.Optional == nil {
				from.FileKeyRef.Optional = ptr.To(false)
			}
		}
	}
	roundPodQuantities(c.Resources.Limits)
	roundPodQuantities(c.Resources.Requests)
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		if p == nil {
			continue
		}
		if p.TimeoutSeconds == 0 {
			p.TimeoutSeconds = 1
		}
		if p.PeriodSeconds == 0 {
			p.PeriodSeconds = 10
		}
		if p.SuccessThreshold == 0 {
			p.SuccessThreshold = 1
		}
		if p.FailureThreshold == 0 {
			p.FailureThreshold = 3
		}
		defaultHTTPGet(p.HTTPGet)
		if p.GRPC != nil && p.GRPC.Service == nil {
			p.GRPC.Service = ptr.To("")
		}
	}
	if c.Lifecycle != nil {
		for _, h := range []*corev1.LifecycleHandler{c.Lifecycle.PostStart, c.Lifecycle.PreStop} {
			if h != nil {
				defaultHTTPGet(h.HTTPGet)
			}
		}
	}
}

func defaultHTTPGet(get *corev1.HTTPGetAction) {
	if get == nil {
		return
	}
	if get.Path == "" {
		get.Path = "/"
	}
	if get.Scheme == "" {
		get.Scheme = corev1.URISchemeHTTP
	}
}

func defaultPodVolume(v *corev1.Volume) {
	if allPointersNil(v.VolumeSource) {
		v.EmptyDir = &corev1.EmptyDirVolumeSource{}
	}
	src := &v.VolumeSource
	if src.Image != nil && src.Image.PullPolicy == "" {
		src.Image.PullPolicy = defaultPullPolicy(src.Image.Reference)
	}
	if src.HostPath != nil && src.HostPath.Type == nil {
		src.HostPath.Type = ptr.To(corev1.HostPathUnset)
	}
	if src.Secret != nil && src.Secret.DefaultMode == nil {
		src.Secret.DefaultMode = ptr.To(corev1.SecretVolumeSourceDefaultMode)
	}
	if src.ConfigMap != nil && src.ConfigMap.DefaultMode == nil {
		src.ConfigMap.DefaultMode = ptr.To(corev1.ConfigMapVolumeSourceDefaultMode)
	}
	if d := src.DownwardAPI; d != nil {
		if d.DefaultMode == nil {
			d.DefaultMode = ptr.To(corev1.DownwardAPIVolumeSourceDefaultMode)
		}
		defaultDownwardAPIFiles(d.Items)
	}
	if p := src.Projected; p != nil {
		if p.DefaultMode == nil {
			p.DefaultMode = ptr.To(corev1.ProjectedVolumeSourceDefaultMode)
		}
		for i := range p.Sources {
			if d := p.Sources[i].DownwardAPI; d != nil {
				defaultDownwardAPIFiles(d.Items)
			}
			if t := p.Sources[i].ServiceAccountToken; t != nil && t.ExpirationSeconds == nil {
				t.ExpirationSeconds = ptr.To(int64(3600))
			}
		}
	}
	if s := src.ISCSI; s != nil && s.ISCSIInterface == "" {
		s.ISCSIInterface = "default"
	}
	if s := src.RBD; s != nil {
		if s.RBDPool == "" {
			s.RBDPool = "rbd"
		}
		if s.RadosUser == "" {
			s.RadosUser = "admin"
		}
		if s.Keyring == "" {
			s.Keyring = "/etc/ceph/keyring"
		}
	}
	if s := src.AzureDisk; s != nil {
		if s.CachingMode == nil {
			s.CachingMode = ptr.To(corev1.AzureDataDiskCachingReadWrite)
		}
		if s.FSType == nil {
			s.FSType = ptr.To("ext4")
		}
		if s.ReadOnly == nil {
			s.ReadOnly = ptr.To(false)
		}
		if s.Kind == nil {
			s.Kind = ptr.To(corev1.AzureSharedBlobDisk)
		}
	}
	if s := src.ScaleIO; s != nil {
		if s.StorageMode == "" {
			s.StorageMode = "ThinProvisioned"
		}
		if s.FSType == "" {
			s.FSType = "xfs"
		}
	}
	if e := src.Ephemeral; e != nil && e.VolumeClaimTemplate != nil {
		claim := &e.VolumeClaimTemplate.Spec
		if claim.VolumeMode == nil {
			claim.VolumeMode = ptr.To(corev1.PersistentVolumeFilesystem)
		}
		roundPodQuantities(claim.Resources.Limits)
		roundPodQuantities(claim.Resources.Requests)
	}
}

func defaultDownwardAPIFiles(files []corev1.DownwardAPIVolumeFile) {
	for i := range files {
		if ref := files[i].FieldRef; ref != nil && ref.APIVersion == "" {
			ref.APIVersion = "v1"
		}
	}
}

func defaultRequestsFromLimits(r *corev1.ResourceRequirements) {
	if r.Limits == nil {
		return
	}
	if r.Requests == nil {
		r.Requests = corev1.ResourceList{}
	}
	for name, limit := range r.Limits {
		if _, ok := r.Requests[name]; !ok {
			r.Requests[name] = limit.DeepCopy()
		}
	}
}

func defaultHostNetworkPorts(containers []corev1.Container) {
	for i := range containers {
		for j := range containers[i].Ports {
			if p := &containers[i].Ports[j]; p.HostPort == 0 {
				p.HostPort = p.ContainerPort
			}
		}
	}
}

// defaultPodLevelResources completes pod-level resources (beta, on by default) from the
// containers', once the pod sets some: huge page limits, then requests, then limits. Pod-level
// resources have to cover the containers', so what is left out is what they add up to.
func defaultPodLevelResources(spec *corev1.PodSpec) {
	r := spec.Resources
	if r == nil || (len(r.Limits) == 0 && len(r.Requests) == 0) {
		return
	}
	ctrLimits := aggregatePodContainerResources(spec, containerLimits)
	limits := r.Limits
	if limits == nil {
		limits = corev1.ResourceList{}
	}
	for name, q := range ctrLimits {
		_, requested := r.Requests[name]
		if _, ok := limits[name]; !ok && isHugePageResource(name) && !requested {
			limits[name] = q.DeepCopy()
		}
	}
	if len(limits) > 0 {
		r.Limits = limits
	}

	if len(r.Limits) > 0 {
		requests := r.Requests
		if requests == nil {
			requests = corev1.ResourceList{}
		}
		for name, q := range aggregatePodContainerResources(spec, containerRequests) {
			if _, ok := requests[name]; !ok && isPodLevelResource(name) && isOvercommitAllowed(name) {
				requests[name] = q.DeepCopy()
			}
		}
		for name, q := range r.Limits {
			if _, ok := requests[name]; !ok && isPodLevelResource(name) {
				requests[name] = q.DeepCopy()
			}
		}
		if len(requests) > 0 {
			r.Requests = requests
		}
		return
	}

	// Requests but no limits: a limit only when every container sets one for that resource.
	limits = corev1.ResourceList{}
	for name, q := range ctrLimits {
		if isPodLevelResource(name) && isOvercommitAllowed(name) && allContainersLimit(spec, name) {
			limits[name] = q.DeepCopy()
		}
	}
	if len(limits) > 0 {
		r.Limits = limits
	}
}

func isPodLevelResource(name corev1.ResourceName) bool {
	return name == corev1.ResourceCPU || name == corev1.ResourceMemory || isHugePageResource(name)
}

func allContainersLimit(spec *corev1.PodSpec, name corev1.ResourceName) bool {
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for _, c := range list {
			if _, ok := c.Resources.Limits[name]; !ok {
				return false
			}
		}
	}
	return true
}

func containerRequests(c *corev1.Container) corev1.ResourceList { return c.Resources.Requests }
func containerLimits(c *corev1.Container) corev1.ResourceList   { return c.Resources.Limits }

// aggregatePodContainerResources is what the pod needs at its peak, per resource: its app
// containers and sidecars together, or an init container with the sidecars started before
// it, whichever is more.
func aggregatePodContainerResources(spec *corev1.PodSpec, pick func(*corev1.Container) corev1.ResourceList) corev1.ResourceList {
	add := func(into, from corev1.ResourceList) {
		for name, q := range from {
			sum := into[name]
			sum.Add(q)
			into[name] = sum
		}
	}
	atLeast := func(into, from corev1.ResourceList) {
		for name, q := range from {
			if cur, ok := into[name]; !ok || q.Cmp(cur) > 0 {
				into[name] = q.DeepCopy()
			}
		}
	}
	total, sidecars, initPeak := corev1.ResourceList{}, corev1.ResourceList{}, corev1.ResourceList{}
	for i := range spec.Containers {
		add(total, pick(&spec.Containers[i]))
	}
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			add(sidecars, pick(c))
			atLeast(initPeak, sidecars)
			continue
		}
		running := corev1.ResourceList{}
		add(running, sidecars)
		add(running, pick(c))
		atLeast(initPeak, running)
	}
	add(total, sidecars)
	atLeast(total, initPeak)
	return total
}

// roundPodQuantities rounds every quantity up to milli precision, as upstream does for every
// resource list it decodes: "0.0001" CPU is stored as "1m".
func roundPodQuantities(list corev1.ResourceList) {
	for name, q := range list {
		q.RoundUp(resource.Milli)
		list[name] = q
	}
}

// defaultNodeProblemTolerations is the DefaultTolerationSeconds admission plugin: a pod keeps
// running for 300s on a node that goes not-ready or unreachable before it is evicted, unless
// it already says otherwise. An empty key or effect already tolerates the taint.
func defaultNodeProblemTolerations(spec *corev1.PodSpec) {
	tolerates := func(key string) bool {
		for _, t := range spec.Tolerations {
			if (t.Key == key || t.Key == "") && (t.Effect == corev1.TaintEffectNoExecute || t.Effect == "") {
				return true
			}
		}
		return false
	}
	for _, key := range []string{corev1.TaintNodeNotReady, corev1.TaintNodeUnreachable} {
		if !tolerates(key) {
			spec.Tolerations = append(spec.Tolerations, corev1.Toleration{
				Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute,
				TolerationSeconds: ptr.To(int64(300)),
			})
		}
	}
}

// defaultPodIPs keeps status.podIP and status.podIPs[0] the same, as upstream's round trip
// through its internal type (which has only podIPs) does; a differing podIP wins for the sake
// of clients that only know the single field.
func defaultPodIPs(status *corev1.PodStatus) {
	if status.PodIP != "" && (len(status.PodIPs) == 0 || status.PodIPs[0].IP != status.PodIP) {
		status.PodIPs = []corev1.PodIP{{IP: status.PodIP}}
	}
	if status.PodIP == "" && len(status.PodIPs) > 0 {
		status.PodIP = status.PodIPs[0].IP
	}
}

// defaultPullPolicy is Always for an image that floats (tag "latest", or no tag and no
// digest) and IfNotPresent otherwise, including for a reference that does not parse.
func defaultPullPolicy(image string) corev1.PullPolicy {
	if imageTag(image) == "latest" {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

// The docker reference grammar (distribution/reference), enough to tell a tag from a registry
// port and to reject what the runtime would reject.
var (
	imageRefRegexp = func() *regexp.Regexp {
		const (
			alnum      = `[a-z0-9]+`
			separator  = `(?:[._]|__|[-]+)`
			component  = alnum + `(?:` + separator + alnum + `)*`
			domainPart = `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
			host       = `(?:` + domainPart + `(?:\.` + domainPart + `)*|\[[a-fA-F0-9:]+\])`
			domain     = host + `(?::[0-9]+)?`
			name       = `(?:` + domain + `/)?` + component + `(?:/` + component + `)*`
			tag        = `[\w][\w.-]{0,127}`
			digest     = `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}`
		)
		return regexp.MustCompile(`^(` + name + `)(?::(` + tag + `))?(?:@(` + digest + `))?$`)
	}()
	imageIDRegexp     = regexp.MustCompile(`^[a-f0-9]{64}$`)
	imageDigestLength = map[string]int{"sha256": 64, "sha384": 96, "sha512": 128}
)

// imageTag returns the tag a runtime would pull: the explicit one, "latest" when the reference
// names neither a tag nor a digest, "" for a digest-only or unparseable reference.
func imageTag(image string) string {
	m := imageRefRegexp.FindStringSubmatch(image)
	if m == nil || len(m[1]) > 255 || imageIDRegexp.MatchString(image) {
		return ""
	}
	if m[3] != "" {
		algorithm, hex, _ := strings.Cut(m[3], ":")
		if want, ok := imageDigestLength[algorithm]; !ok || len(hex) != want {
			return ""
		}
	}
	if m[2] == "" && m[3] == "" {
		return "latest"
	}
	return m[2]
}

// allPointersNil reports whether a struct of optional pointers (a VolumeSource) has none set.
func allPointersNil(v any) bool {
	rv := reflect.ValueOf(v)
	for i := 0; i < rv.NumField(); i++ {
		if f := rv.Field(i); f.Kind() == reflect.Pointer && !f.IsNil() {
			return false
		}
	}
	return true
}
