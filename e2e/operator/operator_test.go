// Package operator_test proves that an operator written the way the ecosystem writes them, on
// sigs.k8s.io/controller-runtime, works against skiff unchanged: its CustomResourceDefinition is
// served, its cached client lists and watches the custom resources, it reports through their
// status subresource, and the Deployments it owns (ownerReferences with controller=true) are
// collected by skiff's garbage collector with their owner. The collector and the namespace
// controller start before the definition exists, so they must discover it at run time, as
// upstream's do.
package operator_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/garbagecollector"
	"github.com/skiff-dev/skiff/controllers/namespace"
)

// The operator's API: a WebApp runs Replicas copies of Image as a Deployment of the same name.

var webAppVersion = schema.GroupVersion{Group: "apps.example.com", Version: "v1alpha1"}

type WebAppSpec struct {
	Image    string `json:"image"`
	Replicas int32  `json:"replicas"`
}

type WebAppStatus struct {
	ObservedGeneration int64  `json:"observedGeneration,omitempty"`
	Deployment         string `json:"deployment,omitempty"`
	Replicas           int32  `json:"replicas,omitempty"`
}

type WebApp struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              WebAppSpec   `json:"spec,omitempty"`
	Status            WebAppStatus `json:"status,omitempty"`
}

type WebAppList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WebApp `json:"items"`
}

func (w *WebApp) DeepCopyObject() runtime.Object {
	out := *w
	w.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	return &out
}

func (l *WebAppList) DeepCopyObject() runtime.Object {
	out := *l
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	out.Items = make([]WebApp, len(l.Items))
	for i := range l.Items {
		out.Items[i] = *l.Items[i].DeepCopyObject().(*WebApp)
	}
	return &out
}

func webAppCRD() *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "webapps.apps.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: webAppVersion.Group, Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "webapps", Singular: "webapp", Kind: "WebApp"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: webAppVersion.Version, Served: true, Storage: true,
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec": {Type: "object", Required: []string{"image"}, Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"image":    {Type: "string"},
							"replicas": {Type: "integer", Minimum: ptr.To(0.0)},
						}},
						"status": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"observedGeneration": {Type: "integer"},
							"deployment":         {Type: "string"},
							"replicas":           {Type: "integer"},
						}},
					},
				}},
			}},
		},
	}
}

// backupCRD is a kind no operator handles.
func backupCRD() *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "backups.apps.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "apps.example.com", Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "backups", Singular: "backup", Kind: "Backup"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec": {Type: "object", XPreserveUnknownFields: ptr.To(true)},
					},
				}},
			}},
		},
	}
}

// webAppReconciler is the operator: one Reconcile, as controller-runtime has it.
type webAppReconciler struct{ client.Client }

func (r *webAppReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var app WebApp
	if err := r.Get(ctx, req.NamespacedName, &app); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if app.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: app.Name, Namespace: app.Namespace}}
	if _, err := controllerutil.CreateOrUpdate(ctx, r.Client, d, func() error {
		labels := map[string]string{"webapp": app.Name}
		d.Spec.Replicas = ptr.To(app.Spec.Replicas)
		d.Spec.Selector = &metav1.LabelSelector{MatchLabels: labels}
		d.Spec.Template.Labels = labels
		d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "web", Image: app.Spec.Image}}
		return controllerutil.SetControllerReference(&app, d, r.Scheme())
	}); err != nil {
		return ctrl.Result{}, err
	}
	app.Status = WebAppStatus{ObservedGeneration: app.Generation, Deployment: d.Name, Replicas: ptr.Deref(d.Spec.Replicas, 0)}
	return ctrl.Result{}, r.Status().Update(ctx, &app)
}

// startOperator runs the operator's manager until the test ends.
func startOperator(t *testing.T, s *apiservertest.Server) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	scheme.AddKnownTypes(webAppVersion, &WebApp{}, &WebAppList{})
	metav1.AddToGroupVersion(scheme, webAppVersion)
	mgr, err := ctrl.NewManager(s.Config, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ctrl.NewControllerManagedBy(mgr).For(&WebApp{}).Owns(&appsv1.Deployment{}).
		Complete(&webAppReconciler{Client: mgr.GetClient()}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("operator: %v", err)
		}
	})
}

// startCollectors runs the garbage collector and the namespace controller as the controller
// manager does, until the test ends.
func startCollectors(t *testing.T, s *apiservertest.Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	typed := informers.NewSharedInformerFactory(s.Client, 0)
	md, err := metadata.NewForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	var source garbagecollector.InformerSource
	if garbagecollector.ServesMetadata(ctx, md, 5*time.Second) {
		source = garbagecollector.NewMetadataInformerSource(typed, metadatainformer.NewSharedInformerFactory(md, 0))
	} else {
		source = garbagecollector.NewDynamicInformerSource(typed, dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0))
	}
	gc := garbagecollector.New(source, dyn, memory.NewMemCacheClient(s.Client.Discovery()), controllers.Reporting{})
	nsc, err := namespace.New(typed.Core().V1().Namespaces(), s.Client, dyn, s.Client.Discovery().ServerPreferredNamespacedResources, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	typed.Start(ctx.Done())
	var wg sync.WaitGroup
	for _, run := range []func(context.Context, int){gc.Run, nsc.Run} {
		wg.Go(func() { run(ctx, 2) })
	}
	t.Cleanup(func() { cancel(); wg.Wait(); typed.Shutdown() })
	poll(t, "the garbage collector's graph", func(context.Context) bool { return gc.Synced() })
}

