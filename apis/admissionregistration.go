package apis

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	apiservercel "k8s.io/apiserver/pkg/cel"
	"k8s.io/apiserver/pkg/cel/environment"
	webhookutil "k8s.io/apiserver/pkg/util/webhook"
)

var admissionregistrationV1 = admissionregistrationv1.SchemeGroupVersion

// DefaultValidatingWebhookConfiguration fills in upstream's defaults of each webhook.
func DefaultValidatingWebhookConfiguration(c *admissionregistrationv1.ValidatingWebhookConfiguration) {
	for i := range c.Webhooks {
		h := &c.Webhooks[i]
		defaultWebhook(&h.FailurePolicy, &h.MatchPolicy, &h.NamespaceSelector, &h.ObjectSelector, &h.TimeoutSeconds, h.Rules, &h.ClientConfig)
	}
}

// DefaultMutatingWebhookConfiguration fills in upstream's defaults of each webhook, and
// reinvocationPolicy Never.
func DefaultMutatingWebhookConfiguration(c *admissionregistrationv1.MutatingWebhookConfiguration) {
	for i := range c.Webhooks {
		h := &c.Webhooks[i]
		defaultWebhook(&h.FailurePolicy, &h.MatchPolicy, &h.NamespaceSelector, &h.ObjectSelector, &h.TimeoutSeconds, h.Rules, &h.ClientConfig)
		if h.ReinvocationPolicy == nil {
			never := admissionregistrationv1.NeverReinvocationPolicy
			h.ReinvocationPolicy = &never
		}
	}
}

func defaultWebhook(failure **admissionregistrationv1.FailurePolicyType, match **admissionregistrationv1.MatchPolicyType,
	nsSel, objSel **metav1.LabelSelector, timeout **int32, rules []admissionregistrationv1.RuleWithOperations, cc *admissionregistrationv1.WebhookClientConfig) {
	if *failure == nil {
		p := admissionregistrationv1.Fail
		*failure = &p
	}
	if *match == nil {
		p := admissionregistrationv1.Equivalent
		*match = &p
	}
	if *nsSel == nil {
		*nsSel = &metav1.LabelSelector{}
	}
	if *objSel == nil {
		*objSel = &metav1.LabelSelector{}
	}
	if *timeout == nil {
		t := int32(10)
		*timeout = &t
	}
	for i := range rules {
		if rules[i].Scope == nil {
			all := admissionregistrationv1.AllScopes
			rules[i].Scope = &all
		}
	}
	if cc.Service != nil && cc.Service.Port == nil {
		port := int32(443)
		cc.Service.Port = &port
	}
}

// The sets upstream's validation names in its messages, sorted as it lists them.
var (
	webhookFailurePolicies     = []string{"Fail", "Ignore"}
	webhookMatchPolicies       = []string{"Equivalent", "Exact"}
	webhookNoSideEffects       = []string{"None", "NoneOnDryRun"}
	webhookOperations          = []string{"*", "CONNECT", "CREATE", "DELETE", "UPDATE"}
	webhookReinvocation        = []string{"IfNeeded", "Never"}
	webhookScopes              = []string{"*", "Cluster", "Namespaced"}
	acceptedAdmissionReviewVer = []string{"v1", "v1beta1"}
)

// webhookCommon is what validating and mutating webhooks share, for validation.
type webhookCommon struct {
	name                    string
	clientConfig            admissionregistrationv1.WebhookClientConfig
	rules                   []admissionregistrationv1.RuleWithOperations
	failurePolicy           *admissionregistrationv1.FailurePolicyType
	matchPolicy             *admissionregistrationv1.MatchPolicyType
	namespaceSelector       *metav1.LabelSelector
	objectSelector          *metav1.LabelSelector
	sideEffects             *admissionregistrationv1.SideEffectClass
	timeoutSeconds          *int32
	admissionReviewVersions []string
	matchConditions         []admissionregistrationv1.MatchCondition
}

