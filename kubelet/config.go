package kubelet

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-dev/skiff/kubelet/podcgroups"
	"github.com/skiff-dev/skiff/kubelet/runtime"
)

// Annotations the kubelet puts on its containers for itself.
const (
	// annotationTerminationLog is the host path of the container's termination message file.
	annotationTerminationLog = "skiff.dev/termination-log"
	annotationRestartCount   = "io.kubernetes.container.restartCount"
)

// upstream's defaults for unprivileged containers
var (
	defaultMaskedPaths = []string{"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap"}
	defaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// podLogDir is where the runtime writes the pod's container logs.
func (k *Kubelet) podLogDir(pod *v1.Pod) string {
	if k.cfg.PodLogsDir == "" {
		return ""
	}
	return filepath.Join(k.cfg.PodLogsDir, pod.Namespace+"_"+pod.Name+"_"+string(pod.UID))
}

// sandboxConfig is the CRI sandbox for the pod: its name, hostname, DNS, ports, labels, cgroup
// parent, log directory and namespaces.
func (k *Kubelet) sandboxConfig(pod *v1.Pod, attempt uint32) (*runtimeapi.PodSandboxConfig, error) {
	labels := map[string]string{}
	for key, v := range pod.Labels {
		labels[key] = v
	}
	labels[runtime.LabelPodName] = pod.Name
	labels[runtime.LabelPodNamespace] = pod.Namespace
	labels[runtime.LabelPodUID] = string(pod.UID)
	annotations := map[string]string{}
	for key, v := range pod.Annotations {
		annotations[key] = v
	}
	hostname := pod.Name
	if pod.Spec.Hostname != "" {
		hostname = pod.Spec.Hostname
	}
	if len(hostname) > 63 {
		hostname = strings.TrimRight(hostname[:63], "-.")
	}
	if pod.Spec.HostNetwork {
		// the host's UTS namespace already names the node; runc (1.1.5 and later) refuses
		// to set a hostname without a UTS namespace of the pod's own, and containerd 1.6
		// passes whatever is asked for on to it
		hostname = ""
	}
	config := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, Uid: string(pod.UID), Attempt: attempt},
		Hostname:     hostname,
		LogDirectory: k.podLogDir(pod),
		DnsConfig:    k.dnsConfig(pod),
		Labels:       labels,
		Annotations:  annotations,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: cgroupParent(pod),
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: namespaceOptions(pod),
				Privileged:       anyPrivileged(pod),
			},
		},
	}
	if sc := pod.Spec.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			config.Linux.SecurityContext.RunAsUser = &runtimeapi.Int64Value{Value: *sc.RunAsUser}
		}
		if sc.RunAsGroup != nil {
			config.Linux.SecurityContext.RunAsGroup = &runtimeapi.Int64Value{Value: *sc.RunAsGroup}
		}
		config.Linux.SecurityContext.SupplementalGroups = sc.SupplementalGroups
		if len(sc.Sysctls) > 0 {
			config.Linux.Sysctls = map[string]string{}
			for _, s := range sc.Sysctls {
				config.Linux.Sysctls[s.Name] = s.Value
			}
		}
	}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort <= 0 {
				continue
			}
			proto := runtimeapi.Protocol_TCP
			switch p.Protocol {
			case v1.ProtocolUDP:
				proto = runtimeapi.Protocol_UDP
			case v1.ProtocolSCTP:
				proto = runtimeapi.Protocol_SCTP
			}
			config.PortMappings = append(config.PortMappings, &runtimeapi.PortMapping{
				Protocol: proto, ContainerPort: p.ContainerPort, HostPort: p.HostPort, HostIp: p.HostIP,
			})
		}
	}
	return config, nil
}

func namespaceOptions(pod *v1.Pod) *runtimeapi.NamespaceOption {
	o := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}
	if pod.Spec.HostNetwork {
		o.Network = runtimeapi.NamespaceMode_NODE
	}
	if pod.Spec.HostPID {
		o.Pid = runtimeapi.NamespaceMode_NODE
	} else if pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace {
		o.Pid = runtimeapi.NamespaceMode_POD
	}
	if pod.Spec.HostIPC {
		o.Ipc = runtimeapi.NamespaceMode_NODE
	}
	return o
}

func anyPrivileged(pod *v1.Pod) bool {
	for _, cs := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			if c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
				return true
			}
		}
	}
	return false
}

