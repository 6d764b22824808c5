// Package quota says what a ResourceQuota counts, as upstream's quota evaluators: how much of
// each quota resource one object uses (object counts, a pod's compute requests and limits, a
// service's node ports, a claim's storage), whether a quota's scopes select an object, and the
// requests a pod must state under a compute quota. The ResourceQuota admission plugin and the
// quota controller both count with it, so that they never disagree. It never reads storage or
// speaks HTTP.
package quota

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
)

// ObjectCountName is the quota resource counting objects of gr: count/pods,
// count/deployments.apps.
func ObjectCountName(gr schema.GroupResource) corev1.ResourceName {
	if gr.Group == "" {
		return corev1.ResourceName("count/" + gr.Resource)
	}
	return corev1.ResourceName("count/" + gr.Resource + "." + gr.Group)
}

// ParseObjectCountName is the group resource an object count names ("count/deployments.apps"
// is deployments in apps); ok is false for other names.
func ParseObjectCountName(name corev1.ResourceName) (gr schema.GroupResource, ok bool) {
	rest, found := strings.CutPrefix(string(name), "count/")
	if !found || rest == "" {
		return schema.GroupResource{}, false
	}
	resource, group, _ := strings.Cut(rest, ".")
	return schema.GroupResource{Group: group, Resource: resource}, true
}

// legacyCountNames are the core resources also counted under their bare name, as before
// count/ existed.
var legacyCountNames = map[string]corev1.ResourceName{
	"pods": corev1.ResourcePods, "services": corev1.ResourceServices, "replicationcontrollers": corev1.ResourceReplicationControllers,
	"resourcequotas": corev1.ResourceQuotas, "secrets": corev1.ResourceSecrets, "configmaps": corev1.ResourceConfigMaps,
	"persistentvolumeclaims": corev1.ResourcePersistentVolumeClaims,
}

// Usage is what one object of gr uses of each quota resource. now decides whether a pod being
// deleted still counts.
func Usage(gr schema.GroupResource, obj runtime.Object, now time.Time) corev1.ResourceList {
	usage := corev1.ResourceList{ObjectCountName(gr): *resource.NewQuantity(1, resource.DecimalSI)}
	if gr.Group != "" {
		return usage
	}
	if legacy, ok := legacyCountNames[gr.Resource]; ok && gr.Resource != "pods" {
		usage[legacy] = *resource.NewQuantity(1, resource.DecimalSI)
	}
	switch o := obj.(type) {
	case *corev1.Pod:
		if PodCounts(o, now) {
			usage[corev1.ResourcePods] = *resource.NewQuantity(1, resource.DecimalSI)
			add(usage, podComputeUsage(o))
		}
	case *corev1.Service:
		ports := 0
		if o.Spec.Type == corev1.ServiceTypeNodePort || o.Spec.Type == corev1.ServiceTypeLoadBalancer {
			ports = len(o.Spec.Ports)
		}
		usage[corev1.ResourceServicesNodePorts] = *resource.NewQuantity(int64(ports), resource.DecimalSI)
		lbs := 0
		if o.Spec.Type == corev1.ServiceTypeLoadBalancer {
			lbs = 1
		}
		usage[corev1.ResourceServicesLoadBalancers] = *resource.NewQuantity(int64(lbs), resource.DecimalSI)
	case *corev1.PersistentVolumeClaim:
		if q, ok := o.Spec.Resources.Requests[corev1.ResourceStorage]; ok {
			usage[corev1.ResourceRequestsStorage] = q.DeepCopy()
		}
	}
	return usage
}

// PodCounts says whether a pod's compute resources count: not once it has finished, nor once
// its deletion's grace period is over.
func PodCounts(pod *corev1.Pod, now time.Time) bool {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	if pod.DeletionTimestamp != nil && pod.DeletionGracePeriodSeconds != nil {
		if now.After(pod.DeletionTimestamp.Add(time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second)) {
			return false
		}
	}
	return true
}

// podComputeUsage is the pod's requests and limits under their quota names: the larger of its
// containers' sum and its largest init container, plus its overhead.
func podComputeUsage(pod *corev1.Pod) corev1.ResourceList {
	requests := podTotal(pod, func(c *corev1.Container) corev1.ResourceList { return c.Resources.Requests })
	limits := podTotal(pod, func(c *corev1.Container) corev1.ResourceList { return c.Resources.Limits })
	out := corev1.ResourceList{}
	for k, v := range requests {
		switch {
		case k == corev1.ResourceCPU || k == corev1.ResourceMemory || k == corev1.ResourceEphemeralStorage:
			out[k] = v.DeepCopy()
			out[corev1.ResourceName("requests."+string(k))] = v.DeepCopy()
		case strings.HasPrefix(string(k), corev1.ResourceHugePagesPrefix):
			out[corev1.ResourceName(corev1.DefaultResourceRequestsPrefix+string(k))] = v.DeepCopy()
		case strings.Contains(string(k), "/") && !strings.Contains(string(k), corev1.ResourceDefaultNamespacePrefix):
			out[corev1.ResourceName(corev1.DefaultResourceRequestsPrefix+string(k))] = v.DeepCopy()
		}
	}
	for k, v := range limits {
		if k == corev1.ResourceCPU || k == corev1.ResourceMemory || k == corev1.ResourceEphemeralStorage {
			out[corev1.ResourceName("limits."+string(k))] = v.DeepCopy()
		}
	}
	return out
}

