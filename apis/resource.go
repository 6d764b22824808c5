package apis

import (
	"errors"
	"fmt"
	"strings"

	resourcev1 "k8s.io/api/resource/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	apiservercel "k8s.io/apiserver/pkg/cel"
	"k8s.io/apiserver/pkg/cel/environment"
	dracel "k8s.io/dynamic-resource-allocation/cel"
)

// resource.k8s.io/v1, dynamic resource allocation (DRA): DeviceClasses and ResourceSlices
// describe devices, ResourceClaims and their templates ask for them, DeviceTaintRules taint
// them. skiff stores and validates them as upstream; it runs no DRA allocator or driver yet,
// so claims stay pending unless something else allocates them.
//
// Validation covers upstream's structural rules (names, required fields, enum values, list
// sizes and uniqueness, the node selection of a slice) and compiles CEL selectors with the
// DRA CEL environment of k8s.io/dynamic-resource-allocation. Not covered: device attributes
// and capacities in detail, shared counters, constraints' attribute references, allocation
// results beyond their shape, and opaque configuration parameters.

var resourceV1 = resourcev1.SchemeGroupVersion

func resourceSliceFields(obj runtime.Object) fields.Set {
	set := objectMetaFields(obj)
	s := obj.(*resourcev1.ResourceSlice)
	set["spec.driver"] = s.Spec.Driver
	set["spec.nodeName"] = ""
	if s.Spec.NodeName != nil {
		set["spec.nodeName"] = *s.Spec.NodeName
	}
	return set
}

// defaultDeviceRequests fills in upstream's defaults of a claim's requests: one device, of
// the class asked for; tolerations compare by equality.
func defaultDeviceRequests(spec *resourcev1.ResourceClaimSpec) {
	defaultMode := func(mode *resourcev1.DeviceAllocationMode, count *int64) {
		if *mode == "" {
			*mode = resourcev1.DeviceAllocationModeExactCount
		}
		if *mode == resourcev1.DeviceAllocationModeExactCount && *count == 0 {
			*count = 1
		}
	}
	defaultTolerations := func(ts []resourcev1.DeviceToleration) {
		for i := range ts {
			if ts[i].Operator == "" {
				ts[i].Operator = resourcev1.DeviceTolerationOpEqual
			}
		}
	}
	for i := range spec.Devices.Requests {
		r := &spec.Devices.Requests[i]
		if r.Exactly != nil {
			defaultMode(&r.Exactly.AllocationMode, &r.Exactly.Count)
			defaultTolerations(r.Exactly.Tolerations)
		}
		for j := range r.FirstAvailable {
			defaultMode(&r.FirstAvailable[j].AllocationMode, &r.FirstAvailable[j].Count)
			defaultTolerations(r.FirstAvailable[j].Tolerations)
		}
	}
}

func defaultResourceClaim(c *resourcev1.ResourceClaim) { defaultDeviceRequests(&c.Spec) }
func defaultResourceClaimTemplate(t *resourcev1.ResourceClaimTemplate) {
	defaultDeviceRequests(&t.Spec.Spec)
}

// validateCELSelector compiles a selector expression in the environment drivers' devices are
// matched in, as upstream does when the expression is new.
func validateCELSelector(expr string, path *field.Path) field.ErrorList {
	if len(expr) > resourcev1.CELSelectorExpressionMaxLength {
		return field.ErrorList{field.TooLong(path, "", resourcev1.CELSelectorExpressionMaxLength)}
	}
	envType := environment.NewExpressions
	result := dracel.GetCompiler(dracel.Features{}).CompileCELExpression(expr, dracel.Options{EnvType: &envType})
	if result.Error != nil {
		var celErr *apiservercel.Error
		if errors.As(result.Error, &celErr) {
			switch celErr.Type {
			case apiservercel.ErrorTypeRequired:
				return field.ErrorList{field.Required(path, celErr.Detail)}
			case apiservercel.ErrorTypeInvalid:
				return field.ErrorList{field.Invalid(path, expr, celErr.Detail)}
			}
		}
		return field.ErrorList{field.InternalError(path, result.Error)}
	}
	if result.MaxCost > resourcev1.CELSelectorExpressionMaxCost {
		return field.ErrorList{field.Forbidden(path, "too complex, exceeds cost limit")}
	}
	return nil
}