// cgroupParent is the pod's cgroup under upstream's cgroupfs layout (podcgroups.Parent).
func cgroupParent(pod *v1.Pod) string {
	return podcgroups.Parent(qosClass(pod), pod.UID)
}

// dnsConfig is the pod's resolv.conf as its dnsPolicy says: the cluster's DNS when one is
// configured (ClusterFirst), the host's (Default, or ClusterFirst without cluster DNS, as
// upstream falls back), or only the pod's dnsConfig (None).
func (k *Kubelet) dnsConfig(pod *v1.Pod) *runtimeapi.DNSConfig {
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		policy = v1.DNSClusterFirst
	}
	if pod.Spec.HostNetwork && policy == v1.DNSClusterFirst {
		policy = v1.DNSDefault
	}
	c := &runtimeapi.DNSConfig{}
	switch policy {
	case v1.DNSNone:
	case v1.DNSClusterFirst, v1.DNSClusterFirstWithHostNet:
		if len(k.cfg.ClusterDNS) > 0 {
			domain := k.cfg.ClusterDomain
			if domain == "" {
				domain = "cluster.local"
			}
			c.Servers = append(c.Servers, k.cfg.ClusterDNS...)
			c.Searches = []string{pod.Namespace + ".svc." + domain, "svc." + domain, domain}
			_, hostSearches, _ := readResolvConf("/etc/resolv.conf")
			c.Searches = append(c.Searches, hostSearches...)
			c.Options = []string{"ndots:5"}
			break
		}
		fallthrough
	default:
		c.Servers, c.Searches, c.Options = readResolvConf("/etc/resolv.conf")
	}
	if d := pod.Spec.DNSConfig; d != nil {
		c.Servers = append(c.Servers, d.Nameservers...)
		c.Searches = append(c.Searches, d.Searches...)
		for _, o := range d.Options {
			if o.Value != nil {
				c.Options = append(c.Options, o.Name+":"+*o.Value)
			} else {
				c.Options = append(c.Options, o.Name)
			}
		}
	}
	return c
}

func readResolvConf(path string) (servers, searches, options []string) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, nil
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch fields[0] {
		case "nameserver":
			servers = append(servers, fields[1])
		case "search":
			searches = fields[1:]
		case "options":
			options = fields[1:]
		}
	}
	return servers, searches, options
}

// containerConfig is the CRI container for spec's next attempt: command and args with $(VAR)
// expanded, environment, mounts, resources as cgroup limits, security context, log path.
func (k *Kubelet) containerConfig(ctx context.Context, pod *v1.Pod, spec *v1.Container, imageRef string, attempt uint32, rs *podRuntime, isInit bool) (*runtimeapi.ContainerConfig, error) {
	env, err := k.containerEnv(ctx, pod, spec, rs)
	if err != nil {
		return nil, err
	}
	lookup := map[string]string{}
	for _, e := range env {
		lookup[e.Key] = string(e.Value)
	}
	mapping := func(name string) string {
		if v, ok := lookup[name]; ok {
			return v
		}
		return "$(" + name + ")"
	}
	var command, args []string
	for _, c := range spec.Command {
		command = append(command, expand(c, mapping))
	}
	for _, a := range spec.Args {
		args = append(args, expand(a, mapping))
	}
	mounts, err := k.volumes.mounts(pod, spec, rs, lookup)
	if err != nil {
		return nil, err
	}
	containerType := "app"
	if isInit {
		containerType = "init"
	}
	config := &runtimeapi.ContainerConfig{
		Metadata:   &runtimeapi.ContainerMetadata{Name: spec.Name, Attempt: attempt},
		Image:      &runtimeapi.ImageSpec{Image: imageRef, UserSpecifiedImage: spec.Image},
		Command:    command,
		Args:       args,
		WorkingDir: spec.WorkingDir,
		Envs:       env,
		Mounts:     mounts,
		Labels: map[string]string{
			runtime.LabelPodName: pod.Name, runtime.LabelPodNamespace: pod.Namespace, runtime.LabelPodUID: string(pod.UID),
			runtime.LabelContainerName: spec.Name, runtime.LabelContainerType: containerType,
		},
		Annotations: map[string]string{annotationRestartCount: strconv.Itoa(int(attempt))},
		Stdin:       spec.Stdin,
		StdinOnce:   spec.StdinOnce,
		Tty:         spec.TTY,
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources:       k.containerResources(pod, spec),
			SecurityContext: containerSecurityContext(pod, spec),
		},
	}
	if k.cfg.PodLogsDir != "" {
		config.LogPath = filepath.Join(spec.Name, strconv.Itoa(int(attempt))+".log")
	}
	if path, ok := k.volumes.terminationLog(pod, spec, attempt); ok {
		config.Annotations[annotationTerminationLog] = path
		target := spec.TerminationMessagePath
		if target == "" {
			target = v1.TerminationMessagePathDefault
		}
		config.Mounts = append(config.Mounts, &runtimeapi.Mount{ContainerPath: target, HostPath: path})
	}
	if sc := config.Linux.SecurityContext; spec.SecurityContext != nil || pod.Spec.SecurityContext != nil {
		nonRoot := false
		if pod.Spec.SecurityContext != nil && pod.Spec.SecurityContext.RunAsNonRoot != nil {
			nonRoot = *pod.Spec.SecurityContext.RunAsNonRoot
		}
		if spec.SecurityContext != nil && spec.SecurityContext.RunAsNonRoot != nil {
			nonRoot = *spec.SecurityContext.RunAsNonRoot
		}
		if nonRoot && sc.RunAsUser != nil && sc.RunAsUser.Value == 0 {
			return nil, fmt.Errorf("container's runAsUser breaks non-root policy (pod: %q, container: %s)", formatPod(pod), spec.Name)
		}
		if nonRoot && sc.RunAsUser == nil {
			return nil, fmt.Errorf("container has runAsNonRoot and image will run as root (pod: %q, container: %s)", formatPod(pod), spec.Name)
		}
	}
	return config, nil
}

