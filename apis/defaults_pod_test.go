package apis

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func minimalPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx:1.25"}}},
	}
}

func TestDefaultPodFillsSpecDefaults(t *testing.T) {
	pod := minimalPod()
	DefaultPod(pod)
	s := pod.Spec
	checks := []struct {
		name      string
		got, want any
	}{
		{"restartPolicy", s.RestartPolicy, corev1.RestartPolicyAlways},
		{"dnsPolicy", s.DNSPolicy, corev1.DNSClusterFirst},
		{"terminationGracePeriodSeconds", *s.TerminationGracePeriodSeconds, int64(30)},
		{"schedulerName", s.SchedulerName, "default-scheduler"},
		{"enableServiceLinks", *s.EnableServiceLinks, true},
		{"securityContext", *s.SecurityContext, corev1.PodSecurityContext{}},
		{"terminationMessagePath", s.Containers[0].TerminationMessagePath, "/dev/termination-log"},
		{"terminationMessagePolicy", s.Containers[0].TerminationMessagePolicy, corev1.TerminationMessageReadFile},
		{"imagePullPolicy", s.Containers[0].ImagePullPolicy, corev1.PullIfNotPresent},
	}
	for _, c := range checks {
		if !equality.Semantic.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestDefaultPodSpecLeavesPodOnlyFieldsToDefaultPod(t *testing.T) {
	spec := minimalPod().Spec
	spec.HostNetwork = true
	spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80}}
	spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
	DefaultPodSpec(&spec)
	if spec.EnableServiceLinks != nil || spec.Priority != nil || len(spec.Tolerations) != 0 {
		t.Errorf("template got pod-only defaults: enableServiceLinks=%v priority=%v tolerations=%v", spec.EnableServiceLinks, spec.Priority, spec.Tolerations)
	}
	if spec.Containers[0].Resources.Requests != nil {
		t.Errorf("template requests defaulted from limits: %v", spec.Containers[0].Resources.Requests)
	}
	if hp := spec.Containers[0].Ports[0].HostPort; hp != 0 {
		t.Errorf("template hostPort = %d, want 0", hp)
	}
	if p := spec.Containers[0].Ports[0].Protocol; p != corev1.ProtocolTCP {
		t.Errorf("protocol = %q, want TCP", p)
	}
}

func TestDefaultImagePullPolicyFollowsTheTag(t *testing.T) {
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		image string
		want  corev1.PullPolicy
	}{
		{"nginx", corev1.PullAlways},
		{"nginx:latest", corev1.PullAlways},
		{"nginx:1.25", corev1.PullIfNotPresent},
		{"docker.io/library/nginx", corev1.PullAlways},
		{"localhost:5000/team/app", corev1.PullAlways},
		{"localhost:5000/team/app:v2", corev1.PullIfNotPresent},
		{"nginx@" + digest, corev1.PullIfNotPresent},
		{"nginx:1.25@" + digest, corev1.PullIfNotPresent},
		{"nginx:latest@" + digest, corev1.PullAlways},
		{"nginx@sha256:abc", corev1.PullIfNotPresent}, // digest does not parse
		{"Nginx", corev1.PullIfNotPresent},            // repository must be lower case
		{"", corev1.PullIfNotPresent},                 // does not parse
		{"[::1]:5000/app", corev1.PullAlways},         // IPv6 registry
		{"registry.example.com/a/b/c", corev1.PullAlways},
	}
	for _, tt := range tests {
		pod := minimalPod()
		pod.Spec.Containers[0].Image = tt.image
		DefaultPod(pod)
		if got := pod.Spec.Containers[0].ImagePullPolicy; got != tt.want {
			t.Errorf("image %q: imagePullPolicy = %s, want %s", tt.image, got, tt.want)
		}
	}

	pod := minimalPod()
	pod.Spec.Containers[0].Image = "nginx"
	pod.Spec.Containers[0].ImagePullPolicy = corev1.PullNever
	DefaultPod(pod)
	if got := pod.Spec.Containers[0].ImagePullPolicy; got != corev1.PullNever {
		t.Errorf("explicit policy overwritten: %s", got)
	}
}

