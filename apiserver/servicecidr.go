package apiserver

import (
	"context"
	"fmt"
	"net/netip"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/apis"
)

// ensureDefaultServiceCIDR makes the ServiceCIDR named "kubernetes" of the range the service
// allocator gives cluster IPs from, and marks it Ready, as upstream's default ServiceCIDR
// controller does. It is left alone when it exists with other ranges (upstream reports the
// mismatch and changes nothing either).
func (s *Server) ensureDefaultServiceCIDR(ctx context.Context) error {
	store := s.builtinStore(networkingv1.SchemeGroupVersion, "servicecidrs")
	obj := &networkingv1.ServiceCIDR{
		ObjectMeta: metav1.ObjectMeta{Name: apis.DefaultServiceCIDRName},
		Spec:       networkingv1.ServiceCIDRSpec{CIDRs: serviceCIDRStrings(s.allocator.CIDRs())},
	}
	if _, err := store.Create(ctx, "", obj, false); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create the default ServiceCIDR: %w", err)
	}
	_, _, err := store.Update(ctx, "", apis.DefaultServiceCIDRName, apis.ServiceCIDRStatusStrategy, func(_ context.Context, current runtime.Object) (runtime.Object, error) {
		if current == nil {
			return nil, apierrors.NewNotFound(networkingv1.Resource("servicecidrs"), apis.DefaultServiceCIDRName)
		}
		c := current.(*networkingv1.ServiceCIDR).DeepCopy()
		if meta.FindStatusCondition(c.Status.Conditions, networkingv1.ServiceCIDRConditionReady) == nil {
			meta.SetStatusCondition(&c.Status.Conditions, metav1.Condition{
				Type: networkingv1.ServiceCIDRConditionReady, Status: metav1.ConditionTrue,
				Message: "Kubernetes default Service CIDR is ready",
			})
		}
		return c, nil
	}, false)
	if err != nil {
		return fmt.Errorf("mark the default ServiceCIDR ready: %w", err)
	}
	return nil
}

func serviceCIDRStrings(cidrs []netip.Prefix) []string {
	out := make([]string, len(cidrs))
	for i, c := range cidrs {
		out[i] = c.Masked().String()
	}
	return out
}