func validateDeviceSelectors(selectors []resourcev1.DeviceSelector, path *field.Path, unchanged bool) field.ErrorList {
	var allErrs field.ErrorList
	if len(selectors) > resourcev1.DeviceSelectorsMaxSize {
		allErrs = append(allErrs, field.TooMany(path, len(selectors), resourcev1.DeviceSelectorsMaxSize))
	}
	for i, s := range selectors {
		p := path.Index(i)
		if s.CEL == nil {
			allErrs = append(allErrs, field.Required(p.Child("cel"), ""))
			continue
		}
		// an expression once stored compiled then; it is not judged again by a newer library
		if !unchanged {
			allErrs = append(allErrs, validateCELSelector(s.CEL.Expression, p.Child("cel", "expression"))...)
		}
	}
	return allErrs
}

// validateLongName is upstream's rule for names that are DNS subdomains (class, driver).
func validateLongName(name string, path *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for _, msg := range validation.IsDNS1123Subdomain(name) {
		allErrs = append(allErrs, field.Invalid(path, name, msg))
	}
	return allErrs
}

func validateShortName(name string, path *field.Path) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(path, "")}
	}
	var allErrs field.ErrorList
	for _, msg := range validation.IsDNS1123Label(name) {
		allErrs = append(allErrs, field.Invalid(path, name, msg))
	}
	return allErrs
}

// ValidateDeviceClass checks a new DeviceClass as upstream does.
func ValidateDeviceClass(c *resourcev1.DeviceClass) field.ErrorList {
	return validateDeviceClass(c, nil)
}

// ValidateDeviceClassUpdate checks c replacing old.
func ValidateDeviceClassUpdate(c, old *resourcev1.DeviceClass) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&c.ObjectMeta, &old.ObjectMeta, metadataPath)
	return append(allErrs, validateDeviceClass(c, old)...)
}

func validateDeviceClass(c, old *resourcev1.DeviceClass) field.ErrorList {
	allErrs := ValidateObjectMeta(&c.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, metadataPath)
	specPath := field.NewPath("spec")
	unchanged := old != nil && apiequalSelectors(c.Spec.Selectors, old.Spec.Selectors)
	allErrs = append(allErrs, validateDeviceSelectors(c.Spec.Selectors, specPath.Child("selectors"), unchanged)...)
	if len(c.Spec.Config) > resourcev1.DeviceConfigMaxSize {
		allErrs = append(allErrs, field.TooMany(specPath.Child("config"), len(c.Spec.Config), resourcev1.DeviceConfigMaxSize))
	}
	for i, cfg := range c.Spec.Config {
		allErrs = append(allErrs, validateOpaqueConfig(cfg.Opaque, specPath.Child("config").Index(i))...)
	}
	if name := c.Spec.ExtendedResourceName; name != nil {
		for _, msg := range validation.IsQualifiedName(*name) {
			allErrs = append(allErrs, field.Invalid(specPath.Child("extendedResourceName"), *name, msg))
		}
	}
	return allErrs
}

func apiequalSelectors(a, b []resourcev1.DeviceSelector) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if (a[i].CEL == nil) != (b[i].CEL == nil) || (a[i].CEL != nil && a[i].CEL.Expression != b[i].CEL.Expression) {
			return false
		}
	}
	return true
}

func validateOpaqueConfig(o *resourcev1.OpaqueDeviceConfiguration, path *field.Path) field.ErrorList {
	if o == nil {
		return field.ErrorList{field.Required(path.Child("opaque"), "")}
	}
	p := path.Child("opaque")
	allErrs := validateDriverName(o.Driver, p.Child("driver"))
	if len(o.Parameters.Raw) == 0 {
		allErrs = append(allErrs, field.Required(p.Child("parameters"), ""))
	}
	return allErrs
}

func validateDriverName(name string, path *field.Path) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(path, "")}
	}
	allErrs := validateLongName(name, path)
	if len(name) > resourcev1.DriverNameMaxLength {
		allErrs = append(allErrs, field.TooLong(path, "", resourcev1.DriverNameMaxLength))
	}
	return allErrs
}

// DeviceClassStrategy is the strategy of DeviceClasses.
var DeviceClassStrategy = simpleStrategy(ValidateDeviceClass, ValidateDeviceClassUpdate)

var validAllocationModes = []resourcev1.DeviceAllocationMode{resourcev1.DeviceAllocationModeAll, resourcev1.DeviceAllocationModeExactCount}

