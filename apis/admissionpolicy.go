package apis

import (
	"fmt"
	"regexp"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/client-go/util/jsonpath"
)

// ValidatingAdmissionPolicies and their bindings (admissionregistration.k8s.io/v1): CEL rules
// the API server runs on writes (apiserver/admissionpolicy enforces them). Upstream's
// defaulting, validation (every expression is compiled; a bad one is a 422 with the
// compiler's words) and columns. Policies have a status written by the type-checking
// controller; bindings have none.

// ValidatingAdmissionPolicyStrategy and ValidatingAdmissionPolicyStatusStrategy are the
// strategies of validatingadmissionpolicies and their status subresource.
var ValidatingAdmissionPolicyStrategy, ValidatingAdmissionPolicyStatusStrategy = SpecAndStatus[*admissionregistrationv1.ValidatingAdmissionPolicy]{
	Validate:             ValidateValidatingAdmissionPolicy,
	ValidateUpdate:       ValidateValidatingAdmissionPolicyUpdate,
	ValidateStatusUpdate: validateValidatingAdmissionPolicyStatusUpdate,
}.Strategies()

// ValidatingAdmissionPolicyBindingStrategy is the strategy of
// validatingadmissionpolicybindings: a spec only, its generation counting the spec's changes.
var ValidatingAdmissionPolicyBindingStrategy Strategy = specGeneration[*admissionregistrationv1.ValidatingAdmissionPolicyBinding]{
	validate: ValidateValidatingAdmissionPolicyBinding,
	validateUpdate: func(b, old *admissionregistrationv1.ValidatingAdmissionPolicyBinding) field.ErrorList {
		allErrs := ValidateObjectMetaUpdate(&b.ObjectMeta, &old.ObjectMeta, metadataPath)
		return append(allErrs, validateValidatingAdmissionPolicyBindingSpec(&b.Spec, field.NewPath("spec"))...)
	},
}

// DefaultValidatingAdmissionPolicy fills in what upstream's v1 defaulting does: failurePolicy
// Fail, and the match constraints' defaults.
func DefaultValidatingAdmissionPolicy(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
	if p.Spec.FailurePolicy == nil {
		fail := admissionregistrationv1.Fail
		p.Spec.FailurePolicy = &fail
	}
	defaultMatchResources(p.Spec.MatchConstraints)
}

// DefaultValidatingAdmissionPolicyBinding fills in the match resources' defaults and makes a
// paramRef's parameterNotFoundAction Deny.
func DefaultValidatingAdmissionPolicyBinding(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
	defaultMatchResources(b.Spec.MatchResources)
	if b.Spec.ParamRef != nil && b.Spec.ParamRef.ParameterNotFoundAction == nil {
		deny := admissionregistrationv1.DenyAction
		b.Spec.ParamRef.ParameterNotFoundAction = &deny
	}
}

// defaultMatchResources: matchPolicy Equivalent, selectors that match everything, rules of
// every scope.
func defaultMatchResources(m *admissionregistrationv1.MatchResources) {
	if m == nil {
		return
	}
	if m.MatchPolicy == nil {
		eq := admissionregistrationv1.Equivalent
		m.MatchPolicy = &eq
	}
	if m.NamespaceSelector == nil {
		m.NamespaceSelector = &metav1.LabelSelector{}
	}
	if m.ObjectSelector == nil {
		m.ObjectSelector = &metav1.LabelSelector{}
	}
	for _, rules := range [][]admissionregistrationv1.NamedRuleWithOperations{m.ResourceRules, m.ExcludeResourceRules} {
		for i := range rules {
			if rules[i].Scope == nil {
				all := admissionregistrationv1.AllScopes
				rules[i].Scope = &all
			}
		}
	}
}

// ValidateValidatingAdmissionPolicy checks a new policy, compiling each of its expressions.
func ValidateValidatingAdmissionPolicy(p *admissionregistrationv1.ValidatingAdmissionPolicy) field.ErrorList {
	allErrs := ValidateObjectMeta(&p.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, metadataPath)
	return append(allErrs, validatePolicySpec(p, nil)...)
}

