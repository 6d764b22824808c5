package conformance

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/utils/ptr"
)

var _ = Describe("[sig-api-machinery] Discovery", Label("api-machinery"), func() {
	It("should serve the legacy and named groups with their resources", func(ctx SpecContext) {
		groups, resources, err := cluster.client.Discovery().ServerGroupsAndResources()
		Expect(err).NotTo(HaveOccurred())
		var names []string
		for _, g := range groups {
			names = append(names, g.Name)
		}
		Expect(names).To(ContainElements("", "apps", "coordination.k8s.io", "events.k8s.io", "discovery.k8s.io"))

		verbs := map[string][]string{}
		for _, list := range resources {
			for _, r := range list.APIResources {
				verbs[list.GroupVersion+"/"+r.Name] = r.Verbs
			}
		}
		Expect(verbs).To(HaveKey("v1/pods"))
		Expect(verbs["v1/configmaps"]).To(ContainElements("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"))
		Expect(verbs).To(HaveKey("apps/v1/deployments/scale"))
		Expect(verbs).To(HaveKey("v1/pods/status"))
	})

	It("should serve aggregated discovery for /api and /apis", func(ctx SpecContext) {
		const accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;q=0.9"
		find := func(path string) map[string]apidiscoveryv2.APIVersionDiscovery {
			raw, err := cluster.client.Discovery().RESTClient().Get().AbsPath(path).SetHeader("Accept", accept).DoRaw(ctx)
			Expect(err).NotTo(HaveOccurred())
			var list apidiscoveryv2.APIGroupDiscoveryList
			Expect(json.Unmarshal(raw, &list)).To(Succeed())
			Expect(list.Kind).To(Equal("APIGroupDiscoveryList"))
			Expect(list.APIVersion).To(Equal("apidiscovery.k8s.io/v2"))
			versions := map[string]apidiscoveryv2.APIVersionDiscovery{}
			for _, g := range list.Items {
				for _, v := range g.Versions {
					versions[strings.TrimPrefix(g.Name+"/"+v.Version, "/")] = v
				}
			}
			return versions
		}
		resourceNames := func(v apidiscoveryv2.APIVersionDiscovery) map[string]apidiscoveryv2.APIResourceDiscovery {
			m := map[string]apidiscoveryv2.APIResourceDiscovery{}
			for _, r := range v.Resources {
				m[r.Resource] = r
			}
			return m
		}

		legacy := find("/api")
		Expect(legacy).To(HaveKey("v1"))
		core := resourceNames(legacy["v1"])
		Expect(core).To(HaveKey("pods"))
		Expect(core["pods"].ResponseKind.Kind).To(Equal("Pod"))
		Expect(core["pods"].Scope).To(Equal(apidiscoveryv2.ScopeNamespace))
		Expect(core["nodes"].Scope).To(Equal(apidiscoveryv2.ScopeCluster))

		named := find("/apis")
		Expect(named).To(HaveKey("apps/v1"))
		deployments := resourceNames(named["apps/v1"])["deployments"]
		Expect(deployments.ShortNames).To(ContainElement("deploy"))
		var subresources []string
		for _, s := range deployments.Subresources {
			subresources = append(subresources, s.Subresource)
		}
		Expect(subresources).To(ContainElements("scale", "status"))
	})
})