// ValidateValidatingWebhookConfiguration checks a configuration as upstream does on create.
func ValidateValidatingWebhookConfiguration(c *admissionregistrationv1.ValidatingWebhookConfiguration) field.ErrorList {
	allErrs := ValidateObjectMeta(&c.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, metadataPath)
	names := sets.New[string]()
	for i, h := range c.Webhooks {
		p := field.NewPath("webhooks").Index(i)
		allErrs = append(allErrs, validateWebhook(webhookCommon{h.Name, h.ClientConfig, h.Rules, h.FailurePolicy, h.MatchPolicy,
			h.NamespaceSelector, h.ObjectSelector, h.SideEffects, h.TimeoutSeconds, h.AdmissionReviewVersions, h.MatchConditions}, p)...)
		allErrs = append(allErrs, duplicateWebhookName(names, h.Name, p)...)
	}
	return allErrs
}

// ValidateMutatingWebhookConfiguration checks a configuration as upstream does on create.
func ValidateMutatingWebhookConfiguration(c *admissionregistrationv1.MutatingWebhookConfiguration) field.ErrorList {
	allErrs := ValidateObjectMeta(&c.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, metadataPath)
	names := sets.New[string]()
	for i, h := range c.Webhooks {
		p := field.NewPath("webhooks").Index(i)
		allErrs = append(allErrs, validateWebhook(webhookCommon{h.Name, h.ClientConfig, h.Rules, h.FailurePolicy, h.MatchPolicy,
			h.NamespaceSelector, h.ObjectSelector, h.SideEffects, h.TimeoutSeconds, h.AdmissionReviewVersions, h.MatchConditions}, p)...)
		if h.ReinvocationPolicy != nil && !sets.New(webhookReinvocation...).Has(string(*h.ReinvocationPolicy)) {
			allErrs = append(allErrs, field.NotSupported(p.Child("reinvocationPolicy"), *h.ReinvocationPolicy, webhookReinvocation))
		}
		allErrs = append(allErrs, duplicateWebhookName(names, h.Name, p)...)
	}
	return allErrs
}

func duplicateWebhookName(seen sets.Set[string], name string, p *field.Path) field.ErrorList {
	if name == "" {
		return nil
	}
	if seen.Has(name) {
		return field.ErrorList{field.Duplicate(p.Child("name"), name)}
	}
	seen.Insert(name)
	return nil
}

// validateWebhook checks one webhook in upstream's order: validating then the admission
// review versions.
func validateWebhook(h webhookCommon, p *field.Path) field.ErrorList {
	allErrs := utilvalidation.IsFullyQualifiedName(p.Child("name"), h.name)
	for i := range h.rules {
		allErrs = append(allErrs, validateRuleWithOperations(&h.rules[i], p.Child("rules").Index(i))...)
	}
	if h.failurePolicy != nil && !sets.New(webhookFailurePolicies...).Has(string(*h.failurePolicy)) {
		allErrs = append(allErrs, field.NotSupported(p.Child("failurePolicy"), *h.failurePolicy, webhookFailurePolicies))
	}
	if h.matchPolicy != nil && !sets.New(webhookMatchPolicies...).Has(string(*h.matchPolicy)) {
		allErrs = append(allErrs, field.NotSupported(p.Child("matchPolicy"), *h.matchPolicy, webhookMatchPolicies))
	}
	if h.sideEffects == nil {
		allErrs = append(allErrs, field.Required(p.Child("sideEffects"), "must specify one of "+strings.Join(webhookNoSideEffects, ", ")))
	} else if !sets.New(webhookNoSideEffects...).Has(string(*h.sideEffects)) {
		allErrs = append(allErrs, field.NotSupported(p.Child("sideEffects"), *h.sideEffects, webhookNoSideEffects))
	}
	if t := h.timeoutSeconds; t != nil && (*t > 30 || *t < 1) {
		allErrs = append(allErrs, field.Invalid(p.Child("timeoutSeconds"), *t, "the timeout value must be between 1 and 30 seconds"))
	}
	opts := metav1validation.LabelSelectorValidationOptions{}
	if h.namespaceSelector != nil {
		allErrs = append(allErrs, metav1validation.ValidateLabelSelector(h.namespaceSelector, opts, p.Child("namespaceSelector"))...)
	}
	if h.objectSelector != nil {
		allErrs = append(allErrs, metav1validation.ValidateLabelSelector(h.objectSelector, opts, p.Child("objectSelector"))...)
	}
	allErrs = append(allErrs, ValidateWebhookClientConfig(h.clientConfig, p.Child("clientConfig"))...)
	allErrs = append(allErrs, validateMatchConditions(h.matchConditions, p.Child("matchConditions"))...)
	allErrs = append(allErrs, validateAdmissionReviewVersions(h.admissionReviewVersions, p.Child("admissionReviewVersions"))...)
	return allErrs
}

