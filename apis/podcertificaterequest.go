package apis

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// certificates.k8s.io/v1 PodCertificateRequest: a kubelet asks a signer for a certificate for
// one of its pods (a podCertificate projected volume source), and the signer answers in the
// status. The spec is immutable; the status moves once from pending to Issued, Denied or
// Failed and then never changes.

// Upstream's size limits on a request's stub CSR and an issued chain.
const (
	maxStubPKCS10RequestSize = 100 * 1024
	maxCertificateChainSize  = 100 * 1024
	// defaultPodCertificateExpirationSeconds is what a request that names no lifetime gets.
	defaultPodCertificateExpirationSeconds = 24 * 60 * 60
)

var (
	pcrSpecPath     = field.NewPath("spec")
	pcrStubPath     = pcrSpecPath.Child("stubPKCS10Request")
	pcrStatusPath   = field.NewPath("status")
	pcrChainPath    = pcrStatusPath.Child("certificateChain")
	pcrTerminalType = []string{"Issued", "Denied", "Failed"}
)

// podCertificateRequestFields are the fields a list can select on, as upstream: signers
// watch their own requests (spec.signerName).
func podCertificateRequestFields(obj runtime.Object) fields.Set {
	r := obj.(*certificatesv1.PodCertificateRequest)
	set := objectMetaFields(obj)
	set["spec.signerName"] = r.Spec.SignerName
	set["spec.podName"] = r.Spec.PodName
	set["spec.nodeName"] = string(r.Spec.NodeName)
	return set
}

// DefaultPodCertificateRequest gives a request upstream's default lifetime, a day.
func DefaultPodCertificateRequest(r *certificatesv1.PodCertificateRequest) {
	if r.Spec.MaxExpirationSeconds == nil {
		seconds := int32(defaultPodCertificateExpirationSeconds)
		r.Spec.MaxExpirationSeconds = &seconds
	}
}

// ValidatePodCertificateRequest checks a new request as upstream does.
func ValidatePodCertificateRequest(r *certificatesv1.PodCertificateRequest) field.ErrorList {
	allErrs := ValidateObjectMeta(&r.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, metadataPath)
	spec := &r.Spec
	allErrs = append(allErrs, ValidateSignerName(pcrSpecPath.Child("signerName"), spec.SignerName)...)
	if spec.UnverifiedUserAnnotations != nil {
		p := pcrSpecPath.Child("unverifiedUserAnnotations")
		allErrs = append(allErrs, validateUserAnnotations(spec.UnverifiedUserAnnotations, p)...)
	}
	for _, msg := range apivalidation.NameIsDNSSubdomain(spec.PodName, false) {
		allErrs = append(allErrs, field.Invalid(pcrSpecPath.Child("podName"), spec.PodName, msg))
	}
	allErrs = append(allErrs, validateRequestUID(string(spec.PodUID), pcrSpecPath.Child("podUID"))...)
	for _, msg := range apivalidation.ValidateServiceAccountName(spec.ServiceAccountName, false) {
		allErrs = append(allErrs, field.Invalid(pcrSpecPath.Child("serviceAccountName"), spec.ServiceAccountName, msg))
	}
	allErrs = append(allErrs, validateRequestUID(string(spec.ServiceAccountUID), pcrSpecPath.Child("serviceAccountUID"))...)
	for _, msg := range apivalidation.NameIsDNSSubdomain(string(spec.NodeName), false) {
		allErrs = append(allErrs, field.Invalid(pcrSpecPath.Child("nodeName"), spec.NodeName, msg))
	}
	allErrs = append(allErrs, validateRequestUID(string(spec.NodeUID), pcrSpecPath.Child("nodeUID"))...)
	if spec.MaxExpirationSeconds == nil {
		return append(allErrs, field.Required(pcrSpecPath.Child("maxExpirationSeconds"), "must be set"))
	}
	limit := maxPodCertificateExpirationSeconds
	if isKubernetesSignerName(spec.SignerName) {
		limit = maxKubernetesPodCertificateExpirationSeconds
	}
	if s := int(*spec.MaxExpirationSeconds); s < minPodCertificateExpirationSeconds || s > limit {
		allErrs = append(allErrs, field.Invalid(pcrSpecPath.Child("maxExpirationSeconds"), spec.MaxExpirationSeconds,
			fmt.Sprintf("must be in the range [%d, %d]", minPodCertificateExpirationSeconds, limit)))
	}
	if len(spec.StubPKCS10Request) == 0 {
		// v1 has only the stub CSR; upstream's words still name the older key fields
		return append(allErrs, field.Invalid(pcrSpecPath, field.OmitValueType{}, "exactly one of (stubPKCS10Request) or (pkixPublicKey, proofOfPossession) must be set"))
	}
	return append(allErrs, validateStubPKCS10Request(spec.StubPKCS10Request)...)
}