// ValidateValidatingAdmissionPolicyUpdate checks p replacing old. Expressions old already
// held compile in the stored-expressions environment, so that a library a later version
// drops does not make an existing policy unchangeable, as upstream.
func ValidateValidatingAdmissionPolicyUpdate(p, old *admissionregistrationv1.ValidatingAdmissionPolicy) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&p.ObjectMeta, &old.ObjectMeta, metadataPath)
	stored := sets.New[string]()
	for _, mc := range old.Spec.MatchConditions {
		stored.Insert(mc.Expression)
	}
	for _, v := range old.Spec.Validations {
		stored.Insert(v.Expression, v.MessageExpression)
	}
	for _, v := range old.Spec.Variables {
		stored.Insert(v.Expression)
	}
	for _, a := range old.Spec.AuditAnnotations {
		stored.Insert(a.ValueExpression)
	}
	return append(allErrs, validatePolicySpec(p, stored)...)
}

const (
	maxAuditAnnotations                     = 20
	maxAuditAnnotationValueExpressionLength = 5 * 1024
	maxMatchConditions                      = 64
)

var (
	supportedFailurePolicies = sets.NewString(string(admissionregistrationv1.Ignore), string(admissionregistrationv1.Fail))
	supportedMatchPolicies   = sets.NewString(string(admissionregistrationv1.Exact), string(admissionregistrationv1.Equivalent))
	supportedPolicyReasons   = sets.NewString(string(metav1.StatusReasonForbidden), string(metav1.StatusReasonInvalid),
		string(metav1.StatusReasonRequestEntityTooLarge))
	supportedValidationActions = sets.NewString(string(admissionregistrationv1.Deny), string(admissionregistrationv1.Warn),
		string(admissionregistrationv1.Audit))
)

// policyCompiler compiles one policy's expressions for validation: variables first, so that
// the expressions after them may use them.
type policyCompiler struct {
	compiler  *plugincel.CompositedCompiler
	hasParams bool
	stored    sets.Set[string]
}

func (c *policyCompiler) env(expr string) environment.Type {
	if c.stored.Has(expr) {
		return environment.StoredExpressions
	}
	return environment.NewExpressions
}

// compile compiles one expression and turns a failure into upstream's field error.
func (c *policyCompiler) compile(fldPath *field.Path, e *PolicyExpression, authorizer bool) *field.Error {
	decls := plugincel.OptionalVariableDeclarations{HasParams: c.hasParams, HasAuthorizer: authorizer}
	var res plugincel.CompilationResult
	if e.Name != "" {
		res = c.compiler.CompileAndStoreVariable(e, decls, c.env(e.Expression))
	} else {
		res = c.compiler.CompileCELExpression(e, decls, c.env(e.Expression))
	}
	if res.Error == nil {
		return nil
	}
	return celFieldError(fldPath, e.Expression, res.Error)
}

func validatePolicySpec(p *admissionregistrationv1.ValidatingAdmissionPolicy, stored sets.Set[string]) field.ErrorList {
	spec, fldPath, policyName := &p.Spec, field.NewPath("spec"), p.Name
	var allErrs field.ErrorList
	compiler, err := NewPolicyCompiler()
	if err != nil {
		return field.ErrorList{field.InternalError(fldPath, err)}
	}
	c := &policyCompiler{compiler: compiler, hasParams: spec.ParamKind != nil, stored: stored}
	if spec.FailurePolicy == nil {
		allErrs = append(allErrs, field.Required(fldPath.Child("failurePolicy"), ""))
	} else if !supportedFailurePolicies.Has(string(*spec.FailurePolicy)) {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("failurePolicy"), *spec.FailurePolicy, supportedFailurePolicies.List()))
	}
	if spec.ParamKind != nil {
		allErrs = append(allErrs, validateParamKind(spec.ParamKind, fldPath.Child("paramKind"))...)
	}
	if spec.MatchConstraints == nil {
		allErrs = append(allErrs, field.Required(fldPath.Child("matchConstraints"), ""))
	} else {
		allErrs = append(allErrs, validateMatchResources(spec.MatchConstraints, fldPath.Child("matchConstraints"))...)
		// the rules give the expressions their types: one at least
		if len(spec.MatchConstraints.ResourceRules) == 0 {
			allErrs = append(allErrs, field.Required(fldPath.Child("matchConstraints", "resourceRules"), ""))
		}
	}
	allErrs = append(allErrs, validatePolicyMatchConditions(c, spec.MatchConditions, fldPath.Child("matchConditions"))...)
	allErrs = append(allErrs, validatePolicyVariables(c, spec.Variables, fldPath.Child("variables"))...)
	if len(spec.Validations) == 0 && len(spec.AuditAnnotations) == 0 {
		allErrs = append(allErrs,
			field.Required(fldPath.Child("validations"), "validations or auditAnnotations must contain at least one item"),
			field.Required(fldPath.Child("auditAnnotations"), "validations or auditAnnotations must contain at least one item"))
		return allErrs
	}
	for i := range spec.Validations {
		allErrs = append(allErrs, validateValidation(c, &spec.Validations[i], fldPath.Child("validations").Index(i))...)
	}
	if len(spec.AuditAnnotations) > maxAuditAnnotations {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("auditAnnotations"), spec.AuditAnnotations, fmt.Sprintf("must not have more than %d auditAnnotations", maxAuditAnnotations)))
	}
	keys := sets.New[string]()
	for i, a := range spec.AuditAnnotations {
		p := fldPath.Child("auditAnnotations").Index(i)
		allErrs = append(allErrs, validateAuditAnnotation(c, p, policyName, a)...)
		if keys.Has(a.Key) {
			allErrs = append(allErrs, field.Duplicate(p.Child("key"), a.Key))
		}
		keys.Insert(a.Key)
	}
	return allErrs
}