func TestDefaultContainerPortsEnvAndProbes(t *testing.T) {
	pod := minimalPod()
	c := &pod.Spec.Containers[0]
	c.Ports = []corev1.ContainerPort{{ContainerPort: 80}, {ContainerPort: 53, Protocol: corev1.ProtocolUDP}}
	c.Env = []corev1.EnvVar{{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}}}
	c.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(80)}}}
	c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9000}}, PeriodSeconds: 5}
	c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromString("http")}}}
	DefaultPod(pod)

	if c.Ports[0].Protocol != corev1.ProtocolTCP || c.Ports[1].Protocol != corev1.ProtocolUDP {
		t.Errorf("protocols = %s, %s; want TCP, UDP", c.Ports[0].Protocol, c.Ports[1].Protocol)
	}
	if v := c.Env[0].ValueFrom.FieldRef.APIVersion; v != "v1" {
		t.Errorf("fieldRef apiVersion = %q, want v1", v)
	}
	want := corev1.Probe{
		ProbeHandler:   corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(80), Scheme: corev1.URISchemeHTTP}},
		TimeoutSeconds: 1, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 3,
	}
	if !equality.Semantic.DeepEqual(*c.LivenessProbe, want) {
		t.Errorf("liveness probe = %+v, want %+v", *c.LivenessProbe, want)
	}
	if c.ReadinessProbe.PeriodSeconds != 5 || c.ReadinessProbe.GRPC.Service == nil || *c.ReadinessProbe.GRPC.Service != "" {
		t.Errorf("readiness probe = %+v, want periodSeconds kept and grpc service \"\"", *c.ReadinessProbe)
	}
	if get := c.Lifecycle.PreStop.HTTPGet; get.Path != "/" || get.Scheme != corev1.URISchemeHTTP {
		t.Errorf("preStop httpGet = %+v, want path / and scheme HTTP", get)
	}
}

func TestDefaultPodRequestsFromLimitsAndRoundsToMilli(t *testing.T) {
	pod := minimalPod()
	pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("0.0001"), corev1.ResourceMemory: resource.MustParse("1Gi")},
		Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")},
	}
	pod.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox",
		Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}}}}
	DefaultPod(pod)

	r := pod.Spec.Containers[0].Resources
	if got := r.Requests.Cpu().String(); got != "1m" {
		t.Errorf("cpu request = %s, want 1m (from the limit, rounded up)", got)
	}
	if got := r.Limits.Cpu().String(); got != "1m" {
		t.Errorf("cpu limit = %s, want 1m", got)
	}
	if got := r.Requests.Memory().String(); got != "512Mi" {
		t.Errorf("memory request = %s, want the explicit 512Mi", got)
	}
	if got := pod.Spec.InitContainers[0].Resources.Requests.Cpu().String(); got != "2" {
		t.Errorf("init cpu request = %s, want 2", got)
	}
}

