package apis

import (
	"context"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func podWithContainers(containers ...corev1.ResourceRequirements) *corev1.Pod {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}}
	for _, r := range containers {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "c", Image: "busybox", Resources: r})
	}
	return pod
}

func resources(pairs ...string) corev1.ResourceList {
	list := corev1.ResourceList{}
	for i := 0; i < len(pairs); i += 2 {
		list[corev1.ResourceName(pairs[i])] = resource.MustParse(pairs[i+1])
	}
	return list
}

func TestCreatePodStartsPendingWithItsQOSClassAndGenerationOne(t *testing.T) {
	pod := podWithContainers(corev1.ResourceRequirements{Requests: resources("cpu", "100m")})
	pod.Generation = 7
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1", HostIP: "10.1.0.1"}
	PodStrategy.PrepareForCreate(context.Background(), pod)
	want := corev1.PodStatus{Phase: corev1.PodPending, QOSClass: corev1.PodQOSBurstable}
	if pod.Generation != 1 || pod.Status.Phase != want.Phase || pod.Status.QOSClass != want.QOSClass || pod.Status.PodIP != "" || pod.Status.HostIP != "" {
		t.Errorf("generation %d, status %+v; want 1, %+v", pod.Generation, pod.Status, want)
	}
}

func TestCreateGatedPodIsMarkedSchedulingGated(t *testing.T) {
	pod := podWithContainers(corev1.ResourceRequirements{})
	pod.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/wait"}}
	PodStrategy.PrepareForCreate(context.Background(), pod)
	if len(pod.Status.Conditions) != 1 {
		t.Fatalf("conditions = %+v", pod.Status.Conditions)
	}
	c := pod.Status.Conditions[0]
	if c.Type != corev1.PodScheduled || c.Status != corev1.ConditionFalse || c.Reason != corev1.PodReasonSchedulingGated ||
		c.Message != "Scheduling is blocked due to non-empty scheduling gates" {
		t.Errorf("condition = %+v", c)
	}
}

func TestComputePodQOS(t *testing.T) {
	guaranteed := corev1.ResourceRequirements{Requests: resources("cpu", "1", "memory", "1Gi"), Limits: resources("cpu", "1", "memory", "1Gi")}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want corev1.PodQOSClass
	}{
		{"no requests or limits", podWithContainers(corev1.ResourceRequirements{}), corev1.PodQOSBestEffort},
		{"only resources other than cpu and memory", podWithContainers(corev1.ResourceRequirements{Requests: resources("ephemeral-storage", "1Gi")}), corev1.PodQOSBestEffort},
		{"equal cpu and memory requests and limits", podWithContainers(guaranteed, guaranteed), corev1.PodQOSGuaranteed},
		{"a limit without its request is Burstable here (defaulting copies limits to requests before)", podWithContainers(corev1.ResourceRequirements{Limits: resources("cpu", "1", "memory", "1Gi")}), corev1.PodQOSBurstable},
		{"only cpu set", podWithContainers(corev1.ResourceRequirements{Requests: resources("cpu", "1"), Limits: resources("cpu", "1")}), corev1.PodQOSBurstable},
		{"request below limit", podWithContainers(corev1.ResourceRequirements{Requests: resources("cpu", "1", "memory", "1Gi"), Limits: resources("cpu", "2", "memory", "1Gi")}), corev1.PodQOSBurstable},
		{"one Guaranteed and one BestEffort container", podWithContainers(guaranteed, corev1.ResourceRequirements{}), corev1.PodQOSBurstable},
		{"pod-level resources decide", func() *corev1.Pod {
			p := podWithContainers(corev1.ResourceRequirements{})
			p.Spec.Resources = &guaranteed
			return p
		}(), corev1.PodQOSGuaranteed},
		{"init containers count", func() *corev1.Pod {
			p := podWithContainers(guaranteed)
			p.Spec.InitContainers = []corev1.Container{{Name: "init", Resources: corev1.ResourceRequirements{Requests: resources("cpu", "1")}}}
			return p
		}(), corev1.PodQOSBurstable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := computePodQOS(tc.pod); got != tc.want {
				t.Errorf("QoS = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestUpdatePodKeepsStatusAndCountsSpecChanges(t *testing.T) {
	old := podWithContainers(corev1.ResourceRequirements{})
	old.Generation = 2
	old.Status = corev1.PodStatus{Phase: corev1.PodRunning, QOSClass: corev1.PodQOSBestEffort}

	relabelled := old.DeepCopy()
	relabelled.Labels = map[string]string{"a": "b"}
	relabelled.Status = corev1.PodStatus{Phase: corev1.PodFailed}
	PodStrategy.PrepareForUpdate(context.Background(), relabelled, old)
	if relabelled.Generation != 2 || relabelled.Status.Phase != corev1.PodRunning {
		t.Errorf("metadata-only update: generation %d, phase %s; want 2, Running", relabelled.Generation, relabelled.Status.Phase)
	}

	reimaged := old.DeepCopy()
	reimaged.Spec.Containers[0].Image = "busybox:2"
	PodStrategy.PrepareForUpdate(context.Background(), reimaged, old)
	if reimaged.Generation != 3 {
		t.Errorf("spec update: generation %d, want 3", reimaged.Generation)
	}
}

func TestUpdatePodStatusKeepsSpecOwnersAndQOSAndLetsLabelsChange(t *testing.T) {
	controller := true
	old := podWithContainers(corev1.ResourceRequirements{})
	old.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: "u", Controller: &controller}}
	old.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: corev1.PodQOSBestEffort, ObservedGeneration: 1,
		Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, ObservedGeneration: 1}}}

	pod := old.DeepCopy()
	pod.Spec.NodeName = "elsewhere"
	pod.OwnerReferences = nil
	pod.Labels = map[string]string{"ready": "yes"}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue},
	}}
	PodStatusStrategy.PrepareForUpdate(context.Background(), pod, old)

	if pod.Spec.NodeName != "" || len(pod.OwnerReferences) != 1 {
		t.Errorf("spec.nodeName %q, ownerReferences %v: want the stored ones", pod.Spec.NodeName, pod.OwnerReferences)
	}
	if pod.Labels["ready"] != "yes" || pod.Status.Phase != corev1.PodRunning {
		t.Errorf("labels %v, phase %s: want the written ones", pod.Labels, pod.Status.Phase)
	}
	if pod.Status.QOSClass != corev1.PodQOSBestEffort || pod.Status.ObservedGeneration != 1 {
		t.Errorf("qosClass %q, observedGeneration %d: want them kept", pod.Status.QOSClass, pod.Status.ObservedGeneration)
	}
	if pod.Status.Conditions[0].ObservedGeneration != 1 || pod.Status.Conditions[1].ObservedGeneration != 0 {
		t.Errorf("conditions = %+v: want PodScheduled to keep observedGeneration 1", pod.Status.Conditions)
	}
}

