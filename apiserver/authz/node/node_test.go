package node

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/apiserver/authz"
)

// staticRules stands for the system:node rules in these tests.
var staticRules = []rbacv1.PolicyRule{
	{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{""}, Resources: []string{"services"}},
	{Verbs: []string{"create", "patch", "update"}, APIGroups: []string{""}, Resources: []string{"events"}},
}

func kubelet(node string) authn.User {
	return authn.User{Name: "system:node:" + node, Groups: []string{NodesGroup, authn.AllAuthenticated}}
}

func req(u authn.User, verb, group, resource, subresource, ns, name string) authz.Attributes {
	return authz.Attributes{User: u, Verb: verb, ResourceRequest: true, APIGroup: group, APIVersion: "v1", Resource: resource, Subresource: subresource, Namespace: ns, Name: name}
}

func webPod() *corev1.Pod {
	claim := "gpu"
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec: corev1.PodSpec{
			NodeName:           "n1",
			ServiceAccountName: "web-sa",
			ImagePullSecrets:   []corev1.LocalObjectReference{{Name: "pull"}},
			InitContainers:     []corev1.Container{{Name: "init", EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "init-env"}}}}}},
			Containers: []corev1.Container{{Name: "app", Env: []corev1.EnvVar{
				{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "pw"}}},
			}}},
			Volumes: []corev1.Volume{
				{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "web-config"}}}},
				{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "web-tls"}}},
				{Name: "proj", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "projected-secret"}}},
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}}},
				}}}},
				{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "web-data"}}},
				{Name: "scratch", VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{}}},
			},
			ResourceClaims: []corev1.PodResourceClaim{{Name: "g", ResourceClaimName: &claim}},
		},
	}
}

func TestKubeletReadsWhatItsPodsReference(t *testing.T) {
	r := New(staticRules)
	r.SetPod(webPod())
	ctx := context.Background()
	n1 := kubelet("n1")
	for _, a := range []authz.Attributes{
		req(n1, "get", "", "secrets", "", "shop", "db"),
		req(n1, "get", "", "secrets", "", "shop", "pull"),
		req(n1, "watch", "", "secrets", "", "shop", "web-tls"),
		req(n1, "list", "", "secrets", "", "shop", "projected-secret"),
		req(n1, "get", "", "configmaps", "", "shop", "web-config"),
		req(n1, "get", "", "configmaps", "", "shop", "init-env"),
		req(n1, "get", "", "configmaps", "", "shop", "kube-root-ca.crt"),
		req(n1, "get", "", "persistentvolumeclaims", "", "shop", "web-data"),
		req(n1, "get", "", "persistentvolumeclaims", "", "shop", "web-scratch"),
		req(n1, "patch", "", "persistentvolumeclaims", "status", "shop", "web-data"),
		req(n1, "create", "", "serviceaccounts", "token", "shop", "web-sa"),
		// its pods' service accounts, as upstream with KubeletServiceAccountTokenForCredentialProviders
		req(n1, "get", "", "serviceaccounts", "", "shop", "web-sa"),
		req(n1, "get", "resource.k8s.io", "resourceclaims", "", "shop", "gpu"),
		req(n1, "get", "", "pods", "", "shop", "web"),
	} {
		if d, reason, err := r.Authorize(ctx, a); d != authz.DecisionAllow || err != nil {
			t.Errorf("%s %s %s/%s: %v %q %v", a.Verb, a.Resource, a.Namespace, a.Name, d, reason, err)
		}
	}
}

