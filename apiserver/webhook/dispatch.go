// Package webhook calls the admission webhooks that ValidatingWebhookConfigurations and
// MutatingWebhookConfigurations register, with upstream's semantics: which webhooks a
// request matches (rules, matchPolicy, namespace and object selectors, CEL matchConditions),
// how each is called (AdmissionReview v1 or v1beta1 over TLS to a url or a Service, within
// timeoutSeconds, refused for dry runs with side effects), what its answer does (a denial in
// upstream's words, JSON patches applied and the object decoded and defaulted again,
// reinvocation, warnings and audit annotations) and what failurePolicy makes of a failed call.
//
// It never reads storage: configurations, namespaces and endpoints come from what the
// server gives it (its watch caches), and objects are converted by the server's Kinds.
package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// Equivalent is another version of a resource that serves the same objects.
type Equivalent struct {
	Resource schema.GroupVersionResource
	Kind     schema.GroupVersionKind
}

// Request is one write as admission sees it.
type Request struct {
	// Resource is the resource as requested; Kind the kind of Object and OldObject.
	Resource    schema.GroupVersionResource
	Subresource string
	Kind        schema.GroupVersionKind
	Namespace   string
	Name        string
	Operation   admissionv1.Operation
	// Object is the object being written (nil on DELETE); OldObject what is stored (nil on
	// CREATE).
	Object, OldObject runtime.Object
	// Options are the CreateOptions, UpdateOptions or DeleteOptions of the write.
	Options  runtime.Object
	DryRun   bool
	UserInfo authenticationv1.UserInfo
	// Equivalents are the resource's other versions, for webhooks with matchPolicy Equivalent.
	Equivalents []Equivalent
}

// Configurations are the webhook configurations in force, from a watch cache.
type Configurations interface {
	ValidatingWebhookConfigurations() []*admissionregistrationv1.ValidatingWebhookConfiguration
	MutatingWebhookConfigurations() []*admissionregistrationv1.MutatingWebhookConfiguration
}

// Kinds converts objects between the versions of a resource as the server does.
type Kinds interface {
	// Convert returns obj as an object of kind to (obj itself when it is one already).
	Convert(ctx context.Context, obj runtime.Object, to schema.GroupVersionKind) (runtime.Object, error)
	// Decode reads a JSON object of kind and defaults it as a request body is defaulted.
	Decode(data []byte, kind schema.GroupVersionKind) (runtime.Object, error)
}

// Dispatcher runs the webhooks of the configurations in force on each write.
type Dispatcher struct {
	Configurations Configurations
	// NamespaceLabels returns the labels of a namespace (a NotFound error when it is gone).
	NamespaceLabels func(ctx context.Context, name string) (map[string]string, error)
	Kinds           Kinds
	Clients         *Clients
	// Warn returns a warning to the client; Annotate adds an annotation to the request's
	// audit event. Either may be nil.
	Warn     func(ctx context.Context, text string)
	Annotate func(ctx context.Context, key, value string)
	// Authorizer answers the `authorizer` of match conditions, for the requesting user; nil
	// leaves it unbound (a condition using it then errs).
	Authorizer authorizer.UnconditionalAuthorizer

	validating, mutating atomic.Pointer[hookList]
}

// hookList is the webhooks of one state of the configurations, keyed by their uids and
// resourceVersions, so that they are rebuilt only when a configuration changes.
type hookList struct {
	key   string
	hooks []*hook
}

// exempt are the resources no webhook sees, as upstream: webhooks cannot lock out their own
// configuration.
func exempt(gvr schema.GroupVersionResource) bool {
	if gvr.Group != admissionregistrationv1.GroupName {
		return false
	}
	switch gvr.Resource {
	case "validatingwebhookconfigurations", "mutatingwebhookconfigurations",
		"validatingadmissionpolicies", "validatingadmissionpolicybindings",
		"mutatingadmissionpolicies", "mutatingadmissionpolicybindings":
		return true
	}
	return false
}

func (d *Dispatcher) validatingHooks() []*hook {
	if d.Configurations == nil {
		return nil
	}
	configs := d.Configurations.ValidatingWebhookConfigurations()
	sort.Slice(configs, func(i, j int) bool { return configs[i].Name < configs[j].Name })
	var key strings.Builder
	for _, c := range configs {
		key.WriteString(string(c.UID) + "/" + c.ResourceVersion + ",")
	}
	if l := d.validating.Load(); l != nil && l.key == key.String() {
		return l.hooks
	}
	var hooks []*hook
	for _, c := range configs {
		for _, w := range c.Webhooks {
			hooks = append(hooks, newHook(c.Name, len(hooks), w.Name, w.ClientConfig, w.Rules, w.FailurePolicy, w.MatchPolicy,
				w.NamespaceSelector, w.ObjectSelector, w.SideEffects, w.TimeoutSeconds, w.AdmissionReviewVersions, w.MatchConditions))
		}
	}
	d.validating.Store(&hookList{key: key.String(), hooks: hooks})
	return hooks
}

