package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"

	"github.com/google/cel-go/cel"
	celtypes "github.com/google/cel-go/common/types"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/cel/library"

	"github.com/skiff-dev/skiff/apis"
)

// hook is what the dispatcher needs of one webhook, validating or mutating.
type hook struct {
	// configuration is the name of the configuration holding the webhook; index its place
	configuration    string
	index            int
	name             string
	clientConfig     admissionregistrationv1.WebhookClientConfig
	rules            []admissionregistrationv1.RuleWithOperations
	failurePolicy    admissionregistrationv1.FailurePolicyType
	matchPolicy      admissionregistrationv1.MatchPolicyType
	nsSelector       labels.Selector
	objSelector      labels.Selector
	sideEffects      admissionregistrationv1.SideEffectClass
	timeout          int32
	reviewVersion    string // the AdmissionReview version the webhook is sent: v1 if it takes it
	conditions       []admissionregistrationv1.MatchCondition
	reinvokeIfNeeded bool
	// selectorErr is set when a selector does not parse (a configuration written before
	// validation caught it); such a webhook fails as its failurePolicy says
	selectorErr error
}

func newHook(config string, index int, name string, cc admissionregistrationv1.WebhookClientConfig, rules []admissionregistrationv1.RuleWithOperations,
	failure *admissionregistrationv1.FailurePolicyType, match *admissionregistrationv1.MatchPolicyType, nsSel, objSel *metav1.LabelSelector,
	side *admissionregistrationv1.SideEffectClass, timeout *int32, versions []string, conds []admissionregistrationv1.MatchCondition) *hook {
	h := &hook{configuration: config, index: index, name: name, clientConfig: cc, rules: rules, conditions: conds,
		failurePolicy: admissionregistrationv1.Fail, matchPolicy: admissionregistrationv1.Equivalent, timeout: 10, reviewVersion: "v1beta1",
		sideEffects: admissionregistrationv1.SideEffectClassUnknown}
	if failure != nil {
		h.failurePolicy = *failure
	}
	if match != nil {
		h.matchPolicy = *match
	}
	if side != nil {
		h.sideEffects = *side
	}
	if timeout != nil {
		h.timeout = *timeout
	}
	for _, v := range versions {
		if v == "v1" {
			h.reviewVersion = "v1"
			break
		}
	}
	var err error
	if h.nsSelector, err = selector(nsSel); err != nil {
		h.selectorErr = err
	}
	if h.objSelector, err = selector(objSel); err != nil {
		h.selectorErr = err
	}
	return h
}

func selector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(s)
}

// ruleMatches reports whether one rule covers the request as made in gvr.
func ruleMatches(r admissionregistrationv1.RuleWithOperations, a *Request, gvr schema.GroupVersionResource) bool {
	opOK := false
	for _, op := range r.Operations {
		if op == admissionregistrationv1.OperationAll || string(op) == string(a.Operation) {
			opOK = true
			break
		}
	}
	if !opOK || !anyOf(r.APIGroups, gvr.Group) || !anyOf(r.APIVersions, gvr.Version) {
		return false
	}
	resOK := false
	for _, item := range r.Resources {
		res, sub, _ := cutResource(item)
		if (res == "*" || res == gvr.Resource) && (sub == "*" || sub == a.Subresource) {
			resOK = true
			break
		}
	}
	if !resOK {
		return false
	}
	if r.Scope == nil || *r.Scope == admissionregistrationv1.AllScopes {
		return true
	}
	isNamespace := gvr.Group == "" && gvr.Resource == "namespaces"
	switch *r.Scope {
	case admissionregistrationv1.NamespacedScope:
		return !isNamespace && a.Namespace != ""
	case admissionregistrationv1.ClusterScope:
		return isNamespace || a.Namespace == ""
	}
	return false
}

func cutResource(item string) (string, string, bool) {
	for i := 0; i < len(item); i++ {
		if item[i] == '/' {
			return item[:i], item[i+1:], true
		}
	}
	return item, "", false
}

func anyOf(list []string, v string) bool {
	for _, x := range list {
		if x == "*" || x == v {
			return true
		}
	}
	return false
}