func TestDefaultVolumes(t *testing.T) {
	pod := minimalPod()
	pod.Spec.Volumes = []corev1.Volume{
		{Name: "scratch"},
		{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
		{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s"}}},
		{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}}}}},
		{Name: "token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}}}}},
		{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/log"}}},
		{Name: "mine", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s", DefaultMode: ptr.To(int32(0400))}}},
	}
	DefaultPod(pod)
	v := pod.Spec.Volumes
	if v[0].EmptyDir == nil {
		t.Errorf("volume without a source: %+v, want emptyDir", v[0].VolumeSource)
	}
	for i, mode := range []*int32{v[1].ConfigMap.DefaultMode, v[2].Secret.DefaultMode, v[3].DownwardAPI.DefaultMode, v[4].Projected.DefaultMode} {
		if mode == nil || *mode != 0644 {
			t.Errorf("volume %d defaultMode = %v, want 0644", i+1, mode)
		}
	}
	if got := *v[6].Secret.DefaultMode; got != 0400 {
		t.Errorf("explicit defaultMode = %o, want 400", got)
	}
	if got := v[3].DownwardAPI.Items[0].FieldRef.APIVersion; got != "v1" {
		t.Errorf("downward API fieldRef apiVersion = %q, want v1", got)
	}
	if got := v[4].Projected.Sources[0].ServiceAccountToken.ExpirationSeconds; got == nil || *got != 3600 {
		t.Errorf("token expirationSeconds = %v, want 3600", got)
	}
	if got := v[5].HostPath.Type; got == nil || *got != corev1.HostPathUnset {
		t.Errorf("hostPath type = %v, want \"\"", got)
	}
}

func TestDefaultLegacyVolumeSources(t *testing.T) {
	pod := minimalPod()
	pod.Spec.Volumes = []corev1.Volume{
		{Name: "iscsi", VolumeSource: corev1.VolumeSource{ISCSI: &corev1.ISCSIVolumeSource{}}},
		{Name: "rbd", VolumeSource: corev1.VolumeSource{RBD: &corev1.RBDVolumeSource{}}},
		{Name: "azure", VolumeSource: corev1.VolumeSource{AzureDisk: &corev1.AzureDiskVolumeSource{}}},
		{Name: "scaleio", VolumeSource: corev1.VolumeSource{ScaleIO: &corev1.ScaleIOVolumeSource{}}},
		{Name: "image", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: "artifacts:v1"}}},
	}
	DefaultPod(pod)
	v := pod.Spec.Volumes
	got := []any{v[0].ISCSI.ISCSIInterface, v[1].RBD.RBDPool, v[1].RBD.RadosUser, v[1].RBD.Keyring,
		*v[2].AzureDisk.CachingMode, *v[2].AzureDisk.FSType, *v[2].AzureDisk.ReadOnly, *v[2].AzureDisk.Kind,
		v[3].ScaleIO.StorageMode, v[3].ScaleIO.FSType, v[4].Image.PullPolicy}
	want := []any{"default", "rbd", "admin", "/etc/ceph/keyring",
		corev1.AzureDataDiskCachingReadWrite, "ext4", false, corev1.AzureSharedBlobDisk,
		"ThinProvisioned", "xfs", corev1.PullIfNotPresent}
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("legacy volume defaults = %v, want %v", got, want)
	}
}

func TestDefaultHostNetworkHostPortIsContainerPort(t *testing.T) {
	pod := minimalPod()
	pod.Spec.HostNetwork = true
	pod.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080}, {ContainerPort: 9090, HostPort: 9090}}
	DefaultPod(pod)
	for _, p := range pod.Spec.Containers[0].Ports {
		if p.HostPort != p.ContainerPort {
			t.Errorf("port %d: hostPort = %d", p.ContainerPort, p.HostPort)
		}
	}
}

func TestDefaultServiceAccountAliases(t *testing.T) {
	tests := []struct {
		name, account, deprecated string
		want                      string
	}{
		{"only the new field", "builder", "", "builder"},
		{"only the deprecated field", "", "builder", "builder"},
		{"both: the new field wins", "builder", "legacy", "builder"},
		{"neither", "", "", ""},
	}
	for _, tt := range tests {
		pod := minimalPod()
		pod.Spec.ServiceAccountName, pod.Spec.DeprecatedServiceAccount = tt.account, tt.deprecated
		DefaultPod(pod)
		if pod.Spec.ServiceAccountName != tt.want || pod.Spec.DeprecatedServiceAccount != tt.want {
			t.Errorf("%s: serviceAccountName=%q serviceAccount=%q, want both %q", tt.name, pod.Spec.ServiceAccountName, pod.Spec.DeprecatedServiceAccount, tt.want)
		}
	}
}

