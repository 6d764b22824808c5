package apis

import (
	"reflect"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	resourcev1 "k8s.io/api/resource/v1"
	storagemigrationv1 "k8s.io/api/storagemigration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The rows kubectl get prints for the newer kinds read as upstream's printers write them.
func TestNewerKindsPrintUpstreamsCells(t *testing.T) {
	ip := &networkingv1.IPAddress{ObjectMeta: metav1.ObjectMeta{Name: "10.96.0.10"},
		Spec: networkingv1.IPAddressSpec{ParentRef: &networkingv1.ParentReference{Resource: "services", Namespace: "kube-system", Name: "kube-dns"}}}
	if got := ipAddressTable().row(ip).Cells[:2]; !reflect.DeepEqual(got, []interface{}{"10.96.0.10", "services/kube-system/kube-dns"}) {
		t.Errorf("IPAddress row: %v", got)
	}
	claim := &resourcev1.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Name: "gpu"},
		Status: resourcev1.ResourceClaimStatus{Allocation: &resourcev1.AllocationResult{},
			ReservedFor: []resourcev1.ResourceClaimConsumerReference{{Resource: "pods", Name: "p", UID: "u"}}}}
	if got := resourceClaimTable().row(claim).Cells[1]; got != "allocated,reserved" {
		t.Errorf("ResourceClaim state: %v", got)
	}
	if got := resourceClaimTable().row(&resourcev1.ResourceClaim{}).Cells[1]; got != "pending" {
		t.Errorf("unallocated ResourceClaim state: %v", got)
	}
	svm := &storagemigrationv1.StorageVersionMigration{ObjectMeta: metav1.ObjectMeta{Name: "m"},
		Spec:   storagemigrationv1.StorageVersionMigrationSpec{Resource: metav1.GroupResource{Group: "apps", Resource: "deployments"}},
		Status: storagemigrationv1.StorageVersionMigrationStatus{Conditions: []metav1.Condition{{Type: "Running", Status: metav1.ConditionTrue}}}}
	if got := storageVersionMigrationTable().row(svm).Cells; !reflect.DeepEqual(got, []interface{}{"m", "deployments.apps", "Running"}) {
		t.Errorf("StorageVersionMigration row: %v", got)
	}
}
