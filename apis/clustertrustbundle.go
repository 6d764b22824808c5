package apis

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"

	certificatesv1 "k8s.io/api/certificates/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// certificates.k8s.io/v1 ClusterTrustBundle publishes CA certificates for a signer (or for
// no signer) to the whole cluster. skiff stores and validates them as upstream; its kubelet
// projects them into pods through clusterTrustBundle volume sources (kubelet/clustertrustbundle.go).

const maxTrustBundleSize = 1 << 20

func clusterTrustBundleFields(obj runtime.Object) fields.Set {
	set := objectMetaFields(obj)
	set["spec.signerName"] = obj.(*certificatesv1.ClusterTrustBundle).Spec.SignerName
	return set
}

// clusterTrustBundleName is upstream's naming rule: a bundle of a signer is named with the
// signer's name (slashes as colons) and a colon before its own name; one of no signer has
// no colon at all.
func clusterTrustBundleName(signerName string) apivalidation.ValidateNameFunc {
	return func(name string, prefix bool) []string {
		if signerName == "" {
			if strings.Contains(name, ":") {
				return []string{"ClusterTrustBundle without signer name must not have \":\" in its name"}
			}
			return apivalidation.NameIsDNSSubdomain(name, prefix)
		}
		required := strings.ReplaceAll(signerName, "/", ":") + ":"
		if !strings.HasPrefix(name, required) {
			return []string{fmt.Sprintf("ClusterTrustBundle for signerName %s must be named with prefix %s", signerName, required)}
		}
		return apivalidation.NameIsDNSSubdomain(strings.TrimPrefix(name, required), prefix)
	}
}

// ValidateClusterTrustBundle checks a new ClusterTrustBundle as upstream does.
func ValidateClusterTrustBundle(b *certificatesv1.ClusterTrustBundle) field.ErrorList {
	return validateClusterTrustBundle(b, true)
}

func validateClusterTrustBundle(b *certificatesv1.ClusterTrustBundle, parseBundle bool) field.ErrorList {
	allErrs := ValidateObjectMeta(&b.ObjectMeta, false, clusterTrustBundleName(b.Spec.SignerName), metadataPath)
	if b.Spec.SignerName != "" {
		allErrs = append(allErrs, ValidateSignerName(field.NewPath("spec", "signerName"), b.Spec.SignerName)...)
	}
	if parseBundle {
		allErrs = append(allErrs, validateTrustBundle(field.NewPath("spec", "trustBundle"), b.Spec.TrustBundle)...)
	}
	return allErrs
}

// ValidateClusterTrustBundleUpdate checks b replacing old: the signer never changes; an
// unchanged bundle is not parsed again.
func ValidateClusterTrustBundleUpdate(b, old *certificatesv1.ClusterTrustBundle) field.ErrorList {
	allErrs := validateClusterTrustBundle(b, b.Spec.TrustBundle != old.Spec.TrustBundle)
	allErrs = append(allErrs, ValidateObjectMetaUpdate(&b.ObjectMeta, &old.ObjectMeta, metadataPath)...)
	return append(allErrs, apivalidation.ValidateImmutableField(b.Spec.SignerName, old.Spec.SignerName, field.NewPath("spec", "signerName"))...)
}

// validateTrustBundle: one or more distinct PEM CERTIFICATE blocks of CA certificates, with no
// headers.
func validateTrustBundle(path *field.Path, in string) field.ErrorList {
	if len(in) > maxTrustBundleSize {
		return field.ErrorList{field.TooLong(path, "", maxTrustBundleSize)}
	}
	var allErrs field.ErrorList
	seen := map[string][]int{}
	var order []string
	rest := []byte(in)
	for i := 0; ; i++ {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		bad := func(msg string) {
			allErrs = append(allErrs, field.Invalid(path, "<value omitted>", fmt.Sprintf("entry %d %s", i, msg)))
		}
		if b.Type != "CERTIFICATE" {
			bad("has bad block type: " + b.Type)
			continue
		}
		if len(b.Headers) != 0 {
			bad("has PEM block headers")
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		switch {
		case err != nil:
			bad("does not parse as X.509")
			continue
		case !cert.IsCA:
			bad("does not have the CA bit set")
			continue
		case !cert.BasicConstraintsValid:
			bad("has invalid basic constraints")
			continue
		}
		if _, ok := seen[string(b.Bytes)]; !ok {
			order = append(order, string(b.Bytes))
		}
		seen[string(b.Bytes)] = append(seen[string(b.Bytes)], i)
	}
	// a malformed block already says what is wrong
	if len(allErrs) != 0 {
		return allErrs
	}
	if len(seen) == 0 {
		return field.ErrorList{field.Invalid(path, "<value omitted>", "at least one trust anchor must be provided")}
	}
	for _, k := range order {
		if indices := seen[k]; len(indices) > 1 {
			allErrs = append(allErrs, field.Invalid(path, "<value omitted>", fmt.Sprintf("duplicate trust anchor (indices %v)", indices)))
		}
	}
	return allErrs
}

// ClusterTrustBundleStrategy is the strategy of ClusterTrustBundles.
var ClusterTrustBundleStrategy = simpleStrategy(ValidateClusterTrustBundle, ValidateClusterTrustBundleUpdate)

func clusterTrustBundleTable() *TablePrinter {
	return Columns([]metav1.TableColumnDefinition{
		nameColumn,
		{Name: "SignerName", Type: "string", Description: certificatesv1.ClusterTrustBundleSpec{}.SwaggerDoc()["signerName"]},
	}, func(b *certificatesv1.ClusterTrustBundle) metav1.TableRow {
		return cells(b.Name, b.Spec.SignerName)
	})
}
