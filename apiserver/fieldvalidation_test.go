package apiserver_test

import (
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// badConfigMap has a field ConfigMap does not have (metadata.foo) and one given twice (data.a).
const badConfigMap = `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"%s","foo":"x"},"data":{"a":"1","a":"2"}}`

func badConfigMapNamed(name string) string { return strings.Replace(badConfigMap, "%s", name, 1) }

func TestFieldValidationOnCreateStrictWarnIgnore(t *testing.T) {
	s := apiservertest.Start(t)
	path := "/api/v1/namespaces/default/configmaps"

	strict := sendWire(t, s, "POST", path+"?fieldValidation=Strict", "application/json", badConfigMapNamed("strict"))
	st := strict.status(t)
	if strict.code != http.StatusBadRequest || st.Reason != metav1.StatusReasonBadRequest ||
		st.Message != `ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "metadata.foo", duplicate field "data.a"` {
		t.Errorf("Strict: %d %s %q", strict.code, st.Reason, st.Message)
	}

	// YAML: the duplicate is found by the YAML decoder, with its line
	yamlBody := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: strict\n  foo: x\ndata:\n  a: \"1\"\n  a: \"2\"\n"
	strictYAML := sendWire(t, s, "POST", path+"?fieldValidation=Strict", "application/yaml", yamlBody)
	if st := strictYAML.status(t); strictYAML.code != http.StatusBadRequest ||
		st.Message != "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: yaml: unmarshal errors:\n  line 8: key \"a\" already set in map, unknown field \"metadata.foo\"" {
		t.Errorf("Strict YAML: %d %q", strictYAML.code, st.Message)
	}

	// Warn, also the default: created, with one warning per field
	for _, q := range []string{"?fieldValidation=Warn", ""} {
		name := "warn" + strings.TrimPrefix(strings.ToLower(q), "?fieldvalidation=")
		warn := sendWire(t, s, "POST", path+q, "application/json", badConfigMapNamed(name))
		if warn.code != http.StatusCreated {
			t.Fatalf("Warn %q: %d %s", q, warn.code, warn.body)
		}
		if got := warn.header.Values("Warning"); strings.Join(got, "\n") !=
			`299 - "unknown field \"metadata.foo\""`+"\n"+`299 - "duplicate field \"data.a\""` {
			t.Errorf("Warn %q: warnings %q", q, got)
		}
		if cm := warn.configMap(t); cm.Data["a"] != "2" {
			t.Errorf("Warn %q: the last duplicate wins, as in JSON: %v", q, cm.Data)
		}
	}
	warnYAML := sendWire(t, s, "POST", path, "application/yaml", strings.Replace(yamlBody, "strict", "warn-yaml", 1))
	if got := warnYAML.header.Values("Warning"); warnYAML.code != http.StatusCreated || strings.Join(got, "\n") !=
		`299 - "line 8: key \"a\" already set in map"`+"\n"+`299 - "unknown field \"metadata.foo\""` {
		t.Errorf("Warn YAML: %d warnings %q", warnYAML.code, got)
	}

	ignore := sendWire(t, s, "POST", path+"?fieldValidation=Ignore", "application/json", badConfigMapNamed("ignore"))
	if ignore.code != http.StatusCreated || len(ignore.header.Values("Warning")) != 0 {
		t.Errorf("Ignore: %d warnings %q", ignore.code, ignore.header.Values("Warning"))
	}

	invalid := sendWire(t, s, "POST", path+"?fieldValidation=strict", "application/json", badConfigMapNamed("lower"))
	if st := invalid.status(t); invalid.code != http.StatusUnprocessableEntity ||
		st.Message != `CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "strict": supported values: "", "Ignore", "Strict", "Warn"` {
		t.Errorf("invalid directive: %d %q", invalid.code, st.Message)
	}
}

func TestFieldValidationOnUpdatePatchAndSubresources(t *testing.T) {
	s := apiservertest.Start(t)
	cmPath := "/api/v1/namespaces/default/configmaps/v"
	if r := sendWire(t, s, "POST", "/api/v1/namespaces/default/configmaps", "application/json",
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"v"},"data":{"a":"1"}}`); r.code != http.StatusCreated {
		t.Fatalf("create: %d %s", r.code, r.body)
	}

	put := sendWire(t, s, "PUT", cmPath+"?fieldValidation=Strict", "application/json", badConfigMapNamed("v"))
	if st := put.status(t); put.code != http.StatusBadRequest ||
		st.Message != `ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "metadata.foo", duplicate field "data.a"` {
		t.Errorf("strict update: %d %q", put.code, st.Message)
	}

	// patches: unknown fields in the patched object, duplicates in the patch, 422 on "patch"
	for _, pt := range []string{"application/merge-patch+json", "application/strategic-merge-patch+json"} {
		strict := sendWire(t, s, "PATCH", cmPath+"?fieldValidation=Strict", pt, `{"data":{"b":"1","b":"2"},"spec":{"x":1}}`)
		st := strict.status(t)
		if strict.code != http.StatusUnprocessableEntity || st.Reason != metav1.StatusReasonInvalid ||
			!strings.HasPrefix(st.Message, ` "" is invalid: patch: Invalid value: `) ||
			!strings.HasSuffix(st.Message, `: strict decoding error: duplicate field "data.b", unknown field "spec"`) {
			t.Errorf("strict %s: %d %q", pt, strict.code, st.Message)
		}
		warn := sendWire(t, s, "PATCH", cmPath, pt, `{"data":{"b":"1","b":"2"},"spec":{"x":1}}`)
		if got := warn.header.Values("Warning"); warn.code != http.StatusOK ||
			strings.Join(got, "\n") != `299 - "duplicate field \"data.b\""`+"\n"+`299 - "unknown field \"spec\""` {
			t.Errorf("warn %s: %d warnings %q", pt, warn.code, got)
		}
	}
	jsonPatch := sendWire(t, s, "PATCH", cmPath, "application/json-patch+json",
		`[{"op":"add","path":"/data/c","value":"1","value":"2"},{"op":"add","path":"/spec","value":{}}]`)
	if got := jsonPatch.header.Values("Warning"); jsonPatch.code != http.StatusOK ||
		strings.Join(got, "\n") != `299 - "json patch duplicate field \"[0].value\""`+"\n"+`299 - "unknown field \"spec\""` {
		t.Errorf("json patch: %d warnings %q\n%s", jsonPatch.code, got, jsonPatch.body)
	}

	// subresources: a status update of a pod with an unknown field
	if r := sendWire(t, s, "POST", "/api/v1/namespaces/default/pods", "application/json",
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}`); r.code != http.StatusCreated {
		t.Fatalf("create pod: %d %s", r.code, r.body)
	}
	status := sendWire(t, s, "PATCH", "/api/v1/namespaces/default/pods/p/status?fieldValidation=Strict", "application/merge-patch+json",
		`{"status":{"phase":"Running","bogus":true}}`)
	if st := status.status(t); status.code != http.StatusUnprocessableEntity || !strings.HasSuffix(st.Message, `: strict decoding error: unknown field "status.bogus"`) {
		t.Errorf("strict status patch: %d %q", status.code, st.Message)
	}
	binding := sendWire(t, s, "POST", "/api/v1/namespaces/default/pods/p/binding?fieldValidation=Strict", "application/json",
		`{"apiVersion":"v1","kind":"Binding","metadata":{"name":"p"},"target":{"kind":"Node","name":"n1","extra":1}}`)
	if st := binding.status(t); binding.code != http.StatusBadRequest ||
		st.Message != `Binding in version "v1" cannot be handled as a Binding: strict decoding error: unknown field "target.extra"` {
		t.Errorf("strict binding: %d %q", binding.code, st.Message)
	}
}

