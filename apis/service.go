package apis

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// Services, Endpoints and EndpointSlices: upstream's defaults and validation. Cluster IPs and
// node ports are allocated by the registry, after validation, as upstream's service storage.

func defaultService(svc *corev1.Service) {
	if svc.Spec.SessionAffinity == "" {
		svc.Spec.SessionAffinity = corev1.ServiceAffinityNone
	}
	if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP &&
		(svc.Spec.SessionAffinityConfig == nil || svc.Spec.SessionAffinityConfig.ClientIP == nil || svc.Spec.SessionAffinityConfig.ClientIP.TimeoutSeconds == nil) {
		svc.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To(corev1.DefaultClientIPServiceAffinitySeconds)}}
	}
	if svc.Spec.Type == "" {
		svc.Spec.Type = corev1.ServiceTypeClusterIP
	}
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		if p.TargetPort == intstr.FromInt32(0) || p.TargetPort == intstr.FromString("") {
			p.TargetPort = intstr.FromInt32(p.Port)
		}
	}
	if (svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer) && svc.Spec.ExternalTrafficPolicy == "" {
		svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	}
	if svc.Spec.Type != corev1.ServiceTypeExternalName && svc.Spec.InternalTrafficPolicy == nil {
		svc.Spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyCluster)
	}
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.AllocateLoadBalancerNodePorts == nil {
		svc.Spec.AllocateLoadBalancerNodePorts = ptr.To(true)
	}
}

var (
	supportedServiceTypes    = sets.New(corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeExternalName)
	supportedPortProtocols   = sets.New(corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP)
	supportedSessionAffinity = sets.New(corev1.ServiceAffinityNone, corev1.ServiceAffinityClientIP)
)

// IsHeadlessService reports whether a service has no cluster IP by request.
func IsHeadlessService(svc *corev1.Service) bool {
	return svc.Spec.ClusterIP == corev1.ClusterIPNone
}

// ValidateService checks a new service as upstream does.
func ValidateService(svc *corev1.Service) field.ErrorList {
	allErrs := ValidateObjectMeta(&svc.ObjectMeta, true, apivalidation.NameIsDNS1035Label, metadataPath)
	return append(allErrs, validateServiceSpec(svc)...)
}

// ValidateServiceUpdate checks svc replacing old: a cluster IP, once set, stays unless the
// service becomes an ExternalName.
func ValidateServiceUpdate(svc, old *corev1.Service) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&svc.ObjectMeta, &old.ObjectMeta, metadataPath)
	allErrs = append(allErrs, validateServiceIPFamilyUpdate(svc, old)...)
	return append(allErrs, validateServiceSpec(svc)...)
}

// ValidateServiceStatusUpdate checks a write to services/status.
func ValidateServiceStatusUpdate(svc, old *corev1.Service) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&svc.ObjectMeta, &old.ObjectMeta, metadataPath)
	for i, ing := range svc.Status.LoadBalancer.Ingress {
		p := field.NewPath("status", "loadBalancer", "ingress").Index(i)
		if ing.IP != "" {
			if _, err := netip.ParseAddr(ing.IP); err != nil {
				allErrs = append(allErrs, field.Invalid(p.Child("ip"), ing.IP, "must be a valid IP address"))
			}
		}
	}
	return allErrs
}

func validateServiceSpec(svc *corev1.Service) field.ErrorList {
	var allErrs field.ErrorList
	spec, specPath := &svc.Spec, field.NewPath("spec")
	if !supportedServiceTypes.Has(spec.Type) {
		allErrs = append(allErrs, field.NotSupported(specPath.Child("type"), spec.Type, sets.List(supportedServiceTypes)))
	}
	if spec.Type == corev1.ServiceTypeExternalName {
		if spec.ClusterIP != "" {
			allErrs = append(allErrs, field.Forbidden(specPath.Child("clusterIPs"), "may not be set for ExternalName services"))
		}
		if spec.ExternalName == "" {
			allErrs = append(allErrs, field.Required(specPath.Child("externalName"), ""))
		} else {
			for _, msg := range validation.IsDNS1123Subdomain(spec.ExternalName) {
				allErrs = append(allErrs, field.Invalid(specPath.Child("externalName"), spec.ExternalName, msg))
			}
		}
	}
	if len(spec.Ports) == 0 && !IsHeadlessService(svc) && spec.Type != corev1.ServiceTypeExternalName {
		allErrs = append(allErrs, field.Required(specPath.Child("ports"), ""))
	}
	names := sets.New[string]()
	type portKey struct {
		port     int32
		protocol corev1.Protocol
	}
	seen := map[portKey]bool{}
	for i, p := range spec.Ports {
		pp := specPath.Child("ports").Index(i)
		if len(spec.Ports) > 1 && p.Name == "" {
			allErrs = append(allErrs, field.Required(pp.Child("name"), ""))
		} else if p.Name != "" {
			for _, msg := range validation.IsDNS1123Label(p.Name) {
				allErrs = append(allErrs, field.Invalid(pp.Child("name"), p.Name, msg))
			}
			if names.Has(p.Name) {
				allErrs = append(allErrs, field.Duplicate(pp.Child("name"), p.Name))
			}
			names.Insert(p.Name)
		}
		for _, msg := range validation.IsValidPortNum(int(p.Port)) {
			allErrs = append(allErrs, field.Invalid(pp.Child("port"), p.Port, msg))
		}
		if !supportedPortProtocols.Has(p.Protocol) {
			allErrs = append(allErrs, field.NotSupported(pp.Child("protocol"), p.Protocol, sets.List(supportedPortProtocols)))
		}
		switch p.TargetPort.Type {
		case intstr.Int:
			for _, msg := range validation.IsValidPortNum(p.TargetPort.IntValue()) {
				allErrs = append(allErrs, field.Invalid(pp.Child("targetPort"), p.TargetPort, msg))
			}
		case intstr.String:
			for _, msg := range validation.IsValidPortName(p.TargetPort.StrVal) {
				allErrs = append(allErrs, field.Invalid(pp.Child("targetPort"), p.TargetPort, msg))
			}
		}
		if p.NodePort != 0 {
			if spec.Type != corev1.ServiceTypeNodePort && spec.Type != corev1.ServiceTypeLoadBalancer {
				allErrs = append(allErrs, field.Forbidden(pp.Child("nodePort"), fmt.Sprintf("may not be used when `type` is '%s'", spec.Type)))
			} else {
				for _, msg := range validation.IsValidPortNum(int(p.NodePort)) {
					allErrs = append(allErrs, field.Invalid(pp.Child("nodePort"), p.NodePort, msg))
				}
			}
		}
		k := portKey{p.Port, p.Protocol}
		if seen[k] {
			allErrs = append(allErrs, field.Duplicate(pp, k))
		}
		seen[k] = true
	}
	allErrs = append(allErrs, validateServiceIPFamilyFields(svc)...)
	if !supportedSessionAffinity.Has(spec.SessionAffinity) {
		allErrs = append(allErrs, field.NotSupported(specPath.Child("sessionAffinity"), spec.SessionAffinity, sets.List(supportedSessionAffinity)))
	}
	if spec.ExternalTrafficPolicy != "" && spec.Type != corev1.ServiceTypeNodePort && spec.Type != corev1.ServiceTypeLoadBalancer {
		allErrs = append(allErrs, field.Invalid(specPath.Child("externalTrafficPolicy"), spec.ExternalTrafficPolicy,
			"may only be set when `type` is 'NodePort' or 'LoadBalancer'"))
	}
	allErrs = append(allErrs, metav1validation.ValidateLabels(spec.Selector, specPath.Child("selector"))...)
	return allErrs
}