// ValidateWebhookClientConfig checks where a webhook is called: exactly one of an https URL
// or a Service reference. A CustomResourceDefinition's conversion webhook is checked the same.
func ValidateWebhookClientConfig(cc admissionregistrationv1.WebhookClientConfig, p *field.Path) field.ErrorList {
	switch {
	case (cc.URL == nil) == (cc.Service == nil):
		return field.ErrorList{field.Required(p, "exactly one of url or service is required")}
	case cc.URL != nil:
		return webhookutil.ValidateWebhookURL(p.Child("url"), *cc.URL, true)
	default:
		port := int32(443)
		if cc.Service.Port != nil {
			port = *cc.Service.Port
		}
		return webhookutil.ValidateWebhookService(p.Child("service"), cc.Service.Name, cc.Service.Namespace, cc.Service.Path, port)
	}
}

func validateRuleWithOperations(r *admissionregistrationv1.RuleWithOperations, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(r.Operations) == 0 {
		allErrs = append(allErrs, field.Required(p.Child("operations"), ""))
	}
	hasAll := false
	for _, op := range r.Operations {
		hasAll = hasAll || op == admissionregistrationv1.OperationAll
	}
	if len(r.Operations) > 1 && hasAll {
		allErrs = append(allErrs, field.Invalid(p.Child("operations"), r.Operations, "if '*' is present, must not specify other operations"))
	}
	for i, op := range r.Operations {
		if !sets.New(webhookOperations...).Has(string(op)) {
			allErrs = append(allErrs, field.NotSupported(p.Child("operations").Index(i), op, webhookOperations))
		}
	}
	if len(r.APIGroups) == 0 {
		allErrs = append(allErrs, field.Required(p.Child("apiGroups"), ""))
	}
	if len(r.APIGroups) > 1 && sets.New(r.APIGroups...).Has("*") {
		allErrs = append(allErrs, field.Invalid(p.Child("apiGroups"), r.APIGroups, "if '*' is present, must not specify other API groups"))
	}
	if len(r.APIVersions) == 0 {
		allErrs = append(allErrs, field.Required(p.Child("apiVersions"), ""))
	}
	if len(r.APIVersions) > 1 && sets.New(r.APIVersions...).Has("*") {
		allErrs = append(allErrs, field.Invalid(p.Child("apiVersions"), r.APIVersions, "if '*' is present, must not specify other API versions"))
	}
	for i, v := range r.APIVersions {
		if v == "" {
			allErrs = append(allErrs, field.Required(p.Child("apiVersions").Index(i), ""))
		}
	}
	allErrs = append(allErrs, validateRuleResources(r.Resources, p.Child("resources"))...)
	if r.Scope != nil && !sets.New(webhookScopes...).Has(string(*r.Scope)) {
		allErrs = append(allErrs, field.NotSupported(p.Child("scope"), *r.Scope, webhookScopes))
	}
	return allErrs
}