var _ = Describe("[sig-api-machinery] ConfigMap", Label("api-machinery"), func() {
	It("should run the lifecycle of a ConfigMap and observe it on a watch", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		cms := cluster.client.CoreV1().ConfigMaps(ns)
		w, err := cms.Watch(ctx, metav1.ListOptions{LabelSelector: "test=lifecycle"})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()

		cm, err := cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "lifecycle", Labels: map[string]string{"test": "lifecycle"}},
			Data:       map[string]string{"a": "1"},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(cm.UID).NotTo(BeEmpty())
		Expect(cm.ResourceVersion).NotTo(BeEmpty())

		got, err := cms.Get(ctx, "lifecycle", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Data).To(Equal(map[string]string{"a": "1"}))

		got.Data["b"] = "2"
		updated, err := cms.Update(ctx, got, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(updated.ResourceVersion).NotTo(Equal(cm.ResourceVersion))

		patched, err := cms.Patch(ctx, "lifecycle", types.MergePatchType, []byte(`{"data":{"a":"patched"}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(patched.Data).To(Equal(map[string]string{"a": "patched", "b": "2"}))

		list, err := cms.List(ctx, metav1.ListOptions{LabelSelector: "test=lifecycle"})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(1))

		Expect(cms.Delete(ctx, "lifecycle", metav1.DeleteOptions{})).To(Succeed())
		_, err = cms.Get(ctx, "lifecycle", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "get after delete: %v", err)

		var seen []string
		for _, want := range []watch.EventType{watch.Added, watch.Modified, watch.Modified, watch.Deleted} {
			ev := nextEvent(w)
			obj := ev.Object.(*corev1.ConfigMap)
			seen = append(seen, fmt.Sprintf("%s %v", ev.Type, obj.Data))
			Expect(ev.Type).To(Equal(want), "events so far: %v", seen)
		}
		Expect(seen[3]).To(ContainSubstring("patched"))
	})

	It("should fail an update with a stale resourceVersion with a Conflict", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		cms := cluster.client.CoreV1().ConfigMaps(ns)
		cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cas"}, Data: map[string]string{"v": "1"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		first := cm.DeepCopy()
		cm.Data["v"] = "2"
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		first.Data["v"] = "stale"
		_, err = cms.Update(ctx, first, metav1.UpdateOptions{})
		Expect(apierrors.IsConflict(err)).To(BeTrue(), "update with stale resourceVersion: %v", err)
		Expect(err.Error()).To(ContainSubstring("the object has been modified; please apply your changes to the latest version and try again"))
	})

	It("should delete a collection of ConfigMaps by label", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		cms := cluster.client.CoreV1().ConfigMaps(ns)
		for i, l := range []string{"a", "a", "b"} {
			_, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i), Labels: map[string]string{"group": l}}}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		Expect(cms.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "group=a"})).To(Succeed())
		list, err := cms.List(ctx, metav1.ListOptions{LabelSelector: "group"})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(1))
		Expect(list.Items[0].Name).To(Equal("cm-2"))
	})
})

var _ = Describe("[sig-api-machinery] Secrets", Label("api-machinery"), func() {
	It("should store stringData as data and round-trip binary values", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		secrets := cluster.client.CoreV1().Secrets(ns)
		_, err := secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "s"},
			Data:       map[string][]byte{"bin": {0, 1, 2, 255}},
			StringData: map[string]string{"text": "hello"},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		got, err := secrets.Get(ctx, "s", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Type).To(Equal(corev1.SecretTypeOpaque))
		Expect(got.StringData).To(BeEmpty())
		Expect(got.Data).To(Equal(map[string][]byte{"bin": {0, 1, 2, 255}, "text": []byte("hello")}))

		_, err = secrets.Patch(ctx, "s", types.StrategicMergePatchType, []byte(`{"data":{"bin":null}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		got, err = secrets.Get(ctx, "s", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Data).To(Equal(map[string][]byte{"text": []byte("hello")}))

		Expect(secrets.Delete(ctx, "s", metav1.DeleteOptions{})).To(Succeed())
		_, err = secrets.Get(ctx, "s", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue())
	})

	It("should list secrets with a field selector on type", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		secrets := cluster.client.CoreV1().Secrets(ns)
		_, err := secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "opaque"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "dockercfg"}, Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		list, err := secrets.List(ctx, metav1.ListOptions{FieldSelector: "type=" + string(corev1.SecretTypeDockerConfigJson)})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(1))
		Expect(list.Items[0].Name).To(Equal("dockercfg"))
	})
})