func podTotal(pod *corev1.Pod, of func(*corev1.Container) corev1.ResourceList) corev1.ResourceList {
	sum := corev1.ResourceList{}
	for i := range pod.Spec.Containers {
		add(sum, of(&pod.Spec.Containers[i]))
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			add(sum, of(c)) // a sidecar runs beside the containers
			continue
		}
		for k, v := range of(c) {
			if cur, ok := sum[k]; !ok || v.Cmp(cur) > 0 {
				sum[k] = v.DeepCopy()
			}
		}
	}
	add(sum, pod.Spec.Overhead)
	return sum
}

func add(into, more corev1.ResourceList) {
	for k, v := range more {
		cur := into[k]
		cur.Add(v)
		into[k] = cur
	}
}

// Add is a + b, resource by resource.
func Add(a, b corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{}
	add(out, a)
	add(out, b)
	return out
}

// Matches says whether the quota's scopes and scope selector select obj: they only ever select
// pods, so a scoped quota never limits other kinds.
func Matches(q *corev1.ResourceQuota, obj runtime.Object) bool {
	var reqs []corev1.ScopedResourceSelectorRequirement
	for _, s := range q.Spec.Scopes {
		reqs = append(reqs, corev1.ScopedResourceSelectorRequirement{ScopeName: s, Operator: corev1.ScopeSelectorOpExists})
	}
	if q.Spec.ScopeSelector != nil {
		reqs = append(reqs, q.Spec.ScopeSelector.MatchExpressions...)
	}
	if len(reqs) == 0 {
		return true
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return false
	}
	for _, r := range reqs {
		if !podMatchesScope(pod, r) {
			return false
		}
	}
	return true
}

func podMatchesScope(pod *corev1.Pod, r corev1.ScopedResourceSelectorRequirement) bool {
	terminating := pod.Spec.ActiveDeadlineSeconds != nil && *pod.Spec.ActiveDeadlineSeconds >= 0
	switch r.ScopeName {
	case corev1.ResourceQuotaScopeTerminating:
		return terminating
	case corev1.ResourceQuotaScopeNotTerminating:
		return !terminating
	case corev1.ResourceQuotaScopeBestEffort:
		return bestEffort(pod)
	case corev1.ResourceQuotaScopeNotBestEffort:
		return !bestEffort(pod)
	case corev1.ResourceQuotaScopePriorityClass:
		name := pod.Spec.PriorityClassName
		switch r.Operator {
		case corev1.ScopeSelectorOpExists:
			return name != ""
		case corev1.ScopeSelectorOpDoesNotExist:
			return name == ""
		case corev1.ScopeSelectorOpIn:
			return slices.Contains(r.Values, name)
		case corev1.ScopeSelectorOpNotIn:
			return !slices.Contains(r.Values, name)
		}
	case corev1.ResourceQuotaScopeCrossNamespacePodAffinity:
		return crossNamespaceAffinity(pod)
	}
	return false
}

// bestEffort: no container asks for or is limited in cpu or memory.
func bestEffort(pod *corev1.Pod) bool {
	all := append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...)
	for _, c := range all {
		for _, list := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
			for _, k := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if q, ok := list[k]; ok && !q.IsZero() {
					return false
				}
			}
		}
	}
	return true
}

func crossNamespaceAffinity(pod *corev1.Pod) bool {
	a := pod.Spec.Affinity
	if a == nil {
		return false
	}
	var terms []corev1.PodAffinityTerm
	if a.PodAffinity != nil {
		terms = append(terms, a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution...)
		for _, w := range a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			terms = append(terms, w.PodAffinityTerm)
		}
	}
	if a.PodAntiAffinity != nil {
		terms = append(terms, a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution...)
		for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			terms = append(terms, w.PodAffinityTerm)
		}
	}
	for _, t := range terms {
		if len(t.Namespaces) > 0 || t.NamespaceSelector != nil {
			return true
		}
	}
	return false
}

// explicitResources are the quota resources that oblige every container of a pod to state the
// matching request or limit (a rule upstream keeps for compatibility).
var explicitResources = sets.New[corev1.ResourceName](corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceRequestsCPU,
	corev1.ResourceRequestsMemory, corev1.ResourceLimitsCPU, corev1.ResourceLimitsMemory)

// Constraints checks that a pod states what the quota resources it is counted under require:
// under a cpu or memory quota each container must give that request (or limit), in upstream's
// words ("must specify limits.cpu for: web").
func Constraints(required []corev1.ResourceName, obj runtime.Object) error {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil
	}
	req := sets.New(required...).Intersection(explicitResources)
	if req.Len() == 0 {
		return nil
	}
	missing := map[corev1.ResourceName]sets.Set[string]{}
	all := append(slices.Clone(pod.Spec.Containers), pod.Spec.InitContainers...)
	for i := range all {
		c := &all[i]
		has := sets.New[corev1.ResourceName]()
		for k := range c.Resources.Requests {
			has.Insert(k, corev1.ResourceName("requests."+string(k)))
		}
		for k := range c.Resources.Limits {
			has.Insert(corev1.ResourceName("limits." + string(k)))
		}
		for _, k := range req.Difference(has).UnsortedList() {
			if missing[k] == nil {
				missing[k] = sets.New[string]()
			}
			missing[k].Insert(c.Name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	names := make([]string, 0, len(missing))
	for k := range missing {
		names = append(names, string(k))
	}
	sort.Strings(names)
	var msgs []string
	for _, k := range names {
		msgs = append(msgs, fmt.Sprintf("%s for: %s", k, strings.Join(sets.List(missing[corev1.ResourceName(k)]), ",")))
	}
	return fmt.Errorf("must specify %s", strings.Join(msgs, "; "))
}