func validateAllocationMode(mode resourcev1.DeviceAllocationMode, count int64, path *field.Path) field.ErrorList {
	switch mode {
	case resourcev1.DeviceAllocationModeAll:
		if count != 0 {
			return field.ErrorList{field.Invalid(path.Child("count"), count, fmt.Sprintf("must not be specified when allocationMode is '%s'", mode))}
		}
	case resourcev1.DeviceAllocationModeExactCount:
		if count <= 0 {
			return field.ErrorList{field.Invalid(path.Child("count"), count, "must be greater than zero")}
		}
	default:
		return field.ErrorList{field.NotSupported(path.Child("allocationMode"), mode, validAllocationModes)}
	}
	return nil
}

var validTolerationOperators = []resourcev1.DeviceTolerationOperator{resourcev1.DeviceTolerationOpEqual, resourcev1.DeviceTolerationOpExists}

func validateDeviceTolerations(ts []resourcev1.DeviceToleration, path *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(ts) > resourcev1.DeviceTolerationsMaxLength {
		allErrs = append(allErrs, field.TooMany(path, len(ts), resourcev1.DeviceTolerationsMaxLength))
	}
	for i, t := range ts {
		p := path.Index(i)
		if t.Key != "" {
			allErrs = append(allErrs, metav1validation.ValidateLabelName(t.Key, p.Child("key"))...)
		}
		switch t.Operator {
		case resourcev1.DeviceTolerationOpExists:
			if t.Value != "" {
				allErrs = append(allErrs, field.Invalid(p.Child("value"), t.Value, "must be empty for operator `Exists`"))
			}
		case resourcev1.DeviceTolerationOpEqual:
			allErrs = append(allErrs, validateLabelValue(t.Value, p.Child("value"))...)
		case "":
			allErrs = append(allErrs, field.Required(p.Child("operator"), ""))
		default:
			allErrs = append(allErrs, field.NotSupported(p.Child("operator"), t.Operator, validTolerationOperators))
		}
		if t.Effect != "" && !validTaintEffects.Has(t.Effect) {
			allErrs = append(allErrs, field.NotSupported(p.Child("effect"), t.Effect, sets.List(validTaintEffects)))
		}
	}
	return allErrs
}

func validateLabelValue(v string, path *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for _, msg := range validation.IsValidLabelValue(v) {
		allErrs = append(allErrs, field.Invalid(path, v, msg))
	}
	return allErrs
}