// validatePolicyVariables checks a policy's variables in order, compiling each into c so that
// the expressions after it may use it.
func validatePolicyVariables(c *policyCompiler, vars []admissionregistrationv1.Variable, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i, v := range vars {
		p := fldPath.Index(i)
		if strings.TrimSpace(v.Name) == "" {
			allErrs = append(allErrs, field.Required(p.Child("name"), "name is not specified"))
		} else if !isCELIdentifier(v.Name) {
			allErrs = append(allErrs, field.Invalid(p.Child("name"), v.Name, "must be a valid CEL identifier"))
		}
		if strings.TrimSpace(v.Expression) == "" {
			allErrs = append(allErrs, field.Required(p.Child("expression"), "expression is not specified"))
		} else if err := c.compile(p.Child("expression"), &PolicyExpression{Name: v.Name, Expression: v.Expression, Types: VariableExpression}, true); err != nil {
			allErrs = append(allErrs, err)
		}
	}
	return allErrs
}

func validateValidation(c *policyCompiler, v *admissionregistrationv1.Validation, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	trimmedMsg := strings.TrimSpace(v.Message)
	if strings.TrimSpace(v.Expression) == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("expression"), "expression is not specified"))
	} else if err := c.compile(fldPath.Child("expression"), &PolicyExpression{Expression: v.Expression, Types: BoolExpression}, true); err != nil {
		allErrs = append(allErrs, err)
	}
	if len(v.MessageExpression) > 0 && strings.TrimSpace(v.MessageExpression) == "" {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("messageExpression"), v.MessageExpression, "must be non-empty if specified"))
	} else if strings.TrimSpace(v.MessageExpression) != "" {
		// message expressions may not ask the authorizer, as upstream declares them
		if err := c.compile(fldPath.Child("messageExpression"), &PolicyExpression{Expression: v.MessageExpression, Types: StringExpression}, false); err != nil {
			allErrs = append(allErrs, err)
		}
	}
	if len(v.Message) > 0 && trimmedMsg == "" {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("message"), v.Message, "message must be non-empty if specified"))
	} else if strings.ContainsAny(trimmedMsg, "\n\r") {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("message"), v.Message, "message must not contain line breaks"))
	}
	if v.Reason != nil && !supportedPolicyReasons.Has(string(*v.Reason)) {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("reason"), *v.Reason, supportedPolicyReasons.List()))
	}
	return allErrs
}

func validateAuditAnnotation(c *policyCompiler, fldPath *field.Path, policyName string, a admissionregistrationv1.AuditAnnotation) field.ErrorList {
	var allErrs field.ErrorList
	if policyName != "" {
		allErrs = append(allErrs, validateQualifiedName(policyName+"/"+a.Key, fldPath.Child("key"))...)
	} else {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("key"), a.Key, "requires metadata.name be non-empty"))
	}
	trimmed := strings.TrimSpace(a.ValueExpression)
	switch {
	case trimmed == "":
		allErrs = append(allErrs, field.Required(fldPath.Child("valueExpression"), "valueExpression is not specified"))
	case len(trimmed) > maxAuditAnnotationValueExpressionLength:
		allErrs = append(allErrs, field.Required(fldPath.Child("valueExpression"), fmt.Sprintf("must not exceed %d bytes in length", maxAuditAnnotationValueExpressionLength)))
	default:
		if err := c.compile(fldPath.Child("valueExpression"), &PolicyExpression{Expression: trimmed, Types: AuditAnnotationExpression}, true); err != nil {
			if err.Type == field.ErrorTypeInvalid {
				err.BadValue = a.ValueExpression
			}
			allErrs = append(allErrs, err)
		}
	}
	return allErrs
}

