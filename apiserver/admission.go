package apiserver

import (
	"context"
	"fmt"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/registry"
)

// admission runs the checks upstream's admission plugins make before a write reaches the
// registry: NamespaceLifecycle (no content in a namespace that is missing or terminating, and
// the namespaces the system needs cannot be deleted), NodeRestriction (a kubelet writes only
// its own objects, admission_noderestriction.go) and Priority (a pod's priority comes from
// its PriorityClass; one class at most is the global default).
type admission struct {
	namespaces      *registry.Store
	priorityClasses *registry.Store
	serviceAccounts *registry.Store
	pods            *registry.Store
	storageClasses  *registry.Store
	ingressClasses  *registry.Store
	runtimeClasses  *registry.Store
	limitRanges     *registry.Store
	resourceQuotas  *registry.Store
	quotaBatches    *quotaBatches
	disabled        sets.Set[string]
}

// AdmissionPlugins are the upstream admission plugins skiff implements, by upstream's names, in
// the order they run. All are on unless Config.DisableAdmissionPlugins names them.
var AdmissionPlugins = []string{"NamespaceLifecycle", "LimitRanger", "ServiceAccount", "NodeRestriction", "Priority", "TaintNodesByCondition",
	"DefaultStorageClass", "StorageObjectInUseProtection", "PersistentVolumeClaimResize", "RuntimeClass", "DefaultIngressClass", "CertificateApproval",
	"CertificateSigning", "CertificateSubjectRestriction", "ResourceQuota"}

// disabledPlugins checks names against AdmissionPlugins and returns them as a set.
func disabledPlugins(names []string) (sets.Set[string], error) {
	known := sets.New(AdmissionPlugins...)
	for _, n := range names {
		if !known.Has(n) {
			return nil, fmt.Errorf("admission plugin %q is not known; known plugins: %v", n, AdmissionPlugins)
		}
	}
	return sets.New(names...), nil
}

// enabled says whether the plugin named so runs.
func (a admission) enabled(plugin string) bool { return !a.disabled.Has(plugin) }

// immortalNamespaces cannot be deleted, as upstream.
var immortalNamespaces = sets.New(metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic)

func (a admission) admitCreate(ctx context.Context, res *apis.Resource, ns string, obj runtime.Object) error {
	// NamespaceLifecycle runs first, as upstream's: content for a missing namespace is a 404
	// whatever else the other plugins would say of it
	if err := a.admitNamespaceLifecycle(ctx, res, ns); err != nil {
		return err
	}
	if err := a.admitLimitRanger(ctx, res.GroupVersionResource().GroupResource(), ns, obj); err != nil {
		return err
	}
	switch o := obj.(type) {
	case *corev1.Pod:
		if err := a.admitPodServiceAccount(ctx, ns, o); err != nil {
			return err
		}
		if err := a.admitPodPriority(ctx, o); err != nil {
			return err
		}
		if err := a.admitPodRuntimeClass(ctx, o); err != nil {
			return err
		}
	case *schedulingv1.PriorityClass:
		if err := a.admitGlobalDefault(ctx, o); err != nil {
			return err
		}
	case *corev1.Node:
		a.admitNodeTaint(o)
	case *corev1.PersistentVolumeClaim:
		if err := a.admitClaimStorageClass(ctx, o); err != nil {
			return err
		}
		a.admitStorageProtection(o, apis.PVCProtectionFinalizer, o.SetFinalizers)
	case *corev1.PersistentVolume:
		a.admitStorageProtection(o, apis.PVProtectionFinalizer, o.SetFinalizers)
	case *networkingv1.Ingress:
		if err := a.admitIngressClass(ctx, o); err != nil {
			return err
		}
	case *certificatesv1.CertificateSigningRequest:
		if err := a.admitCSRCreate(ctx, o); err != nil {
			return err
		}
	}
	// ResourceQuota runs last, as upstream's: it counts the object as the others left it
	return a.admitResourceQuota(ctx, res, ns, obj, isDryRunAnswer(ctx))
}

// admitNamespaceLifecycle refuses content in a namespace that is missing or terminating.
func (a admission) admitNamespaceLifecycle(ctx context.Context, res *apis.Resource, ns string) error {
	if !res.Namespaced || a.namespaces == nil || !a.enabled("NamespaceLifecycle") {
		return nil
	}
	// the cache answers almost always; a namespace created a moment ago may not have reached
	// it yet, so a miss is confirmed with a consistent read, as upstream's lifecycle plugin
	nsObj, err := a.namespaces.Get(ctx, "", ns, &metav1.GetOptions{ResourceVersion: "0"})
	if apierrors.IsNotFound(err) {
		nsObj, err = a.namespaces.Get(ctx, "", ns, &metav1.GetOptions{})
	}
	if err != nil {
		return err
	}
	if nsObj.(*corev1.Namespace).Status.Phase == corev1.NamespaceTerminating {
		err := apierrors.NewForbidden(res.GroupVersionResource().GroupResource(), "",
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", ns))
		err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
			Type:    corev1.NamespaceTerminatingCause,
			Message: fmt.Sprintf("namespace %s is being terminated", ns),
			Field:   "metadata.namespace",
		})
		return err
	}
	return nil
}

