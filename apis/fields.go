package apis

import (
	"cmp"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
)

// objectMetaFields are the fields every resource can be selected by.
func objectMetaFields(obj runtime.Object) fields.Set {
	m, err := meta.Accessor(obj)
	if err != nil {
		return fields.Set{}
	}
	set := fields.Set{"metadata.name": m.GetName()}
	// Cluster-scoped objects have an empty namespace; upstream only offers the label on
	// namespaced ones, which the caller decides by the table.
	set["metadata.namespace"] = m.GetNamespace()
	return set
}

func podFields(obj runtime.Object) fields.Set {
	pod := obj.(*corev1.Pod)
	set := objectMetaFields(obj)
	set["spec.nodeName"] = pod.Spec.NodeName
	set["spec.restartPolicy"] = string(pod.Spec.RestartPolicy)
	set["spec.schedulerName"] = pod.Spec.SchedulerName
	set["spec.serviceAccountName"] = pod.Spec.ServiceAccountName
	set["spec.hostNetwork"] = strconv.FormatBool(pod.Spec.HostNetwork)
	set["status.phase"] = string(pod.Status.Phase)
	// Upstream selects on the first pod IP for both labels.
	podIP := ""
	if len(pod.Status.PodIPs) > 0 {
		podIP = pod.Status.PodIPs[0].IP
	} else {
		podIP = pod.Status.PodIP
	}
	set["status.podIP"] = podIP
	set["status.podIPs"] = podIP
	set["status.nominatedNodeName"] = pod.Status.NominatedNodeName
	return set
}

func nodeFields(obj runtime.Object) fields.Set {
	set := objectMetaFields(obj)
	set["spec.unschedulable"] = strconv.FormatBool(obj.(*corev1.Node).Spec.Unschedulable)
	return set
}

func namespaceFields(obj runtime.Object) fields.Set {
	set := objectMetaFields(obj)
	set["status.phase"] = string(obj.(*corev1.Namespace).Status.Phase)
	return set
}

func secretFields(obj runtime.Object) fields.Set {
	set := objectMetaFields(obj)
	set["type"] = string(obj.(*corev1.Secret).Type)
	return set
}

func replicaSetFields(obj runtime.Object) fields.Set {
	set := objectMetaFields(obj)
	set["status.replicas"] = strconv.Itoa(int(obj.(*appsv1.ReplicaSet).Status.Replicas))
	return set
}

func eventFields(obj runtime.Object) fields.Set {
	ev := obj.(*corev1.Event)
	set := objectMetaFields(obj)
	set["involvedObject.kind"] = ev.InvolvedObject.Kind
	set["involvedObject.namespace"] = ev.InvolvedObject.Namespace
	set["involvedObject.name"] = ev.InvolvedObject.Name
	set["involvedObject.uid"] = string(ev.InvolvedObject.UID)
	set["involvedObject.apiVersion"] = ev.InvolvedObject.APIVersion
	set["involvedObject.resourceVersion"] = ev.InvolvedObject.ResourceVersion
	set["involvedObject.fieldPath"] = ev.InvolvedObject.FieldPath
	set["reason"] = ev.Reason
	set["reportingComponent"] = ev.ReportingController
	// an event written through events.k8s.io has no source but its reporting controller,
	// which upstream selects as its source too
	set["source"] = cmp.Or(ev.Source.Component, ev.ReportingController)
	set["type"] = ev.Type
	return set
}

func eventsV1Fields(obj runtime.Object) fields.Set {
	ev := obj.(*eventsv1.Event)
	set := objectMetaFields(obj)
	set["regarding.kind"] = ev.Regarding.Kind
	set["regarding.namespace"] = ev.Regarding.Namespace
	set["regarding.name"] = ev.Regarding.Name
	set["regarding.uid"] = string(ev.Regarding.UID)
	set["regarding.apiVersion"] = ev.Regarding.APIVersion
	set["regarding.resourceVersion"] = ev.Regarding.ResourceVersion
	set["regarding.fieldPath"] = ev.Regarding.FieldPath
	set["reason"] = ev.Reason
	set["reportingController"] = ev.ReportingController
	set["type"] = ev.Type
	set["deprecatedSource"] = ev.DeprecatedSource.Component
	return set
}

// FieldLabels returns the field selector labels the resource supports.
func (r *Resource) FieldLabels() map[string]bool {
	out := map[string]bool{}
	for k := range r.SelectableFields(r.New()) {
		out[k] = true
	}
	return out
}

// SelectableFields returns the field selector values of obj, an object of this resource.
func (r *Resource) SelectableFields(obj runtime.Object) fields.Set {
	set := r.Fields(obj)
	if !r.Namespaced {
		delete(set, "metadata.namespace")
	}
	return set
}

func serviceFields(obj runtime.Object) fields.Set {
	svc := obj.(*corev1.Service)
	set := objectMetaFields(obj)
	set["spec.clusterIP"] = svc.Spec.ClusterIP
	set["spec.type"] = string(svc.Spec.Type)
	return set
}