var _ = Describe("[sig-api-machinery] Watchers", Label("api-machinery"), func() {
	It("should be able to start watching from a specific resource version", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		cms := cluster.client.CoreV1().ConfigMaps(ns)
		cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "from-rv"}, Data: map[string]string{"mutation": "0"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		cm.Data["mutation"] = "1"
		first, err := cms.Update(ctx, cm, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		first.Data["mutation"] = "2"
		second, err := cms.Update(ctx, first, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(cms.Delete(ctx, "from-rv", metav1.DeleteOptions{})).To(Succeed())

		w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: first.ResourceVersion, FieldSelector: "metadata.name=from-rv"})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		ev := nextEvent(w)
		Expect(ev.Type).To(Equal(watch.Modified))
		Expect(ev.Object.(*corev1.ConfigMap).Data["mutation"]).To(Equal("2"))
		Expect(ev.Object.(*corev1.ConfigMap).ResourceVersion).To(Equal(second.ResourceVersion))
		ev = nextEvent(w)
		Expect(ev.Type).To(Equal(watch.Deleted))
	})

	It("should observe an object leaving and re-entering a label selector as DELETED and ADDED", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		cms := cluster.client.CoreV1().ConfigMaps(ns)
		w, err := cms.Watch(ctx, metav1.ListOptions{LabelSelector: "watch-this=true"})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()

		_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "selector", Labels: map[string]string{"watch-this": "true"}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(nextEvent(w).Type).To(Equal(watch.Added))

		_, err = cms.Patch(ctx, "selector", types.MergePatchType, []byte(`{"metadata":{"labels":{"watch-this":"false"}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		ev := nextEvent(w)
		Expect(ev.Type).To(Equal(watch.Deleted))
		Expect(ev.Object.(*corev1.ConfigMap).Name).To(Equal("selector"))

		// Changes outside the selector are not seen; re-entering is an ADDED.
		_, err = cms.Patch(ctx, "selector", types.MergePatchType, []byte(`{"data":{"unseen":"x"}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = cms.Patch(ctx, "selector", types.MergePatchType, []byte(`{"metadata":{"labels":{"watch-this":"true"}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		ev = nextEvent(w)
		Expect(ev.Type).To(Equal(watch.Added))
		Expect(ev.Object.(*corev1.ConfigMap).Data).To(HaveKeyWithValue("unseen", "x"))
	})

	It("should deliver the same ordered events to multiple watchers", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		cms := cluster.client.CoreV1().ConfigMaps(ns)
		var watchers []watch.Interface
		for i := 0; i < 3; i++ {
			w, err := cms.Watch(ctx, metav1.ListOptions{LabelSelector: "multi=yes"})
			Expect(err).NotTo(HaveOccurred())
			defer w.Stop()
			watchers = append(watchers, w)
		}
		for i := 0; i < 4; i++ {
			_, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("m-%d", i), Labels: map[string]string{"multi": "yes"}}}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			Expect(cms.Delete(ctx, fmt.Sprintf("m-%d", i), metav1.DeleteOptions{})).To(Succeed())
		}
		var sequences [][]string
		for _, w := range watchers {
			var seq []string
			for i := 0; i < 8; i++ {
				ev := nextEvent(w)
				seq = append(seq, fmt.Sprintf("%s %s %s", ev.Type, ev.Object.(*corev1.ConfigMap).Name, ev.Object.(*corev1.ConfigMap).ResourceVersion))
			}
			sequences = append(sequences, seq)
		}
		Expect(sequences[0][0]).To(HavePrefix("ADDED m-0"))
		Expect(sequences[0][7]).To(HavePrefix("DELETED m-3"))
		Expect(sequences[1]).To(Equal(sequences[0]))
		Expect(sequences[2]).To(Equal(sequences[0]))
	})
})

var _ = Describe("[sig-api-machinery] Lists", Label("api-machinery"), func() {
	It("should return chunks of a list with limit and continue at one resourceVersion", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		cms := cluster.client.CoreV1().ConfigMaps(ns)
		for i := 0; i < 7; i++ {
			_, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("page-%02d", i)}}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		// The namespace may hold configmaps of its own (kube-root-ca.crt): count everything.
		all, err := cms.List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		total := len(all.Items)
		Expect(total).To(BeNumerically(">=", 7))

		first, err := cms.List(ctx, metav1.ListOptions{Limit: 3})
		Expect(err).NotTo(HaveOccurred())
		Expect(first.Items).To(HaveLen(3))
		Expect(first.Continue).NotTo(BeEmpty())
		Expect(first.RemainingItemCount).NotTo(BeNil())
		Expect(*first.RemainingItemCount).To(BeEquivalentTo(total - 3))

		// A write after the first page is not seen by the rest of the list.
		_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "page-zz-late"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		names := []string{}
		for _, cm := range first.Items {
			names = append(names, cm.Name)
		}
		cont := first.Continue
		for cont != "" {
			page, err := cms.List(ctx, metav1.ListOptions{Limit: 3, Continue: cont})
			Expect(err).NotTo(HaveOccurred())
			Expect(page.ResourceVersion).To(Equal(first.ResourceVersion))
			Expect(len(page.Items)).To(BeNumerically("<=", 3))
			for _, cm := range page.Items {
				names = append(names, cm.Name)
			}
			cont = page.Continue
		}
		var want []string
		for _, cm := range all.Items {
			want = append(want, cm.Name)
		}
		Expect(names).To(Equal(want))
		Expect(sort.StringsAreSorted(names)).To(BeTrue())
	})

	It("should filter a list with a metadata.name field selector", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		cms := cluster.client.CoreV1().ConfigMaps(ns)
		for _, n := range []string{"one", "two"} {
			_, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		list, err := cms.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=two"})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(1))
		Expect(list.Items[0].Name).To(Equal("two"))
		list, err = cms.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name!=two,metadata.namespace=" + ns})
		Expect(err).NotTo(HaveOccurred())
		for _, cm := range list.Items {
			Expect(cm.Name).NotTo(Equal("two"))
		}
		_, err = cms.List(ctx, metav1.ListOptions{FieldSelector: "data.bogus=x"})
		Expect(apierrors.IsBadRequest(err)).To(BeTrue(), "unsupported field selector: %v", err)
	})

	It("should filter pods by spec.nodeName and status.phase field selectors", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		waitForServiceAccount(ctx, ns)
		pod := pausePod("pinned", nil)
		pod.Spec.NodeName = "conformance-no-such-node"
		_, err := cluster.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		list, err := cluster.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=conformance-no-such-node"})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(1))
		list, err = cluster.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: "status.phase=Running"})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(BeEmpty())
		Expect(cluster.client.CoreV1().Pods(ns).Delete(ctx, "pinned", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})).To(Succeed())
	})
})

var _ = Describe("[sig-api-machinery] Writes", Label("api-machinery"), func() {
	It("should not persist anything on a dry-run create, update or delete", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		cms := cluster.client.CoreV1().ConfigMaps(ns)
		dry := []string{metav1.DryRunAll}
		out, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dry"}, Data: map[string]string{"a": "1"}}, metav1.CreateOptions{DryRun: dry})
		Expect(err).NotTo(HaveOccurred())
		Expect(out.Name).To(Equal("dry"))
		Expect(out.Data).To(HaveKeyWithValue("a", "1"))
		_, err = cms.Get(ctx, "dry", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "get after dry-run create: %v", err)

		cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dry"}, Data: map[string]string{"a": "1"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		cm.Data["a"] = "2"
		out, err = cms.Update(ctx, cm, metav1.UpdateOptions{DryRun: dry})
		Expect(err).NotTo(HaveOccurred())
		Expect(out.Data).To(HaveKeyWithValue("a", "2"))
		Expect(cms.Delete(ctx, "dry", metav1.DeleteOptions{DryRun: dry})).To(Succeed())
		got, err := cms.Get(ctx, "dry", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Data).To(HaveKeyWithValue("a", "1"))
		Expect(got.ResourceVersion).To(Equal(cm.ResourceVersion))
	})

	It("should reject unknown fields with fieldValidation=Strict", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		body := []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"strict"},"data":{"a":"1"},"bogus":true}`)
		err := cluster.client.CoreV1().RESTClient().Post().Namespace(ns).Resource("configmaps").
			Param("fieldValidation", "Strict").Body(body).SetHeader("Content-Type", "application/json").Do(ctx).Error()
		Expect(apierrors.IsBadRequest(err)).To(BeTrue(), "strict create with an unknown field: %v", err)
		Expect(err.Error()).To(ContainSubstring(`unknown field "bogus"`))

		// Ignore drops it silently.
		err = cluster.client.CoreV1().RESTClient().Post().Namespace(ns).Resource("configmaps").
			Param("fieldValidation", "Ignore").Body(body).SetHeader("Content-Type", "application/json").Do(ctx).Error()
		Expect(err).NotTo(HaveOccurred())
	})

	It("should report a conflict between field managers in server-side apply and resolve it with force", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		cms := cluster.client.CoreV1().ConfigMaps(ns)
		_, err := cms.Apply(ctx, corev1ac.ConfigMap("ssa", ns).WithData(map[string]string{"owned": "by-a"}), metav1.ApplyOptions{FieldManager: "manager-a"})
		Expect(err).NotTo(HaveOccurred())
		_, err = cms.Apply(ctx, corev1ac.ConfigMap("ssa", ns).WithData(map[string]string{"owned": "by-b"}), metav1.ApplyOptions{FieldManager: "manager-b"})
		Expect(apierrors.IsConflict(err)).To(BeTrue(), "second manager applying the same field: %v", err)
		Expect(err.Error()).To(ContainSubstring("manager-a"))

		got, err := cms.Apply(ctx, corev1ac.ConfigMap("ssa", ns).WithData(map[string]string{"owned": "by-b"}), metav1.ApplyOptions{FieldManager: "manager-b", Force: true})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Data).To(HaveKeyWithValue("owned", "by-b"))
		managers := map[string]bool{}
		for _, m := range got.ManagedFields {
			managers[m.Manager] = true
		}
		Expect(managers).To(HaveKey("manager-b"))
		Expect(managers).NotTo(HaveKey("manager-a"), "manager-a lost its only field")
	})

	It("should give a generateName object a unique name with the prefix", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		cms := cluster.client.CoreV1().ConfigMaps(ns)
		names := map[string]bool{}
		for i := 0; i < 3; i++ {
			cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "gen-"}}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			Expect(cm.Name).To(HavePrefix("gen-"))
			Expect(len(cm.Name)).To(BeNumerically(">", len("gen-")))
			names[cm.Name] = true
		}
		Expect(names).To(HaveLen(3))
	})

	It("should keep an object with a finalizer until the finalizer is removed", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		cms := cluster.client.CoreV1().ConfigMaps(ns)
		_, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{"conformance.skiff.dev/hold"}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(cms.Delete(ctx, "held", metav1.DeleteOptions{})).To(Succeed())
		got, err := cms.Get(ctx, "held", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.DeletionTimestamp).NotTo(BeNil())
		Expect(got.Finalizers).To(ConsistOf("conformance.skiff.dev/hold"))

		_, err = cms.Patch(ctx, "held", types.JSONPatchType, []byte(`[{"op":"remove","path":"/metadata/finalizers"}]`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() bool {
			_, err := cms.Get(ctx, "held", metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}).WithTimeout(shortWait).WithPolling(poll).Should(BeTrue())
	})
})

