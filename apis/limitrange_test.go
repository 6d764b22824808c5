package apis

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func quantities(pairs ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i < len(pairs); i += 2 {
		out[corev1.ResourceName(pairs[i])] = resource.MustParse(pairs[i+1])
	}
	return out
}

func TestLimitRangeDefaultsContainerLimitsFromMaxAndRequestsFromMin(t *testing.T) {
	lr := &corev1.LimitRange{Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{
		{Type: corev1.LimitTypeContainer, Max: quantities("cpu", "1"), Min: quantities("memory", "10Mi")},
		{Type: corev1.LimitTypePod, Max: quantities("cpu", "2")},
	}}}
	defaultLimitRange(lr)
	c := lr.Spec.Limits[0]
	if c.Default.Cpu().String() != "1" || c.DefaultRequest.Cpu().String() != "1" || c.DefaultRequest.Memory().String() != "10Mi" {
		t.Errorf("container defaults %+v", c)
	}
	if lr.Spec.Limits[1].Default != nil {
		t.Errorf("a Pod item got defaults: %+v", lr.Spec.Limits[1])
	}
}

func TestValidateLimitRangeAnswersAsUpstream(t *testing.T) {
	lr := func(items ...corev1.LimitRangeItem) *corev1.LimitRange {
		return &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "l", Namespace: "ns"}, Spec: corev1.LimitRangeSpec{Limits: items}}
	}
	checkFieldErrors(t, ValidateLimitRange(lr(corev1.LimitRangeItem{Type: "Container", Min: quantities("cpu", "100m"), Max: quantities("cpu", "1"),
		Default: quantities("cpu", "500m"), DefaultRequest: quantities("cpu", "200m"), MaxLimitRequestRatio: quantities("cpu", "4")})))
	checkFieldErrors(t, ValidateLimitRange(lr(corev1.LimitRangeItem{Type: "Pod", Min: quantities("memory", "2Gi"), Max: quantities("memory", "1Gi")})),
		`spec.limits[0].min[memory]: Invalid value: "2Gi": min value 2Gi is greater than max value 1Gi`)
	checkFieldErrors(t, ValidateLimitRange(lr(corev1.LimitRangeItem{Type: "Pod", Default: quantities("cpu", "1")})),
		"spec.limits[0].default: Forbidden: may not be specified when `type` is 'Pod'")
	checkFieldErrors(t, ValidateLimitRange(lr(corev1.LimitRangeItem{Type: "Container", Max: quantities("cpu", "1"), Default: quantities("cpu", "2"), DefaultRequest: quantities("cpu", "2")})),
		`spec.limits[0].defaultRequest[cpu]: Invalid value: "2": default request value 2 is greater than max value 1`,
		`spec.limits[0].default[cpu]: Invalid value: "1": default value 2 is greater than max value 1`)
	checkFieldErrors(t, ValidateLimitRange(lr(corev1.LimitRangeItem{Type: "Container", MaxLimitRequestRatio: quantities("cpu", "500m")})),
		`spec.limits[0].maxLimitRequestRatio[cpu]: Invalid value: "500m": ratio 500m is less than 1`)
	checkFieldErrors(t, ValidateLimitRange(lr(corev1.LimitRangeItem{Type: "PersistentVolumeClaim"}, corev1.LimitRangeItem{Type: "PersistentVolumeClaim", Max: quantities("storage", "1Gi")})),
		`spec.limits[0].limits: Required value: either minimum or maximum storage value is required, but neither was provided`,
		`spec.limits[1].type: Duplicate value: "PersistentVolumeClaim"`)
	checkFieldErrors(t, ValidateLimitRange(lr(corev1.LimitRangeItem{Type: "Machine"})),
		`spec.limits[0].type: Invalid value: "Machine": must be a standard limit type or fully qualified`)
}

func TestValidateResourceQuotaAnswersAsUpstream(t *testing.T) {
	rq := func(spec corev1.ResourceQuotaSpec) *corev1.ResourceQuota {
		return &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "q", Namespace: "ns"}, Spec: spec}
	}
	checkFieldErrors(t, ValidateResourceQuota(rq(corev1.ResourceQuotaSpec{Hard: quantities("pods", "10", "requests.cpu", "2", "count/deployments.apps", "3")})))
	checkFieldErrors(t, ValidateResourceQuota(rq(corev1.ResourceQuotaSpec{Hard: quantities("pods", "-1", "secrets", "1500m", "nodes", "1")})),
		`spec.hard[nodes]: Invalid value: "nodes": must be a standard resource type or fully qualified`,
		`spec.hard[nodes]: Invalid value: "nodes": must be a standard resource for quota`,
		`spec.hard[pods]: Invalid value: "-1": must be greater than or equal to 0`,
		`spec.hard[secrets]: Invalid value: "1500m": must be an integer`)
	checkFieldErrors(t, ValidateResourceQuota(rq(corev1.ResourceQuotaSpec{Hard: quantities("pods", "1"), Scopes: []corev1.ResourceQuotaScope{"BestEffort", "NotBestEffort"}})),
		`spec.scopes: Invalid value: ["BestEffort","NotBestEffort"]: conflicting scopes`)
	checkFieldErrors(t, ValidateResourceQuota(rq(corev1.ResourceQuotaSpec{Hard: quantities("pods", "1"), ScopeSelector: &corev1.ScopeSelector{
		MatchExpressions: []corev1.ScopedResourceSelectorRequirement{{ScopeName: "Terminating", Operator: "In", Values: []string{"x"}}}}})),
		`spec.scopeSelector.matchExpressions.operator: Invalid value: "In": must be 'Exist' when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity`)

	old := rq(corev1.ResourceQuotaSpec{Hard: quantities("pods", "1"), Scopes: []corev1.ResourceQuotaScope{"BestEffort"}})
	old.ResourceVersion = "3"
	changed := old.DeepCopy()
	changed.Spec.Scopes = []corev1.ResourceQuotaScope{"NotBestEffort"}
	checkFieldErrors(t, ValidateResourceQuotaUpdate(changed, old), `spec.scopes: Invalid value: ["NotBestEffort"]: field is immutable`)
}
