package csrsigning

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/apimachinery/pkg/util/sets"
)

// What each kubernetes.io signer accepts, in upstream's words: a request that breaks its
// signer's rules gets the Failed condition with the rule's message.

// LegacyUnknownSignerName is the signer of requests made through certificates.k8s.io/v1beta1
// without a signer name; v1 refuses it on create, but it may be stored.
const LegacyUnknownSignerName = "kubernetes.io/legacy-unknown"

var (
	errOrganizationNotSystemNodes = errors.New("subject organization is not system:nodes")
	errCommonNameNotSystemNode    = errors.New("subject common name does not begin with system:node:")
	errDNSOrIPSANRequired         = errors.New("DNS or IP subjectAltName is required")
	errDNSSANNotAllowed           = errors.New("DNS subjectAltNames are not allowed")
	errEmailSANNotAllowed         = errors.New("Email subjectAltNames are not allowed")
	errIPSANNotAllowed            = errors.New("IP subjectAltNames are not allowed")
	errURISANNotAllowed           = errors.New("URI subjectAltNames are not allowed")
)

var (
	kubeletServingRequiredUsages      = sets.New("digital signature", "key encipherment", "server auth")
	kubeletServingRequiredUsagesNoRSA = sets.New("digital signature", "server auth")
	kubeletClientRequiredUsages       = sets.New("digital signature", "key encipherment", "client auth")
	kubeletClientRequiredUsagesNoRSA  = sets.New("digital signature", "client auth")
)

func usageSet(usages []certificatesv1.KeyUsage) sets.Set[string] {
	s := sets.New[string]()
	for _, u := range usages {
		s.Insert(string(u))
	}
	return s
}

// ValidateKubeletClientCSR checks a kube-apiserver-client-kubelet request: O system:nodes only,
// CN system:node:NAME, no subject alternative names, and the kubelet client usages.
func ValidateKubeletClientCSR(req *x509.CertificateRequest, usages []certificatesv1.KeyUsage) error {
	if !slices.Equal(req.Subject.Organization, []string{"system:nodes"}) {
		return errOrganizationNotSystemNodes
	}
	switch {
	case len(req.DNSNames) > 0:
		return errDNSSANNotAllowed
	case len(req.EmailAddresses) > 0:
		return errEmailSANNotAllowed
	case len(req.IPAddresses) > 0:
		return errIPSANNotAllowed
	case len(req.URIs) > 0:
		return errURISANNotAllowed
	}
	if !strings.HasPrefix(req.Subject.CommonName, "system:node:") {
		return errCommonNameNotSystemNode
	}
	if u := usageSet(usages); !kubeletClientRequiredUsages.Equal(u) && !kubeletClientRequiredUsagesNoRSA.Equal(u) {
		return fmt.Errorf("usages did not match %v", sets.List(kubeletClientRequiredUsages))
	}
	return nil
}

// ValidateKubeletServingCSR checks a kubelet-serving request: O system:nodes only, a DNS or
// IP name, no email or URI names, the serving usages, and CN system:node:NAME.
func ValidateKubeletServingCSR(req *x509.CertificateRequest, usages []certificatesv1.KeyUsage) error {
	if !slices.Equal(req.Subject.Organization, []string{"system:nodes"}) {
		return errOrganizationNotSystemNodes
	}
	switch {
	case len(req.DNSNames) == 0 && len(req.IPAddresses) == 0:
		return errDNSOrIPSANRequired
	case len(req.EmailAddresses) > 0:
		return errEmailSANNotAllowed
	case len(req.URIs) > 0:
		return errURISANNotAllowed
	}
	if u := usageSet(usages); !kubeletServingRequiredUsages.Equal(u) && !kubeletServingRequiredUsagesNoRSA.Equal(u) {
		return fmt.Errorf("usages did not match %v", sets.List(kubeletServingRequiredUsages))
	}
	if !strings.HasPrefix(req.Subject.CommonName, "system:node:") {
		return errCommonNameNotSystemNode
	}
	return nil
}