// validateRuleResources checks resources and resource/subresource pairs with their wildcards.
func validateRuleResources(resources []string, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(resources) == 0 {
		allErrs = append(allErrs, field.Required(p, ""))
	}
	wildSubOf, wildResOf := sets.New[string](), sets.New[string]()
	doubleWild, singleWild, plain := false, false, false
	for i, rs := range resources {
		if rs == "" {
			allErrs = append(allErrs, field.Required(p.Index(i), ""))
			continue
		}
		doubleWild = doubleWild || rs == "*/*"
		singleWild = singleWild || rs == "*"
		res, sub, found := strings.Cut(rs, "/")
		if !found {
			plain = rs != "*"
			continue
		}
		if wildSubOf.Has(res) {
			allErrs = append(allErrs, field.Invalid(p.Index(i), rs, fmt.Sprintf("if '%s/*' is present, must not specify %s", res, rs)))
		}
		if wildResOf.Has(sub) {
			allErrs = append(allErrs, field.Invalid(p.Index(i), rs, fmt.Sprintf("if '*/%s' is present, must not specify %s", sub, rs)))
		}
		if sub == "*" {
			wildSubOf.Insert(res)
		}
		if res == "*" {
			wildResOf.Insert(sub)
		}
	}
	if len(resources) > 1 && doubleWild {
		allErrs = append(allErrs, field.Invalid(p, resources, "if '*/*' is present, must not specify other resources"))
	}
	if singleWild && plain {
		allErrs = append(allErrs, field.Invalid(p, resources, "if '*' is present, must not specify other resources without subresources"))
	}
	return allErrs
}

func validateAdmissionReviewVersions(versions []string, p *field.Path) field.ErrorList {
	if len(versions) == 0 {
		return field.ErrorList{field.Required(p, "must specify one of "+strings.Join(acceptedAdmissionReviewVer, ", "))}
	}
	var allErrs field.ErrorList
	seen := sets.New[string]()
	accepted := false
	for i, v := range versions {
		if seen.Has(v) {
			allErrs = append(allErrs, field.Invalid(p.Index(i), v, "duplicate version"))
			continue
		}
		seen.Insert(v)
		for _, msg := range utilvalidation.IsDNS1035Label(v) {
			allErrs = append(allErrs, field.Invalid(p.Index(i), v, msg))
		}
		accepted = accepted || v == "v1" || v == "v1beta1"
	}
	if !accepted {
		allErrs = append(allErrs, field.Invalid(p, versions, "must include at least one of "+strings.Join(acceptedAdmissionReviewVer, ", ")))
	}
	return allErrs
}

func validateMatchConditions(conds []admissionregistrationv1.MatchCondition, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(conds) > 64 {
		allErrs = append(allErrs, field.TooMany(p, len(conds), 64))
	}
	names := sets.New[string]()
	for i, c := range conds {
		cp := p.Index(i)
		if expr := strings.TrimSpace(c.Expression); expr == "" {
			allErrs = append(allErrs, field.Required(cp.Child("expression"), ""))
		} else if _, err := CompileMatchCondition(expr); err != nil {
			allErrs = append(allErrs, celFieldError(cp.Child("expression"), expr, err))
		}
		if c.Name == "" {
			allErrs = append(allErrs, field.Required(cp.Child("name"), ""))
		} else {
			for _, msg := range utilvalidation.IsQualifiedName(c.Name) {
				allErrs = append(allErrs, field.Invalid(cp.Child("name"), c.Name, msg))
			}
			if names.Has(c.Name) {
				allErrs = append(allErrs, field.Duplicate(cp.Child("name"), c.Name))
			}
			names.Insert(c.Name)
		}
	}
	return allErrs
}

// celFieldError words a compilation error as upstream's validation does.
func celFieldError(p *field.Path, expr string, err *apiservercel.Error) *field.Error {
	switch err.Type {
	case apiservercel.ErrorTypeRequired:
		return field.Required(p, err.Detail)
	case apiservercel.ErrorTypeInvalid:
		return field.Invalid(p, expr, err.Detail)
	default:
		return field.InternalError(p, err)
	}
}

// boolExpression is a CEL expression that must evaluate to a bool (a match condition).
type boolExpression string

