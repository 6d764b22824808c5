package apis

import (
	"net/netip"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/validate/content"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// networking.k8s.io/v1 ServiceCIDR and IPAddress: the ranges Services take cluster IPs from,
// and one object per cluster IP taken. The API server's service allocator writes the
// IPAddresses (registry.ServiceAllocator) and creates the ServiceCIDR named "kubernetes" from
// its own range; clients read them, and may write their own as upstream allows.

// DefaultServiceCIDRName is the ServiceCIDR the API server makes of its service range.
const DefaultServiceCIDRName = "kubernetes"

// ServiceCIDRFinalizer keeps a ServiceCIDR while IPAddresses of its ranges exist.
const ServiceCIDRFinalizer = "networking.k8s.io/service-cidr-finalizer"

// ValidateServiceCIDR checks a new ServiceCIDR as upstream does.
func ValidateServiceCIDR(c *networkingv1.ServiceCIDR) field.ErrorList {
	allErrs := ValidateObjectMeta(&c.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, metadataPath)
	return append(allErrs, validateServiceCIDRs(c.Spec.CIDRs, field.NewPath("spec", "cidrs"))...)
}

func validateServiceCIDRs(cidrs []string, path *field.Path) field.ErrorList {
	switch {
	case len(cidrs) == 0:
		return field.ErrorList{field.Required(path, "at least one CIDR required")}
	case len(cidrs) > 2:
		return field.ErrorList{field.Invalid(path, networkingv1.ServiceCIDRSpec{CIDRs: cidrs}, "may only hold up to 2 values")}
	}
	var allErrs field.ErrorList
	for i, cidr := range cidrs {
		allErrs = append(allErrs, validation.IsValidCIDR(path.Index(i), cidr)...)
	}
	if len(cidrs) == 2 {
		a, errA := netip.ParsePrefix(cidrs[0])
		b, errB := netip.ParsePrefix(cidrs[1])
		if errA == nil && errB == nil && a.Addr().Is4() == b.Addr().Is4() {
			allErrs = append(allErrs, field.Invalid(path, cidrs, "may specify no more than one IP for each IP family, i.e 192.168.0.0/24 and 2001:db8::/64"))
		}
	}
	return allErrs
}

// ValidateServiceCIDRUpdate checks c replacing old: the ranges never change, except that a
// single-stack ServiceCIDR may gain a range of the other family.
func ValidateServiceCIDRUpdate(c, old *networkingv1.ServiceCIDR) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&c.ObjectMeta, &old.ObjectMeta, metadataPath)
	path := field.NewPath("spec", "cidrs")
	switch {
	case len(old.Spec.CIDRs) == len(c.Spec.CIDRs):
		for i, cidr := range old.Spec.CIDRs {
			if cidr != c.Spec.CIDRs[i] {
				allErrs = append(allErrs, field.Invalid(path.Index(i), c.Spec.CIDRs[i], errImmutable))
			}
		}
	case len(old.Spec.CIDRs) == 1 && len(c.Spec.CIDRs) == 2:
		if c.Spec.CIDRs[0] != old.Spec.CIDRs[0] {
			allErrs = append(allErrs, field.Invalid(path.Index(0), c.Spec.CIDRs[0], errImmutable))
		}
		allErrs = append(allErrs, validateServiceCIDRs(c.Spec.CIDRs, path)...)
	default:
		allErrs = append(allErrs, field.Invalid(path, c.Spec.CIDRs, errImmutable))
	}
	return allErrs
}

// ServiceCIDRStrategy and ServiceCIDRStatusStrategy are the strategies of servicecidrs and
// servicecidrs/status.
var ServiceCIDRStrategy, ServiceCIDRStatusStrategy = SpecAndStatus[*networkingv1.ServiceCIDR]{
	Validate:       ValidateServiceCIDR,
	ValidateUpdate: ValidateServiceCIDRUpdate,
	ValidateStatusUpdate: func(c, old *networkingv1.ServiceCIDR) field.ErrorList {
		return ValidateObjectMetaUpdate(&c.ObjectMeta, &old.ObjectMeta, metadataPath)
	},
}.Strategies()

func serviceCIDRTable() *TablePrinter {
	return Columns([]metav1.TableColumnDefinition{
		nameColumn,
		{Name: "CIDRs", Type: "string", Description: networkingv1.ServiceCIDRSpec{}.SwaggerDoc()["cidrs"]},
		ageColumn,
	}, func(c *networkingv1.ServiceCIDR) metav1.TableRow {
		return cells(c.Name, strings.Join(c.Spec.CIDRs, ","), translateTimestampSince(c.CreationTimestamp))
	})
}

// validateIPAddressName: an IPAddress is named by its address in canonical form.
func validateIPAddressName(name string, _ bool) []string {
	var msgs []string
	for _, err := range validation.IsValidIP(&field.Path{}, name) {
		msgs = append(msgs, err.Detail)
	}
	return msgs
}

// ValidateIPAddress checks a new IPAddress as upstream does.
func ValidateIPAddress(a *networkingv1.IPAddress) field.ErrorList {
	allErrs := ValidateObjectMeta(&a.ObjectMeta, false, validateIPAddressName, metadataPath)
	ref := a.Spec.ParentRef
	path := field.NewPath("spec", "parentRef")
	if ref == nil {
		return append(allErrs, field.Required(path, ""))
	}
	// group is required, but the core group of Services is "", so only its form is checked
	if ref.Group != "" {
		for _, msg := range validation.IsDNS1123Subdomain(ref.Group) {
			allErrs = append(allErrs, field.Invalid(path.Child("group"), ref.Group, msg))
		}
	}
	for _, f := range []struct {
		name, value string
		required    bool
	}{{"resource", ref.Resource, true}, {"name", ref.Name, true}, {"namespace", ref.Namespace, false}} {
		if f.value == "" {
			if f.required {
				allErrs = append(allErrs, field.Required(path.Child(f.name), ""))
			}
			continue
		}
		for _, msg := range content.IsPathSegmentName(f.value) {
			allErrs = append(allErrs, field.Invalid(path.Child(f.name), f.value, msg))
		}
	}
	return allErrs
}

// ValidateIPAddressUpdate checks a replacing old: what holds the address never changes.
func ValidateIPAddressUpdate(a, old *networkingv1.IPAddress) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&a.ObjectMeta, &old.ObjectMeta, metadataPath)
	return append(allErrs, apivalidation.ValidateImmutableField(a.Spec.ParentRef, old.Spec.ParentRef, field.NewPath("spec", "parentRef"))...)
}

// IPAddressStrategy is the strategy of IPAddresses.
var IPAddressStrategy = simpleStrategy(ValidateIPAddress, ValidateIPAddressUpdate)

func ipAddressTable() *TablePrinter {
	return Columns([]metav1.TableColumnDefinition{
		nameColumn,
		{Name: "ParentRef", Type: "string", Description: networkingv1.IPAddressSpec{}.SwaggerDoc()["parentRef"]},
		ageColumn,
	}, func(a *networkingv1.IPAddress) metav1.TableRow {
		parent := "<none>"
		if ref := a.Spec.ParentRef; ref != nil {
			parent = strings.ToLower(schema.GroupResource{Group: ref.Group, Resource: ref.Resource}.String())
			if ref.Namespace != "" {
				parent += "/" + ref.Namespace
			}
			parent += "/" + ref.Name
		}
		return cells(a.Name, parent, translateTimestampSince(a.CreationTimestamp))
	})
}