func validateResourceClaimSpec(spec *resourcev1.ResourceClaimSpec, path *field.Path, unchanged bool) field.ErrorList {
	var allErrs field.ErrorList
	devPath := path.Child("devices")
	requests := spec.Devices.Requests
	reqPath := devPath.Child("requests")
	if len(requests) > resourcev1.DeviceRequestsMaxSize {
		allErrs = append(allErrs, field.TooMany(reqPath, len(requests), resourcev1.DeviceRequestsMaxSize))
	}
	names := sets.New[string]()
	for i, r := range requests {
		p := reqPath.Index(i)
		allErrs = append(allErrs, validateShortName(r.Name, p.Child("name"))...)
		if names.Has(r.Name) {
			allErrs = append(allErrs, field.Duplicate(p.Child("name"), r.Name))
		}
		names.Insert(r.Name)
		switch {
		case r.Exactly == nil && len(r.FirstAvailable) == 0:
			allErrs = append(allErrs, field.Required(p, "exactly one of `exactly` or `firstAvailable` is required"))
		case r.Exactly != nil && len(r.FirstAvailable) > 0:
			allErrs = append(allErrs, field.Invalid(p, nil, "exactly one of `exactly` or `firstAvailable` is required, but multiple fields are set"))
		case r.Exactly != nil:
			e, ep := r.Exactly, p.Child("exactly")
			allErrs = append(allErrs, validateDeviceClassRef(e.DeviceClassName, ep.Child("deviceClassName"))...)
			allErrs = append(allErrs, validateDeviceSelectors(e.Selectors, ep.Child("selectors"), unchanged)...)
			allErrs = append(allErrs, validateAllocationMode(e.AllocationMode, e.Count, ep)...)
			allErrs = append(allErrs, validateDeviceTolerations(e.Tolerations, ep.Child("tolerations"))...)
		default:
			fp := p.Child("firstAvailable")
			if len(r.FirstAvailable) > resourcev1.FirstAvailableDeviceRequestMaxSize {
				allErrs = append(allErrs, field.TooMany(fp, len(r.FirstAvailable), resourcev1.FirstAvailableDeviceRequestMaxSize))
			}
			subNames := sets.New[string]()
			for j, s := range r.FirstAvailable {
				sp := fp.Index(j)
				allErrs = append(allErrs, validateShortName(s.Name, sp.Child("name"))...)
				if subNames.Has(s.Name) {
					allErrs = append(allErrs, field.Duplicate(sp.Child("name"), s.Name))
				}
				subNames.Insert(s.Name)
				allErrs = append(allErrs, validateDeviceClassRef(s.DeviceClassName, sp.Child("deviceClassName"))...)
				allErrs = append(allErrs, validateDeviceSelectors(s.Selectors, sp.Child("selectors"), unchanged)...)
				allErrs = append(allErrs, validateAllocationMode(s.AllocationMode, s.Count, sp)...)
				allErrs = append(allErrs, validateDeviceTolerations(s.Tolerations, sp.Child("tolerations"))...)
			}
		}
	}
	if n := len(spec.Devices.Constraints); n > resourcev1.DeviceConstraintsMaxSize {
		allErrs = append(allErrs, field.TooMany(devPath.Child("constraints"), n, resourcev1.DeviceConstraintsMaxSize))
	}
	for i, c := range spec.Devices.Constraints {
		p := devPath.Child("constraints").Index(i)
		switch {
		case c.MatchAttribute == nil && c.DistinctAttribute == nil:
			allErrs = append(allErrs, field.Required(p.Child("matchAttribute"), ""))
		case c.MatchAttribute != nil && c.DistinctAttribute != nil:
			allErrs = append(allErrs, field.Required(p, `exactly one of "matchAttribute" or "distinctAttribute" is required, but multiple fields are set`))
		}
		allErrs = append(allErrs, validateRequestRefs(c.Requests, names, p.Child("requests"))...)
	}
	if n := len(spec.Devices.Config); n > resourcev1.DeviceConfigMaxSize {
		allErrs = append(allErrs, field.TooMany(devPath.Child("config"), n, resourcev1.DeviceConfigMaxSize))
	}
	for i, c := range spec.Devices.Config {
		p := devPath.Child("config").Index(i)
		allErrs = append(allErrs, validateRequestRefs(c.Requests, names, p.Child("requests"))...)
		allErrs = append(allErrs, validateOpaqueConfig(c.Opaque, p)...)
	}
	return allErrs
}

func validateDeviceClassRef(name string, path *field.Path) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(path, "")}
	}
	return validateLongName(name, path)
}

// validateRequestRefs checks that constraints and configs name requests of the claim
// ("request" or "request/subrequest").
func validateRequestRefs(refs []string, requests sets.Set[string], path *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	seen := sets.New[string]()
	for i, ref := range refs {
		p := path.Index(i)
		if seen.Has(ref) {
			allErrs = append(allErrs, field.Duplicate(p, ref))
		}
		seen.Insert(ref)
		if !requests.Has(strings.SplitN(ref, "/", 2)[0]) {
			allErrs = append(allErrs, field.Invalid(p, ref, "must be the name of a request in the claim or the name of a request and a subrequest separated by '/'"))
		}
	}
	return allErrs
}

// ValidateResourceClaim checks a new ResourceClaim as upstream does.
func ValidateResourceClaim(c *resourcev1.ResourceClaim) field.ErrorList {
	allErrs := ValidateObjectMeta(&c.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, metadataPath)
	return append(allErrs, validateResourceClaimSpec(&c.Spec, field.NewPath("spec"), false)...)
}

// ValidateResourceClaimUpdate checks c replacing old: the spec of a claim never changes.
func ValidateResourceClaimUpdate(c, old *resourcev1.ResourceClaim) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&c.ObjectMeta, &old.ObjectMeta, metadataPath)
	allErrs = append(allErrs, apivalidation.ValidateImmutableField(c.Spec, old.Spec, field.NewPath("spec"))...)
	return append(allErrs, validateResourceClaimSpec(&c.Spec, field.NewPath("spec"), true)...)
}