func TestDefaultTolerationsForNotReadyAndUnreachableNodes(t *testing.T) {
	notReady := corev1.Toleration{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To(int64(300))}
	unreachable := corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To(int64(300))}
	own := corev1.Toleration{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To(int64(5))}
	everything := corev1.Toleration{Operator: corev1.TolerationOpExists}
	anyEffect := corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists}
	noSchedule := corev1.Toleration{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}
	tests := []struct {
		name string
		have []corev1.Toleration
		want []corev1.Toleration
	}{
		{"none: both added", nil, []corev1.Toleration{notReady, unreachable}},
		{"own not-ready kept", []corev1.Toleration{own}, []corev1.Toleration{own, unreachable}},
		{"empty key tolerates both", []corev1.Toleration{everything}, []corev1.Toleration{everything}},
		{"empty effect tolerates NoExecute", []corev1.Toleration{anyEffect}, []corev1.Toleration{anyEffect, notReady}},
		{"NoSchedule does not count", []corev1.Toleration{noSchedule}, []corev1.Toleration{noSchedule, notReady, unreachable}},
	}
	for _, tt := range tests {
		pod := minimalPod()
		pod.Spec.Tolerations = tt.have
		DefaultPod(pod)
		if !equality.Semantic.DeepEqual(pod.Spec.Tolerations, tt.want) {
			t.Errorf("%s: tolerations = %+v, want %+v", tt.name, pod.Spec.Tolerations, tt.want)
		}
	}
}

func TestDefaultPodIPMatchesFirstPodIPs(t *testing.T) {
	tests := []struct {
		name   string
		podIP  string
		podIPs []string
		want   []string
	}{
		{"podIP only", "10.0.0.1", nil, []string{"10.0.0.1"}},
		{"podIPs only", "", []string{"10.0.0.1", "fd00::1"}, []string{"10.0.0.1", "fd00::1"}},
		{"podIP differs: podIP wins", "10.0.0.2", []string{"10.0.0.1", "fd00::1"}, []string{"10.0.0.2"}},
		{"both agree", "10.0.0.1", []string{"10.0.0.1", "fd00::1"}, []string{"10.0.0.1", "fd00::1"}},
	}
	for _, tt := range tests {
		pod := minimalPod()
		pod.Status.PodIP = tt.podIP
		for _, ip := range tt.podIPs {
			pod.Status.PodIPs = append(pod.Status.PodIPs, corev1.PodIP{IP: ip})
		}
		DefaultPod(pod)
		var got []string
		for _, ip := range pod.Status.PodIPs {
			got = append(got, ip.IP)
		}
		if !equality.Semantic.DeepEqual(got, tt.want) || pod.Status.PodIP != tt.want[0] {
			t.Errorf("%s: podIP=%q podIPs=%v, want podIP=%q podIPs=%v", tt.name, pod.Status.PodIP, got, tt.want[0], tt.want)
		}
	}
}

func TestDefaultPodLevelResourcesFromContainers(t *testing.T) {
	pod := minimalPod()
	pod.Spec.Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}}
	pod.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("64Mi")}
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "side", Image: "busybox",
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}}})
	DefaultPod(pod)
	r := pod.Spec.Resources
	if got := r.Requests.Cpu().String(); got != "750m" {
		t.Errorf("pod cpu request = %s, want the containers' 750m", got)
	}
	if got := r.Requests.Memory().String(); got != "64Mi" {
		t.Errorf("pod memory request = %s, want the containers' 64Mi", got)
	}
	if len(r.Limits) != 1 {
		t.Errorf("pod limits = %v, want only the explicit cpu", r.Limits)
	}
	if errs := ValidatePod(pod); len(errs) != 0 {
		t.Errorf("defaulted pod with pod-level resources is invalid: %v", errs)
	}
}

func TestDefaultPodIsIdempotent(t *testing.T) {
	pod := minimalPod()
	pod.Spec.HostNetwork = true
	pod.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80}}
	pod.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
	pod.Spec.Volumes = []corev1.Volume{{Name: "scratch"}}
	DefaultPod(pod)
	again := pod.DeepCopy()
	DefaultPod(again)
	if !equality.Semantic.DeepEqual(pod, again) {
		t.Errorf("second DefaultPod changed the pod:\n%s", podSpecDiff(pod.Spec, again.Spec))
	}
}
