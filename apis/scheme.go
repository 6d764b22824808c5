package apis

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	resourcev1 "k8s.io/api/resource/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	storagemigrationv1 "k8s.io/api/storagemigration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1beta1 "k8s.io/apimachinery/pkg/apis/meta/v1beta1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

var (
	// Scheme knows every kind skiff serves and reads, with skiff's defaulting functions.
	Scheme = runtime.NewScheme()
	// Codecs encodes and decodes the kinds of Scheme in JSON, YAML and protobuf.
	Codecs = serializer.NewCodecFactory(Scheme)
	// ParameterCodec decodes query parameters into option structs (ListOptions, ...).
	ParameterCodec = runtime.NewParameterCodec(Scheme)
)

func init() {
	builders := []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, coordinationv1.AddToScheme,
		eventsv1.AddToScheme, autoscalingv1.AddToScheme, autoscalingv2.AddToScheme, authenticationv1.AddToScheme, authorizationv1.AddToScheme,
		schedulingv1.AddToScheme, discoveryv1.AddToScheme, apiextensionsv1.AddToScheme, batchv1.AddToScheme, rbacv1.AddToScheme, storagev1.AddToScheme, policyv1.AddToScheme, networkingv1.AddToScheme, nodev1.AddToScheme, metav1beta1.AddMetaToScheme, metricsv1beta1.AddToScheme,
		certificatesv1.AddToScheme,
		resourcev1.AddToScheme, storagemigrationv1.AddToScheme,
		flowcontrolv1.AddToScheme,
		apiregistrationv1.AddToScheme,
		addEventConversions, addHorizontalPodAutoscalerConversions,
		admissionregistrationv1.AddToScheme,
	}
	for _, add := range builders {
		if err := add(Scheme); err != nil {
			panic(err)
		}
	}
	// Option kinds (ListOptions, DeleteOptions, ...) and Status in every served group version,
	// and unversioned in meta.k8s.io, as upstream registers them.
	metav1.AddToGroupVersion(Scheme, schema.GroupVersion{Version: "v1"})
	for _, gv := range Builtin.GroupVersions() {
		if gv.Group != "" {
			metav1.AddToGroupVersion(Scheme, gv)
		}
	}
	addDefaultingFuncs(Scheme)
	metav1.AddToGroupVersion(Scheme, autoscalingV1)
	// clients send options as meta.k8s.io/v1 too (kubectl's DeleteOptions)
	Scheme.AddKnownTypes(metav1.SchemeGroupVersion, &metav1.ListOptions{}, &metav1.GetOptions{},
		&metav1.DeleteOptions{}, &metav1.CreateOptions{}, &metav1.UpdateOptions{}, &metav1.PatchOptions{})
}