func validateRequestUID(uid string, p *field.Path) field.ErrorList {
	if uid == "" {
		return field.ErrorList{field.Invalid(p, uid, "must not be empty")}
	}
	if len(uid) > 128 {
		return field.ErrorList{field.TooLong(p, uid, 128)}
	}
	return nil
}

// validateStubPKCS10Request: a CSR of a supported key whose signature proves the requester
// holds the private key. Its content is not looked at (the kubelet sends an empty one).
func validateStubPKCS10Request(der []byte) field.ErrorList {
	if len(der) > maxStubPKCS10RequestSize {
		return field.ErrorList{field.TooLong(pcrStubPath, der, maxStubPKCS10RequestSize)}
	}
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return field.ErrorList{field.Invalid(pcrStubPath, field.OmitValueType{}, "must be a valid PKCS#10 CSR")}
	}
	switch pub := req.PublicKey.(type) {
	case ed25519.PublicKey:
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() && pub.Curve != elliptic.P384() && pub.Curve != elliptic.P521() {
			return field.ErrorList{field.Invalid(pcrStubPath, "curve "+pub.Curve.Params().Name, "elliptic public keys must use curve P256, P384, or P521")}
		}
	case *rsa.PublicKey:
		if bits := pub.Size() * 8; bits != 3072 && bits != 4096 {
			return field.ErrorList{field.Invalid(pcrStubPath, fmt.Sprintf("%d-bit modulus", bits), "RSA keys must have modulus size 3072 or 4096")}
		}
	default:
		return field.ErrorList{field.Invalid(pcrStubPath, field.OmitValueType{}, "unknown public key type; supported types are Ed25519, ECDSA, and RSA")}
	}
	if err := req.CheckSignature(); err != nil {
		return field.ErrorList{field.Invalid(pcrStubPath, field.OmitValueType{}, "invalid signature")}
	}
	return nil
}

// ValidatePodCertificateRequestUpdate: nothing of the spec changes.
func ValidatePodCertificateRequestUpdate(r, old *certificatesv1.PodCertificateRequest) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&r.ObjectMeta, &old.ObjectMeta, metadataPath)
	return append(allErrs, apivalidation.ValidateImmutableField(r.Spec, old.Spec, pcrSpecPath)...)
}

// pcrState is the terminal condition of a request ("" while it is pending).
func pcrState(r *certificatesv1.PodCertificateRequest) string {
	for _, c := range r.Status.Conditions {
		switch c.Type {
		case "Issued", "Denied", "Failed":
			return c.Type
		}
	}
	return ""
}

