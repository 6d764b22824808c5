package apiserver

import (
	"net/http"
	"net/url"
	"strconv"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8sadmission "k8s.io/apiserver/pkg/admission"

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

// admitConnect runs admission on a CONNECT to a pod's subresource: the mutating webhooks, then
// the validating admission policies and webhooks, as upstream's chain orders them.
func (s *Server) admitConnect(r *http.Request, ri *requestInfo) error {
	hooks := s.webhooks != nil && (s.webhooks.HasWebhooks(true) || s.webhooks.HasWebhooks(false))
	policies := s.policies != nil && s.policies.Active()
	if (!hooks && !policies) || ri.Resource != "pods" {
		return nil
	}
	opts := connectOptions(ri.Subresource, r.URL.Query())
	if opts == nil {
		return nil
	}
	kind := corev1.SchemeGroupVersion.WithKind(map[string]string{"exec": "PodExecOptions", "attach": "PodAttachOptions", "portforward": "PodPortForwardOptions"}[ri.Subresource])
	opts.GetObjectKind().SetGroupVersionKind(kind)
	pods := corev1.SchemeGroupVersion.WithResource("pods")
	a := &webhook.Request{
		Resource: pods, Subresource: ri.Subresource, Kind: kind,
		Namespace: ri.Namespace, Name: ri.Name, Operation: admissionv1.Connect, Object: opts,
	}
	if u, ok := authn.UserFrom(r.Context()); ok {
		a.UserInfo = userInfo(u)
	}
	if hooks {
		if _, err := s.webhooks.Mutate(r.Context(), a); err != nil {
			return err
		}
	}
	if policies {
		attrs := k8sadmission.NewAttributesRecord(opts, nil, kind, ri.Namespace, ri.Name, pods, ri.Subresource,
			k8sadmission.Connect, nil, false, admissionUser(r.Context()))
		if err := s.policies.Validate(r.Context(), attrs); err != nil {
			return err
		}
	}
	if hooks {
		return s.webhooks.Validate(r.Context(), a)
	}
	return nil
}