// ValidateEndpoints checks an Endpoints object's addresses and ports.
func ValidateEndpoints(ep *corev1.Endpoints) field.ErrorList {
	allErrs := ValidateObjectMeta(&ep.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, metadataPath)
	for i, subset := range ep.Subsets {
		sp := field.NewPath("subsets").Index(i)
		for j, a := range append(append([]corev1.EndpointAddress{}, subset.Addresses...), subset.NotReadyAddresses...) {
			if _, err := netip.ParseAddr(a.IP); err != nil {
				allErrs = append(allErrs, field.Invalid(sp.Child("addresses").Index(j).Child("ip"), a.IP, "must be a valid IP address"))
			}
		}
		for j, p := range subset.Ports {
			for _, msg := range validation.IsValidPortNum(int(p.Port)) {
				allErrs = append(allErrs, field.Invalid(sp.Child("ports").Index(j).Child("port"), p.Port, msg))
			}
		}
	}
	return allErrs
}

var supportedAddressTypes = sets.New(discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6, discoveryv1.AddressTypeFQDN)

// ValidateEndpointSlice checks an EndpointSlice as upstream's rules say: a supported address
// type, 1 to 100 addresses per endpoint of that type, at most 1000 endpoints and 100 ports.
func ValidateEndpointSlice(slice *discoveryv1.EndpointSlice) field.ErrorList {
	allErrs := ValidateObjectMeta(&slice.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, metadataPath)
	if !supportedAddressTypes.Has(slice.AddressType) {
		allErrs = append(allErrs, field.NotSupported(field.NewPath("addressType"), slice.AddressType, sets.List(supportedAddressTypes)))
	}
	if len(slice.Endpoints) > 1000 {
		allErrs = append(allErrs, field.TooMany(field.NewPath("endpoints"), len(slice.Endpoints), 1000))
	}
	for i, ep := range slice.Endpoints {
		ap := field.NewPath("endpoints").Index(i).Child("addresses")
		if len(ep.Addresses) == 0 {
			allErrs = append(allErrs, field.Required(ap, "must contain at least 1 address"))
		} else if len(ep.Addresses) > 100 {
			allErrs = append(allErrs, field.TooMany(ap, len(ep.Addresses), 100))
		}
		for j, a := range ep.Addresses {
			switch slice.AddressType {
			case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6:
				ip, err := netip.ParseAddr(a)
				if err != nil || ip.Is4() != (slice.AddressType == discoveryv1.AddressTypeIPv4) {
					allErrs = append(allErrs, field.Invalid(ap.Index(j), a, fmt.Sprintf("must be a valid %s address", slice.AddressType)))
				}
			case discoveryv1.AddressTypeFQDN:
				for _, msg := range validation.IsFullyQualifiedDomainName(ap.Index(j), a) {
					allErrs = append(allErrs, msg)
				}
			}
		}
	}
	if len(slice.Ports) > 100 {
		allErrs = append(allErrs, field.TooMany(field.NewPath("ports"), len(slice.Ports), 100))
	}
	for i, p := range slice.Ports {
		pp := field.NewPath("ports").Index(i)
		if p.Name != nil && *p.Name != "" {
			for _, msg := range validation.IsDNS1123Label(*p.Name) {
				allErrs = append(allErrs, field.Invalid(pp.Child("name"), *p.Name, msg))
			}
		}
		if p.Protocol != nil && !supportedPortProtocols.Has(*p.Protocol) {
			allErrs = append(allErrs, field.NotSupported(pp.Child("protocol"), *p.Protocol, sets.List(supportedPortProtocols)))
		}
		if p.Port != nil {
			for _, msg := range validation.IsValidPortNum(int(*p.Port)) {
				allErrs = append(allErrs, field.Invalid(pp.Child("port"), *p.Port, msg))
			}
		}
	}
	return allErrs
}
