package apis

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-cmp/cmp"
	certificatesv1 "k8s.io/api/certificates/v1"
	certificatesv1beta1 "k8s.io/api/certificates/v1beta1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// certificates.k8s.io/v1 CertificateSigningRequests: upstream's strategy (the requester's
// identity is the server's, set by admission on create; spec never changes; approval
// conditions are written only through /approval and the certificate only through /status),
// validation in upstream's words, and upstream's Table columns. Who may approve and who may
// sign is not the strategy's: it needs the authorizer (apiserver/admission_certificates.go).

var certificatesV1 = certificatesv1.SchemeGroupVersion

// ParseCSR decodes the PEM PKCS#10 request of a CertificateSigningRequest, with upstream's
// words when it is not one.
func ParseCSR(pemBytes []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("PEM block type must be CERTIFICATE REQUEST")
	}
	return x509.ParseCertificateRequest(block.Bytes)
}

var (
	// CertificateSigningRequestStrategy is the strategy of writes to the CSR itself.
	CertificateSigningRequestStrategy Strategy = csrStrategy{}
	// CertificateSigningRequestStatusStrategy is the strategy of /status: the certificate and
	// conditions other than Approved and Denied.
	CertificateSigningRequestStatusStrategy Strategy = csrStatusStrategy{}
	// CertificateSigningRequestApprovalStrategy is the strategy of /approval: the conditions.
	CertificateSigningRequestApprovalStrategy Strategy = csrApprovalStrategy{}
)

type csrStrategy struct{}

// PrepareForCreate clears the status: nobody creates a request already approved or issued.
// spec.username, uid, groups and extra were set from the requesting user by admission.
func (csrStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	csr := obj.(*certificatesv1.CertificateSigningRequest)
	csr.Status = certificatesv1.CertificateSigningRequestStatus{}
}

func (csrStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	csr := obj.(*certificatesv1.CertificateSigningRequest)
	return validateCSR(csr, csrValidationOptions(csr, nil))
}

// PrepareForUpdate keeps spec and status: a request is immutable but for its metadata, except
// through its subresources.
func (csrStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	csr, oldCSR := obj.(*certificatesv1.CertificateSigningRequest), old.(*certificatesv1.CertificateSigningRequest)
	csr.Spec = oldCSR.Spec
	csr.Status = oldCSR.Status
}

func (csrStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	csr, oldCSR := obj.(*certificatesv1.CertificateSigningRequest), old.(*certificatesv1.CertificateSigningRequest)
	return validateCSRUpdate(csr, oldCSR, csrValidationOptions(csr, oldCSR))
}

func (csrStrategy) AllowCreateOnUpdate() bool      { return false }
func (csrStrategy) AllowUnconditionalUpdate() bool { return true }

type csrStatusStrategy struct{ csrStrategy }

// PrepareForUpdate keeps spec and the Approved and Denied conditions as they are (adding or
// removing one is then refused by validation), and stamps the conditions' times.
func (csrStatusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	csr, oldCSR := obj.(*certificatesv1.CertificateSigningRequest), old.(*certificatesv1.CertificateSigningRequest)
	csr.Spec = oldCSR.Spec
	keepConditions(csr, oldCSR, certificatesv1.CertificateApproved)
	keepConditions(csr, oldCSR, certificatesv1.CertificateDenied)
	stampConditions(csr, oldCSR)
}

func (csrStatusStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	csr, oldCSR := obj.(*certificatesv1.CertificateSigningRequest), old.(*certificatesv1.CertificateSigningRequest)
	opts := csrValidationOptions(csr, oldCSR)
	opts.allowSettingCertificate = true
	return validateCSRUpdate(csr, oldCSR, opts)
}

type csrApprovalStrategy struct{ csrStrategy }

// PrepareForUpdate takes only the conditions from the write.
func (csrApprovalStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	csr, oldCSR := obj.(*certificatesv1.CertificateSigningRequest), old.(*certificatesv1.CertificateSigningRequest)
	stampConditions(csr, oldCSR)
	conditions := csr.Status.Conditions
	csr.Spec = oldCSR.Spec
	csr.Status = *oldCSR.Status.DeepCopy()
	csr.Status.Conditions = conditions
}

func (csrApprovalStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	csr, oldCSR := obj.(*certificatesv1.CertificateSigningRequest), old.(*certificatesv1.CertificateSigningRequest)
	opts := csrValidationOptions(csr, oldCSR)
	opts.allowSettingApprovalConditions = true
	return validateCSRUpdate(csr, oldCSR, opts)
}