// ValidatePodCertificateRequestStatusUpdate checks a signer's answer: at most one of the
// terminal conditions, and True; a terminal status never changes; a denial or failure carries
// nothing but conditions; an issued chain is PEM certificates whose leaf holds the requested
// key, with notBefore and notAfter copied from it and beginRefreshAt between them.
func ValidatePodCertificateRequestStatusUpdate(r, old *certificatesv1.PodCertificateRequest) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&r.ObjectMeta, &old.ObjectMeta, metadataPath)
	if len(allErrs) > 0 {
		return allErrs
	}
	known := 0
	for i, c := range r.Status.Conditions {
		p := pcrStatusPath.Child("conditions").Index(i)
		switch c.Type {
		case "Issued", "Denied", "Failed":
			known++
			if known > 1 {
				allErrs = append(allErrs, field.Invalid(p.Child("type"), c.Type, `There may be at most one condition with type "Issued", "Denied", or "Failed"`))
			}
			if c.Status != metav1.ConditionTrue {
				allErrs = append(allErrs, field.NotSupported(p.Child("status"), c.Status, []metav1.ConditionStatus{metav1.ConditionTrue}))
			}
		default:
			allErrs = append(allErrs, field.NotSupported(p.Child("type"), c.Type, pcrTerminalType))
		}
	}
	allErrs = append(allErrs, metav1validation.ValidateConditions(r.Status.Conditions, pcrStatusPath.Child("conditions"))...)
	if len(allErrs) > 0 {
		return allErrs
	}
	if pcrState(old) != "" {
		if !apiequality.Semantic.DeepEqual(r.Status, old.Status) {
			allErrs = append(allErrs, field.Invalid(pcrStatusPath, field.OmitValueType{}, "immutable after PodCertificateRequest is issued, denied, or failed"))
		}
		return allErrs
	}
	switch pcrState(r) {
	case "Denied", "Failed":
		if !apiequality.Semantic.DeepEqual(r.Status, certificatesv1.PodCertificateRequestStatus{Conditions: r.Status.Conditions}) {
			allErrs = append(allErrs, field.Invalid(pcrStatusPath, field.OmitValueType{}, "non-condition status fields must be empty when denying or failing the PodCertificateRequest"))
		}
	case "Issued":
		allErrs = append(allErrs, validateIssuedChain(r, old)...)
	}
	return allErrs
}

func validateIssuedChain(r, old *certificatesv1.PodCertificateRequest) field.ErrorList {
	chain := r.Status.CertificateChain
	if len(chain) > maxCertificateChainSize {
		return field.ErrorList{field.TooLong(pcrChainPath, chain, maxCertificateChainSize)}
	}
	leafBlock, _ := pem.Decode([]byte(chain))
	if leafBlock == nil {
		return field.ErrorList{field.Invalid(pcrChainPath, chain, "issued certificate chain must contain at least one certificate")}
	}
	if leafBlock.Type != "CERTIFICATE" {
		return field.ErrorList{field.Invalid(pcrChainPath, chain, "issued certificate chain must consist entirely of CERTIFICATE PEM blocks")}
	}
	leaf, err := x509.ParseCertificate(leafBlock.Bytes)
	if err != nil {
		return field.ErrorList{field.Invalid(pcrChainPath, chain, "leaf certificate does not parse as valid X.509")}
	}
	req, err := x509.ParseCertificateRequest(old.Spec.StubPKCS10Request)
	if err != nil {
		return field.ErrorList{field.Invalid(pcrStubPath, field.OmitValueType{}, "must be a valid PKCS#10 CSR")}
	}
	if want, ok := req.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !want.Equal(leaf.PublicKey) {
		return field.ErrorList{field.Invalid(pcrChainPath, chain, "leaf certificate was not issued to the requested public key")}
	}
	var allErrs field.ErrorList
	st := &r.Status
	if st.NotBefore == nil {
		allErrs = append(allErrs, field.Required(pcrStatusPath.Child("notBefore"), "must be present and consistent with the issued certificate"))
	}
	if st.NotAfter == nil {
		allErrs = append(allErrs, field.Required(pcrStatusPath.Child("notAfter"), "must be present and consistent with the issued certificate"))
	}
	if st.BeginRefreshAt == nil {
		allErrs = append(allErrs, field.Required(pcrStatusPath.Child("beginRefreshAt"), "must be present and in the range [notbefore+10min, notafter-10min]"))
	}
	if len(allErrs) > 0 {
		return allErrs
	}
	if !st.NotBefore.Time.Equal(leaf.NotBefore) {
		return field.ErrorList{field.Invalid(pcrStatusPath.Child("notBefore"), st.NotBefore.Time, "must be set to the NotBefore time encoded in the leaf certificate")}
	}
	if !st.NotAfter.Time.Equal(leaf.NotAfter) {
		return field.ErrorList{field.Invalid(pcrStatusPath.Child("notAfter"), st.NotAfter.Time, "must be set to the NotAfter time encoded in the leaf certificate")}
	}
	if refresh := st.BeginRefreshAt.Time; refresh.Before(leaf.NotBefore.Add(10*time.Minute)) || refresh.After(leaf.NotAfter.Add(-10*time.Minute)) {
		return field.ErrorList{field.Invalid(pcrStatusPath.Child("beginRefreshAt"), refresh, "must be in the range [notbefore+10min, notafter-10min]")}
	}
	return nil
}