// ValidateResourceClaimStatusUpdate checks a status write: an allocation's shape, and who
// the claim is reserved for.
func ValidateResourceClaimStatusUpdate(c, old *resourcev1.ResourceClaim) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&c.ObjectMeta, &old.ObjectMeta, metadataPath)
	statusPath := field.NewPath("status")
	s := &c.Status
	if s.Allocation == nil && len(s.ReservedFor) > 0 {
		allErrs = append(allErrs, field.Forbidden(statusPath.Child("reservedFor"), "may not be specified when `allocated` is not set"))
	}
	if old.Status.Allocation != nil && s.Allocation != nil && !apiequalAllocation(s.Allocation, old.Status.Allocation) {
		allErrs = append(allErrs, field.Invalid(statusPath.Child("allocation"), s.Allocation, errImmutable))
	}
	if len(s.ReservedFor) > resourcev1.ResourceClaimReservedForMaxSize {
		allErrs = append(allErrs, field.TooMany(statusPath.Child("reservedFor"), len(s.ReservedFor), resourcev1.ResourceClaimReservedForMaxSize))
	}
	uids := sets.New[string]()
	for i, r := range s.ReservedFor {
		p := statusPath.Child("reservedFor").Index(i)
		if r.Resource == "" {
			allErrs = append(allErrs, field.Required(p.Child("resource"), ""))
		}
		if r.Name == "" {
			allErrs = append(allErrs, field.Required(p.Child("name"), ""))
		}
		if r.UID == "" {
			allErrs = append(allErrs, field.Required(p.Child("uid"), ""))
		} else if uids.Has(string(r.UID)) {
			allErrs = append(allErrs, field.Duplicate(p.Child("uid"), r.UID))
		}
		uids.Insert(string(r.UID))
	}
	if a := s.Allocation; a != nil {
		ap := statusPath.Child("allocation", "devices", "results")
		if len(a.Devices.Results) > resourcev1.AllocationResultsMaxSize {
			allErrs = append(allErrs, field.TooMany(ap, len(a.Devices.Results), resourcev1.AllocationResultsMaxSize))
		}
		for i, r := range a.Devices.Results {
			p := ap.Index(i)
			if r.Request == "" {
				allErrs = append(allErrs, field.Required(p.Child("request"), ""))
			}
			allErrs = append(allErrs, validateDriverName(r.Driver, p.Child("driver"))...)
			if r.Pool == "" {
				allErrs = append(allErrs, field.Required(p.Child("pool"), ""))
			}
			if r.Device == "" {
				allErrs = append(allErrs, field.Required(p.Child("device"), ""))
			}
		}
	}
	return allErrs
}

func apiequalAllocation(a, b *resourcev1.AllocationResult) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// ResourceClaimStrategy and ResourceClaimStatusStrategy are the strategies of
// resourceclaims and resourceclaims/status.
var ResourceClaimStrategy, ResourceClaimStatusStrategy = SpecAndStatus[*resourcev1.ResourceClaim]{
	Validate:             ValidateResourceClaim,
	ValidateUpdate:       ValidateResourceClaimUpdate,
	ValidateStatusUpdate: ValidateResourceClaimStatusUpdate,
}.Strategies()

// ValidateResourceClaimTemplate checks a new ResourceClaimTemplate as upstream does.
func ValidateResourceClaimTemplate(t *resourcev1.ResourceClaimTemplate) field.ErrorList {
	allErrs := ValidateObjectMeta(&t.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, metadataPath)
	specPath := field.NewPath("spec")
	allErrs = append(allErrs, metav1validation.ValidateLabels(t.Spec.Labels, specPath.Child("metadata", "labels"))...)
	allErrs = append(allErrs, apivalidation.ValidateAnnotations(t.Spec.Annotations, specPath.Child("metadata", "annotations"))...)
	return append(allErrs, validateResourceClaimSpec(&t.Spec.Spec, specPath.Child("spec"), false)...)
}

// ValidateResourceClaimTemplateUpdate checks t replacing old: the spec never changes.
func ValidateResourceClaimTemplateUpdate(t, old *resourcev1.ResourceClaimTemplate) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&t.ObjectMeta, &old.ObjectMeta, metadataPath)
	return append(allErrs, apivalidation.ValidateImmutableField(t.Spec, old.Spec, field.NewPath("spec"))...)
}

// ResourceClaimTemplateStrategy is the strategy of ResourceClaimTemplates.
var ResourceClaimTemplateStrategy = simpleStrategy(ValidateResourceClaimTemplate, ValidateResourceClaimTemplateUpdate)

