package apis

import (
	"testing"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func budget(change func(*policyv1.PodDisruptionBudget)) *policyv1.PodDisruptionBudget {
	two := intstr.FromInt32(2)
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &two,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
	}
	change(pdb)
	return pdb
}

func TestValidatePodDisruptionBudgetAnswersAsUpstream(t *testing.T) {
	checkFieldErrors(t, ValidatePodDisruptionBudget(budget(func(*policyv1.PodDisruptionBudget) {})))
	checkFieldErrors(t, ValidatePodDisruptionBudget(budget(func(p *policyv1.PodDisruptionBudget) {
		p.Spec.MinAvailable, p.Spec.Selector = nil, nil // selects nothing, allows everything: valid
	})))

	pct := intstr.FromString("120%")
	checkFieldErrors(t, ValidatePodDisruptionBudget(budget(func(p *policyv1.PodDisruptionBudget) { p.Spec.MaxUnavailable = &pct })),
		`spec: Invalid value: {"minAvailable":2,"selector":{"matchLabels":{"app":"web"}},"maxUnavailable":"120%"}: minAvailable and maxUnavailable cannot be both set`,
		`spec.maxUnavailable: Invalid value: "120%": must not be greater than 100%`)

	neg, junk := intstr.FromInt32(-1), intstr.FromString("half")
	checkFieldErrors(t, ValidatePodDisruptionBudget(budget(func(p *policyv1.PodDisruptionBudget) { p.Spec.MinAvailable = &neg })),
		`spec.minAvailable: Invalid value: -1: must be greater than or equal to 0`)
	checkFieldErrors(t, ValidatePodDisruptionBudget(budget(func(p *policyv1.PodDisruptionBudget) { p.Spec.MinAvailable = &junk })),
		`spec.minAvailable: Invalid value: "half": a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')`)

	checkFieldErrors(t, ValidatePodDisruptionBudget(budget(func(p *policyv1.PodDisruptionBudget) {
		p.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Near"}}}
	})), `spec.selector.matchExpressions[0].operator: Invalid value: "Near": not a valid selector operator`)
	checkFieldErrors(t, ValidatePodDisruptionBudget(budget(func(p *policyv1.PodDisruptionBudget) {
		p.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "not valid!"}}
	})), `spec.selector.matchLabels: Invalid value: "not valid!": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`)

	never := policyv1.UnhealthyPodEvictionPolicyType("Never")
	checkFieldErrors(t, ValidatePodDisruptionBudget(budget(func(p *policyv1.PodDisruptionBudget) { p.Spec.UnhealthyPodEvictionPolicy = &never })),
		`spec.unhealthyPodEvictionPolicy: Unsupported value: "Never": supported values: "AlwaysAllow", "IfHealthyBudget"`)
}

func TestPodDisruptionBudgetSpecMayChangeButStatusOnlyThroughItsSubresource(t *testing.T) {
	old := budget(func(p *policyv1.PodDisruptionBudget) { p.Generation, p.ResourceVersion = 1, "5" })
	old.Status.DisruptionsAllowed = 3
	changed := old.DeepCopy()
	one := intstr.FromInt32(1)
	changed.Spec.MinAvailable = &one
	changed.Status.DisruptionsAllowed = 9
	PodDisruptionBudgetStrategy.PrepareForUpdate(nil, changed, old)
	checkFieldErrors(t, PodDisruptionBudgetStrategy.ValidateUpdate(nil, changed, old))
	if changed.Generation != 2 || changed.Status.DisruptionsAllowed != 3 {
		t.Errorf("generation %d, disruptionsAllowed %d: want 2 and the stored 3", changed.Generation, changed.Status.DisruptionsAllowed)
	}

	status := old.DeepCopy()
	status.Status.DisruptionsAllowed, status.Status.ExpectedPods = -1, 4
	status.Spec.MinAvailable = &one
	PodDisruptionBudgetStatusStrategy.PrepareForUpdate(nil, status, old)
	checkFieldErrors(t, PodDisruptionBudgetStatusStrategy.ValidateUpdate(nil, status, old),
		`status.disruptionsAllowed: Invalid value: -1: must be greater than or equal to 0`)
	if status.Spec.MinAvailable.IntValue() != 2 {
		t.Errorf("a status write changed the spec: %v", status.Spec.MinAvailable)
	}
}