var _ = Describe("[sig-api-machinery] Namespaces", Label("api-machinery"), func() {
	It("should delete all content of a namespace when it is deleted", func(ctx SpecContext) {
		ns, err := cluster.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "conformance-doomed-"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = cluster.client.CoreV1().ConfigMaps(ns.Name).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "content"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = cluster.client.CoreV1().Secrets(ns.Name).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "content"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		Expect(cluster.client.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})).To(Succeed())
		got, err := cluster.client.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{})
		if err == nil {
			Expect(got.Status.Phase).To(Equal(corev1.NamespaceTerminating))
		}
		Eventually(func() bool {
			_, err := cluster.client.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}).WithTimeout(longWait).WithPolling(poll).Should(BeTrue(), "namespace %s still exists", ns.Name)
		cms, err := cluster.client.CoreV1().ConfigMaps(ns.Name).List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(cms.Items).To(BeEmpty())
		secrets, err := cluster.client.CoreV1().Secrets(ns.Name).List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(secrets.Items).To(BeEmpty())
	})

	It("should refuse to create content in a namespace that does not exist", func(ctx SpecContext) {
		_, err := cluster.client.CoreV1().ConfigMaps("conformance-never-created").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "create in a missing namespace: %v", err)
		Expect(err.Error()).To(ContainSubstring(`namespaces "conformance-never-created" not found`))
	})
})

