package conformance

import (
	"context"
	"fmt"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"
)

// servedResource is one resource the CRUD table drives through the dynamic client: its
// group/version/resource, its kind, and the smallest spec a real API server accepts for it.
type servedResource struct {
	gvr        schema.GroupVersionResource
	kind       string
	namespaced bool
	// fields returns the object's content besides apiVersion, kind and metadata, for an
	// object in namespace ns (empty when cluster-scoped).
	fields func(ns string) map[string]any
}

// crudVerbs are the verbs a resource must serve for the table to drive it.
var crudVerbs = []string{"create", "get", "list", "update", "patch", "delete", "watch"}

// requireServed skips the spec unless discovery lists the resource with every CRUD verb.
func requireServed(r servedResource) {
	GinkgoHelper()
	list, err := cluster.client.Discovery().ServerResourcesForGroupVersion(r.gvr.GroupVersion().String())
	if err != nil {
		if apierrors.IsNotFound(err) {
			Skip(fmt.Sprintf("the cluster does not serve %s", r.gvr.GroupVersion()))
		}
		Expect(err).NotTo(HaveOccurred())
	}
	for _, res := range list.APIResources {
		if res.Name != r.gvr.Resource {
			continue
		}
		for _, v := range crudVerbs {
			if !slices.Contains(res.Verbs, v) {
				Skip(fmt.Sprintf("the cluster serves %s without the %s verb", r.gvr, v))
			}
		}
		Expect(res.Namespaced).To(Equal(r.namespaced), "discovery's namespaced for %s", r.gvr)
		Expect(res.Kind).To(Equal(r.kind))
		return
	}
	Skip(fmt.Sprintf("the cluster does not serve %s", r.gvr))
}

// waitForWatchEvent reads w until an event of type t for the object named name satisfies
// match, skipping others (controllers may write the object meanwhile), and returns the object.
func waitForWatchEvent(w watch.Interface, t watch.EventType, name string, match func(*unstructured.Unstructured) bool) *unstructured.Unstructured {
	GinkgoHelper()
	timeout := time.After(longWait)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			Expect(ok).To(BeTrue(), "watch closed before a %s event for %s", t, name)
			Expect(ev.Type).NotTo(Equal(watch.Error), "watch error: %v", ev.Object)
			u, isObj := ev.Object.(*unstructured.Unstructured)
			if isObj && ev.Type == t && u.GetName() == name && (match == nil || match(u)) {
				return u
			}
		case <-timeout:
			Fail(fmt.Sprintf("no %s event for %s on the watch within %s", t, name, longWait))
		}
	}
}

func crudResource(ctx SpecContext, r servedResource) {
	requireServed(r)
	var ns string
	var client dynamic.ResourceInterface = cluster.dynamic.Resource(r.gvr)
	if r.namespaced {
		ns = newNamespace(ctx)
		client = cluster.dynamic.Resource(r.gvr).Namespace(ns)
	}
	// a label of this spec's own keeps the list and watch to the one object even for
	// cluster-scoped resources
	run := string(uuid.NewUUID())
	selector := "conformance.skiff.dev/crud=" + run
	name := "crud-" + run[:8]
	obj := &unstructured.Unstructured{Object: r.fields(ns)}
	obj.SetAPIVersion(r.gvr.GroupVersion().String())
	obj.SetKind(r.kind)
	obj.SetName(name)
	obj.SetLabels(map[string]string{"conformance.skiff.dev/crud": run})
	DeferCleanup(func(ctx context.Context) {
		err := client.Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			Expect(err).NotTo(HaveOccurred())
		}
	})

	list, err := client.List(ctx, metav1.ListOptions{LabelSelector: selector})
	Expect(err).NotTo(HaveOccurred())
	Expect(list.Items).To(BeEmpty())
	w, err := client.Watch(ctx, metav1.ListOptions{LabelSelector: selector, ResourceVersion: list.GetResourceVersion()})
	Expect(err).NotTo(HaveOccurred())
	defer w.Stop()

	By("creating " + r.gvr.Resource + "/" + name)
	created, err := client.Create(ctx, obj, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	Expect(created.GetName()).To(Equal(name))
	Expect(created.GetNamespace()).To(Equal(ns))
	Expect(created.GetUID()).NotTo(BeEmpty())
	Expect(created.GetResourceVersion()).NotTo(BeEmpty())
	Expect(created.GetCreationTimestamp().Time.IsZero()).To(BeFalse())
	Expect(waitForWatchEvent(w, watch.Added, name, nil).GetUID()).To(Equal(created.GetUID()))

	By("getting and listing it")
	got, err := client.Get(ctx, name, metav1.GetOptions{})
	Expect(err).NotTo(HaveOccurred())
	Expect(got.GetUID()).To(Equal(created.GetUID()))
	Expect(got.GetKind()).To(Equal(r.kind))
	Expect(got.GetAPIVersion()).To(Equal(r.gvr.GroupVersion().String()))
	list, err = client.List(ctx, metav1.ListOptions{LabelSelector: selector})
	Expect(err).NotTo(HaveOccurred())
	Expect(list.Items).To(HaveLen(1))
	Expect(list.Items[0].GetUID()).To(Equal(created.GetUID()))
	if r.namespaced {
		all, err := cluster.dynamic.Resource(r.gvr).List(ctx, metav1.ListOptions{LabelSelector: selector})
		Expect(err).NotTo(HaveOccurred())
		Expect(all.Items).To(HaveLen(1), "listing across all namespaces")
	}

	By("updating a label")
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := client.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		labels := cur.GetLabels()
		labels["conformance.skiff.dev/updated"] = "true"
		cur.SetLabels(labels)
		_, err = client.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	Expect(err).NotTo(HaveOccurred())
	waitForWatchEvent(w, watch.Modified, name, func(u *unstructured.Unstructured) bool {
		return u.GetLabels()["conformance.skiff.dev/updated"] == "true"
	})

	By("patching an annotation")
	patched, err := client.Patch(ctx, name, types.MergePatchType, []byte(`{"metadata":{"annotations":{"conformance.skiff.dev/patched":"true"}}}`), metav1.PatchOptions{})
	Expect(err).NotTo(HaveOccurred())
	Expect(patched.GetAnnotations()).To(HaveKeyWithValue("conformance.skiff.dev/patched", "true"))
	Expect(patched.GetLabels()).To(HaveKeyWithValue("conformance.skiff.dev/updated", "true"))
	waitForWatchEvent(w, watch.Modified, name, func(u *unstructured.Unstructured) bool {
		return u.GetAnnotations()["conformance.skiff.dev/patched"] == "true"
	})

	By("deleting it")
	Expect(client.Delete(ctx, name, metav1.DeleteOptions{})).To(Succeed())
	waitForWatchEvent(w, watch.Deleted, name, nil)
	_, err = client.Get(ctx, name, metav1.GetOptions{})
	Expect(apierrors.IsNotFound(err)).To(BeTrue(), "get after delete: %v", err)
}

