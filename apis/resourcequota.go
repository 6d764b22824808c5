package apis

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ResourceQuotas (v1): per-namespace limits on what objects may ask for in total and on how
// many there may be. The quota controller keeps status.used; the ResourceQuota admission
// plugin refuses what would exceed status.hard. Upstream's validation and columns.

// ResourceQuotaStrategy and ResourceQuotaStatusStrategy are the strategies of resourcequotas
// and resourcequotas/status.
var ResourceQuotaStrategy, ResourceQuotaStatusStrategy = SpecAndStatus[*corev1.ResourceQuota]{
	Validate:             ValidateResourceQuota,
	ValidateUpdate:       ValidateResourceQuotaUpdate,
	ValidateStatusUpdate: ValidateResourceQuotaStatusUpdate,
}.Strategies()

// StandardQuotaResources are the unqualified resource names a quota may limit.
var StandardQuotaResources = sets.New[corev1.ResourceName](
	corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage,
	corev1.ResourceRequestsCPU, corev1.ResourceRequestsMemory, corev1.ResourceRequestsStorage, corev1.ResourceRequestsEphemeralStorage,
	corev1.ResourceLimitsCPU, corev1.ResourceLimitsMemory, corev1.ResourceLimitsEphemeralStorage,
	corev1.ResourcePods, corev1.ResourceQuotas, corev1.ResourceServices, corev1.ResourceReplicationControllers,
	corev1.ResourceSecrets, corev1.ResourcePersistentVolumeClaims, corev1.ResourceConfigMaps,
	corev1.ResourceServicesNodePorts, corev1.ResourceServicesLoadBalancers,
)

func isStandardQuotaResourceName(name corev1.ResourceName) bool {
	return StandardQuotaResources.Has(name) || strings.HasPrefix(string(name), corev1.ResourceRequestsHugePagesPrefix)
}

var standardQuotaScopes = sets.New(
	corev1.ResourceQuotaScopeTerminating, corev1.ResourceQuotaScopeNotTerminating, corev1.ResourceQuotaScopeBestEffort,
	corev1.ResourceQuotaScopeNotBestEffort, corev1.ResourceQuotaScopePriorityClass, corev1.ResourceQuotaScopeCrossNamespacePodAffinity,
	corev1.ResourceQuotaScopeVolumeAttributesClass,
)

// PodComputeQuotaResources are the compute resources a pod-scoped quota may limit.
var PodComputeQuotaResources = sets.New[corev1.ResourceName](corev1.ResourceCPU, corev1.ResourceLimitsCPU, corev1.ResourceMemory,
	corev1.ResourceLimitsMemory, corev1.ResourceRequestsCPU, corev1.ResourceRequestsMemory)

// scopeValidForResource is upstream's: pod scopes limit pods and their compute resources,
// BestEffort only the pod count.
func scopeValidForResource(scope corev1.ResourceQuotaScope, name corev1.ResourceName) bool {
	switch scope {
	case corev1.ResourceQuotaScopeTerminating, corev1.ResourceQuotaScopeNotTerminating, corev1.ResourceQuotaScopeNotBestEffort,
		corev1.ResourceQuotaScopePriorityClass, corev1.ResourceQuotaScopeCrossNamespacePodAffinity:
		return name == corev1.ResourcePods || PodComputeQuotaResources.Has(name)
	case corev1.ResourceQuotaScopeBestEffort:
		return name == corev1.ResourcePods
	}
	return true
}

// ValidateResourceQuota checks a new quota.
func ValidateResourceQuota(q *corev1.ResourceQuota) field.ErrorList {
	allErrs := ValidateObjectMeta(&q.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, metadataPath)
	allErrs = append(allErrs, validateResourceQuotaSpec(&q.Spec, field.NewPath("spec"))...)
	return append(allErrs, validateResourceQuotaStatus(&q.Status, field.NewPath("status"))...)
}

// ValidateResourceQuotaUpdate checks q replacing old: the scopes never change.
func ValidateResourceQuotaUpdate(q, old *corev1.ResourceQuota) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&q.ObjectMeta, &old.ObjectMeta, metadataPath)
	allErrs = append(allErrs, validateResourceQuotaSpec(&q.Spec, field.NewPath("spec"))...)
	if !apiequality.Semantic.DeepEqual(q.Spec.Scopes, old.Spec.Scopes) {
		allErrs = append(allErrs, field.Invalid(field.NewPath("spec", "scopes"), q.Spec.Scopes, "field is immutable"))
	}
	return allErrs
}

// ValidateResourceQuotaStatusUpdate checks a write of resourcequotas/status.
func ValidateResourceQuotaStatusUpdate(q, old *corev1.ResourceQuota) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&q.ObjectMeta, &old.ObjectMeta, metadataPath)
	return append(allErrs, validateResourceQuotaStatus(&q.Status, field.NewPath("status"))...)
}

func validateQuotaResourceList(list corev1.ResourceList, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for _, k := range sortedResourceNames(list) {
		resPath := fldPath.Key(string(k))
		allErrs = append(allErrs, validateResourceQuotaResourceName(k, resPath)...)
		allErrs = append(allErrs, validateResourceQuantityValue(k, list[k], resPath)...)
	}
	return allErrs
}

func validateResourceQuotaResourceName(name corev1.ResourceName, fldPath *field.Path) field.ErrorList {
	allErrs := validateComputeResourceName(name, fldPath)
	if !strings.Contains(string(name), "/") && !isStandardQuotaResourceName(name) {
		allErrs = append(allErrs, field.Invalid(fldPath, name, "must be a standard resource for quota"))
	}
	return allErrs
}