var _ = Describe("[sig-api-machinery] Garbage collector", Label("api-machinery"), func() {
	It("should delete dependents of a deleted owner in the background", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		cms := cluster.client.CoreV1().ConfigMaps(ns)
		owner, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dependent", OwnerReferences: []metav1.OwnerReference{
			{APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID}}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(cms.Delete(ctx, "owner", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})).To(Succeed())
		Eventually(func() bool {
			_, err := cms.Get(ctx, "dependent", metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}).WithTimeout(longWait).WithPolling(poll).Should(BeTrue(), "dependent outlived its owner")
	})

	It("should keep a foreground-deleted owner until its blocking dependents are gone", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		cms := cluster.client.CoreV1().ConfigMaps(ns)
		owner, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
			Name:       "dependent",
			Finalizers: []string{"conformance.skiff.dev/hold"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID,
				BlockOwnerDeletion: ptr.To(true)}},
		}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		Expect(cms.Delete(ctx, "owner", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)})).To(Succeed())
		got, err := cms.Get(ctx, "owner", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.DeletionTimestamp).NotTo(BeNil())
		Expect(got.Finalizers).To(ContainElement(metav1.FinalizerDeleteDependents))

		// The collector deletes the dependent, which waits on its own finalizer; the owner waits for it.
		Eventually(func(g Gomega) {
			dep, err := cms.Get(ctx, "dependent", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(dep.DeletionTimestamp).NotTo(BeNil())
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
		_, err = cms.Get(ctx, "owner", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred(), "owner went before its blocking dependent")

		_, err = cms.Patch(ctx, "dependent", types.JSONPatchType, []byte(`[{"op":"remove","path":"/metadata/finalizers"}]`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() bool {
			_, err := cms.Get(ctx, "owner", metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}).WithTimeout(longWait).WithPolling(poll).Should(BeTrue(), "owner stayed after its dependents went")
	})

	It("should orphan dependents when the owner is deleted with propagationPolicy Orphan", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		cms := cluster.client.CoreV1().ConfigMaps(ns)
		owner, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dependent", OwnerReferences: []metav1.OwnerReference{
			{APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID}}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(cms.Delete(ctx, "owner", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationOrphan)})).To(Succeed())
		Eventually(func() bool {
			_, err := cms.Get(ctx, "owner", metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}).WithTimeout(longWait).WithPolling(poll).Should(BeTrue())
		Eventually(func(g Gomega) {
			dep, err := cms.Get(ctx, "dependent", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(dep.OwnerReferences).To(BeEmpty())
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
		Consistently(func() error {
			_, err := cms.Get(ctx, "dependent", metav1.GetOptions{})
			return err
		}).WithTimeout(2 * time.Second).WithPolling(poll).Should(Succeed())
	})
})

var _ = Describe("[sig-api-machinery] Servers with support for Table transformation", Label("api-machinery"), func() {
	It("should return a Table with upstream's columns for configmaps and pods", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		_, err := cluster.client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "tabled"}, Data: map[string]string{"a": "1", "b": "2"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		getTable := func(resource, name string) *metav1.Table {
			req := cluster.client.CoreV1().RESTClient().Get().Namespace(ns).Resource(resource)
			if name != "" {
				req = req.Name(name)
			}
			raw, err := req.SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
			Expect(err).NotTo(HaveOccurred())
			var t metav1.Table
			Expect(json.Unmarshal(raw, &t)).To(Succeed())
			Expect(t.Kind).To(Equal("Table"))
			return &t
		}
		columns := func(t *metav1.Table) []string {
			var names []string
			for _, c := range t.ColumnDefinitions {
				names = append(names, c.Name)
			}
			return names
		}
		t := getTable("configmaps", "tabled")
		Expect(columns(t)).To(Equal([]string{"Name", "Data", "Age"}))
		Expect(t.Rows).To(HaveLen(1))
		Expect(t.Rows[0].Cells[0]).To(Equal("tabled"))
		Expect(t.Rows[0].Cells[1]).To(BeEquivalentTo(2))

		waitForServiceAccount(ctx, ns)
		pod := pausePod("tabled", nil)
		pod.Spec.NodeName = "conformance-no-such-node"
		_, err = cluster.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		t = getTable("pods", "")
		Expect(len(columns(t))).To(BeNumerically(">=", 5))
		Expect(columns(t)[:5]).To(Equal([]string{"Name", "Ready", "Status", "Restarts", "Age"}))
		Expect(t.Rows).To(HaveLen(1))
		Expect(t.Rows[0].Cells[1]).To(Equal("0/1"))
		Expect(cluster.client.CoreV1().Pods(ns).Delete(ctx, "tabled", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})).To(Succeed())
	})
})

