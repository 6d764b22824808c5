package apis

import (
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// A Service's IP families (dual-stack): the checks of clusterIPs, ipFamilies and
// ipFamilyPolicy that need no knowledge of the cluster, with upstream's words. What the
// cluster's service ranges allow (RequireDualStack on a single-stack cluster, a family it has
// no range of) is the allocator's to judge, as upstream's service storage does.

var (
	supportedServiceIPFamilies       = sets.New(string(corev1.IPv4Protocol), string(corev1.IPv6Protocol))
	supportedServiceIPFamilyPolicies = sets.New(string(corev1.IPFamilyPolicySingleStack),
		string(corev1.IPFamilyPolicyPreferDualStack), string(corev1.IPFamilyPolicyRequireDualStack))
)

// normalizeClusterIPs fills clusterIPs from clusterIP for a client that sets only the singular
// field (an old client), as upstream's strategy does; old is nil on create.
func normalizeClusterIPs(svc, old *corev1.Service) {
	if old == nil {
		if svc.Spec.ClusterIP != "" && len(svc.Spec.ClusterIPs) == 0 {
			svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
		}
		return
	}
	// an update that changed only the singular field means it for the plural too
	if svc.Spec.ClusterIP != old.Spec.ClusterIP && slices.Equal(svc.Spec.ClusterIPs, old.Spec.ClusterIPs) {
		if svc.Spec.ClusterIP == "" {
			svc.Spec.ClusterIPs = nil
		} else {
			svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
		}
	}
}

// validateServiceIPFamilyFields is upstream's ValidateServiceClusterIPsRelatedFields, plus its
// refusal of families and policy on ExternalName services.
func validateServiceIPFamilyFields(svc *corev1.Service) field.ErrorList {
	var allErrs field.ErrorList
	specPath := field.NewPath("spec")
	clusterIPsPath, familiesPath, policyPath := specPath.Child("clusterIPs"), specPath.Child("ipFamilies"), specPath.Child("ipFamilyPolicy")
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		if len(svc.Spec.IPFamilies) > 0 {
			allErrs = append(allErrs, field.Forbidden(familiesPath, "may not be set for ExternalName services"))
		}
		if svc.Spec.IPFamilyPolicy != nil {
			allErrs = append(allErrs, field.Forbidden(policyPath, "may not be set for ExternalName services"))
		}
		return allErrs
	}
	if svc.Spec.ClusterIP != "" {
		if len(svc.Spec.ClusterIPs) == 0 {
			allErrs = append(allErrs, field.Required(clusterIPsField(), ""))
		} else if svc.Spec.ClusterIPs[0] != svc.Spec.ClusterIP {
			allErrs = append(allErrs, field.Invalid(clusterIPsPath, svc.Spec.ClusterIPs, "first value must match `clusterIP`"))
		}
	} else if len(svc.Spec.ClusterIPs) != 0 {
		allErrs = append(allErrs, field.Invalid(clusterIPsPath, svc.Spec.ClusterIPs, "must be empty when `clusterIP` is not specified"))
	}
	seen := sets.New[corev1.IPFamily]()
	for i, family := range svc.Spec.IPFamilies {
		if !supportedServiceIPFamilies.Has(string(family)) {
			allErrs = append(allErrs, field.NotSupported(familiesPath.Index(i), family, sets.List(supportedServiceIPFamilies)))
		}
		if seen.Has(family) {
			allErrs = append(allErrs, field.Duplicate(familiesPath.Index(i), family))
		}
		seen.Insert(family)
	}
	if svc.Spec.IPFamilyPolicy != nil && !supportedServiceIPFamilyPolicies.Has(string(*svc.Spec.IPFamilyPolicy)) {
		allErrs = append(allErrs, field.NotSupported(policyPath, svc.Spec.IPFamilyPolicy, sets.List(supportedServiceIPFamilyPolicies)))
	}
	invalidIPs := false
	for i, ip := range svc.Spec.ClusterIPs {
		if i == 0 && ip == corev1.ClusterIPNone {
			if len(svc.Spec.ClusterIPs) > 1 {
				invalidIPs = true
				allErrs = append(allErrs, field.Invalid(clusterIPsPath, svc.Spec.ClusterIPs, "'None' must be the first and only value"))
			}
			continue
		}
		if _, err := netip.ParseAddr(ip); err != nil {
			invalidIPs = true
			allErrs = append(allErrs, field.Invalid(clusterIPsPath.Index(i), ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
		}
	}
	if len(svc.Spec.ClusterIPs) > 2 {
		allErrs = append(allErrs, field.Invalid(clusterIPsPath, svc.Spec.ClusterIPs, "may only hold up to 2 values"))
	}
	if invalidIPs {
		return allErrs // a bad IP would skew the family checks below
	}
	if len(svc.Spec.ClusterIPs) > 1 && !dualStackIPs(svc.Spec.ClusterIPs) {
		allErrs = append(allErrs, field.Invalid(clusterIPsPath, svc.Spec.ClusterIPs, "may specify no more than one IP for each IP family"))
	}
	if !IsHeadlessService(svc) {
		for i, ip := range svc.Spec.ClusterIPs {
			if i >= len(svc.Spec.IPFamilies) {
				break
			}
			if want := svc.Spec.IPFamilies[i]; want != IPFamilyOf(ip) && supportedServiceIPFamilies.Has(string(want)) {
				allErrs = append(allErrs, field.Invalid(clusterIPsPath.Index(i), ip, fmt.Sprintf("expected an %s value as indicated by `ipFamilies[%d]`", want, i)))
			}
		}
	}
	return allErrs
}

func clusterIPsField() *field.Path { return field.NewPath("spec", "clusterIPs") }

// validateServiceIPFamilyUpdate is upstream's check of an upgrade to or downgrade from dual
// stack: the primary IP and family stay, and giving up the secondary needs SingleStack.
func validateServiceIPFamilyUpdate(svc, old *corev1.Service) field.ErrorList {
	var allErrs field.ErrorList
	if svc.Spec.Type == corev1.ServiceTypeExternalName || old.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	newHeadless, oldHeadless := IsHeadlessService(svc), IsHeadlessService(old)
	single := svc.Spec.IPFamilyPolicy != nil && *svc.Spec.IPFamilyPolicy == corev1.IPFamilyPolicySingleStack
	policyPath := field.NewPath("spec", "ipFamilyPolicy")
	if !(newHeadless && oldHeadless) {
		ips, oldIPs := svc.Spec.ClusterIPs, old.Spec.ClusterIPs
		switch {
		case len(oldIPs) == len(ips):
			for i := range oldIPs {
				if oldIPs[i] != ips[i] {
					allErrs = append(allErrs, field.Invalid(clusterIPsField().Index(i), ips, "may not change once set"))
				}
			}
		case len(oldIPs) > len(ips):
			if len(ips) == 0 {
				allErrs = append(allErrs, field.Invalid(clusterIPsField().Index(0), ips, "primary clusterIP can not be unset"))
			} else if ips[0] != oldIPs[0] {
				allErrs = append(allErrs, field.Invalid(clusterIPsField().Index(0), ips, "may not change once set"))
			}
			if len(ips) == 1 && !single {
				allErrs = append(allErrs, field.Invalid(policyPath, svc.Spec.IPFamilyPolicy, "must be set to 'SingleStack' when releasing the secondary clusterIP"))
			}
		default:
			if len(oldIPs) > 0 && ips[0] != oldIPs[0] {
				allErrs = append(allErrs, field.Invalid(clusterIPsField().Index(0), ips, "may not change once set"))
			}
		}
	}
	if newHeadless || oldHeadless {
		return allErrs // headless services may change families
	}
	families, oldFamilies := svc.Spec.IPFamilies, old.Spec.IPFamilies
	familiesPath := field.NewPath("spec", "ipFamilies")
	switch {
	case len(oldFamilies) == len(families):
		for i := range oldFamilies {
			if oldFamilies[i] != families[i] {
				allErrs = append(allErrs, field.Invalid(familiesPath.Index(0), families, "may not change once set"))
			}
		}
	case len(oldFamilies) > len(families):
		if len(families) > 0 && families[0] != oldFamilies[0] {
			allErrs = append(allErrs, field.Invalid(familiesPath.Index(0), svc.Spec.ClusterIPs, "may not change once set"))
		}
		if len(families) == 1 && !single {
			allErrs = append(allErrs, field.Invalid(policyPath, svc.Spec.IPFamilyPolicy, "must be set to 'SingleStack' when releasing the secondary ipFamily"))
		}
	default:
		if len(oldFamilies) > 0 && len(families) > 0 && families[0] != oldFamilies[0] {
			allErrs = append(allErrs, field.Invalid(familiesPath.Index(0), svc.Spec.ClusterIPs, "may not change once set"))
		}
	}
	return allErrs
}

// IPFamilyOf is the family of an IP address written as a string; IPv4 for one that does not
// parse (validation reports it).
func IPFamilyOf(ip string) corev1.IPFamily {
	if a, err := netip.ParseAddr(ip); err == nil && a.Is6() && !a.Is4In6() {
		return corev1.IPv6Protocol
	}
	return corev1.IPv4Protocol
}

// dualStackIPs reports whether ips hold one address of each family.
func dualStackIPs(ips []string) bool {
	v6 := 0
	for _, ip := range ips {
		if IPFamilyOf(ip) == corev1.IPv6Protocol {
			v6++
		}
	}
	return v6 == 1 && len(ips) == 2
}
