package apiserver_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/clusterroleaggregation"
)

// userClient reaches s as user in groups, with a client certificate from the cluster CA.
func userClient(t *testing.T, s *apiservertest.Server, user string, groups ...string) (kubernetes.Interface, *rest.Config) {
	t.Helper()
	certPEM, keyPEM, err := s.PKI.ClientCertificate(user, groups...)
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(s.Config)
	cfg.TLSClientConfig = rest.TLSClientConfig{CAFile: s.PKI.CACertFile, CertData: certPEM, KeyData: keyPEM}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs, cfg
}

// eventually retries f until it returns nil: what the server authorizes follows its watch of
// roles, bindings and pods, a moment after a write.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func createNamespace(t *testing.T, cs kubernetes.Interface, name string) {
	t.Helper()
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func grant(t *testing.T, cs kubernetes.Interface, ns, name, user string, rules ...rbacv1.PolicyRule) {
	t.Helper()
	ctx := context.Background()
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: "User", Name: user}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// grantServiceAccount binds rules in ns to the ServiceAccount ns/name.
func grantServiceAccount(t *testing.T, cs kubernetes.Interface, ns, name string, rules ...rbacv1.PolicyRule) {
	t.Helper()
	ctx := context.Background()
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: name}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestUserWithoutBindingsIsForbiddenInUpstreamWords(t *testing.T) {
	s := apiservertest.Start(t)
	alice, _ := userClient(t, s, "alice")
	_, err := alice.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	want := `pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default"`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Errorf("list pods without bindings: %v\nwant 403 %s", err, want)
	}
	_, err = alice.RbacV1().ClusterRoles().Get(context.Background(), "admin", metav1.GetOptions{})
	want = `clusterroles.rbac.authorization.k8s.io "admin" is forbidden: User "alice" cannot get resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Errorf("get clusterrole without bindings: %v\nwant 403 %s", err, want)
	}
	// every authenticated user may discover the API and ask who they are, as upstream's
	// system:discovery and system:basic-user allow
	if _, err := alice.Discovery().ServerGroups(); err != nil {
		t.Errorf("discovery: %v", err)
	}
	review, err := alice.AuthorizationV1().SelfSubjectAccessReviews().Create(context.Background(), &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "list", Resource: "pods", Namespace: "default"}},
	}, metav1.CreateOptions{})
	if err != nil || review.Status.Allowed {
		t.Errorf("self review of list pods: %+v, %v; want not allowed", review, err)
	}
}

func TestDefaultPolicyExistsAfterStart(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	for _, name := range []string{"cluster-admin", "admin", "edit", "view", "system:basic-user", "system:discovery",
		"system:public-info-viewer", "system:node-proxier", "system:kube-scheduler", "system:kube-controller-manager",
		"system:controller:replicaset-controller", "system:controller:clusterrole-aggregation-controller"} {
		if _, err := s.Client.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("clusterrole %s: %v", name, err)
		}
	}
	crb, err := s.Client.RbacV1().ClusterRoleBindings().Get(ctx, "cluster-admin", metav1.GetOptions{})
	if err != nil || len(crb.Subjects) != 1 || crb.Subjects[0].Name != "system:masters" {
		t.Errorf("clusterrolebinding cluster-admin: %+v, %v", crb, err)
	}
	if _, err := s.Client.RbacV1().Roles("kube-system").Get(ctx, "extension-apiserver-authentication-reader", metav1.GetOptions{}); err != nil {
		t.Errorf("kube-system role: %v", err)
	}
	list, err := s.Client.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/bootstrapping=rbac-defaults"})
	if err != nil || len(list.Items) < 50 {
		t.Errorf("bootstrapped clusterroles: %d, %v", len(list.Items), err)
	}
}

func TestRoleBindingGrantsNamespaceAccess(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	createNamespace(t, s.Client, "team")
	alice, _ := userClient(t, s, "alice")
	grant(t, s.Client, "team", "pod-reader", "alice", rbacv1.PolicyRule{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{""}, Resources: []string{"pods"}})
	eventually(t, "alice lists pods in team", func() error {
		_, err := alice.CoreV1().Pods("team").List(ctx, metav1.ListOptions{})
		return err
	})
	if _, err := alice.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("alice lists pods in default: %v, want 403", err)
	}
	_, err := alice.CoreV1().Pods("team").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{})
	want := `pods is forbidden: User "alice" cannot create resource "pods" in API group "" in the namespace "team"`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Errorf("alice creates a pod in team: %v\nwant %s", err, want)
	}
	// a group binding of a ClusterRole grants its rules in the namespace to every member
	if _, err := s.Client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "configmap-writer"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"create"}, APIGroups: []string{""}, Resources: []string{"configmaps"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.RbacV1().RoleBindings("team").Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "devs-write-configmaps"},
		RoleRef:    rbacv1.RoleRef{Kind: "ClusterRole", Name: "configmap-writer"},
		Subjects:   []rbacv1.Subject{{Kind: "Group", Name: "devs"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dev, _ := userClient(t, s, "carol", "devs")
	eventually(t, "a member of devs creates a config map in team", func() error {
		_, err := dev.CoreV1().ConfigMaps("team").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "cm-"}}, metav1.CreateOptions{})
		return err
	})
}

func TestEscalationIsRefusedUnlessEscalateOrBind(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	createNamespace(t, s.Client, "team")
	bob, _ := userClient(t, s, "bob")
	grant(t, s.Client, "team", "role-writer", "bob", rbacv1.PolicyRule{
		Verbs: []string{"create", "get", "list"}, APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"roles", "rolebindings"}})
	secretReader := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "secret-reader"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"secrets"}}}}
	var err error
	eventually(t, "bob may create roles", func() error {
		_, err = bob.RbacV1().Roles("team").Create(ctx, secretReader, metav1.CreateOptions{})
		if apierrors.IsForbidden(err) && strings.Contains(err.Error(), "cannot create resource") {
			return err
		}
		return nil
	})
	want := `roles.rbac.authorization.k8s.io "secret-reader" is forbidden: user "bob" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:
{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Fatalf("bob grants what he does not hold: %v\nwant %s", err, want)
	}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "bob-admin"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "bob"}}}
	_, err = bob.RbacV1().RoleBindings("team").Create(ctx, binding, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `rolebindings.rbac.authorization.k8s.io "bob-admin" is forbidden: user "bob" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:`) {
		t.Fatalf("bob binds cluster-admin: %v", err)
	}

	// escalate on roles lets him write any rules there; bind on the cluster-admin ClusterRole
	// lets him bind it (in his namespace)
	grant(t, s.Client, "team", "escalator", "bob",
		rbacv1.PolicyRule{Verbs: []string{"escalate"}, APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"roles"}},
		rbacv1.PolicyRule{Verbs: []string{"bind"}, APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"clusterroles"}, ResourceNames: []string{"cluster-admin"}})
	eventually(t, "bob creates the role with escalate", func() error {
		_, err := bob.RbacV1().Roles("team").Create(ctx, secretReader, metav1.CreateOptions{})
		return err
	})
	// bind names one role: another is still refused
	_, err = bob.RbacV1().RoleBindings("team").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "bob-scheduler"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:kube-scheduler"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "bob"}}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("bob binds system:kube-scheduler: %v, want 403", err)
	}
	eventually(t, "bob binds cluster-admin with bind", func() error {
		_, err := bob.RbacV1().RoleBindings("team").Create(ctx, binding, metav1.CreateOptions{})
		return err
	})
}

