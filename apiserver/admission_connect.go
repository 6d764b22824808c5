package apiserver

import (
	"net/http"
	"net/url"
	"strconv"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/apiserver/webhook"
)

// Exec, attach and port-forward are admitted as upstream admits them: a CONNECT operation on
// pods/exec, pods/attach or pods/portforward whose object is the request's options
// (PodExecOptions, PodAttachOptions, PodPortForwardOptions), read from its query. Mutating
// webhooks see it first, then validating ones; either may refuse the stream before the
// kubelet is reached ("attaching to pod ... is not allowed").

// connectOptions is the options object of a pod's CONNECT subresource, as the query gives it.
func connectOptions(subresource string, query url.Values) runtime.Object {
	flag := func(name string) bool {
		v, _ := strconv.ParseBool(query.Get(name))
		return v
	}
	switch subresource {
	case "exec":
		return &corev1.PodExecOptions{Stdin: flag("stdin"), Stdout: flag("stdout"), Stderr: flag("stderr"), TTY: flag("tty"),
			Container: query.Get("container"), Command: query["command"]}
	case "attach":
		return &corev1.PodAttachOptions{Stdin: flag("stdin"), Stdout: flag("stdout"), Stderr: flag("stderr"), TTY: flag("tty"),
			Container: query.Get("container")}
	case "portforward":
		opts := &corev1.PodPortForwardOptions{}
		for _, p := range query["ports"] {
			if n, err := strconv.ParseInt(p, 10, 32); err == nil {
				opts.Ports = append(opts.Ports, int32(n))
			}
		}
		return opts
	}
	return nil
}

// admitConnect runs the admission webhooks on a CONNECT to a pod's subresource.
func (s *Server) admitConnect(r *http.Request, ri *requestInfo) error {
	if s.webhooks == nil || (!s.webhooks.HasWebhooks(true) && !s.webhooks.HasWebhooks(false)) || ri.Resource != "pods" {
		return nil
	}
	opts := connectOptions(ri.Subresource, r.URL.Query())
	if opts == nil {
		return nil
	}
	kind := map[string]string{"exec": "PodExecOptions", "attach": "PodAttachOptions", "portforward": "PodPortForwardOptions"}[ri.Subresource]
	a := &webhook.Request{
		Resource: corev1.SchemeGroupVersion.WithResource("pods"), Subresource: ri.Subresource, Kind: corev1.SchemeGroupVersion.WithKind(kind),
		Namespace: ri.Namespace, Name: ri.Name, Operation: admissionv1.Connect, Object: opts,
	}
	if u, ok := authn.UserFrom(r.Context()); ok {
		a.UserInfo = userInfo(u)
	}
	if _, err := s.webhooks.Mutate(r.Context(), a); err != nil {
		return err
	}
	return s.webhooks.Validate(r.Context(), a)
}
