package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/apiserver/authn"
)

// TokenRequest lifetimes, as upstream's.
const (
	// defaultTokenExpirationSeconds is a TokenRequest's expirationSeconds when it names none.
	defaultTokenExpirationSeconds = 3600
	// minTokenExpirationSeconds and maxTokenExpirationSeconds bound what a TokenRequest may ask.
	minTokenExpirationSeconds = 10 * 60
	maxTokenExpirationSeconds = 1 << 32
	// projectedTokenExpirationSeconds is what the ServiceAccount admission plugin's projected
	// volume asks for: a pod-bound token asking exactly this much for the API server's own
	// audiences is valid for extendedTokenExpirationSeconds, so that clients that never
	// reread the token file keep working (upstream's --service-account-extend-token-expiration,
	// on by default); its warnafter claim still says when it should have been renewed.
	projectedTokenExpirationSeconds = 3607
	extendedTokenExpirationSeconds  = 365 * 24 * 60 * 60
)

var tokenRequestGVK = authenticationv1.SchemeGroupVersion.WithKind("TokenRequest")

// serviceAccountToken serves serviceaccounts/token: POST a TokenRequest, get it back with a
// signed token in its status, as upstream's TokenREST.
type serviceAccountToken struct {
	s *Server
}

func (serviceAccountToken) get(context.Context, *resourceHandler, *requestInfo, *http.Request) (runtime.Object, schema.GroupVersion, error) {
	return nil, schema.GroupVersion{}, apierrors.NewMethodNotSupported(schema.GroupResource{Resource: "serviceaccounts/token"}, "get")
}

func (t serviceAccountToken) write(ctx context.Context, h *resourceHandler, ri *requestInfo, r *http.Request, body []byte) (runtime.Object, schema.GroupVersion, int, error) {
	if ri.Verb != "create" {
		return nil, schema.GroupVersion{}, 0, apierrors.NewMethodNotSupported(schema.GroupResource{Resource: "serviceaccounts/token"}, ri.Verb)
	}
	if _, err := createOptions(r); err != nil {
		return nil, schema.GroupVersion{}, 0, err
	}
	obj, err := h.decodeBody(r, body, tokenRequestGVK)
	if err != nil {
		return nil, schema.GroupVersion{}, 0, err
	}
	if err := t.s.admission.admitNodeTokenRequest(ctx, ri.Namespace, obj.(*authenticationv1.TokenRequest)); err != nil {
		return nil, schema.GroupVersion{}, 0, err
	}
	out, err := t.issue(ctx, h, ri.Namespace, ri.Name, obj.(*authenticationv1.TokenRequest))
	if err != nil {
		return nil, schema.GroupVersion{}, 0, err
	}
	return out, authenticationv1.SchemeGroupVersion, http.StatusCreated, nil
}

// issue answers req for service account ns/name.
func (t serviceAccountToken) issue(ctx context.Context, h *resourceHandler, ns, name string, req *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
	gk := tokenRequestGVK.GroupKind()
	if req.Name != "" && req.Name != name {
		return nil, apierrors.NewInvalid(gk, name, field.ErrorList{
			field.Invalid(field.NewPath("metadata", "name"), req.Name, "must match the service account name if specified")})
	}
	if req.Namespace != "" && req.Namespace != ns {
		return nil, apierrors.NewInvalid(gk, name, field.ErrorList{
			field.Invalid(field.NewPath("metadata", "namespace"), req.Namespace, "must match the service account namespace if specified")})
	}
	saObj, err := h.store.Get(ctx, ns, name, &metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	sa := saObj.(*corev1.ServiceAccount)
	if req.UID != "" && req.UID != sa.UID {
		return nil, apierrors.NewConflict(schema.GroupResource{Group: gk.Group, Resource: gk.Kind}, name,
			fmt.Errorf("the UID in the token request (%s) does not match the UID of the service account (%s)", req.UID, sa.UID))
	}
	if len(req.Spec.Audiences) == 0 {
		req.Spec.Audiences = t.s.cfg.APIAudiences
	}
	if req.Spec.ExpirationSeconds == nil {
		seconds := int64(defaultTokenExpirationSeconds)
		req.Spec.ExpirationSeconds = &seconds
	}
	req.Name, req.Namespace, req.UID = sa.Name, sa.Namespace, sa.UID
	now := time.Now()
	req.CreationTimestamp = metav1.NewTime(now)
	req.Status = authenticationv1.TokenRequestStatus{}
	if errs := validateTokenRequest(req); len(errs) > 0 {
		return nil, apierrors.NewInvalid(gk, "", errs)
	}

	tok := authn.ServiceAccountToken{
		Namespace:      sa.Namespace,
		ServiceAccount: authn.ObjectRef{Name: sa.Name, UID: string(sa.UID)},
		Audiences:      req.Spec.Audiences,
		IssuedAt:       now,
		ID:             string(uuid.NewUUID()),
	}
	if ref := req.Spec.BoundObjectRef; ref != nil {
		if err := t.bind(ctx, ns, name, ref, &tok); err != nil {
			return nil, err
		}
	}
	seconds := *req.Spec.ExpirationSeconds
	tok.Expiry = now.Add(time.Duration(seconds) * time.Second)
	if tok.Pod != nil && seconds == projectedTokenExpirationSeconds && t.forAPIServer(req.Spec.Audiences) {
		tok.WarnAfter = tok.Expiry
		tok.Expiry = now.Add(extendedTokenExpirationSeconds * time.Second)
	}
	signed, err := t.s.tokenIssuer.Issue(tok)
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("failed to generate token: %v", err))
	}
	out := req.DeepCopy()
	out.Status = authenticationv1.TokenRequestStatus{
		Token:               signed,
		ExpirationTimestamp: metav1.NewTime(now.Add(time.Duration(seconds) * time.Second)),
	}
	return out, nil
}