// containerResources turns requests and limits into cgroup v1 settings as upstream does.
func (k *Kubelet) containerResources(pod *v1.Pod, spec *v1.Container) *runtimeapi.LinuxContainerResources {
	r := &runtimeapi.LinuxContainerResources{}
	cpuRequest := spec.Resources.Requests.Cpu()
	cpuLimit := spec.Resources.Limits.Cpu()
	if cpuRequest.IsZero() && !cpuLimit.IsZero() {
		cpuRequest = cpuLimit
	}
	shares := int64(2)
	if !cpuRequest.IsZero() {
		shares = max(cpuRequest.MilliValue()*1024/1000, 2)
	}
	r.CpuShares = shares
	if !cpuLimit.IsZero() {
		r.CpuPeriod = 100000
		r.CpuQuota = max(cpuLimit.MilliValue()*100000/1000, 1000)
	}
	if mem := spec.Resources.Limits.Memory(); !mem.IsZero() {
		r.MemoryLimitInBytes = mem.Value()
	}
	r.OomScoreAdj = k.oomScoreAdj(pod, spec)
	return r
}

// oomScoreAdj is upstream's policy clamped at 0: these machines refuse a negative value
// (no CAP_SYS_RESOURCE), so Guaranteed pods get 0 instead of -997.
func (k *Kubelet) oomScoreAdj(pod *v1.Pod, spec *v1.Container) int64 {
	switch qosClass(pod) {
	case v1.PodQOSGuaranteed:
		return 0
	case v1.PodQOSBestEffort:
		return 1000
	}
	request := spec.Resources.Requests.Memory().Value()
	capacity := k.cfg.Machine.MemoryBytes
	if capacity <= 0 {
		return 999
	}
	adj := 1000 - int64(math.Round(1000*float64(request)/float64(capacity)))
	return min(max(adj, 2), 999)
}

func containerSecurityContext(pod *v1.Pod, spec *v1.Container) *runtimeapi.LinuxContainerSecurityContext {
	sc := &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: namespaceOptions(pod)}
	if psc := pod.Spec.SecurityContext; psc != nil {
		if psc.RunAsUser != nil {
			sc.RunAsUser = &runtimeapi.Int64Value{Value: *psc.RunAsUser}
		}
		if psc.RunAsGroup != nil {
			sc.RunAsGroup = &runtimeapi.Int64Value{Value: *psc.RunAsGroup}
		}
		sc.SupplementalGroups = append(sc.SupplementalGroups, psc.SupplementalGroups...)
		if psc.FSGroup != nil {
			sc.SupplementalGroups = append(sc.SupplementalGroups, *psc.FSGroup)
		}
	}
	privileged := false
	if csc := spec.SecurityContext; csc != nil {
		if csc.RunAsUser != nil {
			sc.RunAsUser = &runtimeapi.Int64Value{Value: *csc.RunAsUser}
		}
		if csc.RunAsGroup != nil {
			sc.RunAsGroup = &runtimeapi.Int64Value{Value: *csc.RunAsGroup}
		}
		if csc.ReadOnlyRootFilesystem != nil {
			sc.ReadonlyRootfs = *csc.ReadOnlyRootFilesystem
		}
		if csc.Privileged != nil {
			privileged = *csc.Privileged
		}
		if csc.AllowPrivilegeEscalation != nil {
			sc.NoNewPrivs = !*csc.AllowPrivilegeEscalation
		}
		if c := csc.Capabilities; c != nil {
			sc.Capabilities = &runtimeapi.Capability{}
			for _, a := range c.Add {
				sc.Capabilities.AddCapabilities = append(sc.Capabilities.AddCapabilities, string(a))
			}
			for _, d := range c.Drop {
				sc.Capabilities.DropCapabilities = append(sc.Capabilities.DropCapabilities, string(d))
			}
		}
	}
	sc.Privileged = privileged
	if !privileged {
		sc.MaskedPaths = defaultMaskedPaths
		sc.ReadonlyPaths = defaultReadonlyPaths
	}
	return sc
}