func (e boolExpression) GetExpression() string    { return string(e) }
func (e boolExpression) ReturnTypes() []*cel.Type { return []*cel.Type{cel.BoolType} }

var (
	matchConditionCompilerOnce sync.Once
	matchConditionCompiler     plugincel.Compiler
)

// CompileMatchCondition compiles a webhook's match condition in upstream's environment for
// them: object, oldObject, request and authorizer declared, params not.
func CompileMatchCondition(expr string) (cel.Program, *apiservercel.Error) {
	matchConditionCompilerOnce.Do(func() {
		matchConditionCompiler = plugincel.NewCompiler(environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()))
	})
	res := matchConditionCompiler.CompileCELExpression(boolExpression(expr), plugincel.OptionalVariableDeclarations{HasAuthorizer: true}, environment.StoredExpressions)
	if res.Error != nil {
		return nil, res.Error
	}
	return res.Program, nil
}

// webhookConfigurationStrategy keeps what a client sends, bumping generation when the webhooks
// change, as upstream's.
type webhookConfigurationStrategy[T runtime.Object] struct {
	validate func(T) field.ErrorList
	webhooks func(T) any
}

func (webhookConfigurationStrategy[T]) PrepareForCreate(_ context.Context, obj runtime.Object) {
	if m, ok := obj.(metav1.ObjectMetaAccessor); ok {
		m.GetObjectMeta().SetGeneration(1)
	}
}

func (s webhookConfigurationStrategy[T]) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return s.validate(obj.(T))
}

func (s webhookConfigurationStrategy[T]) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	m, om := obj.(metav1.ObjectMetaAccessor).GetObjectMeta(), old.(metav1.ObjectMetaAccessor).GetObjectMeta()
	if !apiequality.Semantic.DeepEqual(s.webhooks(obj.(T)), s.webhooks(old.(T))) {
		m.SetGeneration(om.GetGeneration() + 1)
	}
}

func (s webhookConfigurationStrategy[T]) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	m, om := obj.(metav1.ObjectMetaAccessor).GetObjectMeta(), old.(metav1.ObjectMetaAccessor).GetObjectMeta()
	allErrs := ValidateObjectMetaUpdate(m.(*metav1.ObjectMeta), om.(*metav1.ObjectMeta), metadataPath)
	return append(allErrs, s.validate(obj.(T))...)
}

func (webhookConfigurationStrategy[T]) AllowCreateOnUpdate() bool      { return false }
func (webhookConfigurationStrategy[T]) AllowUnconditionalUpdate() bool { return true }

var (
	// ValidatingWebhookConfigurationStrategy is the strategy of validating webhook configurations.
	ValidatingWebhookConfigurationStrategy Strategy = webhookConfigurationStrategy[*admissionregistrationv1.ValidatingWebhookConfiguration]{
		validate: ValidateValidatingWebhookConfiguration,
		webhooks: func(c *admissionregistrationv1.ValidatingWebhookConfiguration) any { return c.Webhooks },
	}
	// MutatingWebhookConfigurationStrategy is the strategy of mutating webhook configurations.
	MutatingWebhookConfigurationStrategy Strategy = webhookConfigurationStrategy[*admissionregistrationv1.MutatingWebhookConfiguration]{
		validate: ValidateMutatingWebhookConfiguration,
		webhooks: func(c *admissionregistrationv1.MutatingWebhookConfiguration) any { return c.Webhooks },
	}
)

// webhookConfigurationTable prints NAME, WEBHOOKS, AGE as upstream.
func webhookConfigurationTable[T runtime.Object](count func(T) int) *TablePrinter {
	return Columns([]metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Webhooks", Type: "integer", Description: "Webhooks indicates the number of webhooks registered in this configuration"},
		ageColumn,
	}, func(obj T) metav1.TableRow {
		m := any(obj).(metav1.ObjectMetaAccessor).GetObjectMeta()
		return cells(m.GetName(), int64(count(obj)), translateTimestampSince(metav1.Time{Time: m.GetCreationTimestamp().Time}))
	})
}