var _ = Describe("[sig-api-machinery] Events", Label("api-machinery"), func() {
	It("should serve an event created through events.k8s.io/v1 as a core v1 Event", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		now := metav1.NowMicro()
		_, err := cluster.client.EventsV1().Events(ns).Create(ctx, &eventsv1.Event{
			ObjectMeta:          metav1.ObjectMeta{Name: "evt"},
			EventTime:           now,
			ReportingController: "conformance.skiff.dev/suite",
			ReportingInstance:   "conformance",
			Action:              "Testing",
			Reason:              "ConformanceCheck",
			Type:                corev1.EventTypeNormal,
			Note:                "a note for the user",
			Regarding:           corev1.ObjectReference{Kind: "ConfigMap", Namespace: ns, Name: "regarded", APIVersion: "v1"},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		core, err := cluster.client.CoreV1().Events(ns).Get(ctx, "evt", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(core.Message).To(Equal("a note for the user"))
		Expect(core.Reason).To(Equal("ConformanceCheck"))
		Expect(core.InvolvedObject.Name).To(Equal("regarded"))
		Expect(core.ReportingController).To(Equal("conformance.skiff.dev/suite"))

		list, err := cluster.client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=regarded"})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(1))

		// events.k8s.io/v1 keeps note immutable; a series update is how an event recurs.
		_, err = cluster.client.EventsV1().Events(ns).Patch(ctx, "evt", types.MergePatchType,
			[]byte(fmt.Sprintf(`{"series":{"count":2,"lastObservedTime":%q}}`, metav1.NowMicro().UTC().Format(metav1.RFC3339Micro))), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		core, err = cluster.client.CoreV1().Events(ns).Get(ctx, "evt", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(core.Series).NotTo(BeNil())
		Expect(core.Series.Count).To(BeEquivalentTo(2))
		Expect(cluster.client.EventsV1().Events(ns).Delete(ctx, "evt", metav1.DeleteOptions{})).To(Succeed())
		_, err = cluster.client.CoreV1().Events(ns).Get(ctx, "evt", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue())
	})
})

var _ = Describe("[sig-api-machinery] Lease", Label("api-machinery"), func() {
	It("should run the lifecycle of a Lease", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		leases := cluster.client.CoordinationV1().Leases(ns)
		renew := metav1.NewMicroTime(time.Now().Truncate(time.Second))
		_, err := leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: "lock"},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("holder-1"), LeaseDurationSeconds: ptr.To[int32](30),
				AcquireTime: &renew, RenewTime: &renew},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		got, err := leases.Get(ctx, "lock", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(*got.Spec.HolderIdentity).To(Equal("holder-1"))
		Expect(got.Spec.RenewTime.Time.Equal(renew.Time)).To(BeTrue(), "renewTime %v, want %v", got.Spec.RenewTime, renew)

		later := metav1.NewMicroTime(renew.Add(10 * time.Second))
		got.Spec.HolderIdentity = ptr.To("holder-2")
		got.Spec.RenewTime = &later
		got.Spec.LeaseTransitions = ptr.To[int32](1)
		updated, err := leases.Update(ctx, got, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(*updated.Spec.HolderIdentity).To(Equal("holder-2"))
		Expect(*updated.Spec.LeaseTransitions).To(BeEquivalentTo(1))

		list, err := leases.List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(1))
		Expect(leases.Delete(ctx, "lock", metav1.DeleteOptions{})).To(Succeed())
		_, err = leases.Get(ctx, "lock", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue())
	})
})

var _ = Describe("[sig-api-machinery] Servers with support for API chunking", Label("api-machinery"), func() {
	It("should count the remaining items only for a list without selectors", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		cms := cluster.client.CoreV1().ConfigMaps(ns)
		for i := 0; i < 6; i++ {
			_, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("chunk-%02d", i), Labels: map[string]string{"chunk": "yes"}}}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		all, err := cms.List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())

		By("paging without a selector: remainingItemCount counts what is left")
		var seen int
		opts := metav1.ListOptions{Limit: 2}
		for {
			page, err := cms.List(ctx, opts)
			Expect(err).NotTo(HaveOccurred())
			seen += len(page.Items)
			if page.Continue == "" {
				Expect(page.RemainingItemCount).To(BeNil(), "the last page has nothing remaining to count")
				break
			}
			Expect(page.RemainingItemCount).NotTo(BeNil())
			Expect(*page.RemainingItemCount).To(BeEquivalentTo(len(all.Items) - seen))
			opts.Continue = page.Continue
		}
		Expect(seen).To(Equal(len(all.Items)))

		By("paging with a label selector: the count would be inexact, so there is none")
		seen = 0
		opts = metav1.ListOptions{Limit: 2, LabelSelector: "chunk=yes"}
		for {
			page, err := cms.List(ctx, opts)
			Expect(err).NotTo(HaveOccurred())
			Expect(page.RemainingItemCount).To(BeNil())
			seen += len(page.Items)
			if page.Continue == "" {
				break
			}
			opts.Continue = page.Continue
		}
		Expect(seen).To(Equal(6))
	})
})

