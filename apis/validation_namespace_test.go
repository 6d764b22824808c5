package apis

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestValidateNamespace(t *testing.T) {
	for _, tc := range []struct {
		name string
		ns   corev1.Namespace
		want []string
	}{
		{name: "valid", ns: corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}, Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes"}}}},
		{
			name: "name must be a DNS label",
			ns:   corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team.a"}},
			want: []string{`metadata.name: Invalid value: "team.a": must not contain dots`},
		},
		{
			name: "name must be lower case",
			ns:   corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "Team"}},
			want: []string{`metadata.name: Invalid value: "Team": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`},
		},
		{
			name: "generateName may end in a dash",
			ns:   corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-x2k4q", GenerateName: "team-"}},
		},
		{
			name: "spec finalizers must be standard or qualified, reported without index as upstream",
			ns:   corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"example.com/x", "mine"}}},
			want: []string{`spec.finalizers: Invalid value: "mine": name is neither a standard finalizer name nor is it fully qualified`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkFieldErrors(t, ValidateNamespace(&tc.ns), tc.want...)
		})
	}
}

func TestValidateNamespaceStatusUpdatePhaseFollowsDeletion(t *testing.T) {
	old := corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a", ResourceVersion: "1"}}
	ns := old
	ns.Status.Phase = corev1.NamespaceTerminating
	checkFieldErrors(t, ValidateNamespaceStatusUpdate(&ns, &old),
		"status.Phase: Invalid value: \"Terminating\": may only be 'Active' if `deletionTimestamp` is empty")

	now := metav1.Now()
	old.DeletionTimestamp = &now
	ns = old
	ns.Status.Phase = corev1.NamespaceActive
	checkFieldErrors(t, ValidateNamespaceStatusUpdate(&ns, &old),
		"status.Phase: Invalid value: \"Active\": may only be 'Terminating' if `deletionTimestamp` is not empty")
	ns.Status.Phase = corev1.NamespaceTerminating
	checkFieldErrors(t, ValidateNamespaceStatusUpdate(&ns, &old))
}

func TestValidateNamespaceFinalizeUpdateIndexesFinalizers(t *testing.T) {
	old := corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a", ResourceVersion: "1"}}
	ns := old
	ns.Spec.Finalizers = []corev1.FinalizerName{"kubernetes", "bad name"}
	checkFieldErrors(t, ValidateNamespaceFinalizeUpdate(&ns, &old),
		`spec.finalizers[1]: Invalid value: "bad name": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`,
		`spec.finalizers[1]: Invalid value: "bad name": name is neither a standard finalizer name nor is it fully qualified`)
}
