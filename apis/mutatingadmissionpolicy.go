package apis

import (
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// MutatingAdmissionPolicies and their bindings (admissionregistration.k8s.io/v1, GA in 1.36):
// CEL mutations the API server applies to writes (apiserver/admissionpolicy runs them).
// Upstream's defaulting, validation (every expression compiled; a bad one is a 422 with the
// compiler's words; only CREATE, UPDATE and CONNECT may be matched) and columns. Neither kind
// has a status; both count their spec's changes in metadata.generation.

// MutatingAdmissionPolicyStrategy and MutatingAdmissionPolicyBindingStrategy are the
// strategies of mutatingadmissionpolicies and mutatingadmissionpolicybindings.
var (
	MutatingAdmissionPolicyStrategy Strategy = specGeneration[*admissionregistrationv1.MutatingAdmissionPolicy]{
		validate: ValidateMutatingAdmissionPolicy,
		validateUpdate: func(p, old *admissionregistrationv1.MutatingAdmissionPolicy) field.ErrorList {
			allErrs := ValidateObjectMetaUpdate(&p.ObjectMeta, &old.ObjectMeta, metadataPath)
			return append(allErrs, ValidateMutatingAdmissionPolicyUpdate(p, old)...)
		},
	}
	MutatingAdmissionPolicyBindingStrategy Strategy = specGeneration[*admissionregistrationv1.MutatingAdmissionPolicyBinding]{
		validate: ValidateMutatingAdmissionPolicyBinding,
		validateUpdate: func(b, old *admissionregistrationv1.MutatingAdmissionPolicyBinding) field.ErrorList {
			allErrs := ValidateObjectMetaUpdate(&b.ObjectMeta, &old.ObjectMeta, metadataPath)
			return append(allErrs, validateMutatingAdmissionPolicyBindingSpec(&b.Spec, field.NewPath("spec"))...)
		},
	}
)

// DefaultMutatingAdmissionPolicy: failurePolicy Fail and the match constraints' defaults, as
// upstream's v1 defaulting. reinvocationPolicy has no default: it is required.
func DefaultMutatingAdmissionPolicy(p *admissionregistrationv1.MutatingAdmissionPolicy) {
	if p.Spec.FailurePolicy == nil {
		fail := admissionregistrationv1.Fail
		p.Spec.FailurePolicy = &fail
	}
	defaultMatchResources(p.Spec.MatchConstraints)
}

// DefaultMutatingAdmissionPolicyBinding fills in the match resources' defaults (and, unlike a
// validating binding's, leaves a paramRef's parameterNotFoundAction as written).
func DefaultMutatingAdmissionPolicyBinding(b *admissionregistrationv1.MutatingAdmissionPolicyBinding) {
	defaultMatchResources(b.Spec.MatchResources)
}

var (
	supportedPatchTypes = sets.NewString(string(admissionregistrationv1.PatchTypeApplyConfiguration),
		string(admissionregistrationv1.PatchTypeJSONPatch))
	// a mutating policy cannot act on a delete
	supportedMutatingOperations = sets.NewString(string(admissionregistrationv1.OperationAll), string(admissionregistrationv1.Create),
		string(admissionregistrationv1.Update), string(admissionregistrationv1.Connect))
	supportedReinvocationPolicies = sets.NewString(string(admissionregistrationv1.NeverReinvocationPolicy),
		string(admissionregistrationv1.IfNeededReinvocationPolicy))
)

// ValidateMutatingAdmissionPolicy checks a new policy, compiling each of its expressions.
func ValidateMutatingAdmissionPolicy(p *admissionregistrationv1.MutatingAdmissionPolicy) field.ErrorList {
	allErrs := ValidateObjectMeta(&p.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, metadataPath)
	return append(allErrs, validateMutatingPolicySpec(&p.Spec, nil)...)
}

// ValidateMutatingAdmissionPolicyUpdate checks p replacing old; the expressions old held
// compile in the stored-expressions environment.
func ValidateMutatingAdmissionPolicyUpdate(p, old *admissionregistrationv1.MutatingAdmissionPolicy) field.ErrorList {
	stored := sets.New[string]()
	for _, mc := range old.Spec.MatchConditions {
		stored.Insert(mc.Expression)
	}
	for _, m := range old.Spec.Mutations {
		if m.ApplyConfiguration != nil {
			stored.Insert(m.ApplyConfiguration.Expression)
		}
		if m.JSONPatch != nil {
			stored.Insert(m.JSONPatch.Expression)
		}
	}
	return validateMutatingPolicySpec(&p.Spec, stored)
}

func validateMutatingPolicySpec(spec *admissionregistrationv1.MutatingAdmissionPolicySpec, stored sets.Set[string]) field.ErrorList {
	fldPath := field.NewPath("spec")
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
		if len(spec.MatchConstraints.ResourceRules) == 0 {
			allErrs = append(allErrs, field.Required(fldPath.Child("matchConstraints", "resourceRules"), ""))
		}
		allErrs = append(allErrs, validateMutatingOperations(spec.MatchConstraints, fldPath.Child("matchConstraints", "resourceRules", "operations"))...)
	}
	allErrs = append(allErrs, validatePolicyMatchConditions(c, spec.MatchConditions, fldPath.Child("matchConditions"))...)
	allErrs = append(allErrs, validatePolicyVariables(c, spec.Variables, fldPath.Child("variables"))...)
	if len(spec.Mutations) == 0 {
		allErrs = append(allErrs, field.Required(fldPath.Child("mutations"), "mutations must contain at least one item"))
	}
	for i := range spec.Mutations {
		allErrs = append(allErrs, validateMutation(c, &spec.Mutations[i], fldPath.Child("mutations").Index(i))...)
	}
	if spec.ReinvocationPolicy == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("reinvocationPolicy"), ""))
	} else if !supportedReinvocationPolicies.Has(string(spec.ReinvocationPolicy)) {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("reinvocationPolicy"), spec.ReinvocationPolicy, supportedReinvocationPolicies.List()))
	}
	return allErrs
}

