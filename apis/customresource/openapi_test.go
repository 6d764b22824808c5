package customresource

import (
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/managedfields/managedfieldstest"
)

func TestTypeConverterMergesListMapsByKeyOnApply(t *testing.T) {
	v := compile(t, "certificates.cert-manager.io", "v1")
	fm := managedfieldstest.NewTestFieldManager(v.TypeConverter(), v.GroupVersionKind())

	apply := func(manager, y string, force bool) error {
		return fm.Apply(object(t, y), manager, force)
	}
	if err := apply("cert-manager", `
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: web, namespace: default}
spec: {secretName: web-tls, issuerRef: {name: ca}}
status: {conditions: [{type: Ready, status: "True"}]}`, false); err != nil {
		t.Fatal(err)
	}
	// a second manager sets one more field and one more condition: status.conditions is a
	// list-type map keyed by type, so both conditions stay
	if err := apply("trust-manager", `
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: web, namespace: default}
spec: {commonName: web.example.com}
status: {conditions: [{type: Issuing, status: "False"}]}`, false); err != nil {
		t.Fatal(err)
	}
	live := fm.Live().(*unstructured.Unstructured)
	if got, _, _ := unstructured.NestedString(live.Object, "spec", "commonName"); got != "web.example.com" {
		t.Errorf("spec.commonName %q after the apply", got)
	}
	if got, _, _ := unstructured.NestedString(live.Object, "spec", "secretName"); got != "web-tls" {
		t.Errorf("spec.secretName %q after another manager's apply", got)
	}
	conditions, _, _ := unstructured.NestedSlice(live.Object, "status", "conditions")
	if len(conditions) != 2 {
		t.Errorf("conditions after two managers applied one each: %v", conditions)
	}
	var managers []string
	for _, e := range fm.ManagedFields() {
		managers = append(managers, e.Manager)
	}
	if !reflect.DeepEqual(managers, []string{"cert-manager", "trust-manager"}) {
		t.Errorf("managers %q", managers)
	}

	// changing another manager's field is a conflict unless forced
	err := apply("trust-manager", `{apiVersion: cert-manager.io/v1, kind: Certificate, metadata: {name: web, namespace: default}, spec: {secretName: other}}`, false)
	if err == nil || !strings.Contains(err.Error(), `conflict with "cert-manager": .spec.secretName`) {
		t.Errorf("apply of another manager's field: %v", err)
	}
}

func TestTypeConverterTypesBySchemaAndKeepsPreservedFields(t *testing.T) {
	versions, err := NewVersions(loadCRD(t, "crontabs.stable.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	tc := versions["v1"].TypeConverter()
	if _, err := tc.ObjectToTyped(object(t, `{apiVersion: stable.example.com/v1, kind: CronTab, metadata: {name: c}, spec: {cronSpec: "* * * * *", extra: {any: [1, {thing: true}]}, jobTemplate: {apiVersion: batch/v1, kind: Job, spec: {x: 1}}}}`)); err != nil {
		t.Errorf("preserved fields: %v", err)
	}
	if _, err := tc.ObjectToTyped(object(t, `{apiVersion: stable.example.com/v1, kind: CronTab, metadata: {name: c}, spec: {replicas: many}}`)); err == nil || !strings.Contains(err.Error(), ".spec.replicas: expected numeric (int or float), got string") {
		t.Errorf("a string for an integer field: %v", err)
	}
	if _, err := tc.ObjectToTyped(object(t, `{apiVersion: stable.example.com/v1, kind: CronTab, metadata: {name: c}, spec: {nosuch: 1}}`)); err == nil || !strings.Contains(err.Error(), `.spec.nosuch: field not declared in schema`) {
		t.Errorf("an unknown field: %v", err)
	}
	// the versions share the converter; one that preserves unknown fields takes anything
	if _, err := versions["v2alpha1"].TypeConverter().ObjectToTyped(object(t, `{apiVersion: stable.example.com/v2alpha1, kind: CronTab, metadata: {name: c}, spec: {nosuch: 1}}`)); err != nil {
		t.Errorf("v2alpha1: %v", err)
	}
}

func TestOpenAPIPublishesTheKindWithItsSchema(t *testing.T) {
	v := compile(t, "httproutes.gateway.networking.k8s.io", "v1")
	v2, v3, err := v.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	const model = "io.k8s.networking.gateway.v1.HTTPRoute"
	def, ok := v2.Definitions[model]
	if !ok {
		t.Fatalf("v2 definitions %v lack %s", keys(v2.Definitions), model)
	}
	gvk := def.Extensions["x-kubernetes-group-version-kind"]
	if !strings.Contains(toJSON(t, gvk), `"kind":"HTTPRoute"`) {
		t.Errorf("x-kubernetes-group-version-kind %s", toJSON(t, gvk))
	}
	hostnames := def.Properties["spec"].Properties["hostnames"]
	if hostnames.MaxItems == nil || *hostnames.MaxItems != 16 {
		t.Errorf("spec.hostnames %s", toJSON(t, hostnames))
	}
	if rules := def.Properties["spec"].Properties["rules"]; rules.Default != nil {
		t.Errorf("v2 keeps the default of spec.rules: %s", toJSON(t, rules.Default))
	}
	if _, ok := v2.Paths.Paths["/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes/{name}/status"]; !ok {
		t.Errorf("v2 paths lack the status subresource")
	}

	schema, ok := v3.Components.Schemas[model]
	if !ok {
		t.Fatalf("v3 schemas lack %s", model)
	}
	if rules := schema.Properties["spec"].Properties["rules"]; rules.Default == nil {
		t.Errorf("v3 lost the default of spec.rules")
	}
	if _, ok := v3.Components.Schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]; !ok {
		t.Errorf("v3 lacks ObjectMeta")
	}

	// selectable fields are published on the kind
	certs := compile(t, "certificates.cert-manager.io", "v1")
	_, v3, err = certs.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	sf := v3.Components.Schemas["io.cert-manager.v1.Certificate"].Extensions["x-kubernetes-selectable-fields"]
	if got := toJSON(t, sf); got != `[{"fieldPath":"spec.secretName"},{"fieldPath":"spec.issuerRef.name"}]` {
		t.Errorf("x-kubernetes-selectable-fields %s", got)
	}
}