func TestDuplicateOwnerReferencesAreDroppedWithUpstreamsWarning(t *testing.T) {
	s := apiservertest.Start(t)
	owner := `{"apiVersion":"v1","kind":"ConfigMap","name":"owner","uid":"6b3c9a4e-0000-4000-8000-000000000001"}`
	created := sendWire(t, s, "POST", "/api/v1/namespaces/default/configmaps", "application/json",
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"owned","ownerReferences":[`+owner+`,`+owner+`]}}`)
	if created.code != http.StatusCreated {
		t.Fatalf("create: %d %s", created.code, created.body)
	}
	if refs := created.configMap(t).OwnerReferences; len(refs) != 1 {
		t.Errorf("ownerReferences kept: %+v", refs)
	}
	want := `299 - ".metadata.ownerReferences contains duplicate entries; API server dedups owner references in 1.20+, and may reject such requests as early as 1.24; please fix your requests; duplicate UID(s) observed: 6b3c9a4e-0000-4000-8000-000000000001"`
	if got := created.header.Values("Warning"); len(got) != 1 || got[0] != want {
		t.Errorf("warnings %q", got)
	}
	// a patch is deduplicated after admission, and says so
	patched := sendWire(t, s, "PATCH", "/api/v1/namespaces/default/configmaps/owned", "application/merge-patch+json",
		`{"metadata":{"ownerReferences":[`+owner+`,`+owner+`]}}`)
	if got := patched.header.Values("Warning"); patched.code != http.StatusOK || len(got) != 1 ||
		!strings.HasPrefix(got[0], `299 - ".metadata.ownerReferences contains duplicate entries after mutating admission happens;`) {
		t.Errorf("patch: %d warnings %q", patched.code, got)
	}
}
