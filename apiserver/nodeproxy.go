package apiserver

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/apiserver/authz"
)

// What the API server passes through to a node's kubelet, as upstream: a pod's logs, exec,
// attach and port-forward (pods/log, pods/exec, pods/attach, pods/portforward) and any path
// under nodes/{name}/proxy. The kubelet's address and port come from its Node's status; the
// API server authenticates to it with its kubelet client certificate. Streams (follow, exec's
// upgraded connection) pass through unbuffered.

// isKubeletProxy reports whether a request goes through to a kubelet.
func isKubeletProxy(ri *requestInfo) bool {
	if ri.APIGroup != "" || ri.Name == "" {
		return false
	}
	switch ri.Resource {
	case "pods":
		return ri.Subresource == "log" || ri.Subresource == "exec" || ri.Subresource == "attach" || ri.Subresource == "portforward"
	case "nodes":
		return ri.Subresource == "proxy"
	}
	return false
}

// kubeletQuery are the parameters each pod subresource passes on.
var kubeletQuery = map[string][]string{
	"log":         {"follow", "previous", "sinceSeconds", "sinceTime", "timestamps", "tailLines", "limitBytes", "insecureSkipTLSVerifyBackend", "stream"},
	"exec":        {"command", "stdin", "stdout", "stderr", "tty"},
	"attach":      {"stdin", "stdout", "stderr", "tty"},
	"portforward": {"ports"},
}

func (s *Server) serveKubeletProxy(w http.ResponseWriter, r *http.Request, ri *requestInfo) {
	ctx := r.Context()
	if err := s.authorizeConnectCreate(r, ri); err != nil {
		writeError(w, r, err)
		return
	}
	if err := s.admitConnect(r, ri); err != nil {
		writeError(w, r, err)
		return
	}
	var nodeName, path string
	query := url.Values{}
	switch ri.Resource {
	case "pods":
		obj, err := s.builtinStore(corev1.SchemeGroupVersion, "pods").Get(ctx, ri.Namespace, ri.Name, &metav1.GetOptions{})
		if err != nil {
			writeError(w, r, err)
			return
		}
		pod := obj.(*corev1.Pod)
		if pod.Spec.NodeName == "" {
			writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", pod.Name)))
			return
		}
		nodeName = pod.Spec.NodeName
		for _, k := range kubeletQuery[ri.Subresource] {
			for _, v := range r.URL.Query()[k] {
				query.Add(k, v)
			}
		}
		if ri.Subresource == "portforward" {
			path = "/portForward/" + pod.Namespace + "/" + pod.Name
			break
		}
		container, err := podContainer(pod, r.URL.Query().Get("container"))
		if err != nil {
			writeError(w, r, err)
			return
		}
		verb := map[string]string{"log": "containerLogs", "exec": "exec", "attach": "attach"}[ri.Subresource]
		path = "/" + verb + "/" + pod.Namespace + "/" + pod.Name + "/" + container
	case "nodes":
		nodeName = ri.Name
		path = "/" + strings.Join(ri.Parts[3:], "/")
		if strings.HasSuffix(r.URL.Path, "/") && !strings.HasSuffix(path, "/") {
			path += "/"
		}
		query = r.URL.Query()
	}
	obj, err := s.builtinStore(corev1.SchemeGroupVersion, "nodes").Get(ctx, "", nodeName, &metav1.GetOptions{})
	if err != nil {
		writeError(w, r, err)
		return
	}
	host, err := kubeletAddress(obj.(*corev1.Node))
	if err != nil {
		writeError(w, r, apierrors.NewServiceUnavailable(err.Error()))
		return
	}
	target := &url.URL{Scheme: "https", Host: host, Path: path, RawQuery: query.Encode()}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = target
			pr.Out.Host = host
		},
		Transport: s.kubeletTransport,
		// logs with follow stream: write what arrives at once
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeError(w, r, apierrors.NewServiceUnavailable(fmt.Sprintf("error trying to reach the kubelet on %s: %v", nodeName, err)))
		},
	}
	proxy.ServeHTTP(w, r)
}