func (d *Dispatcher) mutatingHooks() []*hook {
	if d.Configurations == nil {
		return nil
	}
	configs := d.Configurations.MutatingWebhookConfigurations()
	sort.Slice(configs, func(i, j int) bool { return configs[i].Name < configs[j].Name })
	var key strings.Builder
	for _, c := range configs {
		key.WriteString(string(c.UID) + "/" + c.ResourceVersion + ",")
	}
	if l := d.mutating.Load(); l != nil && l.key == key.String() {
		return l.hooks
	}
	var hooks []*hook
	for _, c := range configs {
		for _, w := range c.Webhooks {
			h := newHook(c.Name, len(hooks), w.Name, w.ClientConfig, w.Rules, w.FailurePolicy, w.MatchPolicy,
				w.NamespaceSelector, w.ObjectSelector, w.SideEffects, w.TimeoutSeconds, w.AdmissionReviewVersions, w.MatchConditions)
			h.reinvokeIfNeeded = w.ReinvocationPolicy != nil && *w.ReinvocationPolicy == admissionregistrationv1.IfNeededReinvocationPolicy
			hooks = append(hooks, h)
		}
	}
	d.mutating.Store(&hookList{key: key.String(), hooks: hooks})
	return hooks
}

// HasWebhooks reports whether any webhook is configured, so that callers skip the work of
// preparing a Request when none is.
func (d *Dispatcher) HasWebhooks(mutating bool) bool {
	if mutating {
		return len(d.mutatingHooks()) > 0
	}
	return len(d.validatingHooks()) > 0
}

// Mutate runs the mutating webhooks in order (configurations by name, webhooks in their
// order), each on the object as the previous left it, then once more those with
// reinvocationPolicy IfNeeded that saw an object changed after them. It returns the object
// as they leave it, in a.Kind.
func (d *Dispatcher) Mutate(ctx context.Context, a *Request) (runtime.Object, error) {
	r := &Reinvocation{}
	out, err := d.MutatePass(ctx, a, r)
	if err != nil || !r.Changed() {
		return out, err
	}
	a.Object = out
	return d.MutatePass(ctx, a, r)
}

// Reinvocation is what a request's mutating webhooks keep between the admission chain's
// first pass and its reinvocation, so that a caller running other mutations between them
// (the mutating admission policies) reinvokes the webhooks as upstream's chain does. The
// zero value is a request's first pass.
type Reinvocation struct {
	passes  int
	uid     types.UID
	version int           // bumped at each change of the object
	seen    map[*hook]int // the version each called webhook left
	last    runtime.Object
	changed bool
}

// Changed says whether the webhooks changed the object in the first pass.
func (r *Reinvocation) Changed() bool { return r.changed }

// MutatePass runs one pass of the admission chain's mutating webhooks: the first calls each
// that matches; the second (the reinvocation) only those with reinvocationPolicy IfNeeded
// that were called and saw an object changed after them, by a webhook or by anything else
// between the passes. It returns the object as they leave it.
func (d *Dispatcher) MutatePass(ctx context.Context, a *Request, r *Reinvocation) (runtime.Object, error) {
	round := r.passes
	r.passes++
	hooks := d.mutatingHooks()
	if len(hooks) == 0 || exempt(a.Resource) || round > 1 {
		return a.Object, nil
	}
	if round == 0 {
		r.uid, r.seen = types.UID(uuid.NewString()), map[*hook]int{}
	} else if !apiequality.Semantic.DeepEqual(a.Object, r.last) {
		r.version++ // changed between the passes
	}
	for _, h := range hooks {
		if round == 1 {
			v, called := r.seen[h]
			if !called || !h.reinvokeIfNeeded || v == r.version {
				continue
			}
		}
		out, called, changed, err := d.callMutating(ctx, h, a, r.uid, round)
		if err != nil {
			return nil, err
		}
		if changed {
			a.Object = out
			r.version++
			r.changed = r.changed || round == 0
		}
		if called {
			r.seen[h] = r.version
		}
	}
	r.last = a.Object
	return a.Object, nil
}