// keepConditions puts the old instances of a condition type back in place of the new ones,
// when the write kept their number.
func keepConditions(csr, old *certificatesv1.CertificateSigningRequest, t certificatesv1.RequestConditionType) {
	oldAt, newAt := conditionIndices(old, t), conditionIndices(csr, t)
	if len(oldAt) != len(newAt) {
		return
	}
	for i, o := range oldAt {
		csr.Status.Conditions[newAt[i]] = old.Status.Conditions[o]
	}
}

func conditionIndices(csr *certificatesv1.CertificateSigningRequest, t certificatesv1.RequestConditionType) []int {
	var at []int
	for i, c := range csr.Status.Conditions {
		if c.Type == t {
			at = append(at, i)
		}
	}
	return at
}

// stampConditions sets a missing lastUpdateTime to now, and a missing lastTransitionTime to
// that of the same condition with the same status before, or now.
func stampConditions(csr, old *certificatesv1.CertificateSigningRequest) {
	now := metav1.Now().Rfc3339Copy()
	for i := range csr.Status.Conditions {
		c := &csr.Status.Conditions[i]
		if c.LastUpdateTime.IsZero() {
			c.LastUpdateTime = now
		}
		if !c.LastTransitionTime.IsZero() {
			continue
		}
		c.LastTransitionTime = now
		for _, o := range old.Status.Conditions {
			if o.Type == c.Type && o.Status == c.Status && !o.LastTransitionTime.IsZero() {
				c.LastTransitionTime = o.LastTransitionTime
				break
			}
		}
	}
}

// csrOptions are what a write may do beyond the ordinary, as upstream's
// certificateValidationOptions: the subresources' powers, and tolerance of bad data already
// stored.
type csrOptions struct {
	allowSettingApprovalConditions bool
	allowSettingCertificate        bool
	allowBothApprovedAndDenied     bool
	allowLegacySignerName          bool
	allowDuplicateConditionTypes   bool
	allowEmptyConditionType        bool
	allowArbitraryCertificate      bool
	allowUnknownUsages             bool
	allowDuplicateUsages           bool
}

// csrValidationOptions tolerates in an update what the stored object (old, nil on create)
// already has wrong.
func csrValidationOptions(csr, old *certificatesv1.CertificateSigningRequest) csrOptions {
	if old == nil {
		return csrOptions{}
	}
	var approved, denied, emptyType, duplicateType bool
	seen := map[certificatesv1.RequestConditionType]bool{}
	for _, c := range old.Status.Conditions {
		approved = approved || c.Type == certificatesv1.CertificateApproved
		denied = denied || c.Type == certificatesv1.CertificateDenied
		emptyType = emptyType || c.Type == ""
		duplicateType = duplicateType || seen[c.Type]
		seen[c.Type] = true
	}
	var unknownUsage, duplicateUsage bool
	seenUsages := map[certificatesv1.KeyUsage]bool{}
	for _, u := range old.Spec.Usages {
		unknownUsage = unknownUsage || !allValidUsages.Has(string(u))
		duplicateUsage = duplicateUsage || seenUsages[u]
		seenUsages[u] = true
	}
	return csrOptions{
		allowBothApprovedAndDenied:   approved && denied,
		allowLegacySignerName:        old.Spec.SignerName == certificatesv1beta1.LegacyUnknownSignerName,
		allowDuplicateConditionTypes: duplicateType,
		allowEmptyConditionType:      emptyType,
		allowArbitraryCertificate: bytes.Equal(csr.Status.Certificate, old.Status.Certificate) ||
			validateIssuedCertificate(old.Status.Certificate) != nil,
		allowUnknownUsages:   unknownUsage,
		allowDuplicateUsages: duplicateUsage,
	}
}

var allValidUsages = sets.New[string](
	string(certificatesv1.UsageSigning), string(certificatesv1.UsageDigitalSignature),
	string(certificatesv1.UsageContentCommitment), string(certificatesv1.UsageKeyEncipherment),
	string(certificatesv1.UsageKeyAgreement), string(certificatesv1.UsageDataEncipherment),
	string(certificatesv1.UsageCertSign), string(certificatesv1.UsageCRLSign),
	string(certificatesv1.UsageEncipherOnly), string(certificatesv1.UsageDecipherOnly),
	string(certificatesv1.UsageAny), string(certificatesv1.UsageServerAuth),
	string(certificatesv1.UsageClientAuth), string(certificatesv1.UsageCodeSigning),
	string(certificatesv1.UsageEmailProtection), string(certificatesv1.UsageSMIME),
	string(certificatesv1.UsageIPsecEndSystem), string(certificatesv1.UsageIPsecTunnel),
	string(certificatesv1.UsageIPsecUser), string(certificatesv1.UsageTimestamping),
	string(certificatesv1.UsageOCSPSigning), string(certificatesv1.UsageMicrosoftSGC),
	string(certificatesv1.UsageNetscapeSGC),
)

