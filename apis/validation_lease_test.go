package apis

import (
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestValidateLease(t *testing.T) {
	zero, negative := int32(0), int32(-1)
	bogus, known, custom := coordinationv1.CoordinatedLeaseStrategy("Bogus"), coordinationv1.OldestEmulationVersion, coordinationv1.CoordinatedLeaseStrategy("example.com/mine")
	holder := "node-1"
	for _, tc := range []struct {
		name string
		spec coordinationv1.LeaseSpec
		want []string
	}{
		{name: "valid", spec: coordinationv1.LeaseSpec{HolderIdentity: &holder}},
		{
			name: "duration is positive and transitions are not negative",
			spec: coordinationv1.LeaseSpec{LeaseDurationSeconds: &zero, LeaseTransitions: &negative},
			want: []string{
				`spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0`,
				`spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0`,
			},
		},
		{
			name: "strategy is a known one, under upstream's doubled path",
			spec: coordinationv1.LeaseSpec{Strategy: &bogus},
			want: []string{`spec.strategy.strategy: Unsupported value: "Bogus": supported values: "OldestEmulationVersion"`},
		},
		{name: "known strategy", spec: coordinationv1.LeaseSpec{Strategy: &known, PreferredHolder: &holder}},
		{name: "qualified custom strategy", spec: coordinationv1.LeaseSpec{Strategy: &custom}},
		{
			name: "preferred holder needs a strategy",
			spec: coordinationv1.LeaseSpec{PreferredHolder: &holder},
			want: []string{"spec.preferredHolder: Forbidden: may only be specified if `strategy` is defined"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "node-1", Namespace: corev1.NamespaceNodeLease}, Spec: tc.spec}
			checkFieldErrors(t, ValidateLease(lease), tc.want...)
		})
	}
}

func TestValidateServiceAccountName(t *testing.T) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder", Namespace: "ns"}}
	checkFieldErrors(t, ValidateServiceAccount(sa))
	sa.Name = "Builder"
	checkFieldErrors(t, ValidateServiceAccount(sa),
		`metadata.name: Invalid value: "Builder": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`)
}