func TestKubeletReadsOnlyTheSecretsOfItsOwnPods(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	for _, name := range []string{"s1", "s2"} {
		if _, err := s.Client.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name},
			StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for pod, node := range map[string]string{"p1": "n1", "p2": "n2"} {
		secret := "s" + pod[1:]
		if _, err := s.Client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: pod},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
				Volumes: []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret}}}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	kubelet, _ := userClient(t, s, "system:node:n1", "system:nodes")
	eventually(t, "n1 reads the secret of its pod", func() error {
		_, err := kubelet.CoreV1().Secrets("default").Get(ctx, "s1", metav1.GetOptions{})
		return err
	})
	_, err := kubelet.CoreV1().Secrets("default").Get(ctx, "s2", metav1.GetOptions{})
	want := `secrets "s2" is forbidden: User "system:node:n1" cannot get resource "secrets" in API group "" in the namespace "default": no relationship found between node 'n1' and this object`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Errorf("n1 reads the secret of n2's pod: %v\nwant %s", err, want)
	}
	if _, err := kubelet.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=n1"}); err != nil {
		t.Errorf("n1 lists its pods: %v", err)
	}
	if _, err := kubelet.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("n1 lists every pod: %v, want 403", err)
	}

	// NodeRestriction: status only of its own pods, no pods but mirror pods
	p2, err := s.Client.CoreV1().Pods("default").Get(ctx, "p2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p2.Status.Message = "hijacked"
	_, err = kubelet.CoreV1().Pods("default").UpdateStatus(ctx, p2, metav1.UpdateOptions{})
	want = `pods "p2" is forbidden: node "n1" can only update pod status for pods with spec.nodeName set to itself`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Errorf("n1 writes the status of n2's pod: %v\nwant %s", err, want)
	}
	_, err = kubelet.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "sneaky"},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{})
	want = `pods "sneaky" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, node "n1" can only create mirror pods`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Errorf("n1 creates a plain pod: %v\nwant %s", err, want)
	}
	if err := kubelet.CoreV1().Pods("default").Delete(ctx, "p2", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) ||
		!strings.Contains(err.Error(), `node "n1" can only delete pods with spec.nodeName set to itself`) {
		t.Errorf("n1 deletes n2's pod: %v", err)
	}
	// deleting its own pod that a finalizer keeps is a DELETE, not an UPDATE of the pod
	if _, err := s.Client.CoreV1().Pods("default").Patch(ctx, "p1", types.MergePatchType,
		[]byte(`{"metadata":{"finalizers":["example.com/keep"]}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := kubelet.CoreV1().Pods("default").Delete(ctx, "p1", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Errorf("n1 deletes its own pod with a finalizer: %v", err)
	}
	if p1, err := s.Client.CoreV1().Pods("default").Get(ctx, "p1", metav1.GetOptions{}); err != nil || p1.DeletionTimestamp == nil {
		t.Errorf("n1's pod after its delete: %v, deletionTimestamp %v; want it marked", err, p1.GetDeletionTimestamp())
	}
	// its own Node only
	if _, err := kubelet.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2"}}, metav1.CreateOptions{}); !apierrors.IsForbidden(err) ||
		!strings.Contains(err.Error(), `node "n1" is not allowed to modify node "n2"`) {
		t.Errorf("n1 registers n2: %v", err)
	}
	if _, err := kubelet.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, metav1.CreateOptions{}); err != nil {
		t.Errorf("n1 registers itself: %v", err)
	}
}

func TestKubectlAuthCanIAnswersFromRBAC(t *testing.T) {
	s := apiservertest.Start(t)
	createNamespace(t, s.Client, "team")
	grant(t, s.Client, "team", "pod-reader", "alice", rbacv1.PolicyRule{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"pods"}})
	kubeconfig := filepath.Join(t.TempDir(), "alice.kubeconfig")
	if err := s.PKI.WriteUserKubeconfig(kubeconfig, s.URL, "alice"); err != nil {
		t.Fatal(err)
	}
	run := kubectlCommand(t, kubectlOnPath(t), kubeconfig, nil)
	eventually(t, "can-i list pods -n team", func() error {
		out, err := run("auth", "can-i", "list", "pods", "-n", "team")
		if strings.TrimSpace(out) != "yes" {
			return &canIError{out, err}
		}
		return nil
	})
	if out, _ := run("auth", "can-i", "delete", "pods", "-n", "team"); strings.TrimSpace(out) != "no" {
		t.Errorf("can-i delete pods -n team: %q, want no", out)
	}
	if out, _ := run("auth", "can-i", "list", "pods", "-n", "default"); strings.TrimSpace(out) != "no" {
		t.Errorf("can-i list pods -n default: %q, want no", out)
	}
	out, err := run("auth", "can-i", "--list", "-n", "team")
	if err != nil || !strings.Contains(out, "pods") || !strings.Contains(out, "[get list]") || !strings.Contains(out, "selfsubjectaccessreviews.authorization.k8s.io") {
		t.Errorf("can-i --list -n team: %v\n%s", err, out)
	}
	// an admin asks about alice
	sar, err := s.Client.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{User: "alice", ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "get", Resource: "pods", Namespace: "team"}},
	}, metav1.CreateOptions{})
	if err != nil || !sar.Status.Allowed || !strings.Contains(sar.Status.Reason, `RBAC: allowed by RoleBinding "pod-reader/team" of Role "pod-reader" to User "alice"`) {
		t.Errorf("subject access review: %+v, %v", sar, err)
	}
	lsar, err := s.Client.AuthorizationV1().LocalSubjectAccessReviews("team").Create(context.Background(), &authorizationv1.LocalSubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{User: "alice", ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "delete", Resource: "pods", Namespace: "team"}},
	}, metav1.CreateOptions{})
	if err != nil || lsar.Status.Allowed {
		t.Errorf("local subject access review of delete: %+v, %v", lsar, err)
	}
}

type canIError struct {
	out string
	err error
}

func (e *canIError) Error() string { return e.out + ": " + errString(e.err) }

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func TestAggregationFillsAdminEditAndViewFromLabelledRoles(t *testing.T) {
	s := apiservertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactory(s.Client, 0)
	c, err := clusterroleaggregation.New(factory.Rbac().V1().ClusterRoles(), s.Client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx, 2) }()
	t.Cleanup(func() { cancel(); <-done; factory.Shutdown() })

	widgets := rbacv1.PolicyRule{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{"example.com"}, Resources: []string{"widgets"}}
	if _, err := s.Client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "widget-viewer", Labels: map[string]string{"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
		Rules:      []rbacv1.PolicyRule{widgets},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"view", "edit", "admin"} {
		eventually(t, role+" holds the widgets rule", func() error {
			r, err := s.Client.RbacV1().ClusterRoles().Get(ctx, role, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(r.Rules, func(p rbacv1.PolicyRule) bool { return slices.Equal(p.Resources, widgets.Resources) }) {
				return apierrors.NewNotFound(rbacv1.Resource("rule"), "widgets")
			}
			return nil
		})
	}
}

func TestImpersonationNeedsTheImpersonateVerb(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	createNamespace(t, s.Client, "team")
	grant(t, s.Client, "team", "pod-reader", "bob", rbacv1.PolicyRule{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"pods"}})

	// the admin acts as bob: bob's rights, not the admin's
	_, cfg := userClient(t, s, "admin", "system:masters")
	cfg.Impersonate.UserName = "bob"
	asBob := kubernetes.NewForConfigOrDie(cfg)
	eventually(t, "the admin as bob lists pods in team", func() error {
		_, err := asBob.CoreV1().Pods("team").List(ctx, metav1.ListOptions{})
		return err
	})
	if _, err := asBob.CoreV1().Secrets("team").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) ||
		!strings.Contains(err.Error(), `User "bob" cannot list resource "secrets"`) {
		t.Errorf("the admin as bob lists secrets: %v, want bob's 403", err)
	}
	review, err := asBob.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil || review.Status.UserInfo.Username != "bob" || !slices.Equal(review.Status.UserInfo.Groups, []string{"system:authenticated"}) {
		t.Errorf("whoami as bob: %+v, %v", review, err)
	}

	// alice may not impersonate, until a ClusterRole lets her impersonate bob
	_, aliceCfg := userClient(t, s, "alice")
	aliceCfg.Impersonate.UserName = "bob"
	aliceAsBob := kubernetes.NewForConfigOrDie(aliceCfg)
	_, err = aliceAsBob.CoreV1().Pods("team").List(ctx, metav1.ListOptions{})
	want := `users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Errorf("alice as bob: %v\nwant %s", err, want)
	}
	if _, err := s.Client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "impersonate-bob"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"impersonate"}, APIGroups: []string{""}, Resources: []string{"users"}, ResourceNames: []string{"bob"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "alice-impersonates-bob"},
		RoleRef:  rbacv1.RoleRef{Kind: "ClusterRole", Name: "impersonate-bob"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "alice"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "alice as bob lists pods in team", func() error {
		_, err := aliceAsBob.CoreV1().Pods("team").List(ctx, metav1.ListOptions{})
		return err
	})
	// a group is a further impersonation she is not allowed
	aliceCfg.Impersonate.Groups = []string{"system:masters"}
	_, err = kubernetes.NewForConfigOrDie(aliceCfg).CoreV1().Secrets("team").List(ctx, metav1.ListOptions{})
	want = `groups "system:masters" is forbidden: User "alice" cannot impersonate resource "groups" in API group "" at the cluster scope`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Errorf("alice as bob in system:masters: %v\nwant %s", err, want)
	}
}

