package apiserver

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"

	"github.com/skiff-dev/skiff/registry"
)

// limitRangerAnnotation records on a pod which defaults LimitRanger set, as upstream.
const limitRangerAnnotation = "kubernetes.io/limit-ranger"

// admitLimitRanger is upstream's LimitRanger for a new pod or claim: every LimitRange of the
// namespace first fills in its Container defaults (requests and limits a container leaves
// out), then bounds containers, pods and claims by its min, max and maxLimitRequestRatio. A
// breach is a 403 naming every bound broken.
func (a admission) admitLimitRanger(ctx context.Context, gr schema.GroupResource, ns string, obj any) error {
	if a.limitRanges == nil || !a.enabled("LimitRanger") {
		return nil
	}
	pod, isPod := obj.(*corev1.Pod)
	pvc, isPVC := obj.(*corev1.PersistentVolumeClaim)
	if !isPod && !isPVC {
		return nil
	}
	list, err := a.limitRanges.List(ctx, ns, registry.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return err
	}
	ranges := list.(*corev1.LimitRangeList).Items
	if len(ranges) == 0 {
		return nil
	}
	var errs []error
	name := ""
	if isPod {
		for i := range ranges {
			defaultPodResources(&ranges[i], pod)
		}
		for i := range ranges {
			errs = append(errs, validatePodLimits(&ranges[i], pod)...)
		}
		name = pod.Name
	} else {
		for i := range ranges {
			errs = append(errs, validateClaimLimits(&ranges[i], pvc)...)
		}
		name = pvc.Name
	}
	if err := utilerrors.NewAggregate(errs); err != nil {
		return apierrors.NewForbidden(gr, name, err)
	}
	return nil
}

// defaultPodResources sets the Container defaults of lr on every container that lacks them,
// and notes what it set in the pod's kubernetes.io/limit-ranger annotation.
func defaultPodResources(lr *corev1.LimitRange, pod *corev1.Pod) {
	var defaults, defaultRequests corev1.ResourceList
	for _, item := range lr.Spec.Limits {
		if item.Type == corev1.LimitTypeContainer {
			defaults, defaultRequests = item.Default, item.DefaultRequest
		}
	}
	if len(defaults)+len(defaultRequests) == 0 {
		return
	}
	var notes []string
	apply := func(c *corev1.Container, kind string) {
		var setRequests, setLimits []string
		for k, v := range defaults {
			if _, ok := c.Resources.Limits[k]; !ok {
				if c.Resources.Limits == nil {
					c.Resources.Limits = corev1.ResourceList{}
				}
				c.Resources.Limits[k] = v.DeepCopy()
				setLimits = append(setLimits, string(k))
			}
		}
		for k, v := range defaultRequests {
			if _, ok := c.Resources.Requests[k]; !ok {
				if c.Resources.Requests == nil {
					c.Resources.Requests = corev1.ResourceList{}
				}
				c.Resources.Requests[k] = v.DeepCopy()
				setRequests = append(setRequests, string(k))
			}
		}
		sort.Strings(setRequests)
		sort.Strings(setLimits)
		if len(setRequests) > 0 {
			notes = append(notes, fmt.Sprintf("%s request for %s %s", strings.Join(setRequests, ", "), kind, c.Name))
		}
		if len(setLimits) > 0 {
			notes = append(notes, fmt.Sprintf("%s limit for %s %s", strings.Join(setLimits, ", "), kind, c.Name))
		}
	}
	for i := range pod.Spec.Containers {
		apply(&pod.Spec.Containers[i], "container")
	}
	for i := range pod.Spec.InitContainers {
		apply(&pod.Spec.InitContainers[i], "init container")
	}
	if len(notes) > 0 {
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[limitRangerAnnotation] = "LimitRanger plugin set: " + strings.Join(notes, "; ")
	}
}

// validatePodLimits checks the pod's containers against lr's Container item and the pod as a
// whole against its Pod item.
func validatePodLimits(lr *corev1.LimitRange, pod *corev1.Pod) []error {
	var errs []error
	for _, item := range lr.Spec.Limits {
		switch item.Type {
		case corev1.LimitTypeContainer:
			all := append(append([]corev1.Container{}, pod.Spec.Containers...), pod.Spec.InitContainers...)
			for i := range all {
				errs = append(errs, checkBounds(&item, all[i].Resources.Requests, all[i].Resources.Limits)...)
			}
		case corev1.LimitTypePod:
			requests, limits := podResourceTotal(pod, true), podResourceTotal(pod, false)
			errs = append(errs, checkBounds(&item, requests, limits)...)
		}
	}
	return errs
}

func podResourceTotal(pod *corev1.Pod, requests bool) corev1.ResourceList {
	of := func(c *corev1.Container) corev1.ResourceList {
		if requests {
			return c.Resources.Requests
		}
		return c.Resources.Limits
	}
	sum := corev1.ResourceList{}
	for i := range pod.Spec.Containers {
		for k, v := range of(&pod.Spec.Containers[i]) {
			cur := sum[k]
			cur.Add(v)
			sum[k] = cur
		}
	}
	for i := range pod.Spec.InitContainers {
		for k, v := range of(&pod.Spec.InitContainers[i]) {
			if cur, ok := sum[k]; !ok || v.Cmp(cur) > 0 {
				sum[k] = v.DeepCopy()
			}
		}
	}
	return sum
}