// ValidateResourceSlice checks a new ResourceSlice as upstream does.
func ValidateResourceSlice(s *resourcev1.ResourceSlice) field.ErrorList {
	allErrs := ValidateObjectMeta(&s.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, metadataPath)
	specPath := field.NewPath("spec")
	spec := &s.Spec
	allErrs = append(allErrs, validateDriverName(spec.Driver, specPath.Child("driver"))...)
	poolPath := specPath.Child("pool")
	if spec.Pool.Name == "" {
		allErrs = append(allErrs, field.Required(poolPath.Child("name"), ""))
	} else {
		for i, part := range strings.Split(spec.Pool.Name, "/") {
			for _, msg := range validation.IsDNS1123Subdomain(part) {
				allErrs = append(allErrs, field.Invalid(poolPath.Child("name"), spec.Pool.Name, fmt.Sprintf("segment %d: %s", i, msg)))
			}
		}
	}
	if spec.Pool.ResourceSliceCount <= 0 {
		allErrs = append(allErrs, field.Invalid(poolPath.Child("resourceSliceCount"), spec.Pool.ResourceSliceCount, "must be greater than zero"))
	}
	if spec.Pool.Generation < 0 {
		allErrs = append(allErrs, field.Invalid(poolPath.Child("generation"), spec.Pool.Generation, "must be greater than or equal to zero"))
	}
	var set []string
	if spec.NodeName != nil {
		set = append(set, "`nodeName`")
		for _, msg := range apivalidation.NameIsDNSSubdomain(*spec.NodeName, false) {
			allErrs = append(allErrs, field.Invalid(specPath.Child("nodeName"), *spec.NodeName, msg))
		}
	}
	if spec.NodeSelector != nil {
		set = append(set, "`nodeSelector`")
		if len(spec.NodeSelector.NodeSelectorTerms) != 1 {
			allErrs = append(allErrs, field.Invalid(specPath.Child("nodeSelector", "nodeSelectorTerms"), spec.NodeSelector.NodeSelectorTerms, "must have exactly one node selector term"))
		}
	}
	if spec.AllNodes != nil {
		set = append(set, "`allNodes`")
		if !*spec.AllNodes {
			allErrs = append(allErrs, field.Invalid(specPath.Child("allNodes"), *spec.AllNodes, "must be either unset or set to true"))
		}
	}
	if spec.PerDeviceNodeSelection != nil {
		set = append(set, "`perDeviceNodeSelection`")
		if !*spec.PerDeviceNodeSelection {
			allErrs = append(allErrs, field.Invalid(specPath.Child("perDeviceNodeSelection"), *spec.PerDeviceNodeSelection, "must be either unset or set to true"))
		}
	}
	switch len(set) {
	case 0:
		allErrs = append(allErrs, field.Required(specPath, "exactly one of `nodeName`, `nodeSelector`, `allNodes`, `perDeviceNodeSelection` is required"))
	case 1:
	default:
		allErrs = append(allErrs, field.Invalid(specPath, fmt.Sprintf("{%s}", strings.Join(set, ", ")),
			"exactly one of `nodeName`, `nodeSelector`, `allNodes`, `perDeviceNodeSelection` is required, but multiple fields are set"))
	}
	if len(spec.SharedCounters) > 0 && len(spec.Devices) > 0 {
		allErrs = append(allErrs, field.Invalid(specPath, "", "only one of `sharedCounters` or `devices` is allowed"))
	}
	devPath := specPath.Child("devices")
	if len(spec.Devices) > resourcev1.ResourceSliceMaxDevices {
		allErrs = append(allErrs, field.TooMany(devPath, len(spec.Devices), resourcev1.ResourceSliceMaxDevices))
	}
	names := sets.New[string]()
	for i, d := range spec.Devices {
		p := devPath.Index(i)
		allErrs = append(allErrs, validateShortName(d.Name, p.Child("name"))...)
		if names.Has(d.Name) {
			allErrs = append(allErrs, field.Duplicate(p.Child("name"), d.Name))
		}
		names.Insert(d.Name)
		if n := len(d.Attributes) + len(d.Capacity); n > resourcev1.ResourceSliceMaxAttributesAndCapacitiesPerDevice {
			allErrs = append(allErrs, field.Invalid(p, n, fmt.Sprintf("the total number of attributes and capacities must not exceed %d", resourcev1.ResourceSliceMaxAttributesAndCapacitiesPerDevice)))
		}
		if len(d.Taints) > resourcev1.DeviceTaintsMaxLength {
			allErrs = append(allErrs, field.TooMany(p.Child("taints"), len(d.Taints), resourcev1.DeviceTaintsMaxLength))
		}
		for j, t := range d.Taints {
			allErrs = append(allErrs, validateDeviceTaint(t, nil, p.Child("taints").Index(j))...)
		}
	}
	return allErrs
}

