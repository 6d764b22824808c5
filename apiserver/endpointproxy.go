package apiserver

import (
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	utilproxy "k8s.io/apimachinery/pkg/util/proxy"

	"github.com/skiff-dev/skiff/registry"
)

// pods/proxy and services/proxy: the API server passes any request under
// /namespaces/{ns}/pods/{[scheme:]name[:port]}/proxy/{path} to the pod's IP and port, and
// under services/.../proxy to a ready endpoint of the Service, as upstream does (its DNS and
// proxy e2e specs and `kubectl proxy` read results this way). Every HTTP method and upgraded
// connections pass through; the client's credentials never do (authentication removed them).

// isEndpointProxy reports whether a request is a pods/proxy or services/proxy request.
func isEndpointProxy(ri *requestInfo) bool {
	return ri.APIGroup == "" && ri.Name != "" && ri.Subresource == "proxy" && ri.Namespace != "" &&
		(ri.Resource == "pods" || ri.Resource == "services")
}

// newEndpointTransport is how the API server reaches pods: HTTP/1.1 (upgrades pass through)
// and, for https backends, without verifying their certificates, as upstream's proxy
// transport (pods serve whatever certificate they like).
func newEndpointTransport() *http.Transport {
	return &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // as upstream
		ForceAttemptHTTP2: false, Proxy: nil,
	}
}

func (s *Server) serveEndpointProxy(w http.ResponseWriter, r *http.Request, ri *requestInfo) {
	var target *url.URL
	var err error
	if ri.Resource == "pods" {
		target, err = s.podLocation(r, ri.Namespace, ri.Name)
	} else {
		target, err = s.serviceLocation(r, ri.Namespace, ri.Name)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	if target.Scheme == "" {
		target.Scheme = "http"
	}
	// what follows .../proxy is the path on the backend, its trailing slash kept
	if len(ri.Parts) > 3 {
		target.Path = "/" + strings.Join(ri.Parts[3:], "/")
		if strings.HasSuffix(r.URL.Path, "/") && !strings.HasSuffix(target.Path, "/") {
			target.Path += "/"
		}
	} else if strings.HasSuffix(r.URL.Path, "/") {
		target.Path = "/"
	}
	if target.Path == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		// upstream sends the root of a backend to .../proxy/, so that relative links resolve
		location := r.URL.Path + "/"
		if r.URL.RawQuery != "" {
			location += "?" + r.URL.RawQuery
		}
		w.Header().Set("Location", location)
		w.WriteHeader(http.StatusMovedPermanently)
		return
	}
	target.RawQuery = r.URL.RawQuery
	// as upstream's proxy, links and redirects in the backend's HTML and Location headers that
	// point at the backend are rewritten to go through this same proxy path
	suffix := target.Path
	if strings.HasSuffix(r.URL.Path, "/") && !strings.HasSuffix(suffix, "/") {
		suffix += "/"
	}
	// (the request's own URL has no scheme or host, so rewritten links stay host-relative)
	rewriting := &utilproxy.Transport{
		Scheme: r.URL.Scheme, Host: r.URL.Host, PathPrepend: strings.TrimSuffix(r.URL.Path, suffix),
		RoundTripper: s.endpointTransport,
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = target
			pr.SetXForwarded()
		},
		Transport:     rewriting,
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			// the backend's CORS answers are not the API server's to give
			for _, h := range []string{"Access-Control-Allow-Credentials", "Access-Control-Allow-Headers", "Access-Control-Allow-Methods", "Access-Control-Allow-Origin", "Access-Control-Expose-Headers", "Access-Control-Max-Age"} {
				resp.Header.Del(h)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if _, ok := err.(apierrors.APIStatus); !ok {
				err = apierrors.NewServiceUnavailable(fmt.Sprintf("error trying to reach service: %v", err))
			}
			writeError(w, r, err)
		},
	}
	proxy.ServeHTTP(w, r)
}

