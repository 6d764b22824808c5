package apis

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

// storedPod is a pod as read back for an update: defaulted, with a resourceVersion.
func storedPod() *corev1.Pod {
	pod := validPod()
	pod.ResourceVersion = "7"
	pod.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}
	return pod
}

const podUpdateForbidden = "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"

func TestValidatePodUpdateAllowsWhatUpstreamAllows(t *testing.T) {
	tests := []struct {
		name   string
		old    func(*corev1.Pod)
		update func(*corev1.Pod)
	}{
		{"container image", nil, func(p *corev1.Pod) { p.Spec.Containers[0].Image = "nginx:1.27" }},
		{"init container image", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox:1", ImagePullPolicy: "IfNotPresent", TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: "File"}}
		}, func(p *corev1.Pod) { p.Spec.InitContainers[0].Image = "busybox:2" }},
		{"labels and annotations", nil, func(p *corev1.Pod) {
			p.Labels = map[string]string{"tier": "web"}
			p.Annotations = map[string]string{"note": "x"}
		}},
		{"activeDeadlineSeconds set", nil, func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr.To(int64(600)) }},
		{"activeDeadlineSeconds lowered", func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr.To(int64(600)) },
			func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr.To(int64(60)) }},
		{"toleration added", nil, func(p *corev1.Pod) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: "gpu", Operator: corev1.TolerationOpExists})
		}},
		{"tolerationSeconds changed", nil, func(p *corev1.Pod) { p.Spec.Tolerations[0].TolerationSeconds = ptr.To(int64(10)) }},
		{"scheduling gate removed", func(p *corev1.Pod) {
			p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/a"}, {Name: "example.com/b"}}
		}, func(p *corev1.Pod) { p.Spec.SchedulingGates = p.Spec.SchedulingGates[1:] }},
		{"negative grace period fixed to 1", func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = ptr.To(int64(-5)) },
			func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = ptr.To(int64(1)) }},
		{"gated pod: node selector added to", func(p *corev1.Pod) {
			p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/a"}}
			p.Spec.NodeSelector = map[string]string{"zone": "a"}
		}, func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"zone": "a", "disk": "ssd"} }},
		{"gated pod: node affinity set", func(p *corev1.Pod) {
			p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/a"}}
		}, func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}}}}}}}
		}},
	}
	for _, tt := range tests {
		old := storedPod()
		if tt.old != nil {
			tt.old(old)
		}
		pod := old.DeepCopy()
		tt.update(pod)
		sameErrors(t, tt.name, ValidatePodUpdate(pod, old), nil)
	}
}

func TestValidatePodUpdateForbidsTheRest(t *testing.T) {
	tests := []struct {
		name   string
		old    func(*corev1.Pod)
		update func(*corev1.Pod)
		want   []string
	}{
		{"container added", nil, func(p *corev1.Pod) { p.Spec.Containers = append(p.Spec.Containers, p.Spec.Containers[0]) },
			[]string{
				`spec.containers[1].name: Duplicate value: "app"`,
				"spec.containers: Forbidden: pod updates may not add or remove containers",
			}},
		{"image emptied", nil, func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" },
			[]string{"spec.containers[0].image: Required value", "spec.containers[0].image: Required value"}},
		{"activeDeadlineSeconds raised", func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr.To(int64(60)) },
			func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr.To(int64(600)) },
			[]string{"spec.activeDeadlineSeconds: Invalid value: 600: must be less than or equal to previous value"}},
		{"activeDeadlineSeconds removed", func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr.To(int64(60)) },
			func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = nil },
			[]string{"spec.activeDeadlineSeconds: Invalid value: null: must not update from a positive integer to nil value"}},
		{"toleration removed", nil, func(p *corev1.Pod) { p.Spec.Tolerations = p.Spec.Tolerations[1:] },
			[]string{"spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"}},
		{"scheduling gate added", nil, func(p *corev1.Pod) { p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/a"}} },
			[]string{"spec.schedulingGates[0].name: Forbidden: only deletion is allowed, but found new scheduling gate 'example.com/a'"}},
		{"name changed", nil, func(p *corev1.Pod) { p.Name = "other" },
			[]string{`metadata.name: Invalid value: "other": field is immutable`}},
		{"gated pod: node selector changed", func(p *corev1.Pod) {
			p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/a"}}
			p.Spec.NodeSelector = map[string]string{"zone": "a"}
		}, func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"zone": "b"} },
			[]string{`spec.nodeSelector: Invalid value: {"zone":"b"}: only additions to spec.nodeSelector are allowed (no mutations or deletions)`}},
		{"mirror pod annotation added", func(p *corev1.Pod) { p.Spec.NodeName = "node-1" },
			func(p *corev1.Pod) { p.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "x"} },
			[]string{"metadata.annotations[kubernetes.io/config.mirror]: Forbidden: may not add mirror pod annotation"}},
	}
	for _, tt := range tests {
		old := storedPod()
		if tt.old != nil {
			tt.old(old)
		}
		pod := old.DeepCopy()
		tt.update(pod)
		sameErrors(t, tt.name, ValidatePodUpdate(pod, old), tt.want)
	}
}

