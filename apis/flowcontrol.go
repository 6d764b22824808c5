package apis

import (
	"fmt"
	"math"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/apis/flowcontrol/bootstrap"
	"k8s.io/utils/ptr"
)

// flowcontrol.apiserver.k8s.io/v1 FlowSchemas classify requests to PriorityLevelConfigurations,
// which the API server's priority and fairness (apiserver/flowcontrol) queues them by. The
// mandatory objects, exempt and catch-all, keep upstream's fixed specs.

var flowcontrolV1 = flowcontrolv1.SchemeGroupVersion

// FlowSchemaStrategy, FlowSchemaStatusStrategy: spec and status as upstream's.
var FlowSchemaStrategy, FlowSchemaStatusStrategy = SpecAndStatus[*flowcontrolv1.FlowSchema]{
	Validate:       ValidateFlowSchema,
	ValidateUpdate: func(fs, _ *flowcontrolv1.FlowSchema) field.ErrorList { return ValidateFlowSchema(fs) },
}.Strategies()

// PriorityLevelConfigurationStrategy, PriorityLevelConfigurationStatusStrategy: as upstream's.
var PriorityLevelConfigurationStrategy, PriorityLevelConfigurationStatusStrategy = SpecAndStatus[*flowcontrolv1.PriorityLevelConfiguration]{
	Validate: ValidatePriorityLevelConfiguration,
	ValidateUpdate: func(plc, _ *flowcontrolv1.PriorityLevelConfiguration) field.ErrorList {
		return ValidatePriorityLevelConfiguration(plc)
	},
}.Strategies()

// DefaultFlowSchema sets upstream's v1 defaults.
func DefaultFlowSchema(fs *flowcontrolv1.FlowSchema) {
	if fs.Spec.MatchingPrecedence == 0 {
		fs.Spec.MatchingPrecedence = 1000
	}
}

// DefaultPriorityLevelConfiguration sets upstream's v1 defaults.
func DefaultPriorityLevelConfiguration(plc *flowcontrolv1.PriorityLevelConfiguration) {
	if e := plc.Spec.Exempt; e != nil {
		if e.NominalConcurrencyShares == nil {
			e.NominalConcurrencyShares = ptr.To[int32](0)
		}
		if e.LendablePercent == nil {
			e.LendablePercent = ptr.To[int32](0)
		}
	}
	if l := plc.Spec.Limited; l != nil {
		if l.NominalConcurrencyShares == nil {
			l.NominalConcurrencyShares = ptr.To[int32](30)
		}
		if l.LendablePercent == nil {
			l.LendablePercent = ptr.To[int32](0)
		}
		if q := l.LimitResponse.Queuing; q != nil {
			if q.HandSize == 0 {
				q.HandSize = 8
			}
			if q.Queues == 0 {
				q.Queues = 64
			}
			if q.QueueLengthLimit == 0 {
				q.QueueLengthLimit = 50
			}
		}
	}
}

