package apiserver_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	resourcev1 "k8s.io/api/resource/v1"
	storagev1 "k8s.io/api/storage/v1"
	storagemigrationv1 "k8s.io/api/storagemigration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func wantInvalid(t *testing.T, err error, want string) {
	t.Helper()
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want 422 Invalid containing %q", err, want)
	}
}

// The API server serves its service range as the ServiceCIDR "kubernetes", Ready as
// upstream's default ServiceCIDR controller marks it, and every cluster IP it hands out as an
// IPAddress naming the Service that holds it.
func TestServiceCIDRAndIPAddressesShowTheServiceRange(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	cidr, err := s.Client.NetworkingV1().ServiceCIDRs().Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cidr.Spec.CIDRs) != 1 || !meta.IsStatusConditionTrue(cidr.Status.Conditions, networkingv1.ServiceCIDRConditionReady) {
		t.Errorf("default ServiceCIDR: spec %v, conditions %v", cidr.Spec, cidr.Status.Conditions)
	}
	svc, err := s.Client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ip, err := s.Client.NetworkingV1().IPAddresses().Get(ctx, svc.Spec.ClusterIP, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ref := ip.Spec.ParentRef; ref == nil || ref.Resource != "services" || ref.Namespace != "default" || ref.Name != "web" || ip.UID == "" {
		t.Errorf("IPAddress of the cluster IP: %+v", ip)
	}

	ips := s.Client.NetworkingV1().IPAddresses()
	_, err = ips.Create(ctx, &networkingv1.IPAddress{ObjectMeta: metav1.ObjectMeta{Name: "192.168.1.01"},
		Spec: networkingv1.IPAddressSpec{ParentRef: &networkingv1.ParentReference{Resource: "gateways", Name: "g"}}}, metav1.CreateOptions{})
	wantInvalid(t, err, "metadata.name: Invalid value")
	_, err = ips.Create(ctx, &networkingv1.IPAddress{ObjectMeta: metav1.ObjectMeta{Name: "169.254.1.1"}}, metav1.CreateOptions{})
	wantInvalid(t, err, "spec.parentRef: Required value")

	cidrs := s.Client.NetworkingV1().ServiceCIDRs()
	_, err = cidrs.Create(ctx, &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "two-v4"},
		Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.1.0.0/24", "10.2.0.0/24"}}}, metav1.CreateOptions{})
	wantInvalid(t, err, "may specify no more than one IP for each IP family")
	extra, err := cidrs.Create(ctx, &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "extra"},
		Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"203.0.113.0/24"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	extra.Spec.CIDRs = []string{"203.0.114.0/24"}
	_, err = cidrs.Update(ctx, extra, metav1.UpdateOptions{})
	wantInvalid(t, err, "spec.cidrs[0]: Invalid value: \"203.0.114.0/24\": field is immutable")
}

