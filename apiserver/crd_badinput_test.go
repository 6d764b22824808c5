package apiserver_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

var widgetsV1 = schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}

// widgetCRD serves Widgets in a deprecated v1beta1 and in v1, the storage version, with the
// same schema (conversion None), a status subresource and spec.color selectable.
func widgetCRD() *apiextensionsv1.CustomResourceDefinition {
	schema := &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
		Type: "object",
		Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"spec": {Type: "object", Required: []string{"color"}, Properties: map[string]apiextensionsv1.JSONSchemaProps{
				"color": {Type: "string", Enum: []apiextensionsv1.JSON{{Raw: []byte(`"red"`)}, {Raw: []byte(`"green"`)}, {Raw: []byte(`"blue"`)}}},
				"size":  {Type: "integer", Minimum: ptr.To(1.0)},
			}},
			"status": {Type: "object", XPreserveUnknownFields: ptr.To(true)},
		},
	}}
	version := func(name string, storage, deprecated bool) apiextensionsv1.CustomResourceDefinitionVersion {
		return apiextensionsv1.CustomResourceDefinitionVersion{
			Name: name, Served: true, Storage: storage, Deprecated: deprecated, Schema: schema.DeepCopy(),
			Subresources:     &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
			SelectableFields: []apiextensionsv1.SelectableField{{JSONPath: ".spec.color"}},
		}
	}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "example.com", Scope: apiextensionsv1.NamespaceScoped,
			Names:    apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ShortNames: []string{"wd"}},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{version("v1beta1", false, true), version("v1", true, false)},
		},
	}
}

func widget(version, name, color string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/" + version, "kind": "Widget",
		"metadata": map[string]any{"name": name},
		"spec":     map[string]any{"color": color, "size": int64(3)},
	}}
}

const (
	widgetsPath = "/apis/example.com/v1/namespaces/default/widgets"
	crdsPath    = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
)

