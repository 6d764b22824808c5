package apiserver_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// informerEvents records what a dynamic informer's handler saw, as "ADD nightly" lines.
type informerEvents struct {
	mu     sync.Mutex
	events []string
}

func (e *informerEvents) add(kind string, obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	u := obj.(*unstructured.Unstructured)
	line := kind + " " + u.GetName()
	if kind == "UPDATE" {
		r, _, _ := unstructured.NestedInt64(u.Object, "spec", "replicas")
		line += fmt.Sprintf(" replicas=%d", r)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, line)
}

func (e *informerEvents) has(line string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, l := range e.events {
		if l == line {
			return true
		}
	}
	return false
}

func (e *informerEvents) waitFor(t *testing.T, line string) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return e.has(line), nil
	}); err != nil {
		e.mu.Lock()
		defer e.mu.Unlock()
		t.Fatalf("the informer never saw %q; it saw %q", line, e.events)
	}
}

func TestDynamicInformerFollowsCustomResourcesAcrossADefinitionUpdate(t *testing.T) {
	s := apiservertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	establish(t, s, cronTabCRD())
	dyn := dynamic.NewForConfigOrDie(s.Config)
	cts := dyn.Resource(crontabs).Namespace("default")
	if _, err := cts.Create(ctx, cronTab("before", "* * * * *", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	factory := dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)
	informer := factory.ForResource(crontabs).Informer()
	seen := &informerEvents{}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { seen.add("ADD", obj) },
		UpdateFunc: func(_, obj any) { seen.add("UPDATE", obj) },
		DeleteFunc: func(obj any) { seen.add("DELETE", obj) },
	}); err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	defer cancel()
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		t.Fatal("informer never synced")
	}
	seen.waitFor(t, "ADD before")

	if _, err := cts.Create(ctx, cronTab("nightly", "0 0 * * *", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	seen.waitFor(t, "ADD nightly")
	if _, err := cts.Patch(ctx, "nightly", types.MergePatchType, []byte(`{"spec":{"replicas":2}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	seen.waitFor(t, "UPDATE nightly replicas=2")
	if err := cts.Delete(ctx, "before", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	seen.waitFor(t, "DELETE before")

	// the definition changes (a new field and a new column): the server serves crontabs
	// anew, and the informer carries on, its watch resumed or its list redone
	ext := apiextensionsclient.NewForConfigOrDie(s.Config)
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		crd, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "crontabs.stable.example.com", metav1.GetOptions{})
		if err != nil {
			return err
		}
		v := &crd.Spec.Versions[0]
		v.Schema.OpenAPIV3Schema.Properties["spec"].Properties["suspend"] = apiextensionsv1.JSONSchemaProps{Type: "boolean"}
		v.AdditionalPrinterColumns = append(v.AdditionalPrinterColumns, apiextensionsv1.CustomResourceColumnDefinition{Name: "Suspend", Type: "boolean", JSONPath: ".spec.suspend"})
		_, err = ext.ApiextensionsV1().CustomResourceDefinitions().Update(ctx, crd, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// the new field is kept once the new schema serves
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := cts.Patch(ctx, "nightly", types.MergePatchType, []byte(`{"spec":{"suspend":true}}`), metav1.PatchOptions{})
		if err != nil {
			return false, err
		}
		_, kept, _ := unstructured.NestedBool(got.Object, "spec", "suspend")
		return kept, nil
	}); err != nil {
		t.Fatalf("spec.suspend never kept: %v", err)
	}
	if _, err := cts.Patch(ctx, "nightly", types.MergePatchType, []byte(`{"spec":{"replicas":3}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	seen.waitFor(t, "UPDATE nightly replicas=3")
	if _, err := cts.Create(ctx, cronTab("after", "0 * * * *", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	seen.waitFor(t, "ADD after")
	if err := cts.Delete(ctx, "nightly", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	seen.waitFor(t, "DELETE nightly")

	var names []string
	for _, obj := range informer.GetStore().List() {
		names = append(names, obj.(*unstructured.Unstructured).GetName())
	}
	if len(names) != 1 || names[0] != "after" {
		t.Errorf("the informer's cache holds %v, want [after]", names)
	}
}