// ValidateFlowSchema checks a FlowSchema as upstream does.
func ValidateFlowSchema(fs *flowcontrolv1.FlowSchema) field.ErrorList {
	allErrs := ValidateObjectMeta(&fs.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, metadataPath)
	specPath := field.NewPath("spec")
	spec := &fs.Spec
	if spec.MatchingPrecedence <= 0 || spec.MatchingPrecedence > 10000 {
		allErrs = append(allErrs, field.Invalid(specPath.Child("matchingPrecedence"), spec.MatchingPrecedence, "must be between 1 and 10000 inclusive"))
	}
	if spec.MatchingPrecedence == 1 && fs.Name != flowcontrolv1.FlowSchemaNameExempt {
		allErrs = append(allErrs, field.Invalid(specPath.Child("matchingPrecedence"), spec.MatchingPrecedence, "only the schema named 'exempt' may have matching precedence 1"))
	}
	if spec.DistinguisherMethod != nil {
		switch spec.DistinguisherMethod.Type {
		case flowcontrolv1.FlowDistinguisherMethodByUserType, flowcontrolv1.FlowDistinguisherMethodByNamespaceType:
		default:
			allErrs = append(allErrs, field.NotSupported(specPath.Child("distinguisherMethod").Child("type"), spec.DistinguisherMethod.Type,
				[]string{string(flowcontrolv1.FlowDistinguisherMethodByNamespaceType), string(flowcontrolv1.FlowDistinguisherMethodByUserType)}))
		}
	}
	plPath := specPath.Child("priorityLevelConfiguration").Child("name")
	if spec.PriorityLevelConfiguration.Name == "" {
		allErrs = append(allErrs, field.Required(plPath, "must reference a priority level"))
	} else {
		for _, msg := range apivalidation.NameIsDNSSubdomain(spec.PriorityLevelConfiguration.Name, false) {
			allErrs = append(allErrs, field.Invalid(plPath, spec.PriorityLevelConfiguration.Name, msg))
		}
	}
	for i := range spec.Rules {
		allErrs = append(allErrs, validatePolicyRulesWithSubjects(&spec.Rules[i], specPath.Child("rules").Index(i))...)
	}
	for _, mandatory := range bootstrap.MandatoryFlowSchemas {
		if mandatory.Name == fs.Name && !apiequality.Semantic.DeepEqual(fs.Spec, mandatory.Spec) {
			allErrs = append(allErrs, field.Invalid(specPath, fs.Spec, fmt.Sprintf("spec of '%s' must equal the fixed value", fs.Name)))
		}
	}
	return allErrs
}

func validatePolicyRulesWithSubjects(rule *flowcontrolv1.PolicyRulesWithSubjects, path *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(rule.Subjects) == 0 {
		allErrs = append(allErrs, field.Required(path.Child("subjects"), "subjects must contain at least one value"))
	}
	if len(rule.ResourceRules) == 0 && len(rule.NonResourceRules) == 0 {
		allErrs = append(allErrs, field.Required(path, "at least one of resourceRules and nonResourceRules has to be non-empty"))
	}
	for i, s := range rule.Subjects {
		allErrs = append(allErrs, validateFlowSubject(&s, path.Child("subjects").Index(i))...)
	}
	for i := range rule.ResourceRules {
		r := &rule.ResourceRules[i]
		rp := path.Child("resourceRules").Index(i)
		allErrs = append(allErrs, validateRuleList(r.Verbs, flowcontrolv1.VerbAll, "verbs", rp)...)
		allErrs = append(allErrs, validateRuleList(r.APIGroups, flowcontrolv1.APIGroupAll, "apiGroups", rp)...)
		allErrs = append(allErrs, validateRuleList(r.Resources, flowcontrolv1.ResourceAll, "resources", rp)...)
		if len(r.Namespaces) == 0 && !r.ClusterScope {
			allErrs = append(allErrs, field.Required(rp.Child("namespaces"), "resource rules that are not cluster scoped must supply at least one namespace"))
		} else if len(r.Namespaces) > 1 && contains(r.Namespaces, flowcontrolv1.NamespaceEvery) {
			allErrs = append(allErrs, field.Invalid(rp.Child("namespaces"), r.Namespaces, "if '*' is present, must not specify other namespaces"))
		} else {
			for k, ns := range r.Namespaces {
				if ns == flowcontrolv1.NamespaceEvery {
					continue
				}
				for _, msg := range apivalidation.ValidateNamespaceName(ns, false) {
					allErrs = append(allErrs, field.Invalid(rp.Child("namespaces").Index(k), ns, msg))
				}
			}
		}
	}
	for i := range rule.NonResourceRules {
		r := &rule.NonResourceRules[i]
		rp := path.Child("nonResourceRules").Index(i)
		allErrs = append(allErrs, validateRuleList(r.Verbs, flowcontrolv1.VerbAll, "verbs", rp)...)
		allErrs = append(allErrs, validateRuleList(r.NonResourceURLs, flowcontrolv1.NonResourceAll, "nonResourceURLs", rp)...)
	}
	return allErrs
}

