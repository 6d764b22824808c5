// Package csrapproving is the CertificateSigningRequest approving controller: it approves a
// kubelet's client certificate request (signer kube-apiserver-client-kubelet, subject
// system:node:NAME in system:nodes) when a SubjectAccessReview says its requester may create
// certificatesigningrequests/selfnodeclient (a node renewing its own certificate) or
// certificatesigningrequests/nodeclient (a bootstrap token asking for a new node), as
// upstream's csrapproving controller; and, skiff's own, a node's request for its proxy's or
// NetworkPolicy agent's certificate (CN system:kube-proxy or system:skiff:network-policy-agent,
// signer kube-apiserver-client) when its requester may create
// certificatesigningrequests/nodeproxyclient.
//
// It never denies and never approves anything else: other requests wait for a person or
// another approver.
package csrapproving

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"slices"

	authorizationv1 "k8s.io/api/authorization/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	certificatesinformers "k8s.io/client-go/informers/certificates/v1"
	"k8s.io/client-go/kubernetes"
	certificateslisters "k8s.io/client-go/listers/certificates/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/csrsigning"
)

// Name is the controller's name in --controllers, logs and metrics.
const Name = "certificatesigningrequest-approving"

// recognizer is a kind of request this controller approves: which requests it is, the
// subresource of certificatesigningrequests their requester must be allowed to create, and
// the approval's message.
type recognizer struct {
	recognize   func(csr *certificatesv1.CertificateSigningRequest, req *x509.CertificateRequest) bool
	subresource string
	message     string
}

var recognizers = []recognizer{
	{isSelfNodeClientCert, "selfnodeclient", "Auto approving self kubelet client certificate after SubjectAccessReview."},
	{isNodeClientCert, "nodeclient", "Auto approving kubelet client certificate after SubjectAccessReview."},
	{isNodeProxyClientCert, "nodeproxyclient", "Auto approving proxy client certificate of a node after SubjectAccessReview."},
}

// The users a node's proxies authenticate as: ProxyUser, the service proxy, is the one
// upstream's default policy binds to system:node-proxier; NetworkPolicyAgentUser is skiff's
// NetworkPolicy agent (read-only, apiserver's component policy).
const (
	ProxyUser              = "system:kube-proxy"
	NetworkPolicyAgentUser = "system:skiff:network-policy-agent"
)

// isNodeProxyClientCert recognizes a skiff agent asking, as its node, for the client
// certificate of its service proxy or NetworkPolicy agent: signer kube-apiserver-client,
// subject exactly CN ProxyUser or NetworkPolicyAgentUser, no names, client usages. Each
// identity is shared by every node's instance, as k3s's agents share system:kube-proxy and
// kubeadm's kube-proxy pods share their ServiceAccount.
func isNodeProxyClientCert(csr *certificatesv1.CertificateSigningRequest, req *x509.CertificateRequest) bool {
	if csr.Spec.SignerName != certificatesv1.KubeAPIServerClientSignerName || !slices.Contains(csr.Spec.Groups, "system:nodes") {
		return false
	}
	s := req.Subject
	if (s.CommonName != ProxyUser && s.CommonName != NetworkPolicyAgentUser) || len(s.Organization) > 0 || len(s.OrganizationalUnit) > 0 ||
		len(req.DNSNames) > 0 || len(req.EmailAddresses) > 0 || len(req.IPAddresses) > 0 || len(req.URIs) > 0 {
		return false
	}
	client := false
	for _, u := range csr.Spec.Usages {
		switch u {
		case certificatesv1.UsageClientAuth:
			client = true
		case certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment:
		default:
			return false
		}
	}
	return client
}

func isNodeClientCert(csr *certificatesv1.CertificateSigningRequest, req *x509.CertificateRequest) bool {
	return csr.Spec.SignerName == certificatesv1.KubeAPIServerClientKubeletSignerName &&
		csrsigning.ValidateKubeletClientCSR(req, csr.Spec.Usages) == nil
}

func isSelfNodeClientCert(csr *certificatesv1.CertificateSigningRequest, req *x509.CertificateRequest) bool {
	return csr.Spec.Username == req.Subject.CommonName && isNodeClientCert(csr, req)
}

// Controller is the approving controller.
type Controller struct {
	client  kubernetes.Interface
	lister  certificateslisters.CertificateSigningRequestLister
	synced  []cache.InformerSynced
	queue   controllers.Queue
	metrics *controllers.Metrics
}

// New makes an approving controller on a shared CertificateSigningRequest informer.
func New(informer certificatesinformers.CertificateSigningRequestInformer, client kubernetes.Interface, r controllers.Reporting) (*Controller, error) {
	c := &Controller{
		client:  client,
		lister:  informer.Lister(),
		synced:  []cache.InformerSynced{informer.Informer().HasSynced},
		queue:   controllers.NewQueue(Name, r),
		metrics: r.Metrics,
	}
	enqueue := func(obj any) {
		if key, err := controllers.KeyOf(obj); err == nil {
			c.queue.Add(key)
		}
	}
	if _, err := informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, cur any) { enqueue(cur) },
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run approves with workers goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	controllers.Workers{Name: Name, Queue: c.queue, Sync: c.sync, Metrics: c.metrics, Synced: c.synced}.Run(ctx, workers)
}

// sync approves the request named by key if it is a kubelet client request its requester
// may make.
func (c *Controller) sync(ctx context.Context, key string) error {
	cached, err := c.lister.Get(key)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(cached.Status.Certificate) > 0 || csrsigning.HasCondition(cached, certificatesv1.CertificateApproved) ||
		csrsigning.HasCondition(cached, certificatesv1.CertificateDenied) {
		return nil
	}
	req, err := apis.ParseCSR(cached.Spec.Request)
	if err != nil {
		return fmt.Errorf("unable to parse csr %q: %v", cached.Name, err)
	}
	var tried []string
	for _, r := range recognizers {
		if !r.recognize(cached, req) {
			continue
		}
		tried = append(tried, r.subresource)
		allowed, err := c.authorize(ctx, cached, r.subresource)
		if err != nil {
			return err
		}
		if !allowed {
			continue
		}
		csr := cached.DeepCopy()
		csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "AutoApproved", Message: r.message,
		})
		if _, err := c.client.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("error updating approval for csr: %v", err)
		}
		return nil
	}
	if len(tried) > 0 {
		// not an error worth retrying: the requester's permissions decide, and a person may
		// still approve it
		slog.Info("recognized csr but subject access review was not approved", "controller", Name, "csr", cached.Name, "as", tried)
	}
	return nil
}

// authorize asks whether the request's requester may create certificatesigningrequests/sub.
func (c *Controller) authorize(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, sub string) (bool, error) {
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range csr.Spec.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: csr.Spec.Username, UID: csr.Spec.UID, Groups: csr.Spec.Groups, Extra: extra,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Group: certificatesv1.GroupName, Version: "*", Resource: "certificatesigningrequests", Subresource: sub, Verb: "create",
		},
	}}
	out, err := c.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	return out.Status.Allowed, nil
}