// containerEnv is the container's environment as upstream builds it: envFrom sources first,
// then env in order, each value able to refer to earlier ones and to the Services' variables
// with $(VAR), then the Services' variables (serviceEnv) that neither set.
func (k *Kubelet) containerEnv(ctx context.Context, pod *v1.Pod, spec *v1.Container, rs *podRuntime) ([]*runtimeapi.KeyValue, error) {
	vars := map[string]string{}
	var order []string
	set := func(name, value string) {
		if _, ok := vars[name]; !ok {
			order = append(order, name)
		}
		vars[name] = value
	}
	for _, from := range spec.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			optional := from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional
			cm, err := k.client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, from.ConfigMapRef.Name, metav1.GetOptions{})
			if err != nil {
				if optional {
					continue
				}
				return nil, err
			}
			for _, key := range sortedKeys(cm.Data) {
				set(from.Prefix+key, cm.Data[key])
			}
		case from.SecretRef != nil:
			optional := from.SecretRef.Optional != nil && *from.SecretRef.Optional
			s, err := k.client.CoreV1().Secrets(pod.Namespace).Get(ctx, from.SecretRef.Name, metav1.GetOptions{})
			if err != nil {
				if optional {
					continue
				}
				return nil, err
			}
			keys := make([]string, 0, len(s.Data))
			for key := range s.Data {
				keys = append(keys, key)
			}
			sort.Strings(keys)
			for _, key := range keys {
				set(from.Prefix+key, string(s.Data[key]))
			}
		}
	}
	services, err := k.serviceEnv(pod)
	if err != nil {
		return nil, err
	}
	mapping := func(name string) string {
		if v, ok := vars[name]; ok {
			return v
		}
		if v, ok := services[name]; ok {
			return v
		}
		return "$(" + name + ")"
	}
	for _, e := range spec.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, mapping))
			continue
		}
		value, skip, err := k.envValueFrom(ctx, pod, spec, e.ValueFrom, rs)
		if err != nil {
			return nil, err
		}
		if !skip {
			set(e.Name, value)
		}
	}
	// then the Services' variables the container does not set itself, as upstream
	for _, name := range sortedKeys(services) {
		if _, ok := vars[name]; !ok {
			set(name, services[name])
		}
	}
	out := make([]*runtimeapi.KeyValue, 0, len(order))
	for _, name := range order {
		out = append(out, &runtimeapi.KeyValue{Key: name, Value: []byte(vars[name])})
	}
	return out, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	return keys
}

// envValueFrom resolves one valueFrom; skip is true for an optional source that is absent.
func (k *Kubelet) envValueFrom(ctx context.Context, pod *v1.Pod, spec *v1.Container, from *v1.EnvVarSource, rs *podRuntime) (string, bool, error) {
	switch {
	case from.FieldRef != nil:
		v, err := k.podFieldValue(pod, from.FieldRef.FieldPath, rs)
		return v, false, err
	case from.ResourceFieldRef != nil:
		v, err := k.resourceFieldValue(pod, spec, from.ResourceFieldRef)
		return v, false, err
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		optional := ref.Optional != nil && *ref.Optional
		cm, err := k.client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if optional {
				return "", true, nil
			}
			return "", false, err
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			if optional {
				return "", true, nil
			}
			return "", false, fmt.Errorf("couldn't find key %v in ConfigMap %v/%v", ref.Key, pod.Namespace, ref.Name)
		}
		return v, false, nil
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		optional := ref.Optional != nil && *ref.Optional
		s, err := k.client.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if optional {
				return "", true, nil
			}
			return "", false, err
		}
		v, ok := s.Data[ref.Key]
		if !ok {
			if optional {
				return "", true, nil
			}
			return "", false, fmt.Errorf("couldn't find key %v in Secret %v/%v", ref.Key, pod.Namespace, ref.Name)
		}
		return string(v), false, nil
	}
	return "", false, nil
}