func poll(t *testing.T, what string, cond func(ctx context.Context) bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		return cond(ctx), nil
	}); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func establish(t *testing.T, s *apiservertest.Server, crd *apiextensionsv1.CustomResourceDefinition) {
	t.Helper()
	ext := apiextensionsclient.NewForConfigOrDie(s.Config)
	if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(context.Background(), crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, crd.Name+" established", func(ctx context.Context) bool {
		got, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range got.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true
			}
		}
		return false
	})
}

func init() {
	// controller-runtime complains with a stack trace when nobody gives it a logger
	ctrl.SetLogger(logr.FromSlogHandler(slog.Default().Handler()))
}

func TestOperatorReconcilesThroughStatusAndItsDeploymentGoesWithTheWebApp(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	// the collectors start before the definition exists: they must find webapps at run time
	startCollectors(t, s)
	establish(t, s, webAppCRD())
	startOperator(t, s)

	dyn := dynamic.NewForConfigOrDie(s.Config)
	webapps := dyn.Resource(webAppVersion.WithResource("webapps"))
	app := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": webAppVersion.String(), "kind": "WebApp",
		"metadata": map[string]any{"name": "shop"},
		"spec":     map[string]any{"image": "busybox:1.36", "replicas": int64(2)},
	}}
	created, err := webapps.Namespace("default").Create(ctx, app, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	var owned *appsv1.Deployment
	poll(t, "the operator's Deployment", func(ctx context.Context) bool {
		owned, err = s.Client.AppsV1().Deployments("default").Get(ctx, "shop", metav1.GetOptions{})
		return err == nil
	})
	ref := metav1.GetControllerOf(owned)
	if ref == nil || ref.UID != created.GetUID() || ref.Kind != "WebApp" || ref.APIVersion != "apps.example.com/v1alpha1" ||
		!ptr.Deref(ref.BlockOwnerDeletion, false) || *owned.Spec.Replicas != 2 {
		t.Fatalf("Deployment's owner %+v, replicas %d", ref, *owned.Spec.Replicas)
	}
	status := func(ctx context.Context) (map[string]any, int64) {
		got, err := webapps.Namespace("default").Get(ctx, "shop", metav1.GetOptions{})
		if err != nil {
			return nil, 0
		}
		st, _, _ := unstructured.NestedMap(got.Object, "status")
		return st, got.GetGeneration()
	}
	poll(t, "the WebApp's status", func(ctx context.Context) bool {
		st, gen := status(ctx)
		return st["deployment"] == "shop" && st["observedGeneration"] == gen && st["replicas"] == int64(2)
	})

	// a change of spec reaches the Deployment, and the status says it was seen
	if _, err := webapps.Namespace("default").Patch(ctx, "shop", types.MergePatchType, []byte(`{"spec":{"replicas":3}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the Deployment scaled by the operator", func(ctx context.Context) bool {
		d, err := s.Client.AppsV1().Deployments("default").Get(ctx, "shop", metav1.GetOptions{})
		return err == nil && *d.Spec.Replicas == 3
	})
	poll(t, "generation 2 observed", func(ctx context.Context) bool {
		st, gen := status(ctx)
		return gen == 2 && st["observedGeneration"] == int64(2) && st["replicas"] == int64(3)
	})

	// a custom resource of a kind defined after the collector started, which nothing but a
	// ConfigMap refers to, goes with the ConfigMap: the collector found the kind and watches it
	establish(t, s, backupCRD())
	backups := dyn.Resource(schema.GroupVersionResource{Group: "apps.example.com", Version: "v1", Resource: "backups"}).Namespace("default")
	owner, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	backup := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps.example.com/v1", "kind": "Backup",
		"metadata": map[string]any{"name": "nightly"}, "spec": map[string]any{"schedule": "@daily"},
	}}
	backup.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: owner.UID}})
	if _, err := backups.Create(ctx, backup, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Client.CoreV1().ConfigMaps("default").Delete(ctx, "owner", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the ConfigMap's Backup collected", func(ctx context.Context) bool {
		_, err := backups.Get(ctx, "nightly", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})

	// deleting the WebApp deletes its Deployment
	if err := webapps.Namespace("default").Delete(ctx, "shop", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the Deployment collected", func(ctx context.Context) bool {
		_, err := s.Client.AppsV1().Deployments("default").Get(ctx, "shop", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})

	// deleting a namespace deletes its WebApps, and so their Deployments
	if _, err := s.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := webapps.Namespace("team").Create(ctx, app, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the team's Deployment", func(ctx context.Context) bool {
		_, err := s.Client.AppsV1().Deployments("team").Get(ctx, "shop", metav1.GetOptions{})
		return err == nil
	})
	if err := s.Client.CoreV1().Namespaces().Delete(ctx, "team", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the namespace gone", func(ctx context.Context) bool {
		_, err := s.Client.CoreV1().Namespaces().Get(ctx, "team", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if l, err := webapps.Namespace("team").List(ctx, metav1.ListOptions{}); err != nil || len(l.Items) != 0 {
		t.Errorf("WebApps left in the deleted namespace: %v %v", l, err)
	}
}