// ValidateResourceSliceUpdate checks s replacing old: a slice stays with its driver, pool
// name and node.
func ValidateResourceSliceUpdate(s, old *resourcev1.ResourceSlice) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&s.ObjectMeta, &old.ObjectMeta, metadataPath)
	allErrs = append(allErrs, ValidateResourceSlice(s)...)
	specPath := field.NewPath("spec")
	allErrs = append(allErrs, apivalidation.ValidateImmutableField(s.Spec.Driver, old.Spec.Driver, specPath.Child("driver"))...)
	allErrs = append(allErrs, apivalidation.ValidateImmutableField(s.Spec.Pool.Name, old.Spec.Pool.Name, specPath.Child("pool", "name"))...)
	return append(allErrs, apivalidation.ValidateImmutableField(s.Spec.NodeName, old.Spec.NodeName, specPath.Child("nodeName"))...)
}

// ResourceSliceStrategy is the strategy of ResourceSlices.
var ResourceSliceStrategy = simpleStrategy(ValidateResourceSlice, ValidateResourceSliceUpdate)

var validTaintEffects = sets.New(resourcev1.DeviceTaintEffectNone, resourcev1.DeviceTaintEffectNoSchedule, resourcev1.DeviceTaintEffectNoExecute)

func validateDeviceTaint(t resourcev1.DeviceTaint, old *resourcev1.DeviceTaint, path *field.Path) field.ErrorList {
	allErrs := metav1validation.ValidateLabelName(t.Key, path.Child("key"))
	if t.Value != "" {
		allErrs = append(allErrs, validateLabelValue(t.Value, path.Child("value"))...)
	}
	// an effect once stored stays valid even if a later version drops it
	if old == nil || old.Effect != t.Effect {
		switch {
		case t.Effect == "":
			allErrs = append(allErrs, field.Required(path.Child("effect"), ""))
		case !validTaintEffects.Has(t.Effect):
			allErrs = append(allErrs, field.NotSupported(path.Child("effect"), t.Effect, sets.List(validTaintEffects)))
		}
	}
	return allErrs
}

// ValidateDeviceTaintRule checks a new DeviceTaintRule as upstream does.
func ValidateDeviceTaintRule(r *resourcev1.DeviceTaintRule) field.ErrorList {
	allErrs := ValidateObjectMeta(&r.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, metadataPath)
	return append(allErrs, validateDeviceTaintRuleSpec(&r.Spec, nil)...)
}

// ValidateDeviceTaintRuleUpdate checks r replacing old.
func ValidateDeviceTaintRuleUpdate(r, old *resourcev1.DeviceTaintRule) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&r.ObjectMeta, &old.ObjectMeta, metadataPath)
	return append(allErrs, validateDeviceTaintRuleSpec(&r.Spec, &old.Spec)...)
}

func validateDeviceTaintRuleSpec(spec, old *resourcev1.DeviceTaintRuleSpec) field.ErrorList {
	specPath := field.NewPath("spec")
	var allErrs field.ErrorList
	if sel := spec.DeviceSelector; sel != nil {
		p := specPath.Child("deviceSelector")
		if sel.Driver != nil {
			allErrs = append(allErrs, validateDriverName(*sel.Driver, p.Child("driver"))...)
		}
		if sel.Pool != nil && *sel.Pool == "" {
			allErrs = append(allErrs, field.Required(p.Child("pool"), ""))
		}
		if sel.Device != nil {
			allErrs = append(allErrs, validateShortName(*sel.Device, p.Child("device"))...)
		}
	}
	var oldTaint *resourcev1.DeviceTaint
	if old != nil {
		oldTaint = &old.Taint
	}
	return append(allErrs, validateDeviceTaint(spec.Taint, oldTaint, specPath.Child("taint"))...)
}

// ValidateDeviceTaintRuleStatusUpdate checks a status write: its conditions, at most
// DeviceTaintRuleStatusMaxConditions of them.
func ValidateDeviceTaintRuleStatusUpdate(r, old *resourcev1.DeviceTaintRule) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&r.ObjectMeta, &old.ObjectMeta, metadataPath)
	p := field.NewPath("status", "conditions")
	if n := len(r.Status.Conditions); n > resourcev1.DeviceTaintRuleStatusMaxConditions {
		allErrs = append(allErrs, field.TooMany(p, n, resourcev1.DeviceTaintRuleStatusMaxConditions))
	}
	return append(allErrs, metav1validation.ValidateConditions(r.Status.Conditions, p)...)
}