// validateAPIServerClientUsages checks a kube-apiserver-client request's usages: client auth,
// and optionally digital signature and key encipherment, nothing else.
func validateAPIServerClientUsages(usages []certificatesv1.KeyUsage) error {
	hasClientAuth := false
	for _, u := range usages {
		switch u {
		case certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment:
		case certificatesv1.UsageClientAuth:
			hasClientAuth = true
		default:
			return fmt.Errorf("invalid usage for client certificate: %s", u)
		}
	}
	if !hasClientAuth {
		return fmt.Errorf("missing required usage for client certificate: %s", certificatesv1.UsageClientAuth)
	}
	return nil
}

// validateForSigner reports whether signerName is one this controller signs for, and if so
// whether the request keeps that signer's rules.
func validateForSigner(signerName string, req *x509.CertificateRequest, usages []certificatesv1.KeyUsage) (bool, error) {
	switch signerName {
	case certificatesv1.KubeAPIServerClientSignerName:
		return true, validateAPIServerClientUsages(usages)
	case certificatesv1.KubeAPIServerClientKubeletSignerName:
		return true, ValidateKubeletClientCSR(req, usages)
	case certificatesv1.KubeletServingSignerName:
		return true, ValidateKubeletServingCSR(req, usages)
	case LegacyUnknownSignerName:
		return true, nil
	}
	return false, nil
}

var keyUsages = map[certificatesv1.KeyUsage]x509.KeyUsage{
	certificatesv1.UsageSigning:           x509.KeyUsageDigitalSignature,
	certificatesv1.UsageDigitalSignature:  x509.KeyUsageDigitalSignature,
	certificatesv1.UsageContentCommitment: x509.KeyUsageContentCommitment,
	certificatesv1.UsageKeyEncipherment:   x509.KeyUsageKeyEncipherment,
	certificatesv1.UsageKeyAgreement:      x509.KeyUsageKeyAgreement,
	certificatesv1.UsageDataEncipherment:  x509.KeyUsageDataEncipherment,
	certificatesv1.UsageCertSign:          x509.KeyUsageCertSign,
	certificatesv1.UsageCRLSign:           x509.KeyUsageCRLSign,
	certificatesv1.UsageEncipherOnly:      x509.KeyUsageEncipherOnly,
	certificatesv1.UsageDecipherOnly:      x509.KeyUsageDecipherOnly,
}

var extKeyUsages = map[certificatesv1.KeyUsage]x509.ExtKeyUsage{
	certificatesv1.UsageAny:             x509.ExtKeyUsageAny,
	certificatesv1.UsageServerAuth:      x509.ExtKeyUsageServerAuth,
	certificatesv1.UsageClientAuth:      x509.ExtKeyUsageClientAuth,
	certificatesv1.UsageCodeSigning:     x509.ExtKeyUsageCodeSigning,
	certificatesv1.UsageEmailProtection: x509.ExtKeyUsageEmailProtection,
	certificatesv1.UsageSMIME:           x509.ExtKeyUsageEmailProtection,
	certificatesv1.UsageIPsecEndSystem:  x509.ExtKeyUsageIPSECEndSystem,
	certificatesv1.UsageIPsecTunnel:     x509.ExtKeyUsageIPSECTunnel,
	certificatesv1.UsageIPsecUser:       x509.ExtKeyUsageIPSECUser,
	certificatesv1.UsageTimestamping:    x509.ExtKeyUsageTimeStamping,
	certificatesv1.UsageOCSPSigning:     x509.ExtKeyUsageOCSPSigning,
	certificatesv1.UsageMicrosoftSGC:    x509.ExtKeyUsageMicrosoftServerGatedCrypto,
	certificatesv1.UsageNetscapeSGC:     x509.ExtKeyUsageNetscapeServerGatedCrypto,
}

// x509Usages turns a request's usages into the certificate's key usages and extended key
// usages; an unknown usage is an error.
func x509Usages(usages []certificatesv1.KeyUsage) (x509.KeyUsage, []x509.ExtKeyUsage, error) {
	var ku x509.KeyUsage
	var eku []x509.ExtKeyUsage
	seen := map[x509.ExtKeyUsage]bool{}
	for _, u := range usages {
		if k, ok := keyUsages[u]; ok {
			ku |= k
			continue
		}
		e, ok := extKeyUsages[u]
		if !ok {
			return 0, nil, fmt.Errorf("unrecognized usage: %s", u)
		}
		if !seen[e] {
			seen[e] = true
			eku = append(eku, e)
		}
	}
	return ku, eku, nil
}