// authorizeConnectCreate asks, for exec, attach and port-forward by GET (the WebSocket
// upgrade), whether the user may also create the subresource, as upstream's 1.35 and later
// do (AuthorizePodWebsocketUpgradeCreatePermission): a WebSocket stream writes into the pod
// as a POST's SPDY stream does, so "get pods/exec" alone must not open one.
func (s *Server) authorizeConnectCreate(r *http.Request, ri *requestInfo) error {
	if ri.Resource != "pods" || ri.Verb == "create" || s.authz == nil ||
		(ri.Subresource != "exec" && ri.Subresource != "attach" && ri.Subresource != "portforward") {
		return nil
	}
	user, _ := authn.UserFrom(r.Context())
	create := *ri
	create.Verb = "create"
	decision, reason, err := s.authz.chain.Authorize(r.Context(), authorizationAttributes(user, &create, r.URL.Query().Get))
	switch {
	case decision == authz.DecisionAllow:
		return nil
	case err != nil:
		return apierrors.NewInternalError(err)
	}
	return forbidden(user, &create, reason)
}

// podContainer is the container a request names, or the pod's only container; upstream's
// words when it must be chosen.
func podContainer(pod *corev1.Pod, name string) (string, error) {
	if name != "" {
		for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
			if c.Name == name {
				return name, nil
			}
		}
		for _, c := range pod.Spec.EphemeralContainers {
			if c.Name == name {
				return name, nil
			}
		}
		return "", apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", name, pod.Name))
	}
	if len(pod.Spec.Containers) == 1 {
		return pod.Spec.Containers[0].Name, nil
	}
	names := make([]string, len(pod.Spec.Containers))
	for i, c := range pod.Spec.Containers {
		names[i] = c.Name
	}
	msg := fmt.Sprintf("a container name must be specified for pod %s, choose one of: %v", pod.Name, names)
	if len(pod.Spec.InitContainers) > 0 {
		inits := make([]string, len(pod.Spec.InitContainers))
		for i, c := range pod.Spec.InitContainers {
			inits[i] = c.Name
		}
		msg += fmt.Sprintf(" or one of the init containers: %v", inits)
	}
	return "", apierrors.NewBadRequest(msg)
}

// kubeletAddress is where a node's kubelet listens: its InternalIP (else ExternalIP, else
// Hostname) and its daemon endpoint port (10250 by default).
func kubeletAddress(node *corev1.Node) (string, error) {
	port := node.Status.DaemonEndpoints.KubeletEndpoint.Port
	if port == 0 {
		port = 10250
	}
	for _, want := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP, corev1.NodeHostName} {
		for _, a := range node.Status.Addresses {
			if a.Type == want && a.Address != "" {
				return net.JoinHostPort(a.Address, strconv.Itoa(int(port))), nil
			}
		}
	}
	return "", fmt.Errorf("node %s has no address", node.Name)
}

// newKubeletTransport is how the API server reaches kubelets: with its kubelet client
// certificate when it has one, verifying their serving certificates against ca (upstream's
// --kubelet-certificate-authority). Without ca they are not verified, upstream's default, for
// kubelets that serve self-signed certificates.
func newKubeletTransport(clientCert *tls.Certificate, ca *x509.CertPool) *http.Transport {
	cfg := &tls.Config{RootCAs: ca, InsecureSkipVerify: ca == nil, MinVersion: tls.VersionTLS12}
	if clientCert != nil && len(clientCert.Certificate) > 0 {
		cfg.Certificates = []tls.Certificate{*clientCert}
	}
	// HTTP/1.1 only: exec, attach and port-forward upgrade the connection, which HTTP/2 cannot
	return &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: false, Proxy: nil}
}