func TestValidatePodUpdateOfAnImmutableFieldShowsTheDiff(t *testing.T) {
	old := storedPod()
	pod := old.DeepCopy()
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	pod.Spec.Containers[0].Image = "nginx:1.27" // allowed, so not in the diff
	errs := ValidatePodUpdate(pod, old)
	if len(errs) != 1 {
		t.Fatalf("got %d errors, want 1: %v", len(errs), errs)
	}
	msg := errs[0].Error()
	if !strings.HasPrefix(msg, podUpdateForbidden) {
		t.Fatalf("message does not start like upstream's:\n%s", msg)
	}
	diff := strings.TrimPrefix(msg, podUpdateForbidden)
	if !strings.HasPrefix(diff, "@@ -") || !strings.Contains(diff, "\n- \"restartPolicy\": \"Always\",\n+ \"restartPolicy\": \"Never\",\n") {
		t.Errorf("diff does not show the change as a unified diff:\n%s", diff)
	}
	if strings.Contains(diff, "nginx") {
		t.Errorf("diff shows the allowed image change:\n%s", diff)
	}
}

func TestUnifiedDiffHunks(t *testing.T) {
	a := strings.Split("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20", " ")
	b := append([]string{}, a...)
	b[1] = "two"
	b[17] = "eighteen"
	want := "@@ -1,5 +1,5 @@\n 1\n-2\n+two\n 3\n 4\n 5\n" +
		"@@ -15,6 +15,6 @@\n 15\n 16\n 17\n-18\n+eighteen\n 19\n 20\n"
	if got := unifiedDiff(a, b, 3); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	// Changes within 2*context lines of each other share a hunk.
	c := append([]string{}, a...)
	c[1], c[8] = "two", "nine"
	want = "@@ -1,12 +1,12 @@\n 1\n-2\n+two\n 3\n 4\n 5\n 6\n 7\n 8\n-9\n+nine\n 10\n 11\n 12\n"
	if got := unifiedDiff(a, c, 3); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestUnifiedDiffOfAHugeChangeIsBounded(t *testing.T) {
	a, b := make([]string, 1100), make([]string, 1100)
	for i := range a {
		a[i], b[i] = fmt.Sprint("a", i), fmt.Sprint("b", i)
	}
	lines := strings.Split(strings.TrimSuffix(unifiedDiff(a, b, 3), "\n"), "\n")
	if lines[0] != "@@ -1,1100 +1,1100 @@" || len(lines) != 2201 || lines[1] != "-a0" || lines[1101] != "+b0" {
		t.Errorf("got %d lines starting %q, %q; want one hunk replacing all 1100 lines", len(lines), lines[0], lines[1])
	}
}

func TestValidatePodStatusUpdate(t *testing.T) {
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	terminated := corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}
	tests := []struct {
		name   string
		old    func(*corev1.Pod)
		update func(*corev1.Pod)
		want   []string
	}{
		{"kubelet reports running", nil, func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodRunning
			p.Status.HostIP, p.Status.HostIPs = "192.168.0.10", []corev1.HostIP{{IP: "192.168.0.10"}}
			p.Status.PodIP, p.Status.PodIPs = "10.0.0.5", []corev1.PodIP{{IP: "10.0.0.5"}, {IP: "fd00::5"}}
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}, {Type: "example.com/ready", Status: corev1.ConditionTrue}}
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", State: running}}
		}, nil},
		{"node name changed", nil, func(p *corev1.Pod) { p.Spec.NodeName = "node-2" },
			[]string{"status.nodeName: Forbidden: may not be changed directly"}},
		{"invalid pod IPs", nil, func(p *corev1.Pod) { p.Status.PodIPs = []corev1.PodIP{{IP: "10.0.0.1"}, {IP: "10.0.0.2"}} },
			[]string{`status.podIPs: Invalid value: [{"ip":"10.0.0.1"},{"ip":"10.0.0.2"}]: may specify no more than one IP for each IP family`}},
		{"not an IP", nil, func(p *corev1.Pod) { p.Status.PodIPs = []corev1.PodIP{{IP: "ten"}} },
			[]string{`status.podIPs[0]: Invalid value: "ten": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)`}},
		{"hostIPs disagree with hostIP", nil, func(p *corev1.Pod) {
			p.Status.HostIP, p.Status.HostIPs = "192.168.0.10", []corev1.HostIP{{IP: "192.168.0.11"}}
		}, []string{"status.hostIPs[0].ip: Invalid value: \"192.168.0.11\": must be equal to `hostIP`"}},
		{"terminated container restarted under Never", func(p *corev1.Pod) {
			p.Spec.RestartPolicy = corev1.RestartPolicyNever
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", State: terminated}}
		}, func(p *corev1.Pod) { p.Status.ContainerStatuses[0].State = running },
			[]string{"status.containerStatuses[0].state: Forbidden: may not be transitioned to non-terminated state"}},
		{"QoS class changed", func(p *corev1.Pod) { p.Status.QOSClass = corev1.PodQOSBurstable },
			func(p *corev1.Pod) { p.Status.QOSClass = corev1.PodQOSGuaranteed },
			[]string{`status.qosClass: Invalid value: "Guaranteed": field is immutable`}},
		{"custom condition type", nil, func(p *corev1.Pod) {
			p.Status.Conditions = []corev1.PodCondition{{Type: "not valid", Status: corev1.ConditionTrue}}
		}, []string{`metadata.conditions[0].Type: Invalid value: "not valid": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`}},
		{"nominated node", nil, func(p *corev1.Pod) { p.Status.NominatedNodeName = "Node_1" },
			[]string{`status.nominatedNodeName: Invalid value: "Node_1": ` + dns1123SubdomainMsg}},
	}
	for _, tt := range tests {
		old := storedPod()
		old.Spec.NodeName = "node-1"
		if tt.old != nil {
			tt.old(old)
		}
		pod := old.DeepCopy()
		tt.update(pod)
		sameErrors(t, tt.name, ValidatePodStatusUpdate(pod, old), tt.want)
	}
}