// resource.k8s.io/v1 kinds are stored with upstream's defaults, refuse what upstream refuses
// with its field paths (CEL selectors compile in DRA's environment), keep a claim's spec
// fixed and take its allocation through the status subresource only.
func TestDynamicResourceAllocationKinds(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	rv1 := s.Client.ResourceV1()

	classes := rv1.DeviceClasses()
	_, err := classes.Create(ctx, &resourcev1.DeviceClass{ObjectMeta: metav1.ObjectMeta{Name: "gpu.example.com"},
		Spec: resourcev1.DeviceClassSpec{Selectors: []resourcev1.DeviceSelector{{CEL: &resourcev1.CELDeviceSelector{Expression: "device.nosuchfield =="}}}}},
		metav1.CreateOptions{})
	wantInvalid(t, err, "spec.selectors[0].cel.expression: Invalid value")
	if _, err := classes.Create(ctx, &resourcev1.DeviceClass{ObjectMeta: metav1.ObjectMeta{Name: "gpu.example.com"},
		Spec: resourcev1.DeviceClassSpec{Selectors: []resourcev1.DeviceSelector{{CEL: &resourcev1.CELDeviceSelector{Expression: `device.driver == "gpu.example.com"`}}}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	claims := rv1.ResourceClaims("default")
	claim, err := claims.Create(ctx, &resourcev1.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Name: "gpu"},
		Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{
			{Name: "req-0", Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: "gpu.example.com"}}}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if e := claim.Spec.Devices.Requests[0].Exactly; e.AllocationMode != resourcev1.DeviceAllocationModeExactCount || e.Count != 1 {
		t.Errorf("defaulted request: %+v", e)
	}
	_, err = claims.Create(ctx, &resourcev1.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Name: "bad"},
		Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{{Name: "req-0"}, {Name: "req-0",
			Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: "c", AllocationMode: "Some"}}}}}}, metav1.CreateOptions{})
	wantInvalid(t, err, "spec.devices.requests[0]: Required value: exactly one of `exactly` or `firstAvailable` is required")
	wantInvalid(t, err, "spec.devices.requests[1].name: Duplicate value")
	wantInvalid(t, err, `spec.devices.requests[1].exactly.allocationMode: Unsupported value: "Some"`)

	claim.Spec.Devices.Requests[0].Exactly.Count = 2
	_, err = claims.Update(ctx, claim, metav1.UpdateOptions{})
	wantInvalid(t, err, "spec: Invalid value")
	patched, err := claims.Patch(ctx, "gpu", types.MergePatchType, []byte(`{"status":{"allocation":{}}}`), metav1.PatchOptions{}, "status")
	if err != nil {
		t.Fatal(err)
	}
	if patched.Status.Allocation == nil {
		t.Error("status patch did not record the allocation")
	}

	slices := rv1.ResourceSlices()
	if _, err := slices.Create(ctx, &resourcev1.ResourceSlice{ObjectMeta: metav1.ObjectMeta{Name: "node-a-gpu"},
		Spec: resourcev1.ResourceSliceSpec{Driver: "gpu.example.com", NodeName: ptr.To("node-a"),
			Pool: resourcev1.ResourcePool{Name: "node-a", ResourceSliceCount: 1}, Devices: []resourcev1.Device{{Name: "gpu-0"}}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = slices.Create(ctx, &resourcev1.ResourceSlice{ObjectMeta: metav1.ObjectMeta{Name: "nowhere"},
		Spec: resourcev1.ResourceSliceSpec{Driver: "gpu.example.com", Pool: resourcev1.ResourcePool{Name: "p", ResourceSliceCount: 1}}},
		metav1.CreateOptions{})
	wantInvalid(t, err, "spec: Required value: exactly one of `nodeName`, `nodeSelector`, `allNodes`, `perDeviceNodeSelection` is required")
	list, err := slices.List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=node-a"})
	if err != nil || len(list.Items) != 1 {
		t.Errorf("slices of node-a: %v, %v", list, err)
	}

	rules := rv1.DeviceTaintRules()
	rule, err := rules.Create(ctx, &resourcev1.DeviceTaintRule{ObjectMeta: metav1.ObjectMeta{Name: "maintenance"},
		Spec: resourcev1.DeviceTaintRuleSpec{Taint: resourcev1.DeviceTaint{Key: "example.com/maintenance", Effect: resourcev1.DeviceTaintEffectNoSchedule}}},
		metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rule.Spec.Taint.TimeAdded == nil {
		t.Error("a new taint has no timeAdded")
	}
	rule.Spec.Taint.Effect = "Sometimes"
	_, err = rules.Update(ctx, rule, metav1.UpdateOptions{})
	wantInvalid(t, err, `spec.taint.effect: Unsupported value: "Sometimes"`)
}

// A StorageVersionMigration's resource never changes, and a migration that succeeded stays
// so; a CSIStorageCapacity may change its capacity but not its class.
func TestStorageVersionMigrationAndCSIStorageCapacity(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	svms := s.Client.StoragemigrationV1().StorageVersionMigrations()
	svm, err := svms.Create(ctx, &storagemigrationv1.StorageVersionMigration{ObjectMeta: metav1.ObjectMeta{Name: "secrets"},
		Spec: storagemigrationv1.StorageVersionMigrationSpec{Resource: metav1.GroupResource{Resource: "secrets"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svm.Status.Conditions = []metav1.Condition{{Type: "Succeeded", Status: metav1.ConditionTrue, Reason: "Done", LastTransitionTime: metav1.Now()}}
	svm, err = svms.UpdateStatus(ctx, svm, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svm.Status.Conditions[0].Status = metav1.ConditionFalse
	_, err = svms.UpdateStatus(ctx, svm, metav1.UpdateOptions{})
	wantInvalid(t, err, "Success condition cannot be set to false once it is true")
	svm.Spec.Resource.Resource = "configmaps"
	_, err = svms.Update(ctx, svm, metav1.UpdateOptions{})
	wantInvalid(t, err, "spec: Invalid value")

	caps := s.Client.StorageV1().CSIStorageCapacities("default")
	c, err := caps.Create(ctx, &storagev1.CSIStorageCapacity{ObjectMeta: metav1.ObjectMeta{Name: "fast-zone-a"},
		StorageClassName: "fast", Capacity: ptr.To(resource.MustParse("10Gi"))}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.Capacity = ptr.To(resource.MustParse("20Gi"))
	if c, err = caps.Update(ctx, c, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.StorageClassName = "slow"
	_, err = caps.Update(ctx, c, metav1.UpdateOptions{})
	wantInvalid(t, err, `storageClassName: Invalid value: "slow": field is immutable`)
}

func testCAPEM(t *testing.T, isCA bool) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "root"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: isCA, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// A ClusterTrustBundle holds CA certificates only, and one of a signer is named after it.
func TestClusterTrustBundlesHoldCACertificates(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	ctbs := s.Client.CertificatesV1().ClusterTrustBundles()
	ca := testCAPEM(t, true)
	if _, err := ctbs.Create(ctx, &certificatesv1.ClusterTrustBundle{ObjectMeta: metav1.ObjectMeta{Name: "example.com:signer:roots"},
		Spec: certificatesv1.ClusterTrustBundleSpec{SignerName: "example.com/signer", TrustBundle: ca}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := ctbs.Create(ctx, &certificatesv1.ClusterTrustBundle{ObjectMeta: metav1.ObjectMeta{Name: "roots"},
		Spec: certificatesv1.ClusterTrustBundleSpec{SignerName: "example.com/signer", TrustBundle: ca}}, metav1.CreateOptions{})
	wantInvalid(t, err, "ClusterTrustBundle for signerName example.com/signer must be named with prefix example.com:signer:")
	_, err = ctbs.Create(ctx, &certificatesv1.ClusterTrustBundle{ObjectMeta: metav1.ObjectMeta{Name: "leaf"},
		Spec: certificatesv1.ClusterTrustBundleSpec{TrustBundle: testCAPEM(t, false)}}, metav1.CreateOptions{})
	wantInvalid(t, err, `spec.trustBundle: Invalid value: "<value omitted>": entry 0 does not have the CA bit set`)
	_, err = ctbs.Create(ctx, &certificatesv1.ClusterTrustBundle{ObjectMeta: metav1.ObjectMeta{Name: "twice"},
		Spec: certificatesv1.ClusterTrustBundleSpec{TrustBundle: ca + ca}}, metav1.CreateOptions{})
	wantInvalid(t, err, "duplicate trust anchor (indices [0 1])")
	list, err := ctbs.List(ctx, metav1.ListOptions{FieldSelector: "spec.signerName=example.com/signer"})
	if err != nil || len(list.Items) != 1 {
		t.Errorf("bundles of example.com/signer: %v, %v", list, err)
	}
}
