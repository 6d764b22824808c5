package customresource

import (
	"reflect"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/fields"
)

func TestSelectableFields(t *testing.T) {
	certs := compile(t, "certificates.cert-manager.io", "v1")
	if got, want := certs.FieldLabels(), []string{"metadata.name", "metadata.namespace", "spec.secretName", "spec.issuerRef.name"}; !reflect.DeepEqual(got, want) {
		t.Errorf("field labels %q, want %q", got, want)
	}
	got := certs.SelectableFields(object(t, `{metadata: {name: web, namespace: prod}, spec: {secretName: web-tls}}`))
	want := fields.Set{"metadata.name": "web", "metadata.namespace": "prod", "spec.secretName": "web-tls", "spec.issuerRef.name": ""}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fields %v, want %v", got, want)
	}
	if !fields.SelectorFromSet(fields.Set{"spec.secretName": "web-tls"}).Matches(got) {
		t.Error("a field selector on spec.secretName does not match")
	}

	// cluster-scoped kinds have no metadata.namespace; values print as upstream prints them
	crd := loadCRD(t, "crontabs.stable.example.com")
	crd.Spec.Scope = "Cluster"
	crd.Spec.Versions[0].SelectableFields = append(crd.Spec.Versions[0].SelectableFields,
		apiextensionsSelectableField(".spec.replicas"), apiextensionsSelectableField(".spec.suspend"))
	crontabs, err := NewVersion(crd, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := crontabs.FieldLabels(), []string{"metadata.name", "spec.color", "spec.replicas", "spec.suspend"}; !reflect.DeepEqual(got, want) {
		t.Errorf("field labels %q, want %q", got, want)
	}
	got = crontabs.SelectableFields(object(t, `{metadata: {name: c}, spec: {color: blue, replicas: 3, suspend: false}}`))
	want = fields.Set{"metadata.name": "c", "spec.color": "blue", "spec.replicas": "3", "spec.suspend": "false"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fields %v, want %v", got, want)
	}
}

func apiextensionsSelectableField(path string) apiextensionsv1.SelectableField {
	return apiextensionsv1.SelectableField{JSONPath: path}
}
