package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

// TestUpRunsEachPartAsItsOwnUser starts skiff up and shows that its parts work with RBAC on
// under their own identities: the kubelet registers its Node and Lease, the controller manager
// (one ServiceAccount per controller) and the scheduler bring a Deployment's pod to a node, and
// none of those users may do what their roles do not grant.
func TestUpRunsEachPartAsItsOwnUser(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "skiff")
	up := startUp(t, dataDir, freePort(t))
	up.waitForLine(t, "ready")
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dataDir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	admin := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()

	for file, user := range map[string]string{
		"scheduler.kubeconfig": "system:kube-scheduler", "controller-manager.kubeconfig": "system:kube-controller-manager",
		"proxy.kubeconfig": "system:kube-proxy", "dns.kubeconfig": "system:skiff:dns",
		"network-policy.kubeconfig":     "system:skiff:network-policy-agent",
		"ingress-controller.kubeconfig": "system:skiff:ingress-controller",
	} {
		kc, err := clientcmd.LoadFromFile(filepath.Join(dataDir, file))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if _, ok := kc.AuthInfos[user]; !ok {
			t.Errorf("%s authenticates as %v, want %s", file, kc.AuthInfos, user)
		}
	}

	node, err := hostNodeName("")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the kubelet registers its Node and Lease", func() bool {
		_, nodeErr := admin.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		_, leaseErr := admin.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, node, metav1.GetOptions{})
		return nodeErr == nil && leaseErr == nil
	})

	labels := map[string]string{"app": "web"}
	if _, err := admin.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deployment's pod runs on the node", func() bool {
		pods, err := admin.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		return err == nil && len(pods.Items) == 1 && pods.Items[0].Spec.NodeName == node && pods.Items[0].Status.Phase == corev1.PodRunning
	})
	for _, sa := range []string{"replicaset-controller", "deployment-controller", "generic-garbage-collector"} {
		if _, err := admin.CoreV1().ServiceAccounts("kube-system").Get(ctx, sa, metav1.GetOptions{}); err != nil {
			t.Errorf("the controller manager's account for %s: %v", sa, err)
		}
	}

	for _, c := range []struct {
		user     string
		groups   []string
		verb     string
		resource string
		allowed  bool
	}{
		{"system:kube-scheduler", nil, "create", "pods/binding", true},
		{"system:kube-scheduler", nil, "get", "secrets", false},
		{"system:kube-proxy", nil, "list", "endpointslices", true},
		{"system:kube-proxy", nil, "delete", "services", false},
		{"system:kube-controller-manager", nil, "create", "pods", false},
		{"system:serviceaccount:kube-system:replicaset-controller", []string{"system:serviceaccounts"}, "create", "pods", true},
		{"system:skiff:dns", nil, "list", "services", true},
		{"system:skiff:dns", nil, "list", "secrets", false},
		{"system:skiff:network-policy-agent", nil, "watch", "networkpolicies", true},
		{"system:skiff:network-policy-agent", nil, "list", "pods", true},
		{"system:skiff:network-policy-agent", nil, "update", "networkpolicies", false},
		{"system:skiff:ingress-controller", nil, "update", "ingresses/status", true},
		{"system:skiff:ingress-controller", nil, "update", "ingresses", false},
		{"system:node:" + node, []string{"system:nodes"}, "list", "secrets", false},
	} {
		res, sub, _ := strings.Cut(c.resource, "/")
		group := ""
		if res == "endpointslices" {
			group = "discovery.k8s.io"
		}
		if res == "networkpolicies" || res == "ingresses" {
			group = "networking.k8s.io"
		}
		sar, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: c.user, Groups: append(c.groups, "system:authenticated"),
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: c.verb, Group: group, Resource: res, Subresource: sub, Namespace: "default"},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if sar.Status.Allowed != c.allowed {
			t.Errorf("may %s %s %s? %v, want %v (%s)", c.user, c.verb, c.resource, sar.Status.Allowed, c.allowed, sar.Status.Reason)
		}
	}
}

// waitFor polls cond for up to two minutes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
