package quota

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

func list(pairs ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i < len(pairs); i += 2 {
		out[corev1.ResourceName(pairs[i])] = resource.MustParse(pairs[i+1])
	}
	return out
}

func same(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || v.Cmp(w) != 0 {
			return false
		}
	}
	return true
}

func TestPodUsageIsTheLargerOfItsContainersAndItsInitContainers(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		Containers: []corev1.Container{
			{Name: "a", Resources: corev1.ResourceRequirements{Requests: list("cpu", "100m", "memory", "64Mi"), Limits: list("cpu", "200m")}},
			{Name: "b", Resources: corev1.ResourceRequirements{Requests: list("cpu", "100m")}},
		},
		InitContainers: []corev1.Container{{Name: "init", Resources: corev1.ResourceRequirements{Requests: list("cpu", "500m")}}},
	}}
	got := Usage(schema.GroupResource{Resource: "pods"}, pod, time.Now())
	want := list("count/pods", "1", "pods", "1", "cpu", "500m", "requests.cpu", "500m", "memory", "64Mi", "requests.memory", "64Mi", "limits.cpu", "200m")
	if !same(got, want) {
		t.Errorf("usage %v\nwant %v", got, want)
	}
	pod.Status.Phase = corev1.PodSucceeded
	if got := Usage(schema.GroupResource{Resource: "pods"}, pod, time.Now()); !same(got, list("count/pods", "1")) {
		t.Errorf("a finished pod still uses %v", got)
	}
}

func TestObjectCountsNameTheirGroup(t *testing.T) {
	if n := ObjectCountName(schema.GroupResource{Group: "apps", Resource: "deployments"}); n != "count/deployments.apps" {
		t.Errorf("name %s", n)
	}
	gr, ok := ParseObjectCountName("count/widgets.example.com")
	if !ok || gr.Resource != "widgets" || gr.Group != "example.com" {
		t.Errorf("parsed %v %v", gr, ok)
	}
	svc := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 1}, {Port: 2}}}}
	if got := Usage(schema.GroupResource{Resource: "services"}, svc, time.Now()); !same(got, list("count/services", "1", "services", "1", "services.nodeports", "2", "services.loadbalancers", "0")) {
		t.Errorf("service usage %v", got)
	}
}

func TestScopesSelectOnlyThePodsTheyName(t *testing.T) {
	bestEffort := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}}
	burstable := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{Requests: list("cpu", "1")}}}},
		ObjectMeta: metav1.ObjectMeta{Name: "b"}}
	terminating := bestEffort.DeepCopy()
	terminating.Spec.ActiveDeadlineSeconds = ptr.To[int64](30)
	critical := burstable.DeepCopy()
	critical.Spec.PriorityClassName = "high"
	q := func(scopes []corev1.ResourceQuotaScope, sel ...corev1.ScopedResourceSelectorRequirement) *corev1.ResourceQuota {
		rq := &corev1.ResourceQuota{Spec: corev1.ResourceQuotaSpec{Scopes: scopes}}
		if len(sel) > 0 {
			rq.Spec.ScopeSelector = &corev1.ScopeSelector{MatchExpressions: sel}
		}
		return rq
	}
	for _, tc := range []struct {
		name  string
		quota *corev1.ResourceQuota
		pod   *corev1.Pod
		want  bool
	}{
		{"unscoped selects all", q(nil), burstable, true},
		{"BestEffort", q([]corev1.ResourceQuotaScope{"BestEffort"}), bestEffort, true},
		{"BestEffort skips burstable", q([]corev1.ResourceQuotaScope{"BestEffort"}), burstable, false},
		{"NotBestEffort", q([]corev1.ResourceQuotaScope{"NotBestEffort"}), burstable, true},
		{"Terminating", q([]corev1.ResourceQuotaScope{"Terminating"}), terminating, true},
		{"NotTerminating skips a deadline", q([]corev1.ResourceQuotaScope{"NotTerminating"}), terminating, false},
		{"scopes are ANDed", q([]corev1.ResourceQuotaScope{"Terminating", "NotBestEffort"}), terminating, false},
		{"PriorityClass In", q(nil, corev1.ScopedResourceSelectorRequirement{ScopeName: "PriorityClass", Operator: "In", Values: []string{"high"}}), critical, true},
		{"PriorityClass In other", q(nil, corev1.ScopedResourceSelectorRequirement{ScopeName: "PriorityClass", Operator: "In", Values: []string{"low"}}), critical, false},
		{"PriorityClass NotIn", q(nil, corev1.ScopedResourceSelectorRequirement{ScopeName: "PriorityClass", Operator: "NotIn", Values: []string{"high"}}), burstable, true},
		{"PriorityClass scope means a class", q([]corev1.ResourceQuotaScope{"PriorityClass"}), burstable, false},
	} {
		if got := Matches(tc.quota, tc.pod); got != tc.want {
			t.Errorf("%s: matches %v, want %v", tc.name, got, tc.want)
		}
	}
	if Matches(q([]corev1.ResourceQuotaScope{"NotBestEffort"}), &corev1.ConfigMap{}) {
		t.Error("a scoped quota selected a configmap")
	}
}

func TestCpuQuotasRequireEveryContainerToAsk(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{
		{Name: "a", Resources: corev1.ResourceRequirements{Requests: list("cpu", "1")}},
		{Name: "b"}, {Name: "c"},
	}}}
	err := Constraints([]corev1.ResourceName{"requests.cpu", "limits.memory", "pods"}, pod)
	if err == nil || err.Error() != "must specify limits.memory for: a,b,c; requests.cpu for: b,c" {
		t.Errorf("constraints: %v", err)
	}
	if err := Constraints([]corev1.ResourceName{"pods", "count/secrets"}, pod); err != nil {
		t.Errorf("object counts require nothing: %v", err)
	}
}