// matchResource finds the version of the resource the webhook is to see the request in: the
// requested one if a rule covers it, else (matchPolicy Equivalent) the first equivalent
// version a rule covers. ok is false when the webhook does not apply.
func (h *hook) matchResource(a *Request) (schema.GroupVersionResource, schema.GroupVersionKind, bool) {
	for _, r := range h.rules {
		if ruleMatches(r, a, a.Resource) {
			return a.Resource, a.Kind, true
		}
	}
	if h.matchPolicy != admissionregistrationv1.Equivalent {
		return schema.GroupVersionResource{}, schema.GroupVersionKind{}, false
	}
	for _, eq := range a.Equivalents {
		for _, r := range h.rules {
			if ruleMatches(r, a, eq.Resource) {
				return eq.Resource, eq.Kind, true
			}
		}
	}
	return schema.GroupVersionResource{}, schema.GroupVersionKind{}, false
}

// matchObject applies the object selector to the new and the old object: either matching is
// enough, as upstream.
func (h *hook) matchObject(a *Request) bool {
	if h.objSelector.Empty() {
		return true
	}
	for _, obj := range []runtime.Object{a.Object, a.OldObject} {
		if obj == nil {
			continue
		}
		if m, err := meta.Accessor(obj); err == nil && h.objSelector.Matches(labels.Set(m.GetLabels())) {
			return true
		}
	}
	return false
}

// matchNamespace applies the namespace selector: cluster-scoped objects other than
// namespaces always match; a namespace is matched by its own labels.
func (d *Dispatcher) matchNamespace(ctx context.Context, h *hook, a *Request) (bool, error) {
	if h.nsSelector.Empty() {
		return true, nil
	}
	if a.Resource.Group == "" && a.Resource.Resource == "namespaces" {
		for _, obj := range []runtime.Object{a.Object, a.OldObject} {
			if m, err := meta.Accessor(obj); obj != nil && err == nil {
				return h.nsSelector.Matches(labels.Set(m.GetLabels())), nil
			}
		}
		return false, nil
	}
	if a.Namespace == "" {
		return true, nil
	}
	ns, err := d.NamespaceLabels(ctx, a.Namespace)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return h.nsSelector.Matches(labels.Set{}), nil
		}
		return false, apierrors.NewInternalError(err)
	}
	return h.nsSelector.Matches(labels.Set(ns)), nil
}

// programs caches compiled match conditions by expression: configurations change seldom and
// compiling on every request would cost more than the call.
var programs sync.Map // string → cel.Program

func program(expr string) (cel.Program, error) {
	if p, ok := programs.Load(expr); ok {
		return p.(cel.Program), nil
	}
	p, cerr := apis.CompileMatchCondition(expr)
	if cerr != nil {
		return nil, cerr
	}
	programs.Store(expr, p)
	return p, nil
}

// matchConditions evaluates the webhook's CEL match conditions on the request as the webhook
// would see it: any false skips the webhook; otherwise errors fail the request (Forbidden)
// under failurePolicy Fail and skip the webhook under Ignore.
func (h *hook) matchConditions(ctx context.Context, a *Request, req *admissionv1.AdmissionRequest, obj, old runtime.Object, authz authorizer.UnconditionalAuthorizer) (bool, error) {
	if len(h.conditions) == 0 {
		return true, nil
	}
	vars := map[string]any{"object": celValue(obj), "oldObject": celValue(old), "request": celValue(req)}
	if authz != nil {
		u := a.UserInfo
		extra := map[string][]string{}
		for k, v := range u.Extra {
			extra[k] = v
		}
		vars["authorizer"] = library.NewAuthorizerVal(&user.DefaultInfo{Name: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra}, authz)
	}
	var errs []error
	for _, c := range h.conditions {
		prg, err := program(c.Expression)
		if err != nil {
			errs = append(errs, fmt.Errorf("compilation failed for expression '%s': %v", c.Expression, err))
			continue
		}
		out, _, err := prg.ContextEval(ctx, vars)
		if err != nil {
			errs = append(errs, fmt.Errorf("expression '%s' resulted in error: %v", c.Expression, err))
			continue
		}
		if out == celtypes.False {
			return false, nil
		}
	}
	if len(errs) == 0 {
		return true, nil
	}
	if h.failurePolicy == admissionregistrationv1.Ignore {
		return false, nil
	}
	return false, apierrors.NewForbidden(a.Resource.GroupResource(), a.Name, utilerrors.NewAggregate(errs))
}

// celValue is an object as CEL sees it: its JSON form as maps and lists, or null.
func celValue(obj any) any {
	if obj == nil {
		return nil
	}
	if v := reflect.ValueOf(obj); v.Kind() == reflect.Pointer && v.IsNil() {
		return nil
	}
	data, err := json.Marshal(obj)
	if err != nil {
		return nil
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil
	}
	return v
}