// Validate runs the validating webhooks at once and returns the first refusal, in the
// webhooks' order.
func (d *Dispatcher) Validate(ctx context.Context, a *Request) error {
	hooks := d.validatingHooks()
	if len(hooks) == 0 || exempt(a.Resource) {
		return nil
	}
	uid := types.UID(uuid.NewString())
	errs := make([]error, len(hooks))
	var wg sync.WaitGroup
	for i, h := range hooks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = d.callValidating(ctx, h, a, uid)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// invocation is one webhook's view of a request: the version it matched and the objects in it.
type invocation struct {
	req      *admissionv1.AdmissionRequest
	obj, old runtime.Object
	kind     schema.GroupVersionKind
}

// prepare decides whether h is called for a and builds what it is sent; nil means it is not.
func (d *Dispatcher) prepare(ctx context.Context, h *hook, a *Request, uid types.UID) (*invocation, error) {
	if h.selectorErr != nil {
		return nil, &ErrCallingWebhook{WebhookName: h.name, Reason: h.selectorErr}
	}
	gvr, gvk, ok := h.matchResource(a)
	if !ok {
		return nil, nil
	}
	if ok, err := d.matchNamespace(ctx, h, a); err != nil || !ok {
		return nil, err
	}
	if !h.matchObject(a) {
		return nil, nil
	}
	inv := &invocation{kind: gvk}
	var err error
	if inv.obj, err = d.convert(ctx, a.Object, gvk); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if inv.old, err = d.convert(ctx, a.OldObject, gvk); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	inv.req = &admissionv1.AdmissionRequest{
		UID:                uid,
		Kind:               metav1.GroupVersionKind(gvk),
		Resource:           metav1.GroupVersionResource(gvr),
		SubResource:        a.Subresource,
		RequestKind:        (*metav1.GroupVersionKind)(&a.Kind),
		RequestResource:    (*metav1.GroupVersionResource)(&a.Resource),
		RequestSubResource: a.Subresource,
		Name:               a.Name,
		Namespace:          a.Namespace,
		Operation:          a.Operation,
		UserInfo:           a.UserInfo,
		DryRun:             &a.DryRun,
	}
	if inv.req.Object, err = raw(inv.obj, gvk); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if inv.req.OldObject, err = raw(inv.old, gvk); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if a.Options != nil {
		if inv.req.Options, err = raw(a.Options, metav1.SchemeGroupVersion.WithKind(optionsKind(a.Operation))); err != nil {
			return nil, apierrors.NewInternalError(err)
		}
	}
	if ok, err := h.matchConditions(ctx, a, inv.req, inv.obj, inv.old, d.Authorizer); err != nil || !ok {
		return nil, err
	}
	if a.DryRun && h.sideEffects != admissionregistrationv1.SideEffectClassNone && h.sideEffects != admissionregistrationv1.SideEffectClassNoneOnDryRun {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("admission webhook %q does not support dry run", h.name))
	}
	return inv, nil
}

func optionsKind(op admissionv1.Operation) string {
	switch op {
	case admissionv1.Create:
		return "CreateOptions"
	case admissionv1.Update:
		return "UpdateOptions"
	case admissionv1.Delete:
		return "DeleteOptions"
	}
	return ""
}

func (d *Dispatcher) convert(ctx context.Context, obj runtime.Object, to schema.GroupVersionKind) (runtime.Object, error) {
	if obj == nil || d.Kinds == nil {
		return obj, nil
	}
	return d.Kinds.Convert(ctx, obj, to)
}

// raw encodes obj as JSON with its apiVersion and kind.
func raw(obj runtime.Object, gvk schema.GroupVersionKind) (runtime.RawExtension, error) {
	if obj == nil {
		return runtime.RawExtension{}, nil
	}
	obj = obj.DeepCopyObject()
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	data, err := json.Marshal(obj)
	return runtime.RawExtension{Raw: data}, err
}

// failed decides what a call that got no answer does: nothing under failurePolicy Ignore
// (the request goes on, with an audit annotation saying so), a 500 under Fail.
func (d *Dispatcher) failed(ctx context.Context, h *hook, kind string, round int, err error) error {
	if _, ok := err.(*ErrCallingWebhook); !ok {
		return err
	}
	if h.failurePolicy == admissionregistrationv1.Ignore {
		failOpenCount.WithLabelValues(h.name, kind).Inc()
		prefix := "failed-open.validating.webhook.admission.k8s.io"
		if kind == "admit" {
			prefix = "failed-open.mutation.webhook.admission.k8s.io"
		}
		d.annotate(ctx, fmt.Sprintf("%s/round_%d_index_%d", prefix, round, h.index), h.name)
		return nil
	}
	return apierrors.NewInternalError(err)
}

func (d *Dispatcher) annotate(ctx context.Context, key, value string) {
	if d.Annotate != nil {
		d.Annotate(ctx, key, value)
	}
}

// answer passes on what every response carries, warnings and audit annotations, and turns
// a denial into upstream's error.
func (d *Dispatcher) answer(ctx context.Context, h *hook, resp *admissionv1.AdmissionResponse) error {
	for k, v := range resp.AuditAnnotations {
		d.annotate(ctx, h.name+"/"+k, v)
	}
	if d.Warn != nil {
		for _, w := range resp.Warnings {
			d.Warn(ctx, w)
		}
	}
	if !resp.Allowed {
		return denied(h.name, resp.Result)
	}
	return nil
}

