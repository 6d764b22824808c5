package apiserver

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	certificatesv1 "k8s.io/api/certificates/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/apiserver/authz"
)

// CertificateSigningRequests in admission, as upstream's strategy and its three certificate
// plugins: the requester's identity is the server's to record, a kube-apiserver-client
// request may not ask for system:masters (CertificateSubjectRestriction), approving needs
// the approve verb on the signer (CertificateApproval) and issuing the sign verb
// (CertificateSigning), both on the synthetic resource certificates.k8s.io/signers named by
// the signer, or by its domain and "/*".

var csrResource = schema.GroupResource{Group: certificatesv1.GroupName, Resource: "certificatesigningrequests"}

// admitCSRCreate records who asks, whatever the client claimed.
func (a admission) admitCSRCreate(ctx context.Context, csr *certificatesv1.CertificateSigningRequest) error {
	csr.Spec.Username, csr.Spec.UID, csr.Spec.Groups, csr.Spec.Extra = "", "", nil, nil
	if user, ok := authn.UserFrom(ctx); ok {
		csr.Spec.Username, csr.Spec.UID = user.Name, user.UID
		csr.Spec.Groups = append([]string(nil), user.Groups...)
		if len(user.Extra) > 0 {
			csr.Spec.Extra = map[string]certificatesv1.ExtraValue{}
			for k, v := range user.Extra {
				csr.Spec.Extra[k] = append(certificatesv1.ExtraValue(nil), v...)
			}
		}
	}
	return nil
}

// admitCSRSubject refuses a new kube-apiserver-client request for system:masters; it runs
// after validation, as upstream's validating plugin, so a request that does not parse is a
// 422 first.
func (a admission) admitCSRSubject(csr *certificatesv1.CertificateSigningRequest) error {
	if !a.enabled("CertificateSubjectRestriction") || csr.Spec.SignerName != certificatesv1.KubeAPIServerClientSignerName {
		return nil
	}
	req, err := apis.ParseCSR(csr.Spec.Request)
	if err != nil {
		return apierrors.NewForbidden(csrResource, csr.Name, fmt.Errorf("failed to parse CSR: %v", err))
	}
	for _, org := range req.Subject.Organization {
		if org == authn.SystemPrivilegedGroup {
			return apierrors.NewForbidden(csrResource, csr.Name,
				fmt.Errorf("use of %s signer with system:masters group is not allowed", certificatesv1.KubeAPIServerClientSignerName))
		}
	}
	return nil
}

// authorizeCSRWrite checks the subject of a new request, and approval and signing of an
// update of /approval or /status.
func (s *Server) authorizeCSRWrite(ctx context.Context, obj, old runtime.Object) error {
	csr, ok := obj.(*certificatesv1.CertificateSigningRequest)
	if !ok {
		return nil
	}
	oldCSR, _ := old.(*certificatesv1.CertificateSigningRequest)
	if oldCSR == nil {
		return s.admission.admitCSRSubject(csr)
	}
	user, ok := authn.UserFrom(ctx)
	ri := requestInfoFrom(ctx)
	if !ok || ri == nil {
		return nil // the server's own writes
	}
	switch ri.Subresource {
	case "approval":
		if !s.admission.enabled("CertificateApproval") {
			return nil
		}
		if !s.authorizedForSigner(ctx, *user, "approve", csr.Spec.SignerName) {
			return apierrors.NewForbidden(csrResource, csr.Name, fmt.Errorf("user not permitted to approve requests with signerName %q", csr.Spec.SignerName))
		}
	case "status":
		if !s.admission.enabled("CertificateSigning") {
			return nil
		}
		if bytes.Equal(oldCSR.Status.Certificate, csr.Status.Certificate) && apiequality.Semantic.DeepEqual(oldCSR.Status.Conditions, csr.Status.Conditions) {
			return nil
		}
		if !s.authorizedForSigner(ctx, *user, "sign", oldCSR.Spec.SignerName) {
			return apierrors.NewForbidden(csrResource, csr.Name, fmt.Errorf("user not permitted to sign requests with signerName %q", oldCSR.Spec.SignerName))
		}
	}
	return nil
}

// authorizedForSigner asks whether user may verb the signer, by its name or by its domain's
// wildcard ("example.com/*"), as upstream's IsAuthorizedForSignerName.
func (s *Server) authorizedForSigner(ctx context.Context, user authn.User, verb, signerName string) bool {
	attrs := authz.Attributes{User: user, Verb: verb, ResourceRequest: true, APIGroup: certificatesv1.GroupName,
		APIVersion: "*", Resource: "signers", Name: signerName}
	if d, _, _ := s.authz.chain.Authorize(ctx, attrs); d == authz.DecisionAllow {
		return true
	}
	domain, _, _ := strings.Cut(signerName, "/")
	attrs.Name = domain + "/*"
	d, _, _ := s.authz.chain.Authorize(ctx, attrs)
	return d == authz.DecisionAllow
}