func (a admission) admitDelete(ctx context.Context, res *apis.Resource, ns string, name string) error {
	if err := a.admitNodeDelete(ctx, res.GroupVersionResource().GroupResource(), ns, name); err != nil {
		return err
	}
	if res.GroupVersion.Group == "" && res.Name == "namespaces" && immortalNamespaces.Has(name) && a.enabled("NamespaceLifecycle") {
		return apierrors.NewForbidden(res.GroupVersionResource().GroupResource(), name,
			fmt.Errorf("this namespace may not be deleted"))
	}
	return nil
}

// admitUpdate runs the checks of writes that change an object.
func (a admission) admitUpdate(ctx context.Context, obj runtime.Object) error {
	if pc, ok := obj.(*schedulingv1.PriorityClass); ok {
		return a.admitGlobalDefault(ctx, pc)
	}
	return nil
}

// lookupPriorityClass reads a class from the cache, confirming a miss with a consistent read.
func (a admission) lookupPriorityClass(ctx context.Context, name string) (*schedulingv1.PriorityClass, error) {
	obj, err := a.priorityClasses.Get(ctx, "", name, &metav1.GetOptions{ResourceVersion: "0"})
	if apierrors.IsNotFound(err) {
		obj, err = a.priorityClasses.Get(ctx, "", name, &metav1.GetOptions{})
	}
	if err != nil {
		return nil, err
	}
	return obj.(*schedulingv1.PriorityClass), nil
}

// globalDefaultClass is the class pods that name none get: the global default with the lowest
// value, as upstream picks among several.
func (a admission) globalDefaultClass(ctx context.Context) (*schedulingv1.PriorityClass, error) {
	list, err := a.priorityClasses.List(ctx, "", registry.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return nil, err
	}
	var chosen *schedulingv1.PriorityClass
	for i, pc := range list.(*schedulingv1.PriorityClassList).Items {
		if pc.GlobalDefault && (chosen == nil || pc.Value < chosen.Value) {
			chosen = &list.(*schedulingv1.PriorityClassList).Items[i]
		}
	}
	return chosen, nil
}

// admitPodPriority is upstream's Priority plugin for a new pod: spec.priority and
// spec.preemptionPolicy come from the named class (or the global default, or 0), and a pod may
// not state values of its own that differ.
func (a admission) admitPodPriority(ctx context.Context, pod *corev1.Pod) error {
	if a.priorityClasses == nil || !a.enabled("Priority") {
		return nil
	}
	podsGR := schema.GroupResource{Resource: "pods"}
	var class *schedulingv1.PriorityClass
	var err error
	if pod.Spec.PriorityClassName == "" {
		if class, err = a.globalDefaultClass(ctx); err != nil {
			return err
		}
	} else {
		class, err = a.lookupPriorityClass(ctx, pod.Spec.PriorityClassName)
		if apierrors.IsNotFound(err) {
			return apierrors.NewForbidden(podsGR, pod.Name, fmt.Errorf("no PriorityClass with name %v was found", pod.Spec.PriorityClassName))
		}
		if err != nil {
			return err
		}
	}
	priority, policy := int32(0), corev1.PreemptLowerPriority
	if class != nil {
		pod.Spec.PriorityClassName = class.Name
		priority = class.Value
		if class.PreemptionPolicy != nil {
			policy = *class.PreemptionPolicy
		}
	}
	if pod.Spec.Priority != nil && *pod.Spec.Priority != priority {
		return apierrors.NewForbidden(podsGR, pod.Name, fmt.Errorf("the integer value of priority (%d) must not be provided in pod spec; priority admission controller computed %d from the given PriorityClass name", *pod.Spec.Priority, priority))
	}
	if pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy != policy {
		return apierrors.NewForbidden(podsGR, pod.Name, fmt.Errorf("the string value of PreemptionPolicy (%s) must not be provided in pod spec; priority admission controller computed %s from the given PriorityClass name", *pod.Spec.PreemptionPolicy, policy))
	}
	pod.Spec.Priority, pod.Spec.PreemptionPolicy = &priority, &policy
	return nil
}

// admitGlobalDefault refuses a second global default class.
func (a admission) admitGlobalDefault(ctx context.Context, pc *schedulingv1.PriorityClass) error {
	if !pc.GlobalDefault || a.priorityClasses == nil || !a.enabled("Priority") {
		return nil
	}
	existing, err := a.globalDefaultClass(ctx)
	if err != nil {
		return err
	}
	if existing != nil && existing.Name != pc.Name {
		return apierrors.NewForbidden(schema.GroupResource{Group: "scheduling.k8s.io", Resource: "priorityclasses"}, pc.Name,
			fmt.Errorf("PriorityClass %v is already marked as default. Only one default can exist", existing.Name))
	}
	return nil
}