var (
	csrTrueConditionTypes = sets.New(string(certificatesv1.CertificateApproved), string(certificatesv1.CertificateDenied), string(certificatesv1.CertificateFailed))
	csrTrueStatusOnly     = sets.New(string(corev1.ConditionTrue))
	csrAllStatusValues    = sets.New(string(corev1.ConditionTrue), string(corev1.ConditionFalse), string(corev1.ConditionUnknown))
)

// ValidateCertificateSigningRequest checks a new request as upstream does.
func ValidateCertificateSigningRequest(csr *certificatesv1.CertificateSigningRequest) field.ErrorList {
	return validateCSR(csr, csrOptions{})
}

func validateCSR(csr *certificatesv1.CertificateSigningRequest, opts csrOptions) field.ErrorList {
	// any name will do, as upstream's ValidateCertificateRequestName
	allErrs := ValidateObjectMeta(&csr.ObjectMeta, false, func(string, bool) []string { return nil }, metadataPath)
	specPath := field.NewPath("spec")
	if err := checkCSRSignature(csr.Spec.Request); err != nil {
		allErrs = append(allErrs, field.Invalid(specPath.Child("request"), csr.Spec.Request, err.Error()))
	}
	if len(csr.Spec.Usages) == 0 {
		allErrs = append(allErrs, field.Required(specPath.Child("usages"), ""))
	}
	if !opts.allowUnknownUsages {
		for i, u := range csr.Spec.Usages {
			if !allValidUsages.Has(string(u)) {
				allErrs = append(allErrs, field.NotSupported(specPath.Child("usages").Index(i), u, sets.List(allValidUsages)))
			}
		}
	}
	if !opts.allowDuplicateUsages {
		seen := map[certificatesv1.KeyUsage]bool{}
		for i, u := range csr.Spec.Usages {
			if seen[u] {
				allErrs = append(allErrs, field.Duplicate(specPath.Child("usages").Index(i), u))
			}
			seen[u] = true
		}
	}
	if !opts.allowLegacySignerName && csr.Spec.SignerName == certificatesv1beta1.LegacyUnknownSignerName {
		allErrs = append(allErrs, field.Invalid(specPath.Child("signerName"), csr.Spec.SignerName, "the legacy signerName is not allowed via this API version"))
	} else {
		allErrs = append(allErrs, ValidateSignerName(specPath.Child("signerName"), csr.Spec.SignerName)...)
	}
	if csr.Spec.ExpirationSeconds != nil && *csr.Spec.ExpirationSeconds < 600 {
		allErrs = append(allErrs, field.Invalid(specPath.Child("expirationSeconds"), *csr.Spec.ExpirationSeconds, "may not specify a duration less than 600 seconds (10 minutes)"))
	}
	allErrs = append(allErrs, validateCSRConditions(field.NewPath("status", "conditions"), csr, opts)...)
	if !opts.allowArbitraryCertificate {
		if err := validateIssuedCertificate(csr.Status.Certificate); err != nil {
			allErrs = append(allErrs, field.Invalid(field.NewPath("status", "certificate"), "<certificate data>", err.Error()))
		}
	}
	return allErrs
}

// checkCSRSignature parses the request and checks it is signed by the key it names.
func checkCSRSignature(request []byte) error {
	req, err := ParseCSR(request)
	if err != nil {
		return err
	}
	return req.CheckSignature()
}

// validateIssuedCertificate checks status.certificate: empty, or only CERTIFICATE blocks
// without headers, each parsing.
func validateIssuedCertificate(pemData []byte) error {
	if len(pemData) == 0 {
		return nil
	}
	blocks := 0
	for {
		block, rest := pem.Decode(pemData)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("only CERTIFICATE PEM blocks are allowed, found %q", block.Type)
		}
		if len(block.Headers) != 0 {
			return fmt.Errorf("no PEM block headers are permitted")
		}
		blocks++
		certs, err := x509.ParseCertificates(block.Bytes)
		if err != nil {
			return err
		}
		if len(certs) == 0 {
			return fmt.Errorf("found CERTIFICATE PEM block containing 0 certificates")
		}
		pemData = rest
	}
	if blocks == 0 {
		return fmt.Errorf("must contain at least one CERTIFICATE PEM block")
	}
	return nil
}

