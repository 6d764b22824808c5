package apiserver_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

var crontabs = schema.GroupVersionResource{Group: "stable.example.com", Version: "v1", Resource: "crontabs"}

// cronTabCRD is the CronTab of upstream's CRD walkthrough, with a default, a CEL rule, a
// printer column and the status and scale subresources.
func cronTabCRD() *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "crontabs.stable.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "stable.example.com", Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "crontabs", Singular: "crontab", Kind: "CronTab", ShortNames: []string{"ct"}},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec": {Type: "object",
							XValidations: apiextensionsv1.ValidationRules{{Rule: "self.replicas <= 10", Message: "at most 10 replicas"}},
							Properties: map[string]apiextensionsv1.JSONSchemaProps{
								"cronSpec": {Type: "string", Pattern: `^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$`},
								"image":    {Type: "string", Default: &apiextensionsv1.JSON{Raw: []byte(`"busybox"`)}},
								"replicas": {Type: "integer"},
							}},
						"status": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"replicas": {Type: "integer"}, "selector": {Type: "string"},
						}},
					},
				}},
				Subresources: &apiextensionsv1.CustomResourceSubresources{
					Status: &apiextensionsv1.CustomResourceSubresourceStatus{},
					Scale: &apiextensionsv1.CustomResourceSubresourceScale{SpecReplicasPath: ".spec.replicas",
						StatusReplicasPath: ".status.replicas", LabelSelectorPath: ptr.To(".status.selector")},
				},
				AdditionalPrinterColumns: []apiextensionsv1.CustomResourceColumnDefinition{{Name: "Spec", Type: "string", JSONPath: ".spec.cronSpec"}},
			}},
		},
	}
}

func cronTab(name, spec string, replicas int64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "stable.example.com/v1", "kind": "CronTab",
		"metadata": map[string]interface{}{"name": name, "labels": map[string]interface{}{"app": name}},
		"spec":     map[string]interface{}{"cronSpec": spec, "replicas": replicas, "unknown": "dropped"},
	}}
}

// establish creates crd and waits until its resources are served.
func establish(t *testing.T, s *apiservertest.Server, crd *apiextensionsv1.CustomResourceDefinition) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	ctx := context.Background()
	ext := apiextensionsclient.NewForConfigOrDie(s.Config)
	if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got *apiextensionsv1.CustomResourceDefinition
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		got, err = ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range got.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Fatalf("%s never established: %v", crd.Name, err)
	}
	return got
}

func TestCustomResourceDefinitionServesItsResourceUntilDeleted(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	crd := establish(t, s, cronTabCRD())
	if crd.Status.AcceptedNames.Plural != "crontabs" || len(crd.Finalizers) != 0 {
		t.Errorf("status %+v finalizers %v", crd.Status.AcceptedNames, crd.Finalizers)
	}
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.NamesAccepted && (c.Reason != "NoConflicts" || c.Message != "no conflicts found") {
			t.Errorf("NamesAccepted: %+v", c)
		}
	}
	resources, err := s.Client.Discovery().ServerResourcesForGroupVersion("stable.example.com/v1")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range resources.APIResources {
		names = append(names, r.Name)
	}
	if strings.Join(names, ",") != "crontabs,crontabs/status,crontabs/scale" {
		t.Errorf("discovery: %v", names)
	}

	dyn := dynamic.NewForConfigOrDie(s.Config)
	cts := dyn.Resource(crontabs).Namespace("default")
	created, err := cts.Create(ctx, cronTab("nightly", "0 0 * * *", 2), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if image, _, _ := unstructured.NestedString(created.Object, "spec", "image"); image != "busybox" {
		t.Errorf("default not applied: %v", created.Object["spec"])
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(created.Object, "spec", "unknown"); found {
		t.Errorf("unknown field kept: %v", created.Object["spec"])
	}
	if created.GetGeneration() != 1 || created.GetUID() == "" {
		t.Errorf("metadata %v", created.Object["metadata"])
	}

	// stored as JSON under upstream's key, in the storage version
	kv, err := s.Etcd.Get(ctx, "/registry/stable.example.com/crontabs/default/nightly")
	if err != nil || len(kv.Kvs) != 1 {
		t.Fatalf("etcd: %v %v", kv, err)
	}
	var stored map[string]interface{}
	if err := json.Unmarshal(kv.Kvs[0].Value, &stored); err != nil || stored["apiVersion"] != "stable.example.com/v1" {
		t.Errorf("stored value %s: %v", kv.Kvs[0].Value, err)
	}

	// the schema and the CEL rule refuse, in upstream's words, and store nothing
	_, err = cts.Create(ctx, cronTab("bad", "not a schedule", 11), metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), `spec.cronSpec: Invalid value: "not a schedule": spec.cronSpec in body should match`) ||
		!strings.Contains(err.Error(), "spec: Invalid value: at most 10 replicas") {
		t.Errorf("invalid crontab: %v", err)
	}

	// status and scale subresources
	created.Object["status"] = map[string]interface{}{"replicas": int64(2), "selector": "app=nightly"}
	if _, err := cts.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	scale, err := cts.Get(ctx, "nightly", metav1.GetOptions{}, "scale")
	if err != nil {
		t.Fatal(err)
	}
	if r, _, _ := unstructured.NestedInt64(scale.Object, "spec", "replicas"); r != 2 {
		t.Errorf("scale %v", scale.Object)
	}
	if sel, _, _ := unstructured.NestedString(scale.Object, "status", "selector"); sel != "app=nightly" {
		t.Errorf("scale %v", scale.Object)
	}
	unstructured.SetNestedField(scale.Object, int64(5), "spec", "replicas")
	if _, err := cts.Update(ctx, scale, metav1.UpdateOptions{}, "scale"); err != nil {
		t.Fatal(err)
	}
	got, err := cts.Get(ctx, "nightly", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r, _, _ := unstructured.NestedInt64(got.Object, "spec", "replicas"); r != 5 || got.GetGeneration() != 2 {
		t.Errorf("after scale: replicas %d generation %d", r, got.GetGeneration())
	}

	// label selectors on lists
	if _, err := cts.Create(ctx, cronTab("hourly", "0 * * * *", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	list, err := cts.List(ctx, metav1.ListOptions{LabelSelector: "app=hourly"})
	if err != nil || len(list.Items) != 1 || list.Items[0].GetName() != "hourly" {
		t.Fatalf("list: %v %v", list, err)
	}

	// deleting the definition deletes its objects, then it goes, then so does its API
	ext := apiextensionsclient.NewForConfigOrDie(s.Config)
	if err := ext.ApiextensionsV1().CustomResourceDefinitions().Delete(ctx, crd.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	}); err != nil {
		t.Fatalf("CRD never went: %v", err)
	}
	kvs, err := s.Etcd.Get(ctx, "/registry/stable.example.com/crontabs/", clientv3.WithPrefix())
	if err != nil || len(kvs.Kvs) != 0 {
		t.Errorf("objects left in etcd: %d %v", len(kvs.Kvs), err)
	}
	if _, err := cts.List(ctx, metav1.ListOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("list after the CRD went: %v", err)
	}
}
