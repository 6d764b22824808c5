package apis

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// serviceStrategy is upstream's service strategy: status only through services/status; what
// the server allocated (cluster IPs, node ports) stays when an update leaves it out, as
// kubectl apply and replace do.
type serviceStrategy struct{}

// ServiceStrategy is the strategy of services.
var ServiceStrategy = serviceStrategy{}

var _ Strategy = serviceStrategy{}

func (serviceStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	svc := obj.(*corev1.Service)
	svc.Status = corev1.ServiceStatus{}
	normalizeClusterIPs(svc, nil)
}

func (serviceStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return ValidateService(obj.(*corev1.Service))
}

func (serviceStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	svc, oldSvc := obj.(*corev1.Service), old.(*corev1.Service)
	svc.Status = oldSvc.Status
	normalizeClusterIPs(svc, oldSvc)
	dropTypeDependentFields(svc, oldSvc)
	keepAllocated(svc, oldSvc)
}

// dropTypeDependentFields clears what a change of type leaves without meaning, as upstream's
// service strategy does: only fields the update left as they were (a value the user changed
// too is for validation to judge), so that switching a ClusterIP Service to ExternalName, or a
// NodePort one to ClusterIP, needs no more than the new type. The addresses and ports go back
// to their pools when the allocator sees them gone.
func dropTypeDependentFields(svc, old *corev1.Service) {
	needsClusterIP := func(s *corev1.Service) bool { return s.Spec.Type != corev1.ServiceTypeExternalName }
	if needsClusterIP(old) && !needsClusterIP(svc) {
		if svc.Spec.ClusterIP == old.Spec.ClusterIP && slices.Equal(svc.Spec.ClusterIPs, old.Spec.ClusterIPs) {
			svc.Spec.ClusterIP, svc.Spec.ClusterIPs = "", nil
		}
		if slices.Equal(svc.Spec.IPFamilies, old.Spec.IPFamilies) {
			svc.Spec.IPFamilies = nil
		}
		if ptr.Deref(svc.Spec.IPFamilyPolicy, "") == ptr.Deref(old.Spec.IPFamilyPolicy, "") {
			svc.Spec.IPFamilyPolicy = nil
		}
	}
	needsNodePorts := func(s *corev1.Service) bool {
		return s.Spec.Type == corev1.ServiceTypeNodePort || s.Spec.Type == corev1.ServiceTypeLoadBalancer
	}
	if needsNodePorts(old) && !needsNodePorts(svc) && noNewNodePorts(svc, old) {
		for i := range svc.Spec.Ports {
			svc.Spec.Ports[i].NodePort = 0
		}
	}
	needsHealthCheckPort := func(s *corev1.Service) bool {
		return s.Spec.Type == corev1.ServiceTypeLoadBalancer && s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
	}
	if needsHealthCheckPort(old) && !needsHealthCheckPort(svc) && svc.Spec.HealthCheckNodePort == old.Spec.HealthCheckNodePort {
		svc.Spec.HealthCheckNodePort = 0
	}
	if old.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		if svc.Spec.AllocateLoadBalancerNodePorts != nil && old.Spec.AllocateLoadBalancerNodePorts != nil &&
			*svc.Spec.AllocateLoadBalancerNodePorts == *old.Spec.AllocateLoadBalancerNodePorts {
			svc.Spec.AllocateLoadBalancerNodePorts = nil
		}
		if ptr.Equal(svc.Spec.LoadBalancerClass, old.Spec.LoadBalancerClass) {
			svc.Spec.LoadBalancerClass = nil
		}
	}
	externallyAccessible := func(s *corev1.Service) bool {
		return needsNodePorts(s) || (s.Spec.Type == corev1.ServiceTypeClusterIP && len(s.Spec.ExternalIPs) > 0)
	}
	if externallyAccessible(old) && !externallyAccessible(svc) && svc.Spec.ExternalTrafficPolicy == old.Spec.ExternalTrafficPolicy {
		svc.Spec.ExternalTrafficPolicy = ""
	}
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		svc.Status.LoadBalancer = corev1.LoadBalancerStatus{}
	}
}

// noNewNodePorts says whether svc names only node ports old had: ports may be added, removed
// or changed, but a node port of its own is the user's to keep, and validation's to refuse.
func noNewNodePorts(svc, old *corev1.Service) bool {
	had := map[int32]bool{}
	for _, p := range old.Spec.Ports {
		had[p.NodePort] = true
	}
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 && !had[p.NodePort] {
			return false
		}
	}
	return true
}