func TestPodStrategyFlags(t *testing.T) {
	if PodStrategy.AllowCreateOnUpdate() || !PodStrategy.AllowUnconditionalUpdate() {
		t.Error("pods: want no create on update, unconditional updates allowed")
	}
}

func TestDeletePodGracePeriod(t *testing.T) {
	thirty, zero, negative, ten := int64(30), int64(0), int64(-5), int64(10)
	for _, tc := range []struct {
		name        string
		nodeName    string
		phase       corev1.PodPhase
		podGrace    *int64
		optGrace    *int64
		wantGrace   int64
		wantGraceOK bool
	}{
		{"a scheduled pod waits its termination grace period", "n1", corev1.PodRunning, &thirty, nil, 30, true},
		{"the request's grace period wins", "n1", corev1.PodRunning, &thirty, &ten, 10, true},
		{"an explicit zero stays zero", "n1", corev1.PodRunning, &thirty, &zero, 0, true},
		{"no grace period anywhere means now", "n1", corev1.PodRunning, nil, nil, 0, true},
		{"a negative request becomes one second", "n1", corev1.PodRunning, &thirty, &negative, 1, true},
		{"an unscheduled pod goes at once", "", corev1.PodPending, &thirty, &ten, 0, true},
		{"a succeeded pod goes at once", "n1", corev1.PodSucceeded, &thirty, nil, 0, true},
		{"a failed pod goes at once", "n1", corev1.PodFailed, &thirty, &ten, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := podWithContainers(corev1.ResourceRequirements{})
			pod.Spec.NodeName, pod.Status.Phase, pod.Spec.TerminationGracePeriodSeconds = tc.nodeName, tc.phase, tc.podGrace
			opts := &metav1.DeleteOptions{GracePeriodSeconds: tc.optGrace}
			graceful := PodStrategy.CheckGracefulDelete(context.Background(), pod, opts)
			if graceful != tc.wantGraceOK || opts.GracePeriodSeconds == nil || *opts.GracePeriodSeconds != tc.wantGrace {
				t.Errorf("graceful %v, grace %v; want %v, %d", graceful, opts.GracePeriodSeconds, tc.wantGraceOK, tc.wantGrace)
			}
		})
	}
	if PodStrategy.CheckGracefulDelete(context.Background(), podWithContainers(), nil) {
		t.Error("no options: want no graceful deletion")
	}
}

func TestCreatePodMergesMatchLabelKeysIntoSelectors(t *testing.T) {
	pod := podWithContainers(corev1.ResourceRequirements{})
	pod.Labels = map[string]string{"app": "web", "rev": "7"}
	pod.Spec.Affinity = &corev1.Affinity{
		PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				TopologyKey:       "kubernetes.io/hostname",
				MatchLabelKeys:    []string{"rev", "missing"},
				MismatchLabelKeys: []string{"app"},
			}},
		},
		PodAffinity: &corev1.PodAffinity{
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
				Weight:          1,
				PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "zone", MatchLabelKeys: []string{"rev"}},
			}},
		},
	}
	pod.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
		MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: corev1.DoNotSchedule,
		LabelSelector:  &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		MatchLabelKeys: []string{"rev"},
	}}
	PodStrategy.PrepareForCreate(context.Background(), pod)

	anti := pod.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0].LabelSelector.MatchExpressions
	wantAnti := []metav1.LabelSelectorRequirement{
		{Key: "rev", Operator: metav1.LabelSelectorOpIn, Values: []string{"7"}},
		{Key: "app", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"web"}},
	}
	if !reflect.DeepEqual(anti, wantAnti) {
		t.Errorf("anti-affinity expressions = %+v, want %+v", anti, wantAnti)
	}
	if sel := pod.Spec.Affinity.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.LabelSelector; sel != nil {
		t.Errorf("a nil selector matches nothing and must stay nil, got %+v", sel)
	}
	spread := pod.Spec.TopologySpreadConstraints[0].LabelSelector.MatchExpressions
	if want := []metav1.LabelSelectorRequirement{{Key: "rev", Operator: metav1.LabelSelectorOpIn, Values: []string{"7"}}}; !reflect.DeepEqual(spread, want) {
		t.Errorf("spread expressions = %+v, want %+v", spread, want)
	}
}
