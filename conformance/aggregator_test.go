package conformance

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/util/retry"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	aggregatorclient "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"
	"k8s.io/utils/ptr"
)

// Upstream's Aggregator conformance spec (test/e2e/apimachinery/aggregator.go, v1.37): upstream's
// sample API server and an etcd for it run as one pod of a Deployment, behind a Service, with
// the RBAC upstream's manifests give it; an APIService registers wardle.example.com/v1alpha1;
// once it is Available, flunders are created, listed and deleted through the cluster's API
// server (a REST client, the dynamic client after discovery lists them, stock kubectl), and the
// APIService itself goes through its lifecycle. The images are upstream's (another cluster
// pulls them); for its own skiff up the suite builds them (buildAggregatorImages).

// The names upstream's spec uses.
const (
	wardleGroup       = "wardle.example.com"
	wardleVersion     = "v1alpha1"
	wardleAPIService  = wardleVersion + "." + wardleGroup
	sampleAPIService  = "sample-api"
	sampleServicePort = 7443
)

var flundersResource = schema.GroupVersionResource{Group: wardleGroup, Version: wardleVersion, Resource: "flunders"}

var _ = Describe("[sig-api-machinery] Aggregator", Label("api-machinery"), func() {
	It("should be able to support the sample API server using the current Aggregator", func(ctx SpecContext) {
		requireRealContainers(ctx)
		if cluster.skiff != nil && aggregatorImagesMissing != "" {
			Skip("needs the images " + sampleAPIServerImage + " and " + etcdImage + ", which the suite could not build: " + aggregatorImagesMissing)
		}
		schedulableNode(ctx)
		ns := newNamespace(ctx)
		aggregator := aggregatorclient.NewForConfigOrDie(cluster.config)
		restClient := cluster.client.Discovery().RESTClient()
		caPEM := deploySampleAPIServer(ctx, ns)

		By("registering " + wardleAPIService + " by APIService")
		_, err := aggregator.ApiregistrationV1().APIServices().Create(ctx, &apiregistrationv1.APIService{
			ObjectMeta: metav1.ObjectMeta{Name: wardleAPIService},
			Spec: apiregistrationv1.APIServiceSpec{
				Service:              &apiregistrationv1.ServiceReference{Namespace: ns, Name: sampleAPIService, Port: ptr.To[int32](sampleServicePort)},
				Group:                wardleGroup,
				Version:              wardleVersion,
				CABundle:             caPEM,
				GroupPriorityMinimum: 2000,
				VersionPriority:      200,
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		// before the namespace goes: an APIService of a gone server fails discovery
		DeferCleanup(func(ctx SpecContext) {
			err := aggregator.ApiregistrationV1().APIServices().Delete(ctx, wardleAPIService, metav1.DeleteOptions{})
			if !apierrors.IsNotFound(err) {
				Expect(err).NotTo(HaveOccurred())
			}
		})

		flunders := "/apis/" + wardleGroup + "/" + wardleVersion + "/namespaces/" + ns + "/flunders"
		By("waiting for the aggregator to serve " + flunders)
		// upstream's wait: forbidden, unavailable and not found mean not yet
		Eventually(func(g Gomega) {
			_, err := restClient.Get().AbsPath(flunders).SetHeader("Accept", "application/json").DoRaw(ctx)
			g.Expect(err).NotTo(HaveOccurred())
		}).WithContext(ctx).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
		apiService, err := aggregator.ApiregistrationV1().APIServices().Get(ctx, wardleAPIService, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(apiService.Status.Conditions).To(ContainElement(And(
			HaveField("Type", apiregistrationv1.Available), HaveField("Status", apiregistrationv1.ConditionTrue),
			HaveField("Message", "all checks passed"))))

		By("creating, listing and deleting a flunder through the aggregator")
		body := fmt.Sprintf(`{"apiVersion":"%s/%s","kind":"Flunder","metadata":{"labels":{"sample-label":"true"},"name":"rest-flunder","namespace":%q}}`, wardleGroup, wardleVersion, ns)
		result := restClient.Post().AbsPath(flunders).Body([]byte(body)).SetHeader("Accept", "application/json").Do(ctx)
		Expect(result.Error()).NotTo(HaveOccurred())
		var code int
		result.StatusCode(&code)
		Expect(code).To(Equal(201))
		created := &unstructured.Unstructured{}
		Expect(result.Into(created)).To(Succeed())
		Expect(created.GetAPIVersion()).To(Equal(wardleGroup + "/" + wardleVersion))
		Expect(created.GetKind()).To(Equal("Flunder"))
		Expect(created.GetName()).To(Equal("rest-flunder"))
		Expect(flunderNames(ctx, flunders)).To(Equal([]string{"rest-flunder"}))
		_, err = restClient.Delete().AbsPath(flunders + "/rest-flunder").DoRaw(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(flunderNames(ctx, flunders)).To(BeEmpty())

		By("waiting for discovery to list flunders")
		Eventually(func(g Gomega) {
			resources, err := cluster.client.Discovery().ServerPreferredNamespacedResources()
			g.Expect(err).NotTo(HaveOccurred())
			gvrs, err := discovery.GroupVersionResources(resources)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(gvrs).To(HaveKey(flundersResource))
		}).WithContext(ctx).WithTimeout(longWait).WithPolling(poll).Should(Succeed())

		By("creating and listing a flunder with the dynamic client")
		dyn := cluster.dynamic.Resource(flundersResource).Namespace(ns)
		flunder := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": wardleGroup + "/" + wardleVersion, "kind": "Flunder",
			"metadata": map[string]any{"name": "dynamic-flunder"},
		}}
		_, err = dyn.Create(ctx, flunder, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		list, err := dyn.List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(1))
		Expect(list.Items[0].GetName()).To(Equal("dynamic-flunder"))

		By("getting and deleting the flunder with kubectl")
		out := mustKubectl(ctx, "-n", ns, "get", "flunders", "-o", "jsonpath={.items[*].metadata.name}")
		Expect(out).To(Equal("dynamic-flunder"))
		out = mustKubectl(ctx, "-n", ns, "get", "flunder.v1alpha1.wardle.example.com", "dynamic-flunder", "-o", "jsonpath={.kind} {.apiVersion}")
		Expect(out).To(Equal("Flunder wardle.example.com/v1alpha1"))
		out = mustKubectl(ctx, "-n", ns, "delete", "flunder", "dynamic-flunder")
		Expect(out).To(ContainSubstring(`flunder.wardle.example.com "dynamic-flunder" deleted`))
		list, err = dyn.List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(BeEmpty())

		By("patching, updating the status of, replacing and deleting the APIService by label")
		apiServices := aggregator.ApiregistrationV1().APIServices()
		patched, err := apiServices.Patch(ctx, wardleAPIService, types.MergePatchType, []byte(`{"spec":{"versionPriority":400}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(patched.Spec.VersionPriority).To(Equal(int32(400)))
		Expect(patched.ResourceVersion).NotTo(Equal(apiService.ResourceVersion))
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := apiServices.Get(ctx, wardleAPIService, metav1.GetOptions{})
			if err != nil {
				return err
			}
			cur.Status.Conditions = append(cur.Status.Conditions, apiregistrationv1.APIServiceCondition{
				Type: "StatusUpdated", Status: apiregistrationv1.ConditionTrue, Reason: "E2E", Message: "Set from e2e test"})
			_, err = apiServices.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
			return err
		})
		Expect(err).NotTo(HaveOccurred())
		status, err := restClient.Get().AbsPath("/apis/apiregistration.k8s.io/v1/apiservices/" + wardleAPIService + "/status").DoRaw(ctx)
		Expect(err).NotTo(HaveOccurred())
		var read apiregistrationv1.APIService
		Expect(json.Unmarshal(status, &read)).To(Succeed())
		Expect(read.Status.Conditions).To(ContainElement(And(HaveField("Type", apiregistrationv1.APIServiceConditionType("StatusUpdated")),
			HaveField("Reason", "E2E"), HaveField("Message", "Set from e2e test"))))
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := apiServices.Get(ctx, wardleAPIService, metav1.GetOptions{})
			if err != nil {
				return err
			}
			cur.Labels = map[string]string{wardleAPIService: "updated"}
			_, err = apiServices.Update(ctx, cur, metav1.UpdateOptions{})
			return err
		})
		Expect(err).NotTo(HaveOccurred())
		Expect(apiServices.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: wardleAPIService + "=updated"})).To(Succeed())
		remaining, err := apiServices.List(ctx, metav1.ListOptions{LabelSelector: wardleAPIService + "=updated"})
		Expect(err).NotTo(HaveOccurred())
		Expect(remaining.Items).To(BeEmpty())

		By("seeing the group gone from the API server once its APIService is")
		Eventually(func(g Gomega) {
			_, err := restClient.Get().AbsPath(flunders).DoRaw(ctx)
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "GET %s: %v", flunders, err)
		}).WithContext(ctx).WithTimeout(shortWait).WithPolling(poll).Should(Succeed())
	})
})

// flunderNames lists the flunders at path through the aggregator and returns their names.
func flunderNames(ctx context.Context, path string) []string {
	GinkgoHelper()
	raw, err := cluster.client.Discovery().RESTClient().Get().AbsPath(path).SetHeader("Accept", "application/json").DoRaw(ctx)
	Expect(err).NotTo(HaveOccurred())
	var list unstructured.UnstructuredList
	Expect(list.UnmarshalJSON(raw)).To(Succeed())
	names := []string{}
	for _, it := range list.Items {
		names = append(names, it.GetName())
	}
	return names
}

// deploySampleAPIServer runs upstream's sample API server as upstream's spec deploys it in ns
// (its serving certificate as a Secret, its RBAC, a Deployment of it and etcd, a Service) and
// waits for the Deployment to be available. It returns the CA of the serving certificate.
func deploySampleAPIServer(ctx context.Context, ns string) []byte {
	GinkgoHelper()
	By("deploying the sample API server and its etcd")
	certPEM, keyPEM, caPEM := sampleAPIServerCertificate(sampleAPIService + "." + ns + ".svc")
	core, rbac := cluster.client.CoreV1(), cluster.client.RbacV1()
	_, err := core.Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "sample-apiserver-secret"},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())

	// what upstream's manifests give the server's account: reading namespaces and the
	// admission and flow-control configuration it enforces, delegating authentication and
	// authorization, and reading the extension-apiserver-authentication ConfigMap
	account := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "default", Namespace: ns}}
	reader := "sample-apiserver-reader-" + ns
	_, err = rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: reader},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"flowcontrol.apiserver.k8s.io"}, Resources: []string{"prioritylevelconfigurations", "flowschemas"}, Verbs: []string{"get", "list", "watch"}},
		},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(deleteIgnoringNotFound, func(ctx context.Context) error {
		return rbac.ClusterRoles().Delete(ctx, reader, metav1.DeleteOptions{})
	})
	for name, role := range map[string]string{"wardler:" + ns + ":" + reader: reader, "wardler:" + ns + ":auth-delegator": "system:auth-delegator"} {
		_, err = rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   account,
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(deleteIgnoringNotFound, func(ctx context.Context) error {
			return rbac.ClusterRoleBindings().Delete(ctx, name, metav1.DeleteOptions{})
		})
	}
	authReader := "wardler-auth-reader-" + ns
	_, err = rbac.RoleBindings(metav1.NamespaceSystem).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: authReader},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "extension-apiserver-authentication-reader"},
		Subjects:   account,
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(deleteIgnoringNotFound, func(ctx context.Context) error {
		return rbac.RoleBindings(metav1.NamespaceSystem).Delete(ctx, authReader, metav1.DeleteOptions{})
	})

	labels := map[string]string{"app": "sample-apiserver", "apiserver": "true"}
	const etcdURL = "http://127.0.0.1:2379"
	_, err = cluster.client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "sample-apiserver-deployment"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](1),
					Volumes: []corev1.Volume{{Name: "apiserver-certs", VolumeSource: corev1.VolumeSource{
						Secret: &corev1.SecretVolumeSource{SecretName: "sample-apiserver-secret"}}}},
					Containers: []corev1.Container{{
						Name:  "sample-apiserver",
						Image: sampleAPIServerImage,
						Args: []string{
							"--etcd-servers=" + etcdURL,
							"--tls-cert-file=/apiserver.local.config/certificates/tls.crt",
							"--tls-private-key-file=/apiserver.local.config/certificates/tls.key",
							"--audit-log-path=-", "--audit-log-maxage=0", "--audit-log-maxbackup=0",
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "apiserver-certs", ReadOnly: true, MountPath: "/apiserver.local.config/certificates"}},
						// upstream's probe, without its 20 s initial delay: failing probes
						// only keep the pod unready until the server answers
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Scheme: corev1.URISchemeHTTPS, Port: intstr.FromInt32(443), Path: "/readyz"}},
							PeriodSeconds: 1, SuccessThreshold: 1, FailureThreshold: 3,
						},
					}, {
						Name:    "etcd",
						Image:   etcdImage,
						Command: []string{"/usr/local/bin/etcd", "--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL},
					}},
				},
			},
		},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	_, err = core.Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: sampleAPIService, Labels: map[string]string{"test": "aggregator"}},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"apiserver": "true"},
			Ports:    []corev1.ServicePort{{Protocol: corev1.ProtocolTCP, Port: sampleServicePort, TargetPort: intstr.FromInt32(443)}},
		},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	Eventually(func(g Gomega) {
		d, err := cluster.client.AppsV1().Deployments(ns).Get(ctx, "sample-apiserver-deployment", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(d.Status.AvailableReplicas).To(Equal(int32(1)), "the deployment's status: %+v", d.Status)
	}).WithContext(ctx).WithTimeout(longWait).WithPolling(poll).Should(Succeed(), func() string { return sampleAPIServerLogs(ctx, ns) })
	return caPEM
}

// deleteIgnoringNotFound runs a cleanup's delete and fails the spec on any error but NotFound.
func deleteIgnoringNotFound(ctx SpecContext, del func(context.Context) error) {
	if err := del(ctx); err != nil && !apierrors.IsNotFound(err) {
		Expect(err).NotTo(HaveOccurred())
	}
}

// sampleAPIServerLogs is what the pods of ns logged, for a failure message.
func sampleAPIServerLogs(ctx context.Context, ns string) string {
	pods, err := cluster.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range pods.Items {
		fmt.Fprintf(&b, "pod %s: %s %+v\n", p.Name, p.Status.Phase, p.Status.ContainerStatuses)
		for _, c := range p.Spec.Containers {
			logs, err := cluster.client.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: c.Name}).DoRaw(ctx)
			fmt.Fprintf(&b, "--- %s (%v):\n%s\n", c.Name, err, logs)
		}
	}
	return b.String()
}

// sampleAPIServerCertificate makes a CA and a serving certificate it signs for dnsName, the
// name the aggregator checks (SERVICE.NAMESPACE.svc), as upstream's spec does; all PEM.
func sampleAPIServerCertificate(dnsName string) (certPEM, keyPEM, caPEM []byte) {
	GinkgoHelper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "sample-apiserver-ca"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	Expect(err).NotTo(HaveOccurred())
	ca, err := x509.ParseCertificate(caDER)
	Expect(err).NotTo(HaveOccurred())
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: dnsName},
		DNSNames:     []string{dnsName},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &key.PublicKey, caKey)
	Expect(err).NotTo(HaveOccurred())
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	Expect(err).NotTo(HaveOccurred())
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
}