// keepAllocated copies the allocated values an update left out from the stored service, as
// upstream's patchAllocatedValues.
func keepAllocated(svc, old *corev1.Service) {
	stillClusterIP := svc.Spec.Type != corev1.ServiceTypeExternalName && old.Spec.Type != corev1.ServiceTypeExternalName
	if stillClusterIP && svc.Spec.ClusterIP == "" {
		svc.Spec.ClusterIP = old.Spec.ClusterIP
	}
	if stillClusterIP && len(svc.Spec.ClusterIPs) == 0 {
		svc.Spec.ClusterIPs = old.Spec.ClusterIPs
	}
	// the families and policy an update leaves out are the stored ones; a policy the update
	// names is kept (a downgrade to SingleStack names only the policy)
	if stillClusterIP && len(svc.Spec.IPFamilies) == 0 {
		svc.Spec.IPFamilies = old.Spec.IPFamilies
	}
	if stillClusterIP && svc.Spec.IPFamilyPolicy == nil {
		svc.Spec.IPFamilyPolicy = old.Spec.IPFamilyPolicy
	}
	if svc.Spec.Type == old.Spec.Type && (svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer) {
		for i := range svc.Spec.Ports {
			p := &svc.Spec.Ports[i]
			if p.NodePort != 0 {
				continue
			}
			for _, op := range old.Spec.Ports {
				if op.Port == p.Port && op.Protocol == p.Protocol {
					p.NodePort = op.NodePort
				}
			}
		}
	}
}

func (serviceStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidateServiceUpdate(obj.(*corev1.Service), old.(*corev1.Service))
}

func (serviceStrategy) AllowCreateOnUpdate() bool      { return true }
func (serviceStrategy) AllowUnconditionalUpdate() bool { return true }

// serviceStatusStrategy is the strategy of services/status.
type serviceStatusStrategy struct{ serviceStrategy }

// ServiceStatusStrategy is the strategy of services/status.
var ServiceStatusStrategy = serviceStatusStrategy{}

func (serviceStatusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	obj.(*corev1.Service).Spec = old.(*corev1.Service).Spec
}

func (serviceStatusStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidateServiceStatusUpdate(obj.(*corev1.Service), old.(*corev1.Service))
}

// endpointsStrategy keeps what a client sends, as upstream's.
type endpointsStrategy struct{}

// EndpointsStrategy is the strategy of endpoints.
var EndpointsStrategy = endpointsStrategy{}

func (endpointsStrategy) PrepareForCreate(context.Context, runtime.Object) {}
func (endpointsStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return ValidateEndpoints(obj.(*corev1.Endpoints))
}
func (endpointsStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}
func (endpointsStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	ep, oldEp := obj.(*corev1.Endpoints), old.(*corev1.Endpoints)
	return append(ValidateObjectMetaUpdate(&ep.ObjectMeta, &oldEp.ObjectMeta, field.NewPath("metadata")), ValidateEndpoints(ep)...)
}
func (endpointsStrategy) AllowCreateOnUpdate() bool      { return true }
func (endpointsStrategy) AllowUnconditionalUpdate() bool { return true }

// endpointSliceStrategy keeps what a client sends; generation counts changes of endpoints and
// ports, as upstream's.
type endpointSliceStrategy struct{}

// EndpointSliceStrategy is the strategy of endpoint slices.
var EndpointSliceStrategy = endpointSliceStrategy{}

func (endpointSliceStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	obj.(*discoveryv1.EndpointSlice).Generation = 1
}
func (endpointSliceStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return ValidateEndpointSlice(obj.(*discoveryv1.EndpointSlice))
}
func (endpointSliceStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	s, o := obj.(*discoveryv1.EndpointSlice), old.(*discoveryv1.EndpointSlice)
	if !apiequality.Semantic.DeepEqual(s.Endpoints, o.Endpoints) || !apiequality.Semantic.DeepEqual(s.Ports, o.Ports) {
		s.Generation = o.Generation + 1
	}
}
func (endpointSliceStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	s, o := obj.(*discoveryv1.EndpointSlice), old.(*discoveryv1.EndpointSlice)
	allErrs := ValidateObjectMetaUpdate(&s.ObjectMeta, &o.ObjectMeta, field.NewPath("metadata"))
	if s.AddressType != o.AddressType {
		allErrs = append(allErrs, field.Invalid(field.NewPath("addressType"), s.AddressType, "field is immutable"))
	}
	return append(allErrs, ValidateEndpointSlice(s)...)
}
func (endpointSliceStrategy) AllowCreateOnUpdate() bool      { return false }
func (endpointSliceStrategy) AllowUnconditionalUpdate() bool { return true }
