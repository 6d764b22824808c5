package conformance

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509/pkix"
	"encoding/json"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/certificate/csr"
)

var _ = Describe("[sig-auth] Certificates API", Label("api-machinery"), func() {
	It("should support CSR API operations", func(ctx SpecContext) {
		csrs := cluster.client.CertificatesV1().CertificateSigningRequests()
		csrResource := certificatesv1.SchemeGroupVersion.WithResource("certificatesigningrequests")
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		Expect(err).NotTo(HaveOccurred())
		request, err := cert.MakeCSR(key, &pkix.Name{CommonName: "e2e.example.com"}, []string{"e2e.example.com"}, nil)
		Expect(err).NotTo(HaveOccurred())
		certificate, _, err := cert.GenerateSelfSignedCertKey("e2e.example.com", nil, []string{"e2e.example.com"})
		Expect(err).NotTo(HaveOccurred())
		certificateJSON, err := json.Marshal(certificate)
		Expect(err).NotTo(HaveOccurred())
		signerName := "example.com/e2e-" + string(uuid.NewUUID())[:8]
		template := &certificatesv1.CertificateSigningRequest{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-example-csr-"},
			Spec: certificatesv1.CertificateSigningRequestSpec{
				Request: request, SignerName: signerName, ExpirationSeconds: csr.DurationToExpirationSeconds(time.Hour),
				Usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageServerAuth},
			},
		}
		DeferCleanup(func(ctx SpecContext) {
			_ = csrs.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{FieldSelector: "spec.signerName=" + signerName})
		})

		By("finding the group, version and subresources in discovery")
		groups, err := cluster.client.Discovery().ServerGroups()
		Expect(err).NotTo(HaveOccurred())
		var versions []string
		for _, g := range groups.Groups {
			if g.Name == certificatesv1.GroupName {
				for _, v := range g.Versions {
					versions = append(versions, v.Version)
				}
			}
		}
		Expect(versions).To(ContainElement("v1"))
		resources, err := cluster.client.Discovery().ServerResourcesForGroupVersion(certificatesv1.SchemeGroupVersion.String())
		Expect(err).NotTo(HaveOccurred())
		var names []string
		for _, r := range resources.APIResources {
			names = append(names, r.Name)
		}
		Expect(names).To(ContainElements("certificatesigningrequests", "certificatesigningrequests/approval", "certificatesigningrequests/status"))

		By("creating, getting and listing by signer name")
		for range 2 {
			_, err := csrs.Create(ctx, template, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		created, err := csrs.Create(ctx, template, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		got, err := csrs.Get(ctx, created.Name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.UID).To(Equal(created.UID))
		Expect(got.Spec.ExpirationSeconds).To(Equal(csr.DurationToExpirationSeconds(time.Hour)))
		list, err := csrs.List(ctx, metav1.ListOptions{FieldSelector: "spec.signerName=" + signerName})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(3))

		By("watching a patch and an update")
		w, err := csrs.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, FieldSelector: "metadata.name=" + created.Name})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		patched, err := csrs.Patch(ctx, created.Name, types.MergePatchType, []byte(`{"metadata":{"annotations":{"patched":"true"}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(patched.Annotations).To(HaveKeyWithValue("patched", "true"))
		toUpdate := patched.DeepCopy()
		toUpdate.Annotations["updated"] = "true"
		updated, err := csrs.Update(ctx, toUpdate, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(updated.Annotations).To(HaveKeyWithValue("updated", "true"))
		// the first event after the list is the patch
		var ev watch.Event
		Eventually(w.ResultChan()).WithTimeout(longWait).Should(Receive(&ev))
		Expect(ev.Type).To(Equal(watch.Modified))
		Expect(ev.Object.(*certificatesv1.CertificateSigningRequest).Annotations).To(HaveKeyWithValue("patched", "true"))

		By("reading, patching and updating /approval")
		approval, err := cluster.dynamic.Resource(csrResource).Get(ctx, created.Name, metav1.GetOptions{}, "approval")
		Expect(err).NotTo(HaveOccurred())
		Expect(approval.GetObjectKind().GroupVersionKind()).To(Equal(certificatesv1.SchemeGroupVersion.WithKind("CertificateSigningRequest")))
		Expect(approval.GetUID()).To(Equal(created.UID))
		patchedApproval, err := csrs.Patch(ctx, created.Name, types.MergePatchType,
			[]byte(`{"metadata":{"annotations":{"patchedapproval":"true"}},"status":{"conditions":[{"type":"ApprovalPatch","status":"True","reason":"e2e"}]}}`),
			metav1.PatchOptions{}, "approval")
		Expect(err).NotTo(HaveOccurred())
		Expect(patchedApproval.Status.Conditions).To(HaveLen(1))
		Expect(string(patchedApproval.Status.Conditions[0].Type)).To(Equal("ApprovalPatch"))
		Expect(patchedApproval.Annotations).To(HaveKeyWithValue("patchedapproval", "true"))
		toApprove := patchedApproval.DeepCopy()
		toApprove.Status.Conditions = append(toApprove.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "E2E", Message: "Set from an e2e test"})
		approved, err := csrs.UpdateApproval(ctx, toApprove.Name, toApprove, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(approved.Status.Conditions).To(HaveLen(2))
		Expect(approved.Status.Conditions[1].Type).To(Equal(certificatesv1.CertificateApproved))

		By("reading, patching and updating /status")
		status, err := cluster.dynamic.Resource(csrResource).Get(ctx, created.Name, metav1.GetOptions{}, "status")
		Expect(err).NotTo(HaveOccurred())
		Expect(status.GetUID()).To(Equal(created.UID))
		patchedStatus, err := csrs.Patch(ctx, created.Name, types.MergePatchType,
			[]byte(`{"metadata":{"annotations":{"patchedstatus":"true"}},"status":{"certificate":`+string(certificateJSON)+`}}`),
			metav1.PatchOptions{}, "status")
		Expect(err).NotTo(HaveOccurred())
		Expect(patchedStatus.Status.Certificate).To(Equal(certificate))
		Expect(patchedStatus.Annotations).To(HaveKeyWithValue("patchedstatus", "true"))
		toStatus := patchedStatus.DeepCopy()
		toStatus.Status.Conditions = append(toStatus.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: "StatusUpdate", Status: corev1.ConditionTrue, Reason: "E2E", Message: "Set from an e2e test"})
		statusUpdated, err := csrs.UpdateStatus(ctx, toStatus, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(statusUpdated.Status.Conditions).To(HaveLen(len(toStatus.Status.Conditions)))
		Expect(string(statusUpdated.Status.Conditions[len(statusUpdated.Status.Conditions)-1].Type)).To(Equal("StatusUpdate"))

		By("deleting one, then the collection")
		Expect(csrs.Delete(ctx, created.Name, metav1.DeleteOptions{})).To(Succeed())
		_, err = csrs.Get(ctx, created.Name, metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "get after delete: %v", err)
		list, err = csrs.List(ctx, metav1.ListOptions{FieldSelector: "spec.signerName=" + signerName})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(2))
		Expect(csrs.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{FieldSelector: "spec.signerName=" + signerName})).To(Succeed())
		list, err = csrs.List(ctx, metav1.ListOptions{FieldSelector: "spec.signerName=" + signerName})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(BeEmpty())
	})
})
