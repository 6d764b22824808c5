package apiserver_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	ctrlconversion "sigs.k8s.io/controller-runtime/pkg/webhook/conversion"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// names are the names of the objects of a list, sorted.
func names(list *unstructured.UnstructuredList) []string {
	var out []string
	for _, it := range list.Items {
		out = append(out, it.GetName())
	}
	slices.Sort(out)
	return out
}

// nextNamedEvent is the next event of w, as "TYPE name".
func nextNamedEvent(t *testing.T, w watch.Interface) string {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("the watch ended")
		}
		u, ok := ev.Object.(*unstructured.Unstructured)
		if !ok {
			return fmt.Sprintf("%s %v", ev.Type, ev.Object)
		}
		return fmt.Sprintf("%s %s", ev.Type, u.GetName())
	case <-time.After(30 * time.Second):
		t.Fatal("no event")
	}
	return ""
}

func TestCustomResourceFieldSelectorSelectsByTheRequestedVersionsFields(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	url, ca := webhookServer(t, ctrlconversion.NewWebhookHandler(backendConverter(), ctrlconversion.NewRegistry()))
	crd := backendCRD(url+"/convert", ca)
	// v1 (stored) selects by host, v2 by the address v1 objects convert to
	crd.Spec.Versions[0].SelectableFields = []apiextensionsv1.SelectableField{{JSONPath: ".spec.host"}}
	crd.Spec.Versions[1].SelectableFields = []apiextensionsv1.SelectableField{{JSONPath: ".spec.address"}}
	establish(t, s, crd)
	dyn := dynamic.NewForConfigOrDie(s.Config)
	v1 := dyn.Resource(schema.GroupVersionResource{Group: backendGroup, Version: "v1", Resource: "backends"}).Namespace("default")
	v2 := dyn.Resource(schema.GroupVersionResource{Group: backendGroup, Version: "v2", Resource: "backends"}).Namespace("default")
	webhookEventually(t, func() error {
		_, err := v2.List(ctx, metav1.ListOptions{})
		return err
	})

	v2Watch, err := v2.Watch(ctx, metav1.ListOptions{FieldSelector: "spec.address=db.internal:5432"})
	if err != nil {
		t.Fatal(err)
	}
	defer v2Watch.Stop()
	v1Watch, err := v1.Watch(ctx, metav1.ListOptions{FieldSelector: "spec.host=db.internal"})
	if err != nil {
		t.Fatal(err)
	}
	defer v1Watch.Stop()

	for name, addr := range map[string]string{"db": "db.internal:5432", "replica": "db.internal:5433", "cache": "cache.internal:6379"} {
		if _, err := v2.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": backendGroup + "/v2", "kind": "Backend", "metadata": map[string]any{"name": name},
			"spec": map[string]any{"address": addr},
		}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	for _, tc := range []struct {
		client   dynamic.ResourceInterface
		selector string
		want     []string
	}{
		{v2, "spec.address=db.internal:5432", []string{"db"}},
		{v2, "spec.address!=db.internal:5432", []string{"cache", "replica"}},
		{v1, "spec.host=db.internal", []string{"db", "replica"}},
		{v1, "spec.host=cache.internal,metadata.name=cache", []string{"cache"}},
	} {
		list, err := tc.client.List(ctx, metav1.ListOptions{FieldSelector: tc.selector})
		if err != nil {
			t.Fatalf("list %s: %v", tc.selector, err)
		}
		if got := names(list); !slices.Equal(got, tc.want) {
			t.Errorf("list %s = %v, want %v", tc.selector, got, tc.want)
		}
	}
	// a field of one version is no field of the other
	for _, tc := range []struct {
		client dynamic.ResourceInterface
		label  string
	}{{v1, "spec.address"}, {v2, "spec.host"}} {
		_, err := tc.client.List(ctx, metav1.ListOptions{FieldSelector: tc.label + "=x"})
		if !apierrors.IsBadRequest(err) || err.Error() != "field label not supported: "+tc.label {
			t.Errorf("list by %s = %v, want 400 field label not supported", tc.label, err)
		}
	}

	if got := nextNamedEvent(t, v2Watch); got != "ADDED db" {
		t.Errorf("v2 watch: %s, want ADDED db", got)
	}
	// the two were created apart, but a watch opened on both may send them in either order
	got := []string{nextNamedEvent(t, v1Watch), nextNamedEvent(t, v1Watch)}
	slices.Sort(got)
	if want := []string{"ADDED db", "ADDED replica"}; !slices.Equal(got, want) {
		t.Errorf("v1 watch: %v, want %v", got, want)
	}

	// a change that takes an object out of the selection is its deletion to the watcher
	db, err := v2.Get(ctx, "db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(db.Object, "db.internal:6000", "spec", "address"); err != nil {
		t.Fatal(err)
	}
	if _, err := v2.Update(ctx, db, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := nextNamedEvent(t, v2Watch); got != "DELETED db" {
		t.Errorf("v2 watch after the address changed: %s, want DELETED db", got)
	}
	if got := nextNamedEvent(t, v1Watch); got != "MODIFIED db" {
		t.Errorf("v1 watch after the port changed: %s, want MODIFIED db", got)
	}
}