// checkBounds is the min, max and ratio checks of one item, in sorted resource order.
func checkBounds(item *corev1.LimitRangeItem, requests, limits corev1.ResourceList) []error {
	var errs []error
	kind := string(item.Type)
	for _, k := range sortedNames(item.Min) {
		errs = appendErr(errs, minConstraint(kind, k, item.Min[k], requests, limits))
	}
	for _, k := range sortedNames(item.Max) {
		errs = appendErr(errs, maxConstraint(kind, k, item.Max[k], requests, limits))
	}
	for _, k := range sortedNames(item.MaxLimitRequestRatio) {
		errs = appendErr(errs, ratioConstraint(kind, k, item.MaxLimitRequestRatio[k], requests, limits))
	}
	return errs
}

// validateClaimLimits bounds a claim's storage request by lr's PersistentVolumeClaim item.
func validateClaimLimits(lr *corev1.LimitRange, pvc *corev1.PersistentVolumeClaim) []error {
	var errs []error
	requests := pvc.Spec.Resources.Requests
	for _, item := range lr.Spec.Limits {
		if item.Type != corev1.LimitTypePersistentVolumeClaim {
			continue
		}
		kind := string(item.Type)
		for _, k := range sortedNames(item.Min) {
			errs = appendErr(errs, minConstraint(kind, k, item.Min[k], requests, corev1.ResourceList{}))
		}
		for _, k := range sortedNames(item.Max) {
			enforced := item.Max[k]
			req, ok := requests[k]
			reqV, _, enforcedV := comparable(req, resource.Quantity{}, enforced)
			if ok && reqV > enforcedV {
				errs = append(errs, fmt.Errorf("maximum %s usage per %s is %s, but request is %s", k, kind, enforced.String(), req.String()))
			}
		}
	}
	return errs
}

func appendErr(errs []error, err error) []error {
	if err != nil {
		return append(errs, err)
	}
	return errs
}

func sortedNames(list corev1.ResourceList) []corev1.ResourceName {
	names := make([]corev1.ResourceName, 0, len(list))
	for k := range list {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
	return names
}

// comparable returns request, limit and bound in milli-units, or in units when any is too
// large for them, as upstream compares.
func comparable(req, lim, enforced resource.Quantity) (int64, int64, int64) {
	if req.Value() >= resource.MaxMilliValue || lim.Value() >= resource.MaxMilliValue || enforced.Value() >= resource.MaxMilliValue {
		return req.Value(), lim.Value(), enforced.Value()
	}
	return req.MilliValue(), lim.MilliValue(), enforced.MilliValue()
}

func minConstraint(kind string, name corev1.ResourceName, enforced resource.Quantity, requests, limits corev1.ResourceList) error {
	req, hasReq := requests[name]
	lim, hasLim := limits[name]
	reqV, limV, enforcedV := comparable(req, lim, enforced)
	switch {
	case !hasReq:
		return fmt.Errorf("minimum %s usage per %s is %s.  No request is specified", name, kind, enforced.String())
	case reqV < enforcedV:
		return fmt.Errorf("minimum %s usage per %s is %s, but request is %s", name, kind, enforced.String(), req.String())
	case hasLim && limV < enforcedV:
		return fmt.Errorf("minimum %s usage per %s is %s, but limit is %s", name, kind, enforced.String(), lim.String())
	}
	return nil
}

func maxConstraint(kind string, name corev1.ResourceName, enforced resource.Quantity, requests, limits corev1.ResourceList) error {
	req, hasReq := requests[name]
	lim, hasLim := limits[name]
	reqV, limV, enforcedV := comparable(req, lim, enforced)
	switch {
	case !hasLim:
		return fmt.Errorf("maximum %s usage per %s is %s.  No limit is specified", name, kind, enforced.String())
	case limV > enforcedV:
		return fmt.Errorf("maximum %s usage per %s is %s, but limit is %s", name, kind, enforced.String(), lim.String())
	case hasReq && reqV > enforcedV:
		return fmt.Errorf("maximum %s usage per %s is %s, but request is %s", name, kind, enforced.String(), req.String())
	}
	return nil
}

func ratioConstraint(kind string, name corev1.ResourceName, enforced resource.Quantity, requests, limits corev1.ResourceList) error {
	req, hasReq := requests[name]
	lim, hasLim := limits[name]
	reqV, limV, _ := comparable(req, lim, enforced)
	if !hasReq || reqV == 0 {
		return fmt.Errorf("%s max limit to request ratio per %s is %s, but no request is specified or request is 0", name, kind, enforced.String())
	}
	if !hasLim || limV == 0 {
		return fmt.Errorf("%s max limit to request ratio per %s is %s, but no limit is specified or limit is 0", name, kind, enforced.String())
	}
	observed := float64(limV) / float64(reqV)
	shown := observed
	bound := float64(enforced.Value())
	if enforced.Value() <= resource.MaxMilliValue {
		observed *= 1000
		bound = float64(enforced.MilliValue())
	}
	if observed > bound {
		return fmt.Errorf("%s max limit to request ratio per %s is %s, but provided ratio is %f", name, kind, enforced.String(), shown)
	}
	return nil
}