func validateCSRConditions(fldPath *field.Path, csr *certificatesv1.CertificateSigningRequest, opts csrOptions) field.ErrorList {
	var allErrs field.ErrorList
	seen := map[certificatesv1.RequestConditionType]bool{}
	var approved, denied bool
	for i, c := range csr.Status.Conditions {
		if !opts.allowEmptyConditionType && c.Type == "" {
			allErrs = append(allErrs, field.Required(fldPath.Index(i).Child("type"), ""))
		}
		allowed := csrAllStatusValues
		if csrTrueConditionTypes.Has(string(c.Type)) {
			allowed = csrTrueStatusOnly
		}
		switch {
		case c.Status == "":
			allErrs = append(allErrs, field.Required(fldPath.Index(i).Child("status"), ""))
		case !allowed.Has(string(c.Status)):
			allErrs = append(allErrs, field.NotSupported(fldPath.Index(i).Child("status"), c.Status, sets.List(allowed)))
		}
		if !opts.allowBothApprovedAndDenied {
			switch c.Type {
			case certificatesv1.CertificateApproved:
				approved = true
				if denied {
					allErrs = append(allErrs, field.Invalid(fldPath.Index(i).Child("type"), c.Type, "Approved and Denied conditions are mutually exclusive"))
				}
			case certificatesv1.CertificateDenied:
				denied = true
				if approved {
					allErrs = append(allErrs, field.Invalid(fldPath.Index(i).Child("type"), c.Type, "Approved and Denied conditions are mutually exclusive"))
				}
			}
		}
		if !opts.allowDuplicateConditionTypes {
			if seen[c.Type] {
				allErrs = append(allErrs, field.Duplicate(fldPath.Index(i).Child("type"), c.Type))
			}
			seen[c.Type] = true
		}
	}
	return allErrs
}

func validateCSRUpdate(csr, old *certificatesv1.CertificateSigningRequest, opts csrOptions) field.ErrorList {
	allErrs := validateCSR(csr, opts)
	conditionsPath := field.NewPath("status", "conditions")
	// Approved, Denied and Failed never go away once set
	for _, t := range []certificatesv1.RequestConditionType{certificatesv1.CertificateApproved, certificatesv1.CertificateDenied, certificatesv1.CertificateFailed} {
		if len(conditionsOf(csr, t)) < len(conditionsOf(old, t)) {
			allErrs = append(allErrs, field.Forbidden(conditionsPath, fmt.Sprintf("updates may not remove a condition of type %q", t)))
		}
	}
	if !opts.allowSettingApprovalConditions {
		for _, t := range []certificatesv1.RequestConditionType{certificatesv1.CertificateApproved, certificatesv1.CertificateDenied} {
			before, after := conditionsOf(old, t), conditionsOf(csr, t)
			switch {
			case len(after) < len(before):
				// refused above
			case len(after) > len(before):
				allErrs = append(allErrs, field.Forbidden(conditionsPath, fmt.Sprintf("updates may not add a condition of type %q", t)))
			case !apiequality.Semantic.DeepEqual(before, after):
				allErrs = append(allErrs, field.Forbidden(conditionsPath, fmt.Sprintf("updates may not modify a condition of type %q\n%v", t, cmp.Diff(before, after))))
			}
		}
	}
	if !bytes.Equal(csr.Status.Certificate, old.Status.Certificate) {
		if !opts.allowSettingCertificate {
			allErrs = append(allErrs, field.Forbidden(field.NewPath("status", "certificate"), "updates may not set certificate content"))
		} else if len(old.Status.Certificate) > 0 {
			allErrs = append(allErrs, field.Forbidden(field.NewPath("status", "certificate"), "updates may not modify existing certificate content"))
		}
	}
	return append(allErrs, ValidateObjectMetaUpdate(&csr.ObjectMeta, &old.ObjectMeta, metadataPath)...)
}

func conditionsOf(csr *certificatesv1.CertificateSigningRequest, t certificatesv1.RequestConditionType) []certificatesv1.CertificateSigningRequestCondition {
	var out []certificatesv1.CertificateSigningRequestCondition
	for _, c := range csr.Status.Conditions {
		if c.Type == t {
			out = append(out, c)
		}
	}
	return out
}