func validatePolicyMatchConditions(c *policyCompiler, conditions []admissionregistrationv1.MatchCondition, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(conditions) > maxMatchConditions {
		allErrs = append(allErrs, field.TooMany(fldPath, len(conditions), maxMatchConditions))
	}
	names := sets.New[string]()
	for i, mc := range conditions {
		p := fldPath.Index(i)
		trimmed := strings.TrimSpace(mc.Expression)
		if trimmed == "" {
			allErrs = append(allErrs, field.Required(p.Child("expression"), ""))
		} else if err := c.compile(p.Child("expression"), &PolicyExpression{Expression: trimmed, Types: BoolExpression}, true); err != nil {
			allErrs = append(allErrs, err)
		}
		if mc.Name == "" {
			allErrs = append(allErrs, field.Required(p.Child("name"), ""))
		} else {
			allErrs = append(allErrs, validateQualifiedName(mc.Name, p.Child("name"))...)
			if names.Has(mc.Name) {
				allErrs = append(allErrs, field.Duplicate(p.Child("name"), mc.Name))
			}
			names.Insert(mc.Name)
		}
	}
	return allErrs
}

func validateQualifiedName(value string, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for _, msg := range utilvalidation.IsQualifiedName(value) {
		allErrs = append(allErrs, field.Invalid(fldPath, value, msg))
	}
	return allErrs
}

// celIdentifier is a CEL identifier; reserved words are not.
var celIdentifier = regexp.MustCompile(`^[_a-zA-Z][_a-zA-Z0-9]*$`)

var celReserved = sets.New("true", "false", "null", "in", "as", "break", "const", "continue", "else", "for",
	"function", "if", "import", "let", "loop", "package", "namespace", "return", "var", "void", "while")

func isCELIdentifier(name string) bool {
	return celIdentifier.MatchString(name) && !celReserved.Has(name)
}

func validateParamKind(pk *admissionregistrationv1.ParamKind, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if pk.APIVersion == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("apiVersion"), ""))
	} else {
		group, version, err := splitAPIVersion(pk.APIVersion)
		switch {
		case err != nil:
			allErrs = append(allErrs, field.Invalid(fldPath.Child("apiVersion"), pk.APIVersion, err.Error()))
		default:
			if group != "" {
				if errs := utilvalidation.IsDNS1123Subdomain(group); len(errs) > 0 {
					allErrs = append(allErrs, field.Invalid(fldPath.Child("apiVersion"), group, strings.Join(errs, ",")))
				}
			}
			if version == "" {
				allErrs = append(allErrs, field.Invalid(fldPath.Child("apiVersion"), pk.APIVersion, "version must be specified"))
			} else if errs := utilvalidation.IsDNS1035Label(version); len(errs) > 0 {
				allErrs = append(allErrs, field.Invalid(fldPath.Child("apiVersion"), version, strings.Join(errs, ",")))
			}
		}
	}
	if pk.Kind == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("kind"), ""))
	} else if errs := utilvalidation.IsDNS1035Label(strings.ToLower(pk.Kind)); len(errs) > 0 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("kind"), pk.Kind, "may have mixed case, but should otherwise match: "+strings.Join(errs, ",")))
	}
	return allErrs
}

// splitAPIVersion splits "group/version" (or a bare "version") as upstream's paramKind
// validation parses it.
func splitAPIVersion(gv string) (group, version string, err error) {
	if gv == "" || gv == "/" {
		return "", "", nil
	}
	switch strings.Count(gv, "/") {
	case 0:
		return "", gv, nil
	case 1:
		i := strings.Index(gv, "/")
		return gv[:i], gv[i+1:], nil
	}
	return "", "", fmt.Errorf("unexpected GroupVersion string: %v", gv)
}

