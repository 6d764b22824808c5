package scheduler

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// The fields of a container slimPod keeps; every other field is dropped. A field missing from
// both lists (one a new API version adds) fails the test.
var (
	keptContainerFields    = []string{"Name", "Image", "Resources", "Ports", "RestartPolicy"}
	droppedContainerFields = []string{"Command", "Args", "WorkingDir", "EnvFrom", "Env", "ResizePolicy",
		"RestartPolicyRules", "VolumeMounts", "VolumeDevices", "LivenessProbe", "ReadinessProbe", "StartupProbe",
		"Lifecycle", "TerminationMessagePath", "TerminationMessagePolicy", "ImagePullPolicy", "SecurityContext",
		"Stdin", "StdinOnce", "TTY"}
)

func fieldNames(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		out = append(out, t.Field(i).Name)
	}
	return out
}

func TestSlimPodKeepsWhatPluginsRead(t *testing.T) {
	decided := map[string]bool{}
	for _, f := range append(append([]string{}, keptContainerFields...), droppedContainerFields...) {
		decided[f] = true
	}
	for _, f := range fieldNames(reflect.TypeOf(corev1.Container{})) {
		if !decided[f] {
			t.Errorf("corev1.Container.%s is neither kept nor dropped by slimPod: decide", f)
		}
	}

	full := corev1.Container{Name: "app", Image: "app:1",
		Command: []string{"run"}, Args: []string{"--fast"}, WorkingDir: "/w",
		Env:          []corev1.EnvVar{{Name: "A", Value: "1"}},
		VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("100m")}},
		Ports:          []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080}},
		RestartPolicy:  ptr.To(corev1.ContainerRestartPolicyAlways),
		ReadinessProbe: &corev1.Probe{PeriodSeconds: 5},
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: map[string]string{"app": "a"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m"}}},
		Spec: corev1.PodSpec{
			NodeSelector:   map[string]string{"disk": "ssd"},
			Tolerations:    []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists}},
			InitContainers: []corev1.Container{full},
			Containers:     []corev1.Container{full},
			EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "debug", Image: "busybox"}}},
			Volumes: []corev1.Volume{
				{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "c"}}},
				{Name: "scratch", VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{}}},
				{Name: "token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
					Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}}}}},
			},
			Overhead: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("10Mi")},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, NominatedNodeName: "n1",
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}},
	}
	want := pod.DeepCopy()
	out, err := slimPod(pod)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*corev1.Pod)
	if got.ManagedFields != nil {
		t.Error("managedFields kept")
	}
	slim := corev1.Container{Name: "app", Image: "app:1", Resources: full.Resources, Ports: full.Ports, RestartPolicy: full.RestartPolicy}
	for _, cs := range [][]corev1.Container{got.Spec.InitContainers, got.Spec.Containers} {
		if len(cs) != 1 || !reflect.DeepEqual(cs[0], slim) {
			t.Errorf("container after slimPod = %+v, want %+v", cs, slim)
		}
	}
	if got.Spec.EphemeralContainers != nil {
		t.Error("ephemeral containers kept")
	}
	if !reflect.DeepEqual(got.Spec.Volumes[:2], want.Spec.Volumes[:2]) {
		t.Errorf("claim volumes changed: %+v", got.Spec.Volumes[:2])
	}
	if v := got.Spec.Volumes[2]; v.Name != "token" || !reflect.DeepEqual(v.VolumeSource, corev1.VolumeSource{}) {
		t.Errorf("a projected volume after slimPod = %+v, want its name alone", v)
	}
	// the rest of the spec, the status and the metadata are the pod's
	got.Spec.InitContainers, got.Spec.Containers, got.Spec.Volumes, got.Spec.EphemeralContainers = nil, nil, nil, nil
	want.Spec.InitContainers, want.Spec.Containers, want.Spec.Volumes, want.Spec.EphemeralContainers = nil, nil, nil, nil
	want.ManagedFields = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("slimPod changed what plugins read:\n got %+v\nwant %+v", got, want)
	}
}