// podFieldValue is the downward API's value for a pod field path.
func (k *Kubelet) podFieldValue(pod *v1.Pod, path string, rs *podRuntime) (string, error) {
	podIPs := []string{}
	if pod.Spec.HostNetwork {
		podIPs = k.hostIPs()
	} else if rs != nil {
		podIPs = rs.podIPs()
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP":
		return k.hostIPs()[0], nil
	case "status.hostIPs":
		return strings.Join(k.hostIPs(), ","), nil
	case "status.podIP":
		if len(podIPs) > 0 {
			return podIPs[0], nil
		}
		return "", nil
	case "status.podIPs":
		return strings.Join(podIPs, ","), nil
	}
	if key, ok := subscript(path, "metadata.labels"); ok {
		return pod.Labels[key], nil
	}
	if key, ok := subscript(path, "metadata.annotations"); ok {
		return pod.Annotations[key], nil
	}
	return "", fmt.Errorf("unsupported fieldPath: %s", path)
}

// subscript reads KEY from PREFIX['KEY'].
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok || !strings.HasSuffix(rest, "']") {
		return "", false
	}
	return strings.TrimSuffix(rest, "']"), true
}

// formatMap is the downward API's rendering of labels and annotations: key="value" lines.
func formatMap(m map[string]string) string {
	var b strings.Builder
	for i, key := range sortedKeys(m) {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s=%q", key, m[key])
	}
	return b.String()
}

// resourceFieldValue is the downward API's value for a container resource, in units of its
// divisor rounded up; an unset limit is the node's allocatable.
func (k *Kubelet) resourceFieldValue(pod *v1.Pod, spec *v1.Container, ref *v1.ResourceFieldSelector) (string, error) {
	c := spec
	if ref.ContainerName != "" {
		if found, _ := containerSpec(pod, ref.ContainerName); found != nil {
			c = found
		}
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	var q resource.Quantity
	switch ref.Resource {
	case "limits.cpu":
		q = *c.Resources.Limits.Cpu()
		if q.IsZero() {
			q = *resource.NewQuantity(int64(k.cfg.Machine.CPUs), resource.DecimalSI)
		}
	case "requests.cpu":
		q = *c.Resources.Requests.Cpu()
	case "limits.memory":
		q = *c.Resources.Limits.Memory()
		if q.IsZero() {
			q = *resource.NewQuantity(k.cfg.Machine.MemoryBytes, resource.BinarySI)
		}
	case "requests.memory":
		q = *c.Resources.Requests.Memory()
	case "limits.ephemeral-storage":
		q = *c.Resources.Limits.StorageEphemeral()
		if q.IsZero() {
			q = *resource.NewQuantity(k.cfg.Machine.EphemeralStorageBytes, resource.BinarySI)
		}
	case "requests.ephemeral-storage":
		q = *c.Resources.Requests.StorageEphemeral()
	default:
		return "", fmt.Errorf("unsupported container resource: %v", ref.Resource)
	}
	if strings.HasSuffix(ref.Resource, ".cpu") {
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	}
	return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
}

// expand is upstream's $(VAR) expansion: $(NAME) becomes mapping(NAME), $$ becomes $, and
// anything else is left as written.
func expand(input string, mapping func(string) string) string {
	var b strings.Builder
	checkpoint := 0
	for cursor := 0; cursor < len(input); cursor++ {
		if input[cursor] != '$' || cursor+1 >= len(input) {
			continue
		}
		b.WriteString(input[checkpoint:cursor])
		rest := input[cursor+1:]
		read, isVar, advance := "", false, 1
		switch rest[0] {
		case '$':
			read = "$"
		case '(':
			read, advance = "$(", 1
			for i := 1; i < len(rest); i++ {
				if rest[i] == ')' {
					read, isVar, advance = rest[1:i], true, i+1
					break
				}
			}
		default:
			read = "$" + string(rest[0])
		}
		if isVar {
			b.WriteString(mapping(read))
		} else {
			b.WriteString(read)
		}
		cursor += advance
		checkpoint = cursor + 1
	}
	b.WriteString(input[checkpoint:])
	return b.String()
}