// podTemplate is a pod template the workload resources below accept.
func podTemplate(labels map[string]any) map[string]any {
	return map[string]any{
		"metadata": map[string]any{"labels": labels},
		"spec": map[string]any{
			"containers": []any{map[string]any{"name": "pause", "image": pauseImage}},
		},
	}
}

var _ = Describe("[sig-api-machinery] Served resources", Label("api-machinery"), func() {
	DescribeTable("should create, get, list, update, patch, watch and delete", crudResource,
		Entry("v1 configmaps", servedResource{schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, "ConfigMap", true,
			func(string) map[string]any { return map[string]any{"data": map[string]any{"key": "value"}} }}),
		Entry("v1 secrets", servedResource{schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, "Secret", true,
			func(string) map[string]any {
				return map[string]any{"type": "Opaque", "data": map[string]any{"key": "dmFsdWU="}}
			}}),
		Entry("v1 services", servedResource{schema.GroupVersionResource{Version: "v1", Resource: "services"}, "Service", true,
			func(string) map[string]any {
				return map[string]any{"spec": map[string]any{"selector": map[string]any{"app": "crud"},
					"ports": []any{map[string]any{"port": int64(80), "protocol": "TCP"}}}}
			}}),
		Entry("v1 serviceaccounts", servedResource{schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}, "ServiceAccount", true,
			func(string) map[string]any { return map[string]any{} }}),
		Entry("v1 endpoints", servedResource{schema.GroupVersionResource{Version: "v1", Resource: "endpoints"}, "Endpoints", true,
			func(string) map[string]any {
				return map[string]any{"subsets": []any{map[string]any{
					"addresses": []any{map[string]any{"ip": "10.0.0.24"}},
					"ports":     []any{map[string]any{"port": int64(80), "protocol": "TCP"}}}}}
			}}),
		Entry("v1 events", servedResource{schema.GroupVersionResource{Version: "v1", Resource: "events"}, "Event", true,
			func(ns string) map[string]any {
				return map[string]any{
					"involvedObject": map[string]any{"kind": "ConfigMap", "apiVersion": "v1", "namespace": ns, "name": "regarded"},
					"reason":         "ConformanceCheck", "message": "an event for the CRUD table", "type": "Normal",
					"source": map[string]any{"component": "conformance"}, "count": int64(1),
					"firstTimestamp": metav1.Now().UTC().Format(time.RFC3339), "lastTimestamp": metav1.Now().UTC().Format(time.RFC3339),
				}
			}}),
		Entry("v1 limitranges", servedResource{schema.GroupVersionResource{Version: "v1", Resource: "limitranges"}, "LimitRange", true,
			func(string) map[string]any {
				return map[string]any{"spec": map[string]any{"limits": []any{map[string]any{
					"type": "Container", "default": map[string]any{"cpu": "100m"}}}}}
			}}),
		Entry("v1 resourcequotas", servedResource{schema.GroupVersionResource{Version: "v1", Resource: "resourcequotas"}, "ResourceQuota", true,
			func(string) map[string]any {
				return map[string]any{"spec": map[string]any{"hard": map[string]any{"configmaps": "100"}}}
			}}),
		Entry("v1 podtemplates", servedResource{schema.GroupVersionResource{Version: "v1", Resource: "podtemplates"}, "PodTemplate", true,
			func(string) map[string]any {
				return map[string]any{"template": podTemplate(map[string]any{"app": "crud"})}
			}}),
		Entry("v1 namespaces", servedResource{schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}, "Namespace", false,
			func(string) map[string]any { return map[string]any{} }}),
		Entry("apps/v1 replicasets", servedResource{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}, "ReplicaSet", true,
			func(string) map[string]any {
				return map[string]any{"spec": map[string]any{"replicas": int64(0),
					"selector": map[string]any{"matchLabels": map[string]any{"app": "crud"}},
					"template": podTemplate(map[string]any{"app": "crud"})}}
			}}),
		Entry("apps/v1 deployments", servedResource{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, "Deployment", true,
			func(string) map[string]any {
				return map[string]any{"spec": map[string]any{"replicas": int64(0),
					"selector": map[string]any{"matchLabels": map[string]any{"app": "crud"}},
					"template": podTemplate(map[string]any{"app": "crud"})}}
			}}),
		Entry("apps/v1 statefulsets", servedResource{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"}, "StatefulSet", true,
			func(string) map[string]any {
				return map[string]any{"spec": map[string]any{"replicas": int64(0), "serviceName": "crud",
					"selector": map[string]any{"matchLabels": map[string]any{"app": "crud"}},
					"template": podTemplate(map[string]any{"app": "crud"})}}
			}}),
		Entry("apps/v1 controllerrevisions", servedResource{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "controllerrevisions"}, "ControllerRevision", true,
			func(string) map[string]any {
				return map[string]any{"revision": int64(1), "data": map[string]any{"spec": map[string]any{}}}
			}}),
		Entry("batch/v1 jobs", servedResource{schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}, "Job", true,
			func(string) map[string]any {
				t := podTemplate(map[string]any{"app": "crud"})
				t["spec"].(map[string]any)["restartPolicy"] = "Never"
				return map[string]any{"spec": map[string]any{"suspend": true, "template": t}}
			}}),
		Entry("coordination.k8s.io/v1 leases", servedResource{schema.GroupVersionResource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"}, "Lease", true,
			func(string) map[string]any {
				return map[string]any{"spec": map[string]any{"holderIdentity": "crud", "leaseDurationSeconds": int64(30)}}
			}}),
		Entry("discovery.k8s.io/v1 endpointslices", servedResource{schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}, "EndpointSlice", true,
			func(string) map[string]any {
				return map[string]any{"addressType": "IPv4",
					"endpoints": []any{map[string]any{"addresses": []any{"10.0.0.24"}}},
					"ports":     []any{map[string]any{"name": "http", "port": int64(80), "protocol": "TCP"}}}
			}}),
		Entry("events.k8s.io/v1 events", servedResource{schema.GroupVersionResource{Group: "events.k8s.io", Version: "v1", Resource: "events"}, "Event", true,
			func(ns string) map[string]any {
				return map[string]any{
					"eventTime":           metav1.NowMicro().UTC().Format(metav1.RFC3339Micro),
					"reportingController": "conformance.skiff.dev/suite", "reportingInstance": "conformance",
					"action": "Testing", "reason": "ConformanceCheck", "type": "Normal", "note": "an event for the CRUD table",
					"regarding": map[string]any{"kind": "ConfigMap", "apiVersion": "v1", "namespace": ns, "name": "regarded"},
				}
			}}),
		Entry("policy/v1 poddisruptionbudgets", servedResource{schema.GroupVersionResource{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"}, "PodDisruptionBudget", true,
			func(string) map[string]any {
				return map[string]any{"spec": map[string]any{"minAvailable": int64(1),
					"selector": map[string]any{"matchLabels": map[string]any{"app": "crud"}}}}
			}}),
		Entry("networking.k8s.io/v1 networkpolicies", servedResource{schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"}, "NetworkPolicy", true,
			func(string) map[string]any {
				return map[string]any{"spec": map[string]any{"podSelector": map[string]any{"matchLabels": map[string]any{"app": "crud"}},
					"policyTypes": []any{"Ingress"}}}
			}}),
		Entry("scheduling.k8s.io/v1 priorityclasses", servedResource{schema.GroupVersionResource{Group: "scheduling.k8s.io", Version: "v1", Resource: "priorityclasses"}, "PriorityClass", false,
			func(string) map[string]any {
				return map[string]any{"value": int64(1000), "description": "a class for the CRUD table"}
			}}),
	)
})