// podLocation is where a pods/proxy request goes: the pod's IP and the port named, else its
// first container's first port, else none.
func (s *Server) podLocation(r *http.Request, namespace, id string) (*url.URL, error) {
	scheme, name, port, ok := utilnet.SplitSchemeNamePort(id)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid pod request %q", id))
	}
	obj, err := s.builtinStore(corev1.SchemeGroupVersion, "pods").Get(r.Context(), namespace, name, &metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	pod := obj.(*corev1.Pod)
	if port == "" {
		for _, c := range pod.Spec.Containers {
			if len(c.Ports) > 0 {
				port = strconv.Itoa(int(c.Ports[0].ContainerPort))
				break
			}
		}
	}
	podIP := pod.Status.PodIP
	if len(pod.Status.PodIPs) > 0 {
		podIP = pod.Status.PodIPs[0].IP
	}
	// upstream refuses loopback, link-local and unspecified addresses: a pod must not make
	// the API server reach its own host
	if ip := net.ParseIP(podIP); ip == nil || !ip.IsGlobalUnicast() {
		return nil, apierrors.NewBadRequest("address not allowed")
	}
	host := podIP
	if port != "" {
		host = net.JoinHostPort(podIP, port)
	} else if strings.Contains(podIP, ":") {
		host = "[" + podIP + "]"
	}
	return &url.URL{Scheme: scheme, Host: host}, nil
}

// serviceLocation is where a services/proxy request goes: a ready endpoint of the Service,
// from its EndpointSlices, on the port the Service port named (by name or number) targets.
// An endpoint counts only when it is a pod of the Service's namespace that has its address,
// as upstream checks.
func (s *Server) serviceLocation(r *http.Request, namespace, id string) (*url.URL, error) {
	ctx := r.Context()
	scheme, name, port, ok := utilnet.SplitSchemeNamePort(id)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid service request %q", id))
	}
	obj, err := s.builtinStore(corev1.SchemeGroupVersion, "services").Get(ctx, namespace, name, &metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	svc := obj.(*corev1.Service)
	if n, err := strconv.ParseInt(port, 10, 64); err == nil {
		found := false
		for _, p := range svc.Spec.Ports {
			if int64(p.Port) == n {
				port, found = p.Name, true
				break
			}
		}
		if !found {
			return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("no service port %d found for service %q", n, name))
		}
	}
	list, err := s.builtinStore(discoveryv1.SchemeGroupVersion, "endpointslices").List(ctx, namespace, registry.ListOptions{
		ResourceVersion: "0", Label: labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name})})
	if err != nil {
		return nil, err
	}
	type candidate struct {
		ip   string
		port int32
		pod  *corev1.ObjectReference
	}
	var candidates []candidate
	for _, slice := range list.(*discoveryv1.EndpointSliceList).Items {
		var portNumber *int32
		for _, p := range slice.Ports {
			if p.Port != nil && (p.Name == nil && port == "" || p.Name != nil && *p.Name == port) {
				portNumber = p.Port
				break
			}
		}
		if portNumber == nil {
			continue
		}
		for _, ep := range slice.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready || len(ep.Addresses) == 0 {
				continue
			}
			candidates = append(candidates, candidate{ip: ep.Addresses[0], port: *portNumber, pod: ep.TargetRef})
		}
	}
	// start anywhere, so that requests spread over the endpoints
	if n := len(candidates); n > 0 {
		start := rand.IntN(n)
		for i := range n {
			c := candidates[(start+i)%n]
			if s.isPodAddress(r, namespace, c.pod, c.ip) {
				return &url.URL{Scheme: scheme, Host: net.JoinHostPort(c.ip, strconv.Itoa(int(c.port)))}, nil
			}
		}
	}
	return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("no endpoints available for service %q", id))
}

// isPodAddress reports whether an endpoint is a pod of namespace that has ip, so that a
// hand-written EndpointSlice cannot make the API server reach an arbitrary address.
func (s *Server) isPodAddress(r *http.Request, namespace string, ref *corev1.ObjectReference, ip string) bool {
	if ref == nil || ref.Kind != "Pod" || ref.Namespace != namespace {
		return false
	}
	obj, err := s.builtinStore(corev1.SchemeGroupVersion, "pods").Get(r.Context(), namespace, ref.Name, &metav1.GetOptions{})
	if err != nil {
		return false
	}
	pod := obj.(*corev1.Pod)
	if pod.Status.PodIP == ip {
		return true
	}
	for _, podIP := range pod.Status.PodIPs {
		if podIP.IP == ip {
			return true
		}
	}
	return false
}