func TestTokenReviewAuthenticatesAServiceAccountToken(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	createNamespace(t, s.Client, "team")
	sa, err := s.Client.CoreV1().ServiceAccounts("team").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "robot"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := s.Client.CoreV1().ServiceAccounts("team").CreateToken(ctx, "robot", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	review, err := s.Client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: tr.Status.Token}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := review.Status
	if !st.Authenticated || st.User.Username != "system:serviceaccount:team:robot" || st.User.UID != string(sa.UID) ||
		!slices.Contains(st.User.Groups, "system:serviceaccounts:team") || len(st.Audiences) == 0 {
		t.Errorf("review of the account's token: %+v", st)
	}
	review, err = s.Client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: "not-a-token"}}, metav1.CreateOptions{})
	if err != nil || review.Status.Authenticated || review.Status.Error == "" {
		t.Errorf("review of a made-up token: %+v, %v", review, err)
	}
	// reviewing tokens is the system:auth-delegator's right, not everyone's
	alice, _ := userClient(t, s, "alice")
	if _, err := alice.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: tr.Status.Token}}, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("alice reviews a token: %v, want 403", err)
	}
}

func TestServiceAccountIssuerDiscoveryPublishesTheKeyThatVerifiesTokens(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	createNamespace(t, s.Client, "team")
	if _, err := s.Client.CoreV1().ServiceAccounts("team").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "robot"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := s.Client.CoreV1().ServiceAccounts("team").CreateToken(ctx, "robot", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// a pod's own token may read both documents (system:service-account-issuer-discovery)
	robot := asToken(t, s, tr.Status.Token)
	var config struct {
		Issuer  string   `json:"issuer"`
		JWKSURI string   `json:"jwks_uri"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
	}
	raw, err := robot.CoreV1().RESTClient().Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
	if err != nil || json.Unmarshal(raw, &config) != nil {
		t.Fatalf("openid-configuration: %v %s", err, raw)
	}
	if config.Issuer != "https://kubernetes.default.svc.cluster.local" || config.JWKSURI != "https://kubernetes.default.svc.cluster.local/openid/v1/jwks" || len(config.Algs) != 1 {
		t.Errorf("openid-configuration: %s", raw)
	}
	var jwks struct {
		Keys []struct {
			Kid, Alg, Kty, Use string
		} `json:"keys"`
	}
	raw, err = robot.CoreV1().RESTClient().Get().AbsPath("/openid/v1/jwks").DoRaw(ctx)
	if err != nil || json.Unmarshal(raw, &jwks) != nil || len(jwks.Keys) != 1 {
		t.Fatalf("jwks: %v %s", err, raw)
	}
	// the token's header names the published key
	header, err := base64.RawURLEncoding.DecodeString(strings.Split(tr.Status.Token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct{ Kid, Alg string }
	if err := json.Unmarshal(header, &h); err != nil {
		t.Fatal(err)
	}
	if k := jwks.Keys[0]; k.Kid != h.Kid || k.Alg != h.Alg || k.Use != "sig" || k.Alg != config.Algs[0] {
		t.Errorf("published key %+v, token header %+v", k, h)
	}
	// a user bound to nothing may not
	alice, _ := userClient(t, s, "alice")
	if _, err := alice.CoreV1().RESTClient().Get().AbsPath("/openid/v1/jwks").DoRaw(ctx); !apierrors.IsForbidden(err) {
		t.Errorf("alice reads the jwks: %v, want 403", err)
	}
}

// TestAuthorizationMatrixOfTheDefaultRoles asks the server about 448 requests of users bound to
// upstream's aggregated view, edit and admin roles in one namespace, and of one bound to
// nothing, as SubjectAccessReviews; the expected answers are upstream's documented meaning of
// those roles: view reads all but Secrets, edit also writes and reads Secrets, admin also
// manages Roles and RoleBindings, nothing is granted in another namespace.
func TestAuthorizationMatrixOfTheDefaultRoles(t *testing.T) {
	s := apiservertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactory(s.Client, 0)
	c, err := clusterroleaggregation.New(factory.Rbac().V1().ClusterRoles(), s.Client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx, 2) }()
	t.Cleanup(func() { cancel(); <-done; factory.Shutdown() })

	createNamespace(t, s.Client, "team")
	for user, role := range map[string]string{"carol": "view", "bob": "edit", "dave": "admin"} {
		if _, err := s.Client.RbacV1().RoleBindings("team").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user},
			RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: role}, Subjects: []rbacv1.Subject{{Kind: "User", Name: user}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ask := func(user, verb, group, resource, ns string) (bool, string) {
		t.Helper()
		sar, err := s.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, Groups: []string{"system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Group: group, Resource: resource, Namespace: ns},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return sar.Status.Allowed, sar.Status.Reason
	}
	// the aggregation controller has filled admin once dave may manage roles
	eventually(t, "admin is aggregated", func() error {
		if ok, _ := ask("dave", "create", "rbac.authorization.k8s.io", "rolebindings", "team"); !ok {
			return apierrors.NewNotFound(rbacv1.Resource("clusterrole"), "admin")
		}
		if ok, _ := ask("carol", "get", "", "pods", "team"); !ok {
			return apierrors.NewNotFound(rbacv1.Resource("clusterrole"), "view")
		}
		return nil
	})

	type res struct{ group, resource string }
	workloads := []res{{"", "pods"}, {"", "services"}, {"", "configmaps"}, {"apps", "deployments"}, {"apps", "replicasets"}}
	secrets := res{"", "secrets"}
	rbacKinds := []res{{"rbac.authorization.k8s.io", "roles"}, {"rbac.authorization.k8s.io", "rolebindings"}}
	reads := map[string]bool{"get": true, "list": true, "watch": true}
	expected := func(user string, r res, verb, ns string) bool {
		if ns != "team" {
			return false
		}
		isWorkload := slices.Contains(workloads, r)
		switch user {
		case "carol":
			return isWorkload && reads[verb]
		case "bob":
			return isWorkload || r == secrets
		case "dave":
			return true
		}
		return false
	}
	cases := 0
	for _, user := range []string{"carol", "bob", "dave", "eve"} {
		for _, r := range append(append(slices.Clone(workloads), secrets), rbacKinds...) {
			for _, verb := range []string{"get", "list", "watch", "create", "update", "patch", "delete"} {
				for _, ns := range []string{"team", "other"} {
					cases++
					want := expected(user, r, verb, ns)
					if got, reason := ask(user, verb, r.group, r.resource, ns); got != want {
						t.Errorf("%s %s %s/%s in %s: allowed %v, want %v (%s)", user, verb, r.group, r.resource, ns, got, want, reason)
					}
				}
			}
		}
	}
	if cases < 200 {
		t.Errorf("only %d cases", cases)
	}
}

func TestStockKubectlManagesRBAC(t *testing.T) {
	s := apiservertest.Start(t)
	createNamespace(t, s.Client, "team")
	run := kubectlCommand(t, kubectlOnPath(t), adminKubeconfig(t, s), nil)
	must := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	must("create", "role", "pod-reader", "--verb=get,list", "--resource=pods", "-n", "team")
	must("create", "rolebinding", "alice-reads-pods", "--role=pod-reader", "--user=alice", "-n", "team")
	must("create", "clusterrole", "configmap-reader", "--verb=get", "--resource=configmaps")
	if out := must("get", "rolebinding", "alice-reads-pods", "-n", "team", "-o", "wide"); !strings.Contains(out, "Role/pod-reader") || !strings.Contains(out, "alice") {
		t.Errorf("get rolebinding -o wide:\n%s", out)
	}
	eventually(t, "can-i list pods -n team --as alice", func() error {
		out, err := run("auth", "can-i", "list", "pods", "-n", "team", "--as", "alice")
		if strings.TrimSpace(out) != "yes" {
			return &canIError{out, err}
		}
		return nil
	})
	if out, _ := run("auth", "can-i", "delete", "pods", "-n", "team", "--as", "alice"); strings.TrimSpace(out) != "no" {
		t.Errorf("can-i delete pods --as alice: %q", out)
	}
	if out, err := run("get", "pods", "-n", "team", "--as", "alice"); err != nil || !strings.Contains(out, "No resources found") {
		t.Errorf("get pods --as alice: %v\n%s", err, out)
	}
	if out, err := run("get", "secrets", "-n", "team", "--as", "alice"); err == nil ||
		!strings.Contains(out, `User "alice" cannot list resource "secrets" in API group "" in the namespace "team"`) {
		t.Errorf("get secrets --as alice: %v\n%s", err, out)
	}

	manifest := filepath.Join(t.TempDir(), "rbac.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: deployer, namespace: team}
rules:
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, create, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: deployer, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: deployer}
subjects:
- {kind: User, name: ci}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	out := must("auth", "reconcile", "-f", manifest)
	if !strings.Contains(out, "role.rbac.authorization.k8s.io/deployer reconciled") || !strings.Contains(out, "rolebinding.rbac.authorization.k8s.io/deployer reconciled") {
		t.Errorf("auth reconcile:\n%s", out)
	}
	eventually(t, "ci may create deployments in team", func() error {
		out, err := run("auth", "can-i", "create", "deployments.apps", "-n", "team", "--as", "ci")
		if strings.TrimSpace(out) != "yes" {
			return &canIError{out, err}
		}
		return nil
	})
}

func TestKubeletReadsTheClaimsAndVolumesOfItsOwnPods(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	if _, err := s.Client.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv1"},
		Spec: corev1.PersistentVolumeSpec{Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/pv1"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, claim := range []string{"c1", "c2"} {
		pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: claim},
			Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}
		if claim == "c1" {
			pvc.Spec.VolumeName = "pv1"
		}
		if _, err := s.Client.CoreV1().PersistentVolumeClaims("default").Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for pod, node := range map[string]string{"p1": "n1", "p2": "n2"} {
		claim := "c" + pod[1:]
		if _, err := s.Client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: pod},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
				Volumes: []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{
					PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	kubelet, _ := userClient(t, s, "system:node:n1", "system:nodes")
	eventually(t, "n1 reads the claim of its pod", func() error {
		_, err := kubelet.CoreV1().PersistentVolumeClaims("default").Get(ctx, "c1", metav1.GetOptions{})
		return err
	})
	eventually(t, "n1 reads the volume bound to that claim", func() error {
		_, err := kubelet.CoreV1().PersistentVolumes().Get(ctx, "pv1", metav1.GetOptions{})
		return err
	})
	if _, err := kubelet.CoreV1().PersistentVolumeClaims("default").Get(ctx, "c2", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("n1 reads the claim of n2's pod: %v, want 403", err)
	}
}