func TestKubeletCannotReadAnotherNodesSecret(t *testing.T) {
	r := New(staticRules)
	r.SetPod(webPod())
	ctx := context.Background()
	for _, tc := range []struct {
		a          authz.Attributes
		wantReason string
	}{
		{req(kubelet("n2"), "get", "", "secrets", "", "shop", "db"), "no relationship found between node 'n2' and this object"},
		{req(kubelet("n1"), "get", "", "secrets", "", "shop", "unreferenced"), "no relationship found between node 'n1' and this object"},
		{req(kubelet("n1"), "get", "", "secrets", "", "other", "db"), "no relationship found between node 'n1' and this object"},
		{req(kubelet("n1"), "list", "", "secrets", "", "", ""), "can only read namespaced object of this type"},
		{req(kubelet("n1"), "list", "", "secrets", "", "shop", ""), "No Object name found"},
		{req(kubelet("n1"), "update", "", "secrets", "", "shop", "db"), "can only read resources of this type"},
		{req(kubelet("n1"), "list", "", "persistentvolumeclaims", "", "shop", ""), "can only get individual resources of this type"},
		{req(kubelet("n1"), "get", "", "serviceaccounts", "", "shop", "other-sa"), "no relationship found between node 'n1' and this object"},
		{req(kubelet("n1"), "create", "", "serviceaccounts", "token", "shop", "default"), "no relationship found between node 'n1' and this object"},
		{req(kubelet("n1"), "get", "", "pods", "", "shop", "elsewhere"), "no relationship found between node 'n1' and this object"},
	} {
		d, reason, err := r.Authorize(ctx, tc.a)
		if d != authz.DecisionNoOpinion || reason != tc.wantReason || err != nil {
			t.Errorf("%s %s %s %s/%s: got %v %q %v, want %q", tc.a.User.Name, tc.a.Verb, tc.a.Resource, tc.a.Namespace, tc.a.Name, d, reason, err, tc.wantReason)
		}
	}
}

func TestPodLeavingTheNodeTakesItsReferencesAlong(t *testing.T) {
	r := New(staticRules)
	ctx := context.Background()
	getDB := req(kubelet("n1"), "get", "", "secrets", "", "shop", "db")
	pod := webPod()
	pod.Spec.NodeName = ""
	r.SetPod(pod)
	if d, _, _ := r.Authorize(ctx, getDB); d != authz.DecisionNoOpinion {
		t.Errorf("unbound pod gave access: %v", d)
	}
	pod.Spec.NodeName = "n1"
	r.SetPod(pod)
	// a second pod on the node references the same secret
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "worker"}, Spec: corev1.PodSpec{NodeName: "n1", ImagePullSecrets: []corev1.LocalObjectReference{{Name: "db"}}}}
	r.SetPod(other)
	r.DeletePod("shop", "web")
	if d, _, _ := r.Authorize(ctx, getDB); d != authz.DecisionAllow {
		t.Errorf("secret still used by another pod: %v", d)
	}
	if d, _, _ := r.Authorize(ctx, req(kubelet("n1"), "get", "", "configmaps", "", "shop", "web-config")); d != authz.DecisionNoOpinion {
		t.Errorf("deleted pod's config map: %v", d)
	}
	// an update that drops the reference takes it away
	other.Spec.ImagePullSecrets = nil
	r.SetPod(other)
	if d, _, _ := r.Authorize(ctx, getDB); d != authz.DecisionNoOpinion {
		t.Errorf("after the reference was dropped: %v", d)
	}
}