var (
	// PodCertificateRequestStrategy is the strategy of writes to the request itself.
	PodCertificateRequestStrategy Strategy = pcrStrategy{}
	// PodCertificateRequestStatusStrategy is the strategy of /status: the signer's answer.
	PodCertificateRequestStatusStrategy Strategy = pcrStatusStrategy{}
)

type pcrStrategy struct{}

// PrepareForCreate clears the status: nobody creates a request already answered.
func (pcrStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	obj.(*certificatesv1.PodCertificateRequest).Status = certificatesv1.PodCertificateRequestStatus{}
}

func (pcrStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return ValidatePodCertificateRequest(obj.(*certificatesv1.PodCertificateRequest))
}

// PrepareForUpdate keeps the status: only /status answers a request.
func (pcrStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	obj.(*certificatesv1.PodCertificateRequest).Status = old.(*certificatesv1.PodCertificateRequest).Status
}

func (pcrStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidatePodCertificateRequestUpdate(obj.(*certificatesv1.PodCertificateRequest), old.(*certificatesv1.PodCertificateRequest))
}

func (pcrStrategy) AllowCreateOnUpdate() bool      { return false }
func (pcrStrategy) AllowUnconditionalUpdate() bool { return true }

type pcrStatusStrategy struct{ pcrStrategy }

// PrepareForUpdate keeps the spec: /status writes only the answer.
func (pcrStatusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	obj.(*certificatesv1.PodCertificateRequest).Spec = old.(*certificatesv1.PodCertificateRequest).Spec
}

func (pcrStatusStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidatePodCertificateRequestStatusUpdate(obj.(*certificatesv1.PodCertificateRequest), old.(*certificatesv1.PodCertificateRequest))
}

func podCertificateRequestTable() *TablePrinter {
	spec := certificatesv1.PodCertificateRequestSpec{}.SwaggerDoc()
	return Columns([]metav1.TableColumnDefinition{
		nameColumn,
		{Name: "PodName", Type: "string", Description: spec["podName"]},
		{Name: "ServiceAccountName", Type: "string", Description: spec["serviceAccountName"]},
		{Name: "NodeName", Type: "string", Description: spec["nodeName"]},
		{Name: "SignerName", Type: "string", Description: spec["signerName"]},
		{Name: "State", Type: "string", Description: "Is the request Pending, Issued, Denied, or Failed?"},
		{Name: "UnverifiedUserAnnotations", Type: "string", Priority: 1, Description: spec["unverifiedUserAnnotations"]},
	}, func(r *certificatesv1.PodCertificateRequest) metav1.TableRow {
		state := pcrState(r)
		if state == "" {
			state = "Pending"
		}
		return cells(r.Name, r.Spec.PodName, r.Spec.ServiceAccountName, string(r.Spec.NodeName), r.Spec.SignerName, state,
			labels.FormatLabels(r.Spec.UnverifiedUserAnnotations))
	})
}