// ValidateSignerName checks that a signer name is "domain.example/path", as upstream: a
// domain of at least two DNS labels, a path of DNS subdomains separated by dots, and no
// longer than 571 characters in all.
func ValidateSignerName(fldPath *field.Path, signerName string) field.ErrorList {
	if signerName == "" {
		return field.ErrorList{field.Required(fldPath, "")}
	}
	var el field.ErrorList
	segments := strings.Split(signerName, "/")
	if len(segments) != 2 {
		return append(el, field.Invalid(fldPath, signerName, "must be a fully qualified domain and path of the form 'example.com/signer-name'"))
	}
	if len(segments[0]) > validation.DNS1123SubdomainMaxLength {
		el = append(el, field.TooLong(fldPath, "", validation.DNS1123SubdomainMaxLength))
	}
	domainLabels := strings.Split(segments[0], ".")
	for _, lbl := range domainLabels {
		if errs := validation.IsDNS1123Label(lbl); len(errs) > 0 {
			for _, err := range errs {
				el = append(el, field.Invalid(fldPath, segments[0], fmt.Sprintf("validating label %q: %s", lbl, err)))
			}
			// one bad label is enough: the others' errors would read the same
			break
		}
	}
	if len(domainLabels) < 2 {
		el = append(el, field.Invalid(fldPath, segments[0], "should be a domain with at least two segments separated by dots"))
	}
	for _, lbl := range strings.Split(segments[1], ".") {
		if errs := validation.IsDNS1123Subdomain(lbl); len(errs) > 0 {
			for _, err := range errs {
				el = append(el, field.Invalid(fldPath, segments[1], fmt.Sprintf("validating label %q: %s", lbl, err)))
			}
			break
		}
	}
	maxPath := validation.DNS1123SubdomainMaxLength + validation.DNS1123LabelMaxLength + 1
	if maxSigner := validation.DNS1123SubdomainMaxLength + maxPath + 1; len(signerName) > maxSigner {
		el = append(el, field.TooLong(fldPath, "", maxSigner))
	}
	return el
}

// certificateSigningRequestFields adds spec.signerName, upstream's one CSR field label.
func certificateSigningRequestFields(obj runtime.Object) fields.Set {
	set := objectMetaFields(obj)
	set["spec.signerName"] = obj.(*certificatesv1.CertificateSigningRequest).Spec.SignerName
	return set
}

// Upstream describes the columns with the v1beta1 field docs (Requestor with spec.request's).
var certificateSigningRequestColumns = []metav1.TableColumnDefinition{
	nameColumn,
	ageColumn,
	{Name: "SignerName", Type: "string", Description: certificatesv1beta1.CertificateSigningRequestSpec{}.SwaggerDoc()["signerName"]},
	{Name: "Requestor", Type: "string", Description: certificatesv1beta1.CertificateSigningRequestSpec{}.SwaggerDoc()["request"]},
	{Name: "RequestedDuration", Type: "string", Description: certificatesv1beta1.CertificateSigningRequestSpec{}.SwaggerDoc()["expirationSeconds"]},
	{Name: "Condition", Type: "string", Description: certificatesv1beta1.CertificateSigningRequestStatus{}.SwaggerDoc()["conditions"]},
}

func certificateSigningRequestRow(csr *certificatesv1.CertificateSigningRequest) metav1.TableRow {
	signer := "<none>"
	if csr.Spec.SignerName != "" {
		signer = csr.Spec.SignerName
	}
	requested := "<none>"
	if csr.Spec.ExpirationSeconds != nil {
		requested = duration.HumanDuration(time.Duration(*csr.Spec.ExpirationSeconds) * time.Second)
	}
	return cells(csr.Name, translateTimestampSince(csr.CreationTimestamp), signer, csr.Spec.Username, requested, CSRCondition(csr))
}

// CSRCondition is the Condition column: Denied, Approved or Pending (in that precedence),
// then ",Failed" and ",Issued" when so.
func CSRCondition(csr *certificatesv1.CertificateSigningRequest) string {
	var approved, denied, failed bool
	for _, c := range csr.Status.Conditions {
		switch c.Type {
		case certificatesv1.CertificateApproved:
			approved = true
		case certificatesv1.CertificateDenied:
			denied = true
		case certificatesv1.CertificateFailed:
			failed = true
		}
	}
	status := "Pending"
	if denied {
		status = "Denied"
	} else if approved {
		status = "Approved"
	}
	if failed {
		status += ",Failed"
	}
	if len(csr.Status.Certificate) > 0 {
		status += ",Issued"
	}
	return status
}

func certificateSigningRequestTable() *TablePrinter {
	return Columns(certificateSigningRequestColumns, certificateSigningRequestRow)
}