// denied is a webhook's refusal as upstream words it: the webhook's status, at least a 400,
// its message prefixed with who denied the request.
func denied(name string, result *metav1.Status) *apierrors.StatusError {
	st := metav1.Status{Status: metav1.StatusFailure}
	if result != nil {
		st = *result
	}
	if st.Code < http.StatusBadRequest {
		st.Code = http.StatusBadRequest
	}
	if st.Status == "" || st.Status == metav1.StatusSuccess {
		st.Status = metav1.StatusFailure
	}
	by := fmt.Sprintf("admission webhook %q denied the request", name)
	switch {
	case st.Message != "":
		st.Message = by + ": " + st.Message
	case st.Reason != "":
		st.Message = by + ": " + string(st.Reason)
	default:
		st.Message = by + " without explanation"
	}
	return &apierrors.StatusError{ErrStatus: st}
}

func (d *Dispatcher) callValidating(ctx context.Context, h *hook, a *Request, uid types.UID) error {
	inv, err := d.prepare(ctx, h, a, uid)
	if err != nil {
		return d.failed(ctx, h, "validating", 0, err)
	}
	if inv == nil {
		return nil
	}
	start := time.Now()
	resp, code, err := d.Clients.callAdmission(ctx, h, inv.req)
	if err == nil {
		err = d.answer(ctx, h, resp)
	}
	observe(h, "validating", a.Operation, start, code, err)
	if err != nil {
		return d.failed(ctx, h, "validating", 0, err)
	}
	return nil
}

// callMutating calls one mutating webhook and applies its patch. It reports whether the
// webhook was called and whether it changed the object.
func (d *Dispatcher) callMutating(ctx context.Context, h *hook, a *Request, uid types.UID, round int) (runtime.Object, bool, bool, error) {
	inv, err := d.prepare(ctx, h, a, uid)
	if err != nil {
		return nil, false, false, d.failed(ctx, h, "admit", round, err)
	}
	if inv == nil {
		return nil, false, false, nil
	}
	start := time.Now()
	resp, code, err := d.Clients.callAdmission(ctx, h, inv.req)
	if err == nil {
		err = d.answer(ctx, h, resp)
	}
	var out runtime.Object
	changed := false
	if err == nil && len(resp.Patch) > 0 {
		out, changed, err = d.applyPatch(ctx, h, a, inv, resp)
	}
	observe(h, "admit", a.Operation, start, code, err)
	if err != nil {
		return nil, true, false, d.failed(ctx, h, "admit", round, err)
	}
	mutation, _ := json.Marshal(map[string]any{"configuration": h.configuration, "webhook": h.name, "mutated": changed})
	d.annotate(ctx, fmt.Sprintf("mutation.webhook.admission.k8s.io/round_%d_index_%d", round, h.index), string(mutation))
	return out, true, changed, nil
}

// applyPatch applies a JSONPatch response to the object as the webhook saw it, decodes and
// defaults the result, and converts it back to the requested version.
func (d *Dispatcher) applyPatch(ctx context.Context, h *hook, a *Request, inv *invocation, resp *admissionv1.AdmissionResponse) (runtime.Object, bool, error) {
	if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		pt := ""
		if resp.PatchType != nil {
			pt = string(*resp.PatchType)
		}
		return nil, false, &ErrCallingWebhook{WebhookName: h.name, Reason: fmt.Errorf("unsupported patch type %q", pt)}
	}
	if inv.obj == nil {
		return nil, false, apierrors.NewInternalError(fmt.Errorf("admission webhook %q attempted to modify the object, which is not supported for this operation", h.name))
	}
	patch, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		return nil, false, &ErrCallingWebhook{WebhookName: h.name, Reason: fmt.Errorf("received undecodable patch in webhook response: %w", err)}
	}
	patched, err := patch.Apply(inv.req.Object.Raw)
	if err != nil {
		return nil, false, apierrors.NewInternalError(err)
	}
	obj, err := d.Kinds.Decode(patched, inv.kind)
	if err != nil {
		return nil, false, apierrors.NewInternalError(err)
	}
	if obj, err = d.convert(ctx, obj, a.Kind); err != nil {
		return nil, false, apierrors.NewInternalError(err)
	}
	// the decoded object may carry a type where the request's does not: compare content only
	before, after := a.Object.DeepCopyObject(), obj.DeepCopyObject()
	before.GetObjectKind().SetGroupVersionKind(a.Kind)
	after.GetObjectKind().SetGroupVersionKind(a.Kind)
	obj.GetObjectKind().SetGroupVersionKind(a.Object.GetObjectKind().GroupVersionKind())
	return obj, !apiequality.Semantic.DeepEqual(before, after), nil
}