var _ = Describe("[sig-api-machinery] Events", Label("api-machinery"), func() {
	It("should manage the lifecycle of an event", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		events := cluster.client.CoreV1().Events(ns)
		now := metav1.Now()
		_, err := events.Create(ctx, &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: "event-test", Labels: map[string]string{"testevent-constant": "true"}},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "regarded", APIVersion: "v1"},
			Reason:         "Testing", Message: "This is a test event", Type: corev1.EventTypeNormal,
			Source: corev1.EventSource{Component: "conformance"}, Count: 1, FirstTimestamp: now, LastTimestamp: now,
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		all, err := cluster.client.CoreV1().Events("").List(ctx, metav1.ListOptions{LabelSelector: "testevent-constant=true"})
		Expect(err).NotTo(HaveOccurred())
		var found bool
		for _, e := range all.Items {
			found = found || (e.Namespace == ns && e.Name == "event-test")
		}
		Expect(found).To(BeTrue(), "the event is not listed across all namespaces")

		_, err = events.Patch(ctx, "event-test", types.StrategicMergePatchType, []byte(`{"message":"This is a test event - patched","count":2}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		got, err := events.Get(ctx, "event-test", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Message).To(Equal("This is a test event - patched"))
		Expect(got.Count).To(BeEquivalentTo(2))

		got.Series = &corev1.EventSeries{Count: 100, LastObservedTime: metav1.NowMicro()}
		got.Message = "This is a test event - updated"
		updated, err := events.Update(ctx, got, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(updated.Message).To(Equal("This is a test event - updated"))
		Expect(updated.Series).NotTo(BeNil())
		Expect(updated.Series.Count).To(BeEquivalentTo(100))

		Expect(events.Delete(ctx, "event-test", metav1.DeleteOptions{})).To(Succeed())
		list, err := events.List(ctx, metav1.ListOptions{LabelSelector: "testevent-constant=true"})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(BeEmpty())
	})

	It("should delete a collection of events", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		events := cluster.client.CoreV1().Events(ns)
		now := metav1.Now()
		for _, name := range []string{"test-event-1", "test-event-2", "test-event-3"} {
			_, err := events.Create(ctx, &corev1.Event{
				ObjectMeta:     metav1.ObjectMeta{Name: name, Labels: map[string]string{"testevent-set": "true"}},
				InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "regarded", APIVersion: "v1"},
				Reason:         "Testing", Message: "This is " + name, Type: corev1.EventTypeNormal,
				Source: corev1.EventSource{Component: "conformance"}, Count: 1, FirstTimestamp: now, LastTimestamp: now,
			}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		list, err := events.List(ctx, metav1.ListOptions{LabelSelector: "testevent-set=true"})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(3))
		Expect(events.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "testevent-set=true"})).To(Succeed())
		list, err = events.List(ctx, metav1.ListOptions{LabelSelector: "testevent-set=true"})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(BeEmpty())
	})
})