// validateRuleList: a list must have a value, and '*' stands alone.
func validateRuleList(list []string, all, name string, path *field.Path) field.ErrorList {
	if len(list) == 0 {
		return field.ErrorList{field.Required(path.Child(name), name+" must contain at least one value")}
	}
	if len(list) > 1 && contains(list, all) {
		return field.ErrorList{field.Invalid(path.Child(name), list, "if '*' is present, must not specify other "+name)}
	}
	return nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func validateFlowSubject(s *flowcontrolv1.Subject, path *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	switch s.Kind {
	case flowcontrolv1.SubjectKindServiceAccount:
		if s.ServiceAccount == nil {
			allErrs = append(allErrs, field.Required(path.Child("serviceAccount"), "serviceAccount is required when subject kind is 'ServiceAccount'"))
		} else {
			if s.ServiceAccount.Name == "" {
				allErrs = append(allErrs, field.Required(path.Child("serviceAccount").Child("name"), ""))
			}
			if s.ServiceAccount.Namespace == "" {
				allErrs = append(allErrs, field.Required(path.Child("serviceAccount").Child("namespace"), ""))
			}
		}
	case flowcontrolv1.SubjectKindUser:
		if s.User == nil {
			allErrs = append(allErrs, field.Required(path.Child("user"), "user is required when subject kind is 'User'"))
		} else if s.User.Name == "" {
			allErrs = append(allErrs, field.Required(path.Child("user").Child("name"), ""))
		}
	case flowcontrolv1.SubjectKindGroup:
		if s.Group == nil {
			allErrs = append(allErrs, field.Required(path.Child("group"), "group is required when subject kind is 'Group'"))
		} else if s.Group.Name == "" {
			allErrs = append(allErrs, field.Required(path.Child("group").Child("name"), ""))
		}
	default:
		allErrs = append(allErrs, field.NotSupported(path.Child("kind"), s.Kind,
			[]string{string(flowcontrolv1.SubjectKindGroup), string(flowcontrolv1.SubjectKindServiceAccount), string(flowcontrolv1.SubjectKindUser)}))
	}
	return allErrs
}

// ValidatePriorityLevelConfiguration checks a PriorityLevelConfiguration as upstream does.
func ValidatePriorityLevelConfiguration(plc *flowcontrolv1.PriorityLevelConfiguration) field.ErrorList {
	allErrs := ValidateObjectMeta(&plc.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, metadataPath)
	specPath := field.NewPath("spec")
	spec := &plc.Spec
	switch spec.Type {
	case flowcontrolv1.PriorityLevelEnablementExempt:
		if spec.Limited != nil {
			allErrs = append(allErrs, field.Forbidden(specPath.Child("limited"), "must be nil if the type is not Limited"))
		}
		if e := spec.Exempt; e != nil {
			if e.NominalConcurrencyShares != nil && *e.NominalConcurrencyShares < 0 {
				allErrs = append(allErrs, field.Invalid(specPath.Child("exempt").Child("nominalConcurrencyShares"), *e.NominalConcurrencyShares, "must be a non-negative number"))
			}
			allErrs = append(allErrs, validateLendablePercent(e.LendablePercent, specPath.Child("exempt").Child("lendablePercent"))...)
		}
	case flowcontrolv1.PriorityLevelEnablementLimited:
		if spec.Exempt != nil {
			allErrs = append(allErrs, field.Forbidden(specPath.Child("exempt"), "must be nil if the type is Limited"))
		}
		if spec.Limited == nil {
			allErrs = append(allErrs, field.Required(specPath.Child("limited"), "must not be empty when type is Limited"))
			break
		}
		lp := specPath.Child("limited")
		l := spec.Limited
		if l.NominalConcurrencyShares != nil && *l.NominalConcurrencyShares < 0 {
			allErrs = append(allErrs, field.Invalid(lp.Child("nominalConcurrencyShares"), *l.NominalConcurrencyShares, "must be a non-negative integer"))
		}
		allErrs = append(allErrs, validateLendablePercent(l.LendablePercent, lp.Child("lendablePercent"))...)
		if l.BorrowingLimitPercent != nil && *l.BorrowingLimitPercent < 0 {
			allErrs = append(allErrs, field.Invalid(lp.Child("borrowingLimitPercent"), *l.BorrowingLimitPercent, "if specified, must be a non-negative integer"))
		}
		allErrs = append(allErrs, validateLimitResponse(&l.LimitResponse, lp.Child("limitResponse"))...)
	default:
		allErrs = append(allErrs, field.NotSupported(specPath.Child("type"), spec.Type,
			[]string{string(flowcontrolv1.PriorityLevelEnablementExempt), string(flowcontrolv1.PriorityLevelEnablementLimited)}))
	}
	for _, mandatory := range bootstrap.MandatoryPriorityLevelConfigurations {
		if mandatory.Name != plc.Name {
			continue
		}
		want := mandatory.DeepCopy()
		DefaultPriorityLevelConfiguration(want)
		if !apiequality.Semantic.DeepEqual(plc.Spec, want.Spec) {
			allErrs = append(allErrs, field.Invalid(specPath, plc.Spec, fmt.Sprintf("spec of '%s' must equal the fixed value", plc.Name)))
		}
	}
	return allErrs
}

func validateLendablePercent(v *int32, path *field.Path) field.ErrorList {
	if v != nil && (*v < 0 || *v > 100) {
		return field.ErrorList{field.Invalid(path, *v, "must be between 0 and 100, inclusive")}
	}
	return nil
}

func validateLimitResponse(lr *flowcontrolv1.LimitResponse, path *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	switch lr.Type {
	case flowcontrolv1.LimitResponseTypeReject:
		if lr.Queuing != nil {
			allErrs = append(allErrs, field.Forbidden(path.Child("queuing"), "must be nil if limited.limitResponse.type is not Limited"))
		}
	case flowcontrolv1.LimitResponseTypeQueue:
		if lr.Queuing == nil {
			allErrs = append(allErrs, field.Required(path.Child("queuing"), "must not be empty if limited.limitResponse.type is Limited"))
			break
		}
		q := lr.Queuing
		qp := path.Child("queuing")
		if q.QueueLengthLimit <= 0 {
			allErrs = append(allErrs, field.Invalid(qp.Child("queueLengthLimit"), q.QueueLengthLimit, "must be positive"))
		}
		if q.Queues <= 0 {
			allErrs = append(allErrs, field.Invalid(qp.Child("queues"), q.Queues, "must be positive"))
		} else if q.Queues > 1 {
			if q.HandSize > q.Queues {
				allErrs = append(allErrs, field.Invalid(qp.Child("handSize"), q.HandSize, fmt.Sprintf("should not be greater than queues (%d)", q.Queues)))
			} else if q.HandSize > 0 {
				// the hand is dealt from 60 bits of hash, as upstream's shuffle-sharding dealer
				bits := math.Log2(float64(q.Queues)) * float64(q.HandSize)
				if bits > 60 {
					allErrs = append(allErrs, field.Invalid(qp.Child("handSize"), q.HandSize,
						fmt.Sprintf("required entropy bits of deckSize %d and handSize %d should not be greater than 60", q.Queues, q.HandSize)))
				}
			}
		}
		if q.HandSize <= 0 {
			allErrs = append(allErrs, field.Invalid(qp.Child("handSize"), q.HandSize, "must be positive"))
		}
	default:
		allErrs = append(allErrs, field.NotSupported(path.Child("type"), lr.Type,
			[]string{string(flowcontrolv1.LimitResponseTypeQueue), string(flowcontrolv1.LimitResponseTypeReject)}))
	}
	return allErrs
}

func flowSchemaTable() *TablePrinter {
	return Columns([]metav1.TableColumnDefinition{
		nameColumn,
		{Name: "PriorityLevel", Type: "string", Description: "priorityLevelConfiguration should reference a PriorityLevelConfiguration in the cluster. If the reference cannot be resolved, the FlowSchema will be ignored and marked as invalid in its status. Required."},
		{Name: "MatchingPrecedence", Type: "string", Description: "matchingPrecedence is used to choose among the FlowSchemas that match a given request. The chosen FlowSchema is among those with the numerically lowest (which we take to be logically highest) MatchingPrecedence.  Each MatchingPrecedence value must be ranged in [1,10000]. Note that if the precedence is not specified, it will be set to 1000 as default."},
		{Name: "DistinguisherMethod", Type: "string", Description: "`distinguisherMethod` defines how to compute the flow distinguisher for requests that match this schema. `nil` specifies that the distinguisher is disabled and thus will always be the empty string."},
		ageColumn,
		{Name: "MissingPL", Type: "string", Description: "indicates whether the FlowSchema references a PriorityLevelConfiguration that does not exist"},
	}, func(fs *flowcontrolv1.FlowSchema) metav1.TableRow {
		method := "<none>"
		if fs.Spec.DistinguisherMethod != nil {
			method = string(fs.Spec.DistinguisherMethod.Type)
		}
		missing := "?"
		for _, c := range fs.Status.Conditions {
			if c.Type == flowcontrolv1.FlowSchemaConditionDangling {
				missing = string(c.Status)
				break
			}
		}
		return cells(fs.Name, fs.Spec.PriorityLevelConfiguration.Name, int64(fs.Spec.MatchingPrecedence), method, translateTimestampSince(fs.CreationTimestamp), missing)
	})
}

func priorityLevelConfigurationTable() *TablePrinter {
	return Columns([]metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Type", Type: "string", Description: "`type` indicates whether this priority level is subject to limitation on request execution.  A value of `\"Exempt\"` means that requests of this priority level are not subject to a limit (and thus are never queued) and do not detract from the capacity made available to other priority levels.  A value of `\"Limited\"` means that (a) requests of this priority level _are_ subject to limits and (b) some of the server's limited capacity is made available exclusively to this priority level. Required."},
		{Name: "NominalConcurrencyShares", Type: "string", Description: "nominalConcurrencyShares (NCS) contributes to the computation of the NominalConcurrencyLimit (NominalCL) of this level."},
		{Name: "Queues", Type: "string", Description: "`queues` is the number of queues for this priority level. The queues exist independently at each apiserver. The value must be positive.  Setting it to 1 effectively precludes shufflesharding and thus makes the distinguisher method of associated flow schemas irrelevant.  This field has a default value of 64."},
		{Name: "HandSize", Type: "string", Description: "`handSize` is a small positive number that configures the shuffle sharding of requests into queues.  When enqueuing a request at this priority level the request's flow identifier (a string pair) is hashed and the hash value is used to shuffle the list of queues and deal a hand of the size specified here."},
		{Name: "QueueLengthLimit", Type: "string", Description: "`queueLengthLimit` is the maximum number of requests allowed to be waiting in a given queue of this priority level at a time; excess requests are rejected.  This value must be positive.  If not specified, it will be defaulted to 50."},
		ageColumn,
	}, func(plc *flowcontrolv1.PriorityLevelConfiguration) metav1.TableRow {
		var ncs, queues, handSize, queueLength interface{} = "<none>", "<none>", "<none>", "<none>"
		if l := plc.Spec.Limited; l != nil {
			if l.NominalConcurrencyShares != nil {
				ncs = int64(*l.NominalConcurrencyShares)
			}
			if q := l.LimitResponse.Queuing; q != nil {
				queues, handSize, queueLength = int64(q.Queues), int64(q.HandSize), int64(q.QueueLengthLimit)
			}
		}
		return cells(plc.Name, string(plc.Spec.Type), ncs, queues, handSize, queueLength, translateTimestampSince(plc.CreationTimestamp))
	})
}
