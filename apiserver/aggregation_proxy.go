package apiserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/transport"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/registry"
)

// Requests for the group version of a remote APIService (/apis/GROUP/VERSION/...) are passed,
// after this server has authenticated and authorized them, to a ready endpoint of the
// APIService's Service over TLS: the extension server's certificate is verified with the
// APIService's caBundle for the name <service>.<namespace>.svc, this server presents the
// front-proxy client certificate, and the user it authenticated travels in X-Remote-User,
// X-Remote-Uid, X-Remote-Group and X-Remote-Extra-* headers, which the extension server
// trusts because of that certificate (its requestheader authentication, configured from the
// extension-apiserver-authentication ConfigMap). The client's own credentials never pass.
// Every method, watches and upgraded connections (exec) pass through.

// newAPIServiceTransport is how the server reaches the extension server of svc. HTTP/1.1
// only, so that upgrades pass through.
func newAPIServiceTransport(svc *apiregistrationv1.APIService, clientCert *tls.Certificate) (*http.Transport, error) {
	ref := svc.Spec.Service
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: ref.Name + "." + ref.Namespace + ".svc",
		NextProtos: []string{"http/1.1"},
	}
	switch {
	case svc.Spec.InsecureSkipTLSVerify:
		cfg.InsecureSkipVerify = true //nolint:gosec // the APIService asks for it, as upstream allows
	case len(svc.Spec.CABundle) > 0:
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(svc.Spec.CABundle) {
			return nil, errors.New("caBundle holds no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	if clientCert != nil {
		cfg.Certificates = []tls.Certificate{*clientCert}
	}
	return &http.Transport{TLSClientConfig: cfg, Proxy: nil, ForceAttemptHTTP2: false,
		DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext, IdleConnTimeout: 90 * time.Second}, nil
}

// resolveAPIService is a ready endpoint of the APIService's Service, on the port the Service
// port spec.service.port targets, from the Service's EndpointSlices; the error says why
// there is none in the words of upstream's availability check.
func (s *Server) resolveAPIService(ctx context.Context, svc *apiregistrationv1.APIService) (*url.URL, *apiregistrationv1.APIServiceCondition) {
	ref := svc.Spec.Service
	port := int32(443)
	if ref.Port != nil {
		port = *ref.Port
	}
	unavailable := func(status apiregistrationv1.ConditionStatus, reason, msg string) *apiregistrationv1.APIServiceCondition {
		return &apiregistrationv1.APIServiceCondition{Type: apiregistrationv1.Available, Status: status, Reason: reason, Message: msg}
	}
	obj, err := s.builtinStore(corev1.SchemeGroupVersion, "services").Get(ctx, ref.Namespace, ref.Name, &metav1.GetOptions{ResourceVersion: "0"})
	if apierrors.IsNotFound(err) {
		return nil, unavailable(apiregistrationv1.ConditionFalse, "ServiceNotFound", fmt.Sprintf("service/%s in %q is not present", ref.Name, ref.Namespace))
	}
	if err != nil {
		return nil, unavailable(apiregistrationv1.ConditionUnknown, "ServiceAccessError", fmt.Sprintf("service/%s in %q cannot be checked due to: %v", ref.Name, ref.Namespace, err))
	}
	service := obj.(*corev1.Service)
	if service.Spec.Type == corev1.ServiceTypeExternalName {
		return &url.URL{Scheme: "https", Host: net.JoinHostPort(service.Spec.ExternalName, strconv.Itoa(int(port)))}, nil
	}
	portName, found := "", false
	for _, p := range service.Spec.Ports {
		if p.Port == port {
			portName, found = p.Name, true
			break
		}
	}
	if !found {
		return nil, unavailable(apiregistrationv1.ConditionFalse, "ServicePortError", fmt.Sprintf("service/%s in %q is not listening on port %d", ref.Name, ref.Namespace, port))
	}
	list, err := s.builtinStore(discoveryv1.SchemeGroupVersion, "endpointslices").List(ctx, ref.Namespace, registry.ListOptions{
		ResourceVersion: "0", Label: labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: ref.Name})})
	if err != nil {
		return nil, unavailable(apiregistrationv1.ConditionUnknown, "EndpointsAccessError", fmt.Sprintf("service/%s in %q cannot be checked due to: %v", ref.Name, ref.Namespace, err))
	}
	slices := list.(*discoveryv1.EndpointSliceList).Items
	if len(slices) == 0 {
		return nil, unavailable(apiregistrationv1.ConditionFalse, "EndpointsNotFound", fmt.Sprintf("cannot find endpointslices for service/%s in %q", ref.Name, ref.Namespace))
	}
	var candidates []*url.URL
	for _, slice := range slices {
		var target *int32
		for _, p := range slice.Ports {
			if p.Port != nil && (p.Name == nil && portName == "" || p.Name != nil && *p.Name == portName) {
				target = p.Port
				break
			}
		}
		if target == nil {
			continue
		}
		for _, ep := range slice.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready || len(ep.Addresses) == 0 {
				continue
			}
			candidates = append(candidates, &url.URL{Scheme: "https", Host: net.JoinHostPort(ep.Addresses[0], strconv.Itoa(int(*target)))})
		}
	}
	if len(candidates) == 0 {
		return nil, unavailable(apiregistrationv1.ConditionFalse, "MissingEndpoints", fmt.Sprintf("endpointslices for service/%s in %q have no addresses with port name %q", ref.Name, ref.Namespace, portName))
	}
	// any of them: requests spread over the endpoints
	return candidates[rand.IntN(len(candidates))], nil
}

// proxyToAPIService passes r to the extension server of the remote APIService rs.
func (s *Server) proxyToAPIService(w http.ResponseWriter, r *http.Request, rs *remoteAPIService) {
	if !rs.available {
		writeError(w, r, apierrors.NewServiceUnavailable("service unavailable"))
		return
	}
	if rs.transport == nil {
		writeError(w, r, apierrors.NewServiceUnavailable(fmt.Sprintf("error trying to reach service: %v", rs.transportErr)))
		return
	}
	target, cond := s.resolveAPIService(r.Context(), rs.apiService)
	if cond != nil {
		writeError(w, r, apierrors.NewServiceUnavailable(cond.Message))
		return
	}
	user, ok := authn.UserFrom(r.Context())
	if !ok {
		writeError(w, r, apierrors.NewInternalError(errors.New("no user found for request")))
		return
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = target.Scheme, target.Host
			pr.Out.Host = ""
			// who the client is, as this server authenticated it; never what it claimed
			transport.SetAuthProxyHeaders(pr.Out, user.Name, user.UID, user.Groups, user.Extra)
			pr.SetXForwarded()
		},
		Transport:     rs.transport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// the extension server may be gone: check it now rather than at the next resync
			s.aggregation.queue.Add(rs.apiService.Name)
			writeError(w, r, apierrors.NewServiceUnavailable(fmt.Sprintf("error trying to reach service: %v", err)))
		},
	}
	proxy.ServeHTTP(w, r)
}