func validateMatchResources(m *admissionregistrationv1.MatchResources, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if m == nil {
		return nil
	}
	if m.MatchPolicy == nil {
		allErrs = append(allErrs, field.Required(fldPath.Child("matchPolicy"), ""))
	} else if !supportedMatchPolicies.Has(string(*m.MatchPolicy)) {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("matchPolicy"), *m.MatchPolicy, supportedMatchPolicies.List()))
	}
	for _, sel := range []struct {
		name string
		s    *metav1.LabelSelector
	}{{"namespaceSelector", m.NamespaceSelector}, {"objectSelector", m.ObjectSelector}} {
		if sel.s == nil {
			allErrs = append(allErrs, field.Required(fldPath.Child(sel.name), ""))
		} else {
			allErrs = append(allErrs, metav1validation.ValidateLabelSelector(sel.s, metav1validation.LabelSelectorValidationOptions{}, fldPath.Child(sel.name))...)
		}
	}
	for i := range m.ResourceRules {
		allErrs = append(allErrs, validateNamedRule(&m.ResourceRules[i], fldPath.Child("resourceRules").Index(i))...)
	}
	for i := range m.ExcludeResourceRules {
		allErrs = append(allErrs, validateNamedRule(&m.ExcludeResourceRules[i], fldPath.Child("excludeResourceRules").Index(i))...)
	}
	return allErrs
}

func validateNamedRule(n *admissionregistrationv1.NamedRuleWithOperations, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	names := sets.New[string]()
	for i, name := range n.ResourceNames {
		for _, msg := range path.ValidatePathSegmentName(name, false) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("resourceNames").Index(i), name, msg))
		}
		if names.Has(name) {
			allErrs = append(allErrs, field.Duplicate(fldPath.Child("resourceNames").Index(i), name))
		}
		names.Insert(name)
	}
	return append(allErrs, validateRuleWithOperations(&n.RuleWithOperations, fldPath)...)
}

// ValidateValidatingAdmissionPolicyBinding checks a new binding.
func ValidateValidatingAdmissionPolicyBinding(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) field.ErrorList {
	allErrs := ValidateObjectMeta(&b.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, metadataPath)
	return append(allErrs, validateValidatingAdmissionPolicyBindingSpec(&b.Spec, field.NewPath("spec"))...)
}

func validateValidatingAdmissionPolicyBindingSpec(spec *admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if spec.PolicyName == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("policyName"), ""))
	} else {
		for _, msg := range apivalidation.NameIsDNSSubdomain(spec.PolicyName, false) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("policyName"), spec.PolicyName, msg))
		}
	}
	allErrs = append(allErrs, validateParamRef(spec.ParamRef, fldPath.Child("paramRef"))...)
	// upstream's path is spelled so
	allErrs = append(allErrs, validateMatchResources(spec.MatchResources, fldPath.Child("matchResouces"))...)
	allErrs = append(allErrs, validateValidationActions(spec.ValidationActions, fldPath.Child("validationActions"))...)
	return allErrs
}

func validateParamRef(pr *admissionregistrationv1.ParamRef, fldPath *field.Path) field.ErrorList {
	if pr == nil {
		return nil
	}
	var allErrs field.ErrorList
	if pr.Name != "" {
		for _, msg := range path.ValidatePathSegmentName(pr.Name, false) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("name"), pr.Name, msg))
		}
		if pr.Selector != nil {
			allErrs = append(allErrs, field.Forbidden(fldPath.Child("name"), `name and selector are mutually exclusive`))
		}
	}
	if pr.Selector != nil {
		allErrs = append(allErrs, metav1validation.ValidateLabelSelector(pr.Selector, metav1validation.LabelSelectorValidationOptions{}, fldPath.Child("selector"))...)
		if pr.Name != "" {
			allErrs = append(allErrs, field.Forbidden(fldPath.Child("selector"), `name and selector are mutually exclusive`))
		}
	}
	if pr.Name == "" && pr.Selector == nil {
		allErrs = append(allErrs, field.Required(fldPath, `one of name or selector must be specified`))
	}
	if pr.ParameterNotFoundAction == nil || *pr.ParameterNotFoundAction == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("parameterNotFoundAction"), ""))
	} else if a := *pr.ParameterNotFoundAction; a != admissionregistrationv1.DenyAction && a != admissionregistrationv1.AllowAction {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("parameterNotFoundAction"), pr.ParameterNotFoundAction,
			[]string{string(admissionregistrationv1.DenyAction), string(admissionregistrationv1.AllowAction)}))
	}
	return allErrs
}

