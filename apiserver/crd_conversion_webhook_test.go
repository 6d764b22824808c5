package apiserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/conversion"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	ctrlconversion "sigs.k8s.io/controller-runtime/pkg/webhook/conversion"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// Backends are the conversion test's kind: v1 (the hub, stored) keeps host and port apart,
// v2 joins them into one address.
var backendGroup = "conv.skiff.test"

type backendV1 struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Host string `json:"host"`
		Port int64  `json:"port"`
	} `json:"spec"`
}

func (b *backendV1) DeepCopyObject() runtime.Object {
	c := *b
	c.ObjectMeta = *b.ObjectMeta.DeepCopy()
	return &c
}

func (*backendV1) Hub() {}

type backendV2 struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Address string `json:"address"`
	} `json:"spec"`
}

func (b *backendV2) DeepCopyObject() runtime.Object {
	c := *b
	c.ObjectMeta = *b.ObjectMeta.DeepCopy()
	return &c
}

func (b *backendV2) ConvertTo(h conversion.Hub) error {
	hub := h.(*backendV1)
	hub.ObjectMeta = b.ObjectMeta
	host, port, err := net.SplitHostPort(b.Spec.Address)
	if err != nil {
		return err
	}
	hub.Spec.Host = host
	hub.Spec.Port, err = strconv.ParseInt(port, 10, 64)
	return err
}

func (b *backendV2) ConvertFrom(h conversion.Hub) error {
	hub := h.(*backendV1)
	b.ObjectMeta = hub.ObjectMeta
	b.Spec.Address = net.JoinHostPort(hub.Spec.Host, strconv.FormatInt(hub.Spec.Port, 10))
	return nil
}

// backendConverter is controller-runtime's conversion webhook for backends.
func backendConverter() *runtime.Scheme {
	s := runtime.NewScheme()
	s.AddKnownTypeWithName(schema.GroupVersionKind{Group: backendGroup, Version: "v1", Kind: "Backend"}, &backendV1{})
	s.AddKnownTypeWithName(schema.GroupVersionKind{Group: backendGroup, Version: "v2", Kind: "Backend"}, &backendV2{})
	return s
}

func backendCRD(url string, ca []byte) *apiextensionsv1.CustomResourceDefinition {
	str := func(props ...string) map[string]apiextensionsv1.JSONSchemaProps {
		out := map[string]apiextensionsv1.JSONSchemaProps{}
		for _, p := range props {
			out[p] = apiextensionsv1.JSONSchemaProps{Type: "string"}
		}
		return out
	}
	v1Spec := str("host")
	v1Spec["port"] = apiextensionsv1.JSONSchemaProps{Type: "integer"}
	version := func(name string, spec map[string]apiextensionsv1.JSONSchemaProps, storage bool) apiextensionsv1.CustomResourceDefinitionVersion {
		return apiextensionsv1.CustomResourceDefinitionVersion{Name: name, Served: true, Storage: storage,
			Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object",
				Properties: map[string]apiextensionsv1.JSONSchemaProps{"spec": {Type: "object", Properties: spec}}}}}
	}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "backends." + backendGroup},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: backendGroup, Scope: apiextensionsv1.NamespaceScoped,
			Names:    apiextensionsv1.CustomResourceDefinitionNames{Plural: "backends", Singular: "backend", Kind: "Backend", ListKind: "BackendList"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{version("v1", v1Spec, true), version("v2", str("address"), false)},
			Conversion: &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.WebhookConverter,
				Webhook: &apiextensionsv1.WebhookConversion{ConversionReviewVersions: []string{"v1"},
					ClientConfig: &apiextensionsv1.WebhookClientConfig{URL: &url, CABundle: ca}}},
		},
	}
}