func TestKubeletGetsTheVolumeOfItsPodsClaim(t *testing.T) {
	r := New(staticRules)
	r.SetPod(webPod())
	getPV := req(kubelet("n1"), "get", "", "persistentvolumes", "", "", "pv-1")
	if d, _, _ := r.Authorize(context.Background(), getPV); d != authz.DecisionNoOpinion {
		t.Errorf("before the claim is bound: %v", d)
	}
	r.SetPersistentVolumeClaim(&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-data"}, Spec: corev1.PersistentVolumeClaimSpec{VolumeName: "pv-1"}})
	if d, _, _ := r.Authorize(context.Background(), getPV); d != authz.DecisionAllow {
		t.Errorf("bound claim's volume: %v", d)
	}
	if d, _, _ := r.Authorize(context.Background(), req(kubelet("n2"), "get", "", "persistentvolumes", "", "", "pv-1")); d != authz.DecisionNoOpinion {
		t.Errorf("another node: %v", d)
	}
	r.DeletePersistentVolumeClaim("shop", "web-data")
	if d, _, _ := r.Authorize(context.Background(), getPV); d != authz.DecisionNoOpinion {
		t.Errorf("claim deleted: %v", d)
	}
}

func TestKubeletOwnNodeAndLease(t *testing.T) {
	r := New(staticRules)
	ctx := context.Background()
	n1 := kubelet("n1")
	for _, tc := range []struct {
		a          authz.Attributes
		want       authz.Decision
		wantReason string
	}{
		{req(n1, "get", "", "nodes", "", "", "n1"), authz.DecisionAllow, ""},
		{req(n1, "watch", "", "nodes", "", "", "n1"), authz.DecisionAllow, ""},
		{req(n1, "create", "", "nodes", "", "", ""), authz.DecisionAllow, ""},
		{req(n1, "patch", "", "nodes", "status", "", "n1"), authz.DecisionAllow, ""},
		{req(n1, "list", "", "nodes", "", "", ""), authz.DecisionNoOpinion, "node 'n1' cannot read all nodes, only its own Node object"},
		{req(n1, "get", "", "nodes", "", "", "n2"), authz.DecisionNoOpinion, "node 'n1' cannot read 'n2', only its own Node object"},
		{req(n1, "delete", "", "nodes", "", "", "n1"), authz.DecisionNoOpinion, ""},
		{req(n1, "update", "coordination.k8s.io", "leases", "", "kube-node-lease", "n1"), authz.DecisionAllow, ""},
		{req(n1, "create", "coordination.k8s.io", "leases", "", "kube-node-lease", ""), authz.DecisionAllow, ""},
		{req(n1, "update", "coordination.k8s.io", "leases", "", "kube-node-lease", "n2"), authz.DecisionNoOpinion, "can only access node lease with the same name as the requesting node"},
		{req(n1, "get", "coordination.k8s.io", "leases", "", "default", "n1"), authz.DecisionNoOpinion, `can only access leases in the "kube-node-lease" system namespace`},
		{req(n1, "list", "coordination.k8s.io", "leases", "", "kube-node-lease", ""), authz.DecisionNoOpinion, "can only get, create, update, patch, or delete a node lease"},
		{req(n1, "get", "storage.k8s.io", "csinodes", "", "", "n2"), authz.DecisionNoOpinion, "can only access CSINode with the same name as the requesting node"},
	} {
		d, reason, _ := r.Authorize(ctx, tc.a)
		if d != tc.want || reason != tc.wantReason {
			t.Errorf("%s %s/%s %s: got %v %q, want %v %q", tc.a.Verb, tc.a.Resource, tc.a.Subresource, tc.a.Name, d, reason, tc.want, tc.wantReason)
		}
	}
}

func TestKubeletListsPodsOnlyOfItsNode(t *testing.T) {
	r := New(staticRules)
	ctx := context.Background()
	own, _ := fields.ParseSelector("spec.nodeName=n1")
	other, _ := fields.ParseSelector("spec.nodeName=n2")
	list := req(kubelet("n1"), "watch", "", "pods", "", "", "")
	list.FieldSelector = own.Requirements()
	if d, _, _ := r.Authorize(ctx, list); d != authz.DecisionAllow {
		t.Errorf("own pods: %v", d)
	}
	list.FieldSelector = other.Requirements()
	if d, reason, _ := r.Authorize(ctx, list); d != authz.DecisionNoOpinion || reason != "can only list/watch pods with spec.nodeName field selector" {
		t.Errorf("another node's pods: %v %q", d, reason)
	}
	for _, a := range []authz.Attributes{
		req(kubelet("n1"), "create", "", "pods", "", "kube-system", ""),
		req(kubelet("n1"), "update", "", "pods", "status", "shop", "web"),
		req(kubelet("n1"), "create", "", "pods", "eviction", "shop", "web"),
	} {
		if d, _, _ := r.Authorize(ctx, a); d != authz.DecisionAllow {
			t.Errorf("%s pods/%s: %v", a.Verb, a.Subresource, d)
		}
	}
}

func TestOtherRequestsFollowTheStaticNodeRules(t *testing.T) {
	r := New(staticRules)
	ctx := context.Background()
	if d, _, _ := r.Authorize(ctx, req(kubelet("n1"), "list", "", "services", "", "", "")); d != authz.DecisionAllow {
		t.Errorf("list services: %v", d)
	}
	if d, _, _ := r.Authorize(ctx, req(kubelet("n1"), "delete", "apps", "deployments", "", "shop", "d")); d != authz.DecisionNoOpinion {
		t.Errorf("delete deployments: %v", d)
	}
}

func TestNonNodesAreNotThisModesBusiness(t *testing.T) {
	r := New(staticRules)
	r.SetPod(webPod())
	ctx := context.Background()
	for _, u := range []authn.User{
		{Name: "system:node:n1"}, // not in system:nodes
		{Name: "alice", Groups: []string{NodesGroup}},
	} {
		if d, reason, _ := r.Authorize(ctx, req(u, "list", "", "services", "", "", "")); d != authz.DecisionNoOpinion || reason != "" {
			t.Errorf("%+v: %v %q", u, d, reason)
		}
	}
	d, reason, _ := r.Authorize(ctx, req(authn.User{Name: "system:node:", Groups: []string{NodesGroup}}, "get", "", "services", "", "", ""))
	if d != authz.DecisionNoOpinion || reason != `unknown node for user "system:node:"` {
		t.Errorf("nameless node: %v %q", d, reason)
	}
}

func TestNodeRulesCannotBeListed(t *testing.T) {
	rules, err := New(staticRules).RulesFor(context.Background(), kubelet("n1"), "shop")
	if !rules.Incomplete || err == nil || err.Error() != "node authorizer does not support user rule resolution" {
		t.Errorf("node: %+v %v", rules, err)
	}
	if rules, err := New(staticRules).RulesFor(context.Background(), authn.User{Name: "alice"}, "shop"); rules.Incomplete || err != nil {
		t.Errorf("non-node: %+v %v", rules, err)
	}
}

func TestInformerFeedsTheGraph(t *testing.T) {
	client := fake.NewClientset(webPod())
	factory := informers.NewSharedInformerFactory(client, 0)
	r := New(staticRules)
	reg, err := factory.Core().V1().Pods().Informer().AddEventHandler(r.EventHandler())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); factory.Shutdown() }()
	factory.Start(ctx.Done())
	// the registration has synced once the handler itself has seen every initial pod
	if !cache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
		t.Fatal("cache not synced")
	}
	if d, _, _ := r.Authorize(ctx, req(kubelet("n1"), "get", "", "secrets", "", "shop", "db")); d != authz.DecisionAllow {
		t.Errorf("after the informer's add: %v", d)
	}
}

func TestKubeletGetsOnlyItsVolumeAttachments(t *testing.T) {
	r := New([]rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{"storage.k8s.io"}, Resources: []string{"volumeattachments"}}})
	get := func(node, name string) authz.Decision {
		d, _, _ := r.Authorize(context.Background(), req(kubelet(node), "get", "storage.k8s.io", "volumeattachments", "", "", name))
		return d
	}
	r.SetVolumeAttachment(&storagev1.VolumeAttachment{ObjectMeta: metav1.ObjectMeta{Name: "va-1"}, Spec: storagev1.VolumeAttachmentSpec{NodeName: "n1"}})
	if get("n1", "va-1") != authz.DecisionAllow || get("n2", "va-1") != authz.DecisionNoOpinion || get("n1", "va-2") != authz.DecisionNoOpinion {
		t.Errorf("n1 va-1 %v, n2 va-1 %v, n1 va-2 %v", get("n1", "va-1"), get("n2", "va-1"), get("n1", "va-2"))
	}
	r.DeleteVolumeAttachment("va-1")
	if get("n1", "va-1") != authz.DecisionNoOpinion {
		t.Errorf("after delete: %v", get("n1", "va-1"))
	}
}