func validateValidationActions(actions []admissionregistrationv1.ValidationAction, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	seen := sets.NewString()
	for i, a := range actions {
		if !supportedValidationActions.Has(string(a)) {
			allErrs = append(allErrs, field.NotSupported(fldPath.Index(i), a, supportedValidationActions.List()))
		}
		if seen.Has(string(a)) {
			allErrs = append(allErrs, field.Duplicate(fldPath.Index(i), a))
		}
		seen.Insert(string(a))
	}
	if seen.Has(string(admissionregistrationv1.Deny)) && seen.Has(string(admissionregistrationv1.Warn)) {
		allErrs = append(allErrs, field.Invalid(fldPath, actions, "must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)"))
	}
	if seen.Len() == 0 {
		allErrs = append(allErrs, field.Required(fldPath, "at least one validation action is required"))
	}
	return allErrs
}

// validateValidatingAdmissionPolicyStatusUpdate checks the type checker's warnings and the
// conditions.
func validateValidatingAdmissionPolicyStatusUpdate(p, _ *admissionregistrationv1.ValidatingAdmissionPolicy) field.ErrorList {
	var allErrs field.ErrorList
	fldPath := field.NewPath("status")
	if tc := p.Status.TypeChecking; tc != nil {
		for i, w := range tc.ExpressionWarnings {
			wp := fldPath.Child("typeChecking", "expressionWarnings").Index(i)
			if w.Warning == "" {
				allErrs = append(allErrs, field.Required(wp.Child("warning"), ""))
			}
			ref := strings.TrimSpace(w.FieldRef)
			if ref == "" {
				allErrs = append(allErrs, field.Required(wp.Child("fieldRef"), ""))
			} else if err := jsonpath.New("spec").Parse(fmt.Sprintf("{%s}", ref)); err != nil {
				allErrs = append(allErrs, field.Invalid(wp.Child("fieldRef"), ref, fmt.Sprintf("invalid JSONPath: %v", err)))
			}
		}
	}
	return append(allErrs, metav1validation.ValidateConditions(p.Status.Conditions, fldPath.Child("conditions"))...)
}

// The columns of the two kinds, as upstream prints them.
var (
	validatingAdmissionPolicyColumns = []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Validations", Type: "integer", Description: "Validations indicates the number of validation rules defined in this configuration"},
		{Name: "ParamKind", Type: "string", Description: "ParamKind specifies the kind of resources used to parameterize this policy"},
		ageColumn,
	}
	validatingAdmissionPolicyBindingColumns = []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "PolicyName", Type: "string", Description: "PolicyName indicates the policy definition which the policy binding binded to"},
		{Name: "ParamRef", Type: "string", Description: "ParamRef indicates the param resource which sets the configration param"},
		ageColumn,
	}
)

func validatingAdmissionPolicyRow(p *admissionregistrationv1.ValidatingAdmissionPolicy) metav1.TableRow {
	return cells(p.Name, int64(len(p.Spec.Validations)), paramKindCell(p.Spec.ParamKind), translateTimestampSince(p.CreationTimestamp))
}

func validatingAdmissionPolicyBindingRow(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) metav1.TableRow {
	return cells(b.Name, b.Spec.PolicyName, paramRefCell(b.Spec.ParamRef), translateTimestampSince(b.CreationTimestamp))
}

// paramKindCell and paramRefCell print a policy's paramKind and a binding's paramRef as
// upstream's columns do.
func paramKindCell(pk *admissionregistrationv1.ParamKind) string {
	if pk == nil {
		return "<unset>"
	}
	return pk.APIVersion + "/" + pk.Kind
}

func paramRefCell(pr *admissionregistrationv1.ParamRef) string {
	switch {
	case pr == nil:
	case pr.Name != "" && pr.Namespace != "":
		return pr.Namespace + "/" + pr.Name
	case pr.Name != "":
		// the param may be cluster-scoped or in the request's namespace: upstream prints *
		return "*/" + pr.Name
	case pr.Selector != nil:
		return pr.Selector.String()
	}
	return "<unset>"
}
