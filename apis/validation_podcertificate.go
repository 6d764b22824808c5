package apis

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Upstream's bounds on the lifetime a podCertificate source may ask for: an hour at least,
// 91 days at most, and a day at most from a signer of Kubernetes' own (kubernetes.io).
const (
	minPodCertificateExpirationSeconds           = 3600
	maxPodCertificateExpirationSeconds           = 91 * 24 * 60 * 60
	maxKubernetesPodCertificateExpirationSeconds = 24 * 60 * 60
)

// podCertificateKeyTypes are the private keys a kubelet can make for a podCertificate source.
var podCertificateKeyTypes = []string{"RSA3072", "RSA4096", "ECDSAP256", "ECDSAP384", "ECDSAP521", "ED25519"}

// isKubernetesSignerName reports whether signerName belongs to Kubernetes itself.
func isKubernetesSignerName(signerName string) bool {
	host, _, _ := strings.Cut(signerName, "/")
	return host == "kubernetes.io" || strings.HasSuffix(host, ".kubernetes.io")
}

// validatePodCertificateProjection checks a projected volume's podCertificate source as
// upstream does; claimPath records each file it writes so that two sources cannot collide.
func validatePodCertificateProjection(s *corev1.PodCertificateProjection, p *field.Path, claimPath func(path, conflictValue string)) field.ErrorList {
	var allErrs field.ErrorList
	allErrs = append(allErrs, ValidateSignerName(p.Child("signerName"), s.SignerName)...)
	if s.UserAnnotations != nil {
		allErrs = append(allErrs, validateUserAnnotations(s.UserAnnotations, p.Child("userAnnotations"))...)
	}
	allErrs = append(allErrs, validateVolumeUserField(s.User, p.Child("user"))...)
	if !slices.Contains(podCertificateKeyTypes, s.KeyType) {
		allErrs = append(allErrs, field.NotSupported(p.Child("keyType"), s.KeyType, podCertificateKeyTypes))
	}
	if s.MaxExpirationSeconds != nil {
		seconds := *s.MaxExpirationSeconds
		if seconds < minPodCertificateExpirationSeconds {
			allErrs = append(allErrs, field.Invalid(p.Child("maxExpirationSeconds"), seconds, "if provided, maxExpirationSeconds must be >= 3600"))
		}
		limit := maxPodCertificateExpirationSeconds
		if isKubernetesSignerName(s.SignerName) {
			limit = maxKubernetesPodCertificateExpirationSeconds
		}
		if int(seconds) > limit {
			allErrs = append(allErrs, field.Invalid(p.Child("maxExpirationSeconds"), seconds, fmt.Sprintf("if provided, maxExpirationSeconds must be <= %d", limit)))
		}
	}
	paths := 0
	for _, f := range []struct{ name, path string }{
		{"credentialBundlePath", s.CredentialBundlePath},
		{"keyPath", s.KeyPath},
		{"certificateChainPath", s.CertificateChainPath},
	} {
		if f.path == "" {
			continue
		}
		paths++
		allErrs = append(allErrs, validateLocalNonReservedPath(f.path, p.Child(f.name))...)
		claimPath(f.path, f.path)
	}
	if paths == 0 {
		allErrs = append(allErrs, field.Required(p, "specify at least one of credentialBundlePath, keyPath, and certificateChainPath"))
	}
	return allErrs
}

// validateUserAnnotations checks annotations a pod passes to a signer: domain-prefixed keys
// (in any case) and no more than object annotations may hold.
func validateUserAnnotations(annotations map[string]string, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for k := range annotations {
		allErrs = append(allErrs, validation.IsDomainPrefixedKey(p, strings.ToLower(k))...)
	}
	if err := apimachineryvalidation.ValidateAnnotationsSize(annotations); err != nil {
		allErrs = append(allErrs, field.TooLong(p, "", apimachineryvalidation.TotalAnnotationSizeLimitB))
	}
	return allErrs
}

// validateVolumeUserField checks the owner a volume source gives its files.
func validateVolumeUserField(user *int64, p *field.Path) field.ErrorList {
	if user == nil {
		return nil
	}
	var allErrs field.ErrorList
	for _, msg := range validation.IsValidUserID(*user) {
		allErrs = append(allErrs, field.Invalid(p, *user, msg))
	}
	return allErrs
}