func TestCustomResourceBadInputGetsUpstreamsAnswerAndStoresNothing(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	establish(t, s, widgetCRD())
	if _, err := dynamic.NewForConfigOrDie(s.Config).Resource(widgetsV1).Namespace("default").Create(ctx, widget("v1", "exists", "red"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	nonStructural := `{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"gadgets.example.com"},
		"spec":{"group":"example.com","scope":"Namespaced","names":{"plural":"gadgets","kind":"Gadget"},
		"versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":{"type":"object","properties":{"spec":{"properties":{"size":{"type":"integer"}}}}}}}]}}`
	misnamed := strings.Replace(nonStructural, `"name":"gadgets.example.com"`, `"name":"gadget.example.com"`, 1)
	misnamed = strings.Replace(misnamed, `"spec":{"properties"`, `"spec":{"type":"object","properties"`, 1)
	upperPlural := strings.Replace(strings.Replace(misnamed, `"gadget.example.com"`, `"Gadgets.example.com"`, 1), `"plural":"gadgets"`, `"plural":"Gadgets"`, 1)

	cases := []struct {
		name, method, path, contentType, body string
		code                                  int32
		reason                                metav1.StatusReason
		message                               string
	}{
		{"non-structural schema", "POST", crdsPath, "application/json", nonStructural, 422, metav1.StatusReasonInvalid,
			`CustomResourceDefinition.apiextensions.k8s.io "gadgets.example.com" is invalid: spec.validation.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields`},
		{"definition's name not plural.group", "POST", crdsPath, "application/json", misnamed, 422, metav1.StatusReasonInvalid,
			`CustomResourceDefinition.apiextensions.k8s.io "gadget.example.com" is invalid: metadata.name: Invalid value: "gadget.example.com": must be spec.names.plural+"."+spec.group`},
		{"plural not a DNS label", "POST", crdsPath, "application/json", upperPlural, 422, metav1.StatusReasonInvalid,
			`spec.names.plural: Invalid value: "Gadgets": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')]`},
		{"object's name not a DNS subdomain", "POST", widgetsPath, "application/json", `{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"Bad_Name"},"spec":{"color":"red"}}`,
			422, metav1.StatusReasonInvalid, `Widget.example.com "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
		{"wrong type", "POST", widgetsPath, "application/json", `{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"color":"red","size":"big"}}`,
			422, metav1.StatusReasonInvalid, `Widget.example.com "w" is invalid: spec.size: Invalid value: "string": spec.size in body must be of type integer: "string"`},
		{"required field missing", "POST", widgetsPath, "application/json", `{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"size":2}}`,
			422, metav1.StatusReasonInvalid, `Widget.example.com "w" is invalid: spec.color: Required value`},
		{"not in the enum", "POST", widgetsPath, "application/json", `{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"color":"pink"}}`,
			422, metav1.StatusReasonInvalid, `Widget.example.com "w" is invalid: spec.color: Unsupported value: "pink": supported values: "red", "green", "blue"`},
		{"below the minimum", "POST", widgetsPath, "application/json", `{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"color":"red","size":0}}`,
			422, metav1.StatusReasonInvalid, `Widget.example.com "w" is invalid: spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1`},
		{"unknown field with fieldValidation=Strict", "POST", widgetsPath + "?fieldValidation=Strict", "application/json", `{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"color":"red","shape":"round"}}`,
			400, metav1.StatusReasonBadRequest, `strict decoding error: unknown field "spec.shape"`},
		{"duplicate field with fieldValidation=Strict", "POST", widgetsPath + "?fieldValidation=Strict", "application/json", `{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"color":"red","color":"blue"}}`,
			400, metav1.StatusReasonBadRequest, `strict decoding error: duplicate field "spec.color"`},
		{"strategic merge patch", "PATCH", widgetsPath + "/exists", "application/strategic-merge-patch+json", `{"spec":{"color":"blue"}}`,
			415, metav1.StatusReasonUnsupportedMediaType, `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`},
		{"protobuf body", "POST", widgetsPath, "application/vnd.kubernetes.protobuf", "k8s\x00\n\x0c\n\x0bexample.com",
			415, metav1.StatusReasonUnsupportedMediaType, `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml`},
		{"field selector on a field not selectable", "GET", widgetsPath + "?fieldSelector=spec.size%3D3", "", "",
			400, metav1.StatusReasonBadRequest, "field label not supported: spec.size"},
		{"create while the kind is not served", "POST", "/apis/example.com/v1/namespaces/default/gizmos", "application/json", `{"apiVersion":"example.com/v1","kind":"Gizmo","metadata":{"name":"g"}}`,
			404, metav1.StatusReasonNotFound, "the server could not find the requested resource"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := etcdSnapshot(t, s)
			req := s.Client.CoreV1().RESTClient().Verb(tc.method).AbsPath(strings.Split(tc.path, "?")[0])
			if i := strings.Index(tc.path, "?"); i >= 0 {
				k, v, _ := strings.Cut(tc.path[i+1:], "=")
				req = req.Param(k, strings.ReplaceAll(v, "%3D", "="))
			}
			if tc.body != "" {
				req = req.SetHeader("Content-Type", tc.contentType).Body([]byte(tc.body))
			}
			err := req.Do(ctx).Error()
			var se *apierrors.StatusError
			if !asStatus(err, &se) {
				t.Fatalf("error %v (%T), want a Status", err, err)
			}
			st := se.ErrStatus
			if st.Code != tc.code || st.Reason != tc.reason {
				t.Errorf("code %d reason %q, want %d %q (message %q)", st.Code, st.Reason, tc.code, tc.reason, st.Message)
			}
			if !strings.HasSuffix(st.Message, tc.message) {
				t.Errorf("message\n got %q\nwant %q", st.Message, tc.message)
			}
			if after := etcdSnapshot(t, s); !sameSnapshot(before, after) {
				t.Errorf("etcd changed by a rejected request")
			}
		})
	}
}

// conditionOf waits until the named definition has a condition of type t, and returns it.
func conditionOf(t *testing.T, s *apiservertest.Server, name string, typ apiextensionsv1.CustomResourceDefinitionConditionType) apiextensionsv1.CustomResourceDefinitionCondition {
	t.Helper()
	ext := apiextensionsclient.NewForConfigOrDie(s.Config)
	var out apiextensionsv1.CustomResourceDefinitionCondition
	if err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		crd, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range crd.Status.Conditions {
			if c.Type == typ {
				out = c
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Fatalf("%s has no %s condition: %v", name, typ, err)
	}
	return out
}

func TestDefinitionClaimingAnAcceptedNameIsNotAcceptedNorServed(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	establish(t, s, widgetCRD())
	ext := apiextensionsclient.NewForConfigOrDie(s.Config)

	// "wd" is the short name widgets accepted: a definition whose plural it is gets nothing
	clash := widgetCRD()
	clash.Name, clash.Spec.Names = "wd.example.com", apiextensionsv1.CustomResourceDefinitionNames{Plural: "wd", Singular: "widgetling", Kind: "Widgetling"}
	if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, clash, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	names := conditionOf(t, s, clash.Name, apiextensionsv1.NamesAccepted)
	if names.Status != apiextensionsv1.ConditionFalse || names.Reason != "PluralConflict" || names.Message != `"wd" is already in use` {
		t.Errorf("NamesAccepted %+v", names)
	}
	established := conditionOf(t, s, clash.Name, apiextensionsv1.Established)
	if established.Status != apiextensionsv1.ConditionFalse || established.Reason != "NotAccepted" || established.Message != "not all names are accepted" {
		t.Errorf("Established %+v", established)
	}

	// a kind another definition accepted is refused the same way, though its plural is free
	sameKind := widgetCRD()
	sameKind.Name, sameKind.Spec.Names = "doodads.example.com", apiextensionsv1.CustomResourceDefinitionNames{Plural: "doodads", Kind: "Widget"}
	if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, sameKind, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	names = conditionOf(t, s, sameKind.Name, apiextensionsv1.NamesAccepted)
	if names.Status != apiextensionsv1.ConditionFalse || names.Reason != "ListKindConflict" || names.Message != `"WidgetList" is already in use` {
		t.Errorf("NamesAccepted %+v", names)
	}
	if c := conditionOf(t, s, sameKind.Name, apiextensionsv1.Established); c.Status != apiextensionsv1.ConditionFalse {
		t.Errorf("Established %+v", c)
	}

	resources, err := s.Client.Discovery().ServerResourcesForGroupVersion("example.com/v1")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resources.APIResources {
		if r.Name == "wd" || r.Name == "doodads" {
			t.Errorf("discovery lists %s", r.Name)
		}
	}
	dyn := dynamic.NewForConfigOrDie(s.Config)
	for _, plural := range []string{"wd", "doodads"} {
		_, err := dyn.Resource(schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: plural}).Namespace("default").
			List(ctx, metav1.ListOptions{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("list of %s: %v", plural, err)
		}
	}
}

// warnings collects the Warning headers a client receives.
type warnings struct {
	mu   sync.Mutex
	seen []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = append(w.seen, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.seen
	w.seen = nil
	return out
}

func TestMultiVersionDefinitionServesTheSameObjectsInEachVersion(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	establish(t, s, widgetCRD())
	seen := &warnings{}
	cfg := rest.CopyConfig(s.Config)
	cfg.WarningHandler = seen
	dyn := dynamic.NewForConfigOrDie(cfg)
	v1beta1 := dyn.Resource(widgetsV1.GroupResource().WithVersion("v1beta1")).Namespace("default")
	v1 := dyn.Resource(widgetsV1).Namespace("default")

	if _, err := v1beta1.Create(ctx, widget("v1beta1", "old", "green"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := seen.take(); len(got) != 1 || got[0] != "example.com/v1beta1 Widget is deprecated; use example.com/v1 Widget" {
		t.Errorf("warnings %q", got)
	}
	if _, err := v1.Create(ctx, widget("v1", "new", "blue"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := seen.take(); len(got) != 0 {
		t.Errorf("warnings on v1 %q", got)
	}

	// stored in the storage version whichever version wrote it
	kv, err := s.Etcd.Get(ctx, "/registry/example.com/widgets/default/old")
	if err != nil || len(kv.Kvs) != 1 {
		t.Fatalf("etcd: %v %v", kv, err)
	}
	var stored map[string]any
	if err := json.Unmarshal(kv.Kvs[0].Value, &stored); err != nil || stored["apiVersion"] != "example.com/v1" {
		t.Errorf("stored %s: %v", kv.Kvs[0].Value, err)
	}

	for _, c := range []struct {
		client  dynamic.ResourceInterface
		version string
	}{{v1beta1, "example.com/v1beta1"}, {v1, "example.com/v1"}} {
		list, err := c.client.List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, it := range list.Items {
			names = append(names, it.GetName())
			if it.GetAPIVersion() != c.version {
				t.Errorf("%s listed as %s", it.GetName(), it.GetAPIVersion())
			}
		}
		if strings.Join(names, ",") != "new,old" {
			t.Errorf("%s lists %v", c.version, names)
		}
		got, err := c.client.Get(ctx, "old", metav1.GetOptions{})
		if err != nil || got.GetAPIVersion() != c.version {
			t.Errorf("get in %s: %v %v", c.version, got, err)
		}
	}

	// an update through one version is what the other reads
	old, err := v1.Get(ctx, "old", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	unstructured.SetNestedField(old.Object, int64(7), "spec", "size")
	if _, err := v1.Update(ctx, old, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := v1beta1.Get(ctx, "old", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if size, _, _ := unstructured.NestedInt64(got.Object, "spec", "size"); size != 7 || got.GetGeneration() != 2 {
		t.Errorf("v1beta1 reads size %d generation %d", size, got.GetGeneration())
	}

	// selectableFields select in either version
	for _, client := range []dynamic.ResourceInterface{v1beta1, v1} {
		list, err := client.List(ctx, metav1.ListOptions{FieldSelector: "spec.color=blue"})
		if err != nil || len(list.Items) != 1 || list.Items[0].GetName() != "new" {
			t.Errorf("spec.color=blue: %v %v", list, err)
		}
		list, err = client.List(ctx, metav1.ListOptions{FieldSelector: "spec.color!=blue,metadata.name!=x"})
		if err != nil || len(list.Items) != 1 || list.Items[0].GetName() != "old" {
			t.Errorf("spec.color!=blue: %v %v", list, err)
		}
	}
}

func TestServerSideApplyOfACustomResourceConflictsUntilForced(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	establish(t, s, widgetCRD())
	widgets := dynamic.NewForConfigOrDie(s.Config).Resource(widgetsV1).Namespace("default")
	if _, err := widgets.Apply(ctx, "w", widget("v1", "w", "red"), metav1.ApplyOptions{FieldManager: "alice"}); err != nil {
		t.Fatal(err)
	}
	bobs := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/v1", "kind": "Widget", "metadata": map[string]any{"name": "w"},
		"spec": map[string]any{"color": "blue"},
	}}
	before := etcdSnapshot(t, s)
	_, err := widgets.Apply(ctx, "w", bobs, metav1.ApplyOptions{FieldManager: "bob"})
	if !apierrors.IsConflict(err) || err.Error() != `Apply failed with 1 conflict: conflict with "alice": .spec.color` {
		t.Fatalf("conflicting apply: %v", err)
	}
	if after := etcdSnapshot(t, s); !sameSnapshot(before, after) {
		t.Errorf("etcd changed by a conflicting apply")
	}
	got, err := widgets.Apply(ctx, "w", bobs, metav1.ApplyOptions{FieldManager: "bob", Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if color, _, _ := unstructured.NestedString(got.Object, "spec", "color"); color != "blue" {
		t.Errorf("color %q after a forced apply", color)
	}
	owners := map[string]string{}
	for _, mf := range got.GetManagedFields() {
		owners[mf.Manager] = string(mf.FieldsV1.Raw)
	}
	if !strings.Contains(owners["bob"], `"f:color"`) || strings.Contains(owners["alice"], `"f:color"`) || !strings.Contains(owners["alice"], `"f:size"`) {
		t.Errorf("managed fields after a forced apply: %v", owners)
	}
}