func TestConversionWebhookServesStoredV1ObjectsAsV2(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	url, ca := webhookServer(t, ctrlconversion.NewWebhookHandler(backendConverter(), ctrlconversion.NewRegistry()))
	establish(t, s, backendCRD(url+"/convert", ca))
	dyn := dynamic.NewForConfigOrDie(s.Config)
	v1 := dyn.Resource(schema.GroupVersionResource{Group: backendGroup, Version: "v1", Resource: "backends"}).Namespace("default")
	v2 := dyn.Resource(schema.GroupVersionResource{Group: backendGroup, Version: "v2", Resource: "backends"}).Namespace("default")

	webhookEventually(t, func() error {
		_, err := v2.List(ctx, metav1.ListOptions{})
		return err
	})
	if _, err := v1.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": backendGroup + "/v1", "kind": "Backend", "metadata": map[string]any{"name": "db", "labels": map[string]any{"tier": "data"}},
		"spec": map[string]any{"host": "db.internal", "port": int64(5432)},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := v2.Get(ctx, "db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if addr, _, _ := unstructured.NestedString(got.Object, "spec", "address"); addr != "db.internal:5432" || got.GetAPIVersion() != backendGroup+"/v2" || got.GetLabels()["tier"] != "data" {
		t.Fatalf("stored v1 object read as v2: %v", got.Object)
	}

	// written as v2, stored as v1
	if _, err := v2.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": backendGroup + "/v2", "kind": "Backend", "metadata": map[string]any{"name": "cache"},
		"spec": map[string]any{"address": "cache.internal:6379"},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	raw, err := s.Etcd.Get(ctx, "/registry/"+backendGroup+"/backends/default/cache")
	if err != nil || raw.Count != 1 {
		t.Fatalf("etcd: %v", err)
	}
	if stored := string(raw.Kvs[0].Value); !strings.Contains(stored, `"apiVersion":"`+backendGroup+`/v1"`) || !strings.Contains(stored, `"port":6379`) {
		t.Fatalf("stored as %s, want v1 with host and port", stored)
	}
	back, err := v1.Get(ctx, "cache", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if host, _, _ := unstructured.NestedString(back.Object, "spec", "host"); host != "cache.internal" {
		t.Fatalf("read as v1: %v", back.Object)
	}
	list, err := v2.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, it := range list.Items {
		a, _, _ := unstructured.NestedString(it.Object, "spec", "address")
		addrs = append(addrs, a)
	}
	if fmt.Sprint(addrs) != "[cache.internal:6379 db.internal:5432]" {
		t.Fatalf("v2 list addresses = %v", addrs)
	}

	// an admission webhook for v2 (matchPolicy Equivalent) sees a v1 write converted to v2
	hookURL, hookCA := webhookServer(t, &admission.Webhook{Handler: admission.HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
		var b backendV2
		if err := json.Unmarshal(req.Object.Raw, &b); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		return admission.Denied("saw " + req.Kind.Version + " address " + b.Spec.Address + " requested as " + req.RequestKind.Version)
	})})
	cfg := validatingConfig("backends.skiff.test", "default", hookURL, hookCA, func(w *admissionregistrationv1.ValidatingWebhook) {
		w.Rules[0].Rule = admissionregistrationv1.Rule{APIGroups: []string{backendGroup}, APIVersions: []string{"v2"}, Resources: []string{"backends"}}
		w.NamespaceSelector = nil
	})
	if _, err := s.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var err2 error
	webhookEventually(t, func() error {
		if _, err2 = v1.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": backendGroup + "/v1", "kind": "Backend", "metadata": map[string]any{"generateName": "web-"},
			"spec": map[string]any{"host": "web.internal", "port": int64(80)},
		}}, metav1.CreateOptions{}); err2 == nil {
			return fmt.Errorf("a v1 write passed a webhook for v2")
		}
		return nil
	})
	if !strings.HasSuffix(err2.Error(), "denied the request: saw v2 address web.internal:80 requested as v1") {
		t.Fatalf("v1 create = %v, want the v2 webhook's denial of the converted object", err2)
	}
}
