package apiserver

import (
	"context"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/registry"
)

// admitIngressClass is upstream's DefaultIngressClass for a new Ingress: one that names no
// class (neither ingressClassName nor the deprecated annotation) gets the IngressClass marked
// default, the newest one if several are. Without a default class it is left as it is.
func (a admission) admitIngressClass(ctx context.Context, ing *networkingv1.Ingress) error {
	if a.ingressClasses == nil || !a.enabled("DefaultIngressClass") || ing.Spec.IngressClassName != nil {
		return nil
	}
	if _, ok := ing.Annotations[apis.IngressClassAnnotation]; ok {
		return nil
	}
	list, err := a.ingressClasses.List(ctx, "", registry.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return err
	}
	var chosen *networkingv1.IngressClass
	for i := range list.(*networkingv1.IngressClassList).Items {
		ic := &list.(*networkingv1.IngressClassList).Items[i]
		if !apis.IsDefaultIngressClass(&ic.ObjectMeta) {
			continue
		}
		if chosen == nil || ic.CreationTimestamp.After(chosen.CreationTimestamp.Time) ||
			(ic.CreationTimestamp.Equal(&chosen.CreationTimestamp) && ic.Name < chosen.Name) {
			chosen = ic
		}
	}
	if chosen != nil {
		name := chosen.Name
		ing.Spec.IngressClassName = &name
	}
	return nil
}