func validateResourceQuotaStatus(status *corev1.ResourceQuotaStatus, fldPath *field.Path) field.ErrorList {
	allErrs := validateQuotaResourceList(status.Hard, fldPath.Child("hard"))
	return append(allErrs, validateQuotaResourceList(status.Used, fldPath.Child("used"))...)
}

func validateResourceQuotaSpec(spec *corev1.ResourceQuotaSpec, fldPath *field.Path) field.ErrorList {
	allErrs := validateQuotaResourceList(spec.Hard, fldPath.Child("hard"))
	allErrs = append(allErrs, validateResourceQuotaScopes(spec, fldPath)...)
	if spec.ScopeSelector != nil {
		allErrs = append(allErrs, validateScopeSelector(spec, fldPath.Child("scopeSelector"))...)
	}
	return allErrs
}

var conflictingScopes = [][2]corev1.ResourceQuotaScope{
	{corev1.ResourceQuotaScopeBestEffort, corev1.ResourceQuotaScopeNotBestEffort},
	{corev1.ResourceQuotaScopeTerminating, corev1.ResourceQuotaScopeNotTerminating},
}

func validateResourceQuotaScopes(spec *corev1.ResourceQuotaSpec, fld *field.Path) field.ErrorList {
	if len(spec.Scopes) == 0 {
		return nil
	}
	var allErrs field.ErrorList
	fldPath := fld.Child("scopes")
	hard := sortedResourceNames(spec.Hard)
	seen := sets.New[corev1.ResourceQuotaScope]()
	for _, scope := range spec.Scopes {
		if !standardQuotaScopes.Has(scope) {
			allErrs = append(allErrs, field.Invalid(fldPath, spec.Scopes, "unsupported scope"))
		}
		for _, k := range hard {
			if isStandardQuotaResourceName(k) && !scopeValidForResource(scope, k) {
				allErrs = append(allErrs, field.Invalid(fldPath, spec.Scopes, "unsupported scope applied to resource"))
			}
		}
		seen.Insert(scope)
	}
	for _, pair := range conflictingScopes {
		if seen.HasAll(pair[0], pair[1]) {
			allErrs = append(allErrs, field.Invalid(fldPath, spec.Scopes, "conflicting scopes"))
		}
	}
	return allErrs
}

func validateScopeSelector(spec *corev1.ResourceQuotaSpec, fld *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	fldPath := fld.Child("matchExpressions")
	hard := sortedResourceNames(spec.Hard)
	seen := sets.New[corev1.ResourceQuotaScope]()
	for _, req := range spec.ScopeSelector.MatchExpressions {
		if !standardQuotaScopes.Has(req.ScopeName) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("scopeName"), req.ScopeName, "unsupported scope"))
		}
		for _, k := range hard {
			if isStandardQuotaResourceName(k) && !scopeValidForResource(req.ScopeName, k) {
				allErrs = append(allErrs, field.Invalid(fldPath, spec.ScopeSelector, "unsupported scope applied to resource"))
			}
		}
		switch req.ScopeName {
		case corev1.ResourceQuotaScopeBestEffort, corev1.ResourceQuotaScopeNotBestEffort, corev1.ResourceQuotaScopeTerminating,
			corev1.ResourceQuotaScopeNotTerminating, corev1.ResourceQuotaScopeCrossNamespacePodAffinity:
			if req.Operator != corev1.ScopeSelectorOpExists {
				allErrs = append(allErrs, field.Invalid(fldPath.Child("operator"), req.Operator,
					"must be 'Exist' when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity"))
			}
		}
		switch req.Operator {
		case corev1.ScopeSelectorOpIn, corev1.ScopeSelectorOpNotIn:
			if len(req.Values) == 0 {
				allErrs = append(allErrs, field.Required(fldPath.Child("values"), "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector"))
			}
		case corev1.ScopeSelectorOpExists, corev1.ScopeSelectorOpDoesNotExist:
			if len(req.Values) != 0 {
				allErrs = append(allErrs, field.Invalid(fldPath.Child("values"), req.Values, "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector"))
			}
		default:
			allErrs = append(allErrs, field.Invalid(fldPath.Child("operator"), req.Operator, "not a valid selector operator"))
		}
		seen.Insert(req.ScopeName)
	}
	for _, pair := range conflictingScopes {
		if seen.HasAll(pair[0], pair[1]) {
			allErrs = append(allErrs, field.Invalid(fldPath, spec.ScopeSelector, "conflicting scopes"))
		}
	}
	return allErrs
}

func sortedResourceNames(list corev1.ResourceList) []corev1.ResourceName {
	names := make([]corev1.ResourceName, 0, len(list))
	for k := range list {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
	return names
}

// resourceQuotaTable prints quotas as upstream: used/hard of each resource, limits.* under
// Limit and the rest under Request.
func resourceQuotaTable() *TablePrinter {
	return Columns(
		[]metav1.TableColumnDefinition{
			nameColumn,
			ageColumn,
			{Name: "Request", Type: "string", Description: "Request represents a minimum amount of cpu/memory that a container may consume."},
			{Name: "Limit", Type: "string", Description: "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."},
		},
		func(q *corev1.ResourceQuota) metav1.TableRow {
			var requests, limits []string
			for _, k := range sortedResourceNames(q.Status.Hard) {
				used, hard := q.Status.Used[k], q.Status.Hard[k]
				cell := fmt.Sprintf("%s: %s/%s", k, used.String(), hard.String())
				if pieces := strings.Split(string(k), "."); len(pieces) > 1 && pieces[0] == "limits" {
					limits = append(limits, cell)
				} else {
					requests = append(requests, cell)
				}
			}
			return cells(q.Name, translateTimestampSince(q.CreationTimestamp), strings.Join(requests, ", "), strings.Join(limits, ", "))
		})
}