// bind checks the object a token is to be bound to and records it in tok: a pod running as
// the service account (and the node it runs on), a secret, or a node.
func (t serviceAccountToken) bind(ctx context.Context, ns, saName string, ref *authenticationv1.BoundObjectReference, tok *authn.ServiceAccountToken) error {
	gvk := schema.FromAPIVersionAndKind(ref.APIVersion, ref.Kind)
	var uid string
	switch {
	case gvk.Group == "" && gvk.Kind == "Pod":
		obj, err := t.s.coreStore("pods").Get(ctx, ns, ref.Name, &metav1.GetOptions{})
		if err != nil {
			return err
		}
		pod := obj.(*corev1.Pod)
		if pod.Spec.ServiceAccountName != saName {
			return apierrors.NewBadRequest(fmt.Sprintf("cannot bind token for serviceaccount %q to pod running with different serviceaccount name.", saName))
		}
		uid = string(pod.UID)
		tok.Pod = &authn.ObjectRef{Name: pod.Name, UID: uid}
		if nodeName := pod.Spec.NodeName; nodeName != "" {
			tok.Node = &authn.ObjectRef{Name: nodeName}
			nodes := t.s.coreStore("nodes")
			node, err := nodes.Get(ctx, "", nodeName, &metav1.GetOptions{ResourceVersion: "0"})
			if err != nil {
				node, err = nodes.Get(ctx, "", nodeName, &metav1.GetOptions{})
			}
			switch {
			case apierrors.IsNotFound(err):
				// the name alone still tells a reader of the token where the pod runs
			case err != nil:
				return apierrors.NewInternalError(err)
			default:
				tok.Node.UID = string(node.(*corev1.Node).UID)
			}
		}
	case gvk.Group == "" && gvk.Kind == "Secret":
		obj, err := t.s.coreStore("secrets").Get(ctx, ns, ref.Name, &metav1.GetOptions{})
		if err != nil {
			return err
		}
		uid = string(obj.(*corev1.Secret).UID)
		tok.Secret = &authn.ObjectRef{Name: ref.Name, UID: uid}
	case gvk.Group == "" && gvk.Kind == "Node":
		obj, err := t.s.coreStore("nodes").Get(ctx, "", ref.Name, &metav1.GetOptions{})
		if err != nil {
			return err
		}
		uid = string(obj.(*corev1.Node).UID)
		tok.Node = &authn.ObjectRef{Name: ref.Name, UID: uid}
	default:
		return apierrors.NewBadRequest(fmt.Sprintf("cannot bind token to object of type %s", gvk.String()))
	}
	if ref.UID != "" && string(ref.UID) != uid {
		return apierrors.NewConflict(schema.GroupResource{Group: gvk.Group, Resource: gvk.Kind}, ref.Name,
			fmt.Errorf("the UID in the bound object reference (%s) does not match the UID in record. The object might have been deleted and then recreated", ref.UID))
	}
	return nil
}

// forAPIServer reports whether every audience is one of the API server's own.
func (t serviceAccountToken) forAPIServer(audiences []string) bool {
	for _, a := range audiences {
		found := false
		for _, own := range t.s.cfg.APIAudiences {
			found = found || a == own
		}
		if !found {
			return false
		}
	}
	return true
}

// validateTokenRequest is upstream's static validation of a TokenRequest.
func validateTokenRequest(req *authenticationv1.TokenRequest) field.ErrorList {
	var errs field.ErrorList
	path := field.NewPath("spec", "expirationSeconds")
	seconds := *req.Spec.ExpirationSeconds
	if seconds < minTokenExpirationSeconds {
		errs = append(errs, field.Invalid(path, seconds, "may not specify a duration less than 10 minutes"))
	}
	if seconds > maxTokenExpirationSeconds {
		errs = append(errs, field.Invalid(path, seconds, "may not specify a duration larger than 2^32 seconds"))
	}
	return errs
}