// validateMutatingOperations refuses rules that would match a DELETE.
func validateMutatingOperations(m *admissionregistrationv1.MatchResources, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for _, rule := range m.ResourceRules {
		for _, op := range rule.Operations {
			if !supportedMutatingOperations.Has(string(op)) {
				allErrs = append(allErrs, field.NotSupported(fldPath, op, supportedMutatingOperations.List()))
			}
		}
	}
	return allErrs
}

func validateMutation(c *policyCompiler, m *admissionregistrationv1.Mutation, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	switch m.PatchType {
	case "":
		allErrs = append(allErrs, field.Required(fldPath.Child("patchType"), ""))
	case admissionregistrationv1.PatchTypeJSONPatch:
		if m.JSONPatch == nil {
			allErrs = append(allErrs, field.Required(fldPath.Child("jsonPatch"), "must be specified when patchType is JSONPatch"))
		} else {
			allErrs = append(allErrs, c.compileMutation(fldPath.Child("jsonPatch", "expression"), m.JSONPatch.Expression, JSONPatchExpression)...)
		}
		if m.ApplyConfiguration != nil {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("applyConfiguration"), "{applyConfiguration}", "must not be specified when patchType is JSONPatch"))
		}
	case admissionregistrationv1.PatchTypeApplyConfiguration:
		if m.ApplyConfiguration == nil {
			allErrs = append(allErrs, field.Required(fldPath.Child("applyConfiguration"), "must be specified when patchType is ApplyConfiguration"))
		} else {
			allErrs = append(allErrs, c.compileMutation(fldPath.Child("applyConfiguration", "expression"), m.ApplyConfiguration.Expression, ApplyConfigurationExpression)...)
		}
		if m.JSONPatch != nil {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("jsonPatch"), "{jsonPatch}", "must not be specified when patchType is ApplyConfiguration"))
		}
	default:
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("patchType"), m.PatchType, supportedPatchTypes.List()))
	}
	return allErrs
}

// compileMutation compiles a mutation's expression with the patch types (Object{...},
// JSONPatch{...}) declared.
func (c *policyCompiler) compileMutation(fldPath *field.Path, expression string, types []*celType) field.ErrorList {
	trimmed := strings.TrimSpace(expression)
	if trimmed == "" {
		return field.ErrorList{field.Required(fldPath, "")}
	}
	e := &PolicyExpression{Expression: trimmed, Types: types}
	env := c.env(expression)
	res := c.compiler.CompileCELExpression(e, MutationDeclarations(c.hasParams), env)
	if res.Error == nil {
		return nil
	}
	return field.ErrorList{celFieldError(fldPath, trimmed, res.Error)}
}

// ValidateMutatingAdmissionPolicyBinding checks a new binding.
func ValidateMutatingAdmissionPolicyBinding(b *admissionregistrationv1.MutatingAdmissionPolicyBinding) field.ErrorList {
	allErrs := ValidateObjectMeta(&b.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, metadataPath)
	return append(allErrs, validateMutatingAdmissionPolicyBindingSpec(&b.Spec, field.NewPath("spec"))...)
}

func validateMutatingAdmissionPolicyBindingSpec(spec *admissionregistrationv1.MutatingAdmissionPolicyBindingSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if spec.PolicyName == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("policyName"), ""))
	} else {
		for _, msg := range apivalidation.NameIsDNSSubdomain(spec.PolicyName, false) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("policyName"), spec.PolicyName, msg))
		}
	}
	allErrs = append(allErrs, validateParamRef(spec.ParamRef, fldPath.Child("paramRef"))...)
	if spec.MatchResources != nil {
		allErrs = append(allErrs, validateMatchResources(spec.MatchResources, fldPath.Child("matchResources"))...)
		allErrs = append(allErrs, validateMutatingOperations(spec.MatchResources, fldPath.Child("matchResources", "resourceRules", "operations"))...)
	}
	return allErrs
}

// The columns of the two kinds, as upstream prints them.
var (
	mutatingAdmissionPolicyColumns = []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Mutations", Type: "integer", Description: "Mutation indicates the number of mutations rules defined in this configuration"},
		{Name: "ParamKind", Type: "string", Description: "ParamKind specifies the kind of resources used to parameterize this policy"},
		ageColumn,
	}
	mutatingAdmissionPolicyBindingColumns = []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "PolicyName", Type: "string", Description: "PolicyName indicates the policy definition which the policy binding binded to"},
		{Name: "ParamRef", Type: "string", Description: "ParamRef indicates the param resource which sets the configuration param"},
		ageColumn,
	}
)

func mutatingAdmissionPolicyRow(p *admissionregistrationv1.MutatingAdmissionPolicy) metav1.TableRow {
	return cells(p.Name, int64(len(p.Spec.Mutations)), paramKindCell(p.Spec.ParamKind), translateTimestampSince(p.CreationTimestamp))
}

func mutatingAdmissionPolicyBindingRow(b *admissionregistrationv1.MutatingAdmissionPolicyBinding) metav1.TableRow {
	return cells(b.Name, b.Spec.PolicyName, paramRefCell(b.Spec.ParamRef), translateTimestampSince(b.CreationTimestamp))
}
