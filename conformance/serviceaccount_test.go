package conformance

import (
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var _ = Describe("[sig-auth] ServiceAccounts", Label("api-machinery"), func() {
	It("should give a pod's in-cluster client only what its ServiceAccount's Role allows", func(ctx SpecContext) {
		requireRealContainers(ctx)
		if !inClusterClientBuilt {
			Skip("needs the image " + inClusterClientImage + ", which the suite builds only for the skiff up it starts")
		}
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		core, rbac := cluster.client.CoreV1(), cluster.client.RbacV1()
		_, err := core.ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reader"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = rbac.Roles(ns).Create(ctx, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "configmap-reader"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list"}}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = rbac.RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "reader-reads-configmaps"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "configmap-reader"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "reader", Namespace: ns}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = core.ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "app"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = core.Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app"}, StringData: map[string]string{"password": "hunter2"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		// the client finds the server through KUBERNETES_SERVICE_HOST and _PORT and
		// authenticates with the token and CA of the pod's projected service-account volume
		_, err = core.Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "client"},
			Spec: corev1.PodSpec{
				NodeName:           node.Name,
				RestartPolicy:      corev1.RestartPolicyNever,
				ServiceAccountName: "reader",
				Containers: []corev1.Container{{
					Name: "client", Image: inClusterClientImage,
					Args: []string{"whoami", "list/configmaps", "get/configmaps/app", "list/secrets", "get/secrets/app", "list/configmaps@default"},
				}},
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		var pod *corev1.Pod
		Eventually(func(g Gomega) {
			pod, err = core.Pods(ns).Get(ctx, "client", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pod.Status.Phase).To(BeElementOf(corev1.PodSucceeded, corev1.PodFailed))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())

		user := "system:serviceaccount:" + ns + ":reader"
		want := strings.Join([]string{
			"whoami: allowed: " + user,
			// kube-root-ca.crt is the namespace's too, published for every pod's ca.crt
			"list/configmaps: allowed: app,kube-root-ca.crt",
			"get/configmaps/app: allowed: app",
			fmt.Sprintf(`list/secrets: 403 Forbidden: secrets is forbidden: User %q cannot list resource "secrets" in API group "" in the namespace %q`, user, ns),
			fmt.Sprintf(`get/secrets/app: 403 Forbidden: secrets "app" is forbidden: User %q cannot get resource "secrets" in API group "" in the namespace %q`, user, ns),
			fmt.Sprintf(`list/configmaps@default: 403 Forbidden: configmaps is forbidden: User %q cannot list resource "configmaps" in API group "" in the namespace "default"`, user),
		}, "\n") + "\n"
		logs, err := core.Pods(ns).GetLogs("client", &corev1.PodLogOptions{}).DoRaw(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(logs)).To(Equal(want), "the client's output:\n%s", logs)
		Expect(pod.Status.Phase).To(Equal(corev1.PodSucceeded))
		Expect(pod.Status.ContainerStatuses).To(HaveLen(1))
		Expect(pod.Status.ContainerStatuses[0].State.Terminated).NotTo(BeNil())
		Expect(pod.Status.ContainerStatuses[0].State.Terminated.Message).To(Equal(want), "the client's termination message")
	})
})