// DeviceTaintRuleStrategy and DeviceTaintRuleStatusStrategy are the strategies of
// devicetaintrules and devicetaintrules/status. A taint is stamped with the time it was
// added, as upstream does, when it is new or changes its effect.
var DeviceTaintRuleStrategy, DeviceTaintRuleStatusStrategy = SpecAndStatus[*resourcev1.DeviceTaintRule]{
	PrepareForCreate: func(r *resourcev1.DeviceTaintRule) {
		if r.Spec.Taint.TimeAdded == nil {
			now := metav1.Now().Rfc3339Copy()
			r.Spec.Taint.TimeAdded = &now
		}
	},
	PrepareForUpdate: func(r, old *resourcev1.DeviceTaintRule) {
		if r.Spec.Taint.TimeAdded == nil {
			if r.Spec.Taint.Effect == old.Spec.Taint.Effect {
				r.Spec.Taint.TimeAdded = old.Spec.Taint.TimeAdded
			} else {
				now := metav1.Now().Rfc3339Copy()
				r.Spec.Taint.TimeAdded = &now
			}
		}
	},
	Validate:             ValidateDeviceTaintRule,
	ValidateUpdate:       ValidateDeviceTaintRuleUpdate,
	ValidateStatusUpdate: ValidateDeviceTaintRuleStatusUpdate,
}.Strategies()

func deviceClassTable() *TablePrinter {
	return Columns([]metav1.TableColumnDefinition{nameColumn, ageColumn}, func(c *resourcev1.DeviceClass) metav1.TableRow {
		return cells(c.Name, translateTimestampSince(c.CreationTimestamp))
	})
}

func resourceClaimTemplateTable() *TablePrinter {
	return Columns([]metav1.TableColumnDefinition{nameColumn, ageColumn}, func(t *resourcev1.ResourceClaimTemplate) metav1.TableRow {
		return cells(t.Name, translateTimestampSince(t.CreationTimestamp))
	})
}

func resourceClaimTable() *TablePrinter {
	return Columns([]metav1.TableColumnDefinition{
		nameColumn,
		{Name: "State", Type: "string", Description: "A summary of the current state (allocated, pending, reserved, etc.)."},
		ageColumn,
	}, func(c *resourcev1.ResourceClaim) metav1.TableRow {
		var states []string
		if c.DeletionTimestamp != nil {
			states = append(states, "deleted")
		}
		switch {
		case c.Status.Allocation == nil:
			if c.DeletionTimestamp == nil {
				states = append(states, "pending")
			}
		default:
			states = append(states, "allocated")
			if len(c.Status.ReservedFor) > 0 {
				states = append(states, "reserved")
			}
		}
		return cells(c.Name, strings.Join(states, ","), translateTimestampSince(c.CreationTimestamp))
	})
}

func resourceSliceTable() *TablePrinter {
	specDoc := resourcev1.ResourceSliceSpec{}.SwaggerDoc()
	return Columns([]metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Node", Type: "string", Description: specDoc["nodeName"]},
		{Name: "Driver", Type: "string", Description: specDoc["driver"]},
		{Name: "Pool", Type: "string", Description: resourcev1.ResourcePool{}.SwaggerDoc()["name"]},
		ageColumn,
	}, func(s *resourcev1.ResourceSlice) metav1.TableRow {
		node := "<none>"
		if s.Spec.NodeName != nil {
			node = *s.Spec.NodeName
		}
		return cells(s.Name, node, s.Spec.Driver, s.Spec.Pool.Name, translateTimestampSince(s.CreationTimestamp))
	})
}

func deviceTaintRuleTable() *TablePrinter {
	doc := resourcev1.DeviceTaint{}.SwaggerDoc()
	return Columns([]metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Key", Type: "string", Description: doc["key"]},
		{Name: "Value", Type: "string", Description: doc["value"]},
		{Name: "Effect", Type: "string", Description: doc["effect"]},
		{Name: "TimeAdded", Type: "string", Description: doc["timeAdded"]},
		ageColumn,
	}, func(r *resourcev1.DeviceTaintRule) metav1.TableRow {
		added := "<unset>"
		if r.Spec.Taint.TimeAdded != nil {
			added = translateTimestampSince(*r.Spec.Taint.TimeAdded)
		}
		return cells(r.Name, r.Spec.Taint.Key, r.Spec.Taint.Value, string(r.Spec.Taint.Effect), added, translateTimestampSince(r.CreationTimestamp))
	})
}
