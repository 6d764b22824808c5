package apiserver

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8sadmission "k8s.io/apiserver/pkg/admission"

	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/apiserver/webhook"
)

// Requests to subresources whose object is not the resource's own kind are admitted as
// upstream admits them, with that object:
//   - exec, attach and port-forward: a CONNECT on pods/exec, pods/attach or pods/portforward
//     whose object is the request's options (PodExecOptions, PodAttachOptions,
//     PodPortForwardOptions), read from its query; admission may refuse the stream before the
//     kubelet is reached ("attaching to pod ... is not allowed");
//   - pods/eviction and pods/binding: a CREATE of an Eviction or a Binding (admitOtherKind,
//     here, before the store);
//   - a scale subresource: an UPDATE of an autoscaling/v1 Scale, old and new, from within the
//     store's write (webhookRequest, mutateScale, and the policies' scalesOf).

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

// admitConnect runs admission on a CONNECT to a pod's subresource, with its options as the
// object.
func (s *Server) admitConnect(r *http.Request, ri *requestInfo) error {
	if ri.Resource != "pods" {
		return nil
	}
	opts := connectOptions(ri.Subresource, r.URL.Query())
	if opts == nil {
		return nil
	}
	kind := corev1.SchemeGroupVersion.WithKind(map[string]string{"exec": "PodExecOptions", "attach": "PodAttachOptions", "portforward": "PodPortForwardOptions"}[ri.Subresource])
	_, err := s.admitOtherKind(r.Context(), ri, admissionv1.Connect, kind, opts, false)
	return err
}

// admitOtherKind runs admission on a request to a pod's subresource whose object is of another
// kind than the pod: a CONNECT's options, the Eviction of pods/eviction, the Binding of
// pods/binding. As upstream's chain: the mutating admission policies and webhooks (whose
// changes it returns), then the validating admission policies, then the validating webhooks.
func (s *Server) admitOtherKind(ctx context.Context, ri *requestInfo, op admissionv1.Operation, kind schema.GroupVersionKind, obj runtime.Object, dryRun bool) (runtime.Object, error) {
	hooks := s.webhooks != nil && (s.webhooks.HasWebhooks(true) || s.webhooks.HasWebhooks(false))
	policies := s.policies != nil && s.policies.Active()
	mutatingPolicies := s.policies != nil && s.policies.MutatingActive()
	if !hooks && !policies && !mutatingPolicies {
		return obj, nil
	}
	obj.GetObjectKind().SetGroupVersionKind(kind)
	pods := corev1.SchemeGroupVersion.WithResource("pods")
	a := &webhook.Request{
		Resource: pods, Subresource: ri.Subresource, Kind: kind,
		Namespace: ri.Namespace, Name: ri.Name, Operation: op, Object: obj, DryRun: dryRun,
	}
	if op == admissionv1.Create {
		a.Options = &metav1.CreateOptions{}
		if dryRun {
			a.Options = &metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
		}
	}
	if u, ok := authn.UserFrom(ctx); ok {
		a.UserInfo = userInfo(u)
	}
	if hooks || mutatingPolicies {
		var out runtime.Object
		var err error
		if mutatingPolicies {
			out, err = s.mutateWithPoliciesAndWebhooks(ctx, a, hooks)
		} else {
			out, err = s.webhooks.Mutate(ctx, a)
		}
		if err != nil {
			return nil, err
		}
		obj, a.Object = out, out
		obj.GetObjectKind().SetGroupVersionKind(kind)
	}
	if policies {
		attrs := k8sadmission.NewAttributesRecord(obj, nil, kind, ri.Namespace, ri.Name, pods, ri.Subresource,
			k8sadmission.Operation(op), a.Options, dryRun, admissionUser(ctx))
		if err := s.policies.Validate(ctx, attrs); err != nil {
			return nil, err
		}
	}
	if hooks {
		if err := s.webhooks.Validate(ctx, a); err != nil {
			return nil, err
		}
	}
	obj.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
	return obj, nil
}
