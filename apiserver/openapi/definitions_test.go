package openapi

import (
	"encoding/json"
	"reflect"
	"sync"
	"testing"

	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/skiff-dev/skiff/apis"
)

// testDocuments builds the documents of the real apis table once for the package's tests.
var testDocuments = sync.OnceValues(func() (*builtDocuments, error) {
	d, err := newDocumentSet(Config{
		Resources: apis.Builtin.All(), GitVersion: "v1.37.0",
		DeleteReturnsObject: func(r *apis.Resource) bool { return r.Name == "pods" },
	})
	if err != nil {
		return nil, err
	}
	v2, err := d.v2()
	if err != nil {
		return nil, err
	}
	v3, err := d.v3()
	if err != nil {
		return nil, err
	}
	return &builtDocuments{v2: v2, v3: v3}, nil
})

type builtDocuments struct {
	v2 *spec.Swagger
	v3 map[string]*spec3.OpenAPI
}

func documents(t *testing.T) *builtDocuments {
	t.Helper()
	docs, err := testDocuments()
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// asJSON is a value as its JSON encoding decodes into plain maps, for comparing with what
// upstream's documents say.
func asJSON(t *testing.T, v interface{}) interface{} {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out interface{}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func mustJSON(t *testing.T, s string) interface{} {
	t.Helper()
	var out interface{}
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func v3Schema(t *testing.T, doc, name string) *spec.Schema {
	t.Helper()
	d := documents(t).v3[doc]
	if d == nil {
		t.Fatalf("no v3 document %q", doc)
	}
	s := d.Components.Schemas[name]
	if s == nil {
		t.Fatalf("v3 document %q has no schema %q", doc, name)
	}
	return s
}

func TestV3PodDefinitionIsUpstreams(t *testing.T) {
	pod := asJSON(t, v3Schema(t, "api/v1", "io.k8s.api.core.v1.Pod"))
	want := mustJSON(t, `{
		"description": "Pod is a collection of containers that can run on a host. This resource is created by clients and scheduled onto hosts.",
		"properties": {
			"apiVersion": {
				"description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
				"type": "string"
			},
			"kind": {
				"description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
				"type": "string"
			},
			"metadata": {
				"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}],
				"default": {},
				"description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
			},
			"spec": {
				"allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}],
				"default": {},
				"description": "Specification of the desired behavior of the pod. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#spec-and-status"
			},
			"status": {
				"allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodStatus"}],
				"default": {},
				"description": "Most recently observed status of the pod. This data may not be up to date. Populated by the system. Read-only. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#spec-and-status"
			}
		},
		"type": "object",
		"x-kubernetes-group-version-kind": [{"group": "", "kind": "Pod", "version": "v1"}]
	}`)
	if !reflect.DeepEqual(pod, want) {
		t.Errorf("Pod definition:\n got %v\nwant %v", pod, want)
	}
}

func TestV3ContainerFieldsCarryTypesDefaultsAndMergeExtensions(t *testing.T) {
	c := v3Schema(t, "api/v1", "io.k8s.api.core.v1.Container")
	props := asJSON(t, c.Properties).(map[string]interface{})
	cases := map[string]string{
		// a required scalar the json encoding never omits has its zero value as default
		"name": `{"default": "", "description": "Name of the container specified as a DNS_LABEL. Each container in a pod must have a unique name (DNS_LABEL). Cannot be updated.", "type": "string"}`,
		// list types and keys from the merge schema, patch strategy from the struct tags
		"env": `{"description": "List of environment variables to set in the container. Cannot be updated.",
			"items": {"$ref": "#/components/schemas/io.k8s.api.core.v1.EnvVar"}, "type": "array",
			"x-kubernetes-list-map-keys": ["name"], "x-kubernetes-list-type": "map",
			"x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"}`,
		"args": `{"description": "Arguments to the entrypoint. The container image's CMD is used if this is not provided. Variable references $(VAR_NAME) are expanded using the container's environment. If a variable cannot be resolved, the reference in the input string will be unchanged. Double $$ are reduced to a single $, which allows for escaping the $(VAR_NAME) syntax: i.e. \"$$(VAR_NAME)\" will produce the string literal \"$(VAR_NAME)\". Escaped references will never be expanded, regardless of whether the variable exists or not. Cannot be updated. More info: https://kubernetes.io/docs/tasks/inject-data-application/define-command-argument-container/#running-a-command-in-a-shell",
			"items": {"type": "string"}, "type": "array", "x-kubernetes-list-type": "atomic"}`,
		// a struct value defaults to an empty object; an optional pointer has no default
		"resources": `{"allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.ResourceRequirements"}], "default": {},
			"description": "Compute Resources required by this container. Cannot be updated. More info: https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/"}`,
		"livenessProbe": `{"allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.Probe"}],
			"description": "Periodic probe of container liveness. Container will be restarted if the probe fails. Cannot be updated. More info: https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle#container-probes"}`,
		"stdin": `{"description": "Whether this container should allocate a buffer for stdin in the container runtime. If this is not set, reads from stdin in the container will always result in EOF. Default is false.", "type": "boolean"}`,
	}
	for field, want := range cases {
		if got := props[field]; !reflect.DeepEqual(got, mustJSON(t, want)) {
			t.Errorf("Container.%s:\n got %v\nwant %v", field, got, mustJSON(t, want))
		}
	}
	if !reflect.DeepEqual(c.Required, []string{"name"}) {
		t.Errorf("Container required = %v, want [name]", c.Required)
	}
	ports := props["ports"].(map[string]interface{})
	if ports["x-kubernetes-list-type"] != "map" || !reflect.DeepEqual(ports["x-kubernetes-list-map-keys"], []interface{}{"containerPort", "protocol"}) {
		t.Errorf("Container.ports list type = %v %v, want map keyed by containerPort, protocol", ports["x-kubernetes-list-type"], ports["x-kubernetes-list-map-keys"])
	}
	volumes := asJSON(t, v3Schema(t, "api/v1", "io.k8s.api.core.v1.PodSpec").Properties["volumes"]).(map[string]interface{})
	if volumes["x-kubernetes-patch-strategy"] != "merge,retainKeys" {
		t.Errorf("PodSpec.volumes patch strategy = %v", volumes["x-kubernetes-patch-strategy"])
	}
	// an explicit +default marker, kept by the merge schema
	protocol := asJSON(t, v3Schema(t, "api/v1", "io.k8s.api.core.v1.ContainerPort").Properties["protocol"]).(map[string]interface{})
	if protocol["default"] != "TCP" {
		t.Errorf("ContainerPort.protocol default = %v, want TCP", protocol["default"])
	}
}

func TestV3MetaTypesAsUpstream(t *testing.T) {
	finalizers := asJSON(t, v3Schema(t, "api/v1", "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta").Properties["finalizers"]).(map[string]interface{})
	if finalizers["x-kubernetes-list-type"] != "set" || finalizers["x-kubernetes-patch-strategy"] != "merge" {
		t.Errorf("ObjectMeta.finalizers = %v", finalizers)
	}
	owner := v3Schema(t, "api/v1", "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference")
	if owner.Extensions["x-kubernetes-map-type"] != "atomic" {
		t.Errorf("OwnerReference map type = %v, want atomic (+structType=atomic)", owner.Extensions["x-kubernetes-map-type"])
	}
	if !reflect.DeepEqual(owner.Required, []string{"apiVersion", "kind", "name", "uid"}) {
		t.Errorf("OwnerReference required = %v", owner.Required)
	}
	// a creation timestamp unmarshals itself, so it has no default
	created := asJSON(t, v3Schema(t, "api/v1", "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta").Properties["creationTimestamp"]).(map[string]interface{})
	if _, ok := created["default"]; ok {
		t.Errorf("ObjectMeta.creationTimestamp has a default: %v", created)
	}
	watchEvent := v3Schema(t, "api/v1", "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent")
	if watchEvent.Description != "Event represents a single event to a watched resource." || !reflect.DeepEqual(watchEvent.Required, []string{"type", "object"}) {
		t.Errorf("WatchEvent = %q required %v", watchEvent.Description, watchEvent.Required)
	}
	// DeleteOptions is registered in every served group version, and says so
	gvks := asJSON(t, v3Schema(t, "api/v1", "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions").Extensions["x-kubernetes-group-version-kind"]).([]interface{})
	if len(gvks) < 5 || !reflect.DeepEqual(gvks[0], mustJSON(t, `{"group": "", "kind": "DeleteOptions", "version": "v1"}`)) {
		t.Errorf("DeleteOptions kinds = %v", gvks)
	}
}

func TestSelfMarshalingTypesHaveUpstreamsFormats(t *testing.T) {
	docs := documents(t)
	cases := []struct {
		name   string
		v3, v2 string
	}{
		{"io.k8s.apimachinery.pkg.util.intstr.IntOrString",
			`{"description": "IntOrString is a type that can hold an int32 or a string.  When used in JSON or YAML marshalling and unmarshalling, it produces or consumes the inner type.  This allows you to have, for example, a JSON field that can accept a name or number.", "format": "int-or-string", "oneOf": [{"type": "integer"}, {"type": "string"}]}`,
			`{"description": "IntOrString is a type that can hold an int32 or a string.  When used in JSON or YAML marshalling and unmarshalling, it produces or consumes the inner type.  This allows you to have, for example, a JSON field that can accept a name or number.", "format": "int-or-string", "type": "string"}`},
		{"io.k8s.apimachinery.pkg.apis.meta.v1.Time",
			`{"description": "Time is a wrapper around time.Time which supports correct marshaling to YAML and JSON.  Wrappers are provided for many of the factory methods that the time package offers.", "format": "date-time", "type": "string"}`,
			`{"description": "Time is a wrapper around time.Time which supports correct marshaling to YAML and JSON.  Wrappers are provided for many of the factory methods that the time package offers.", "format": "date-time", "type": "string"}`},
	}
	for _, c := range cases {
		if got := asJSON(t, v3Schema(t, "api/v1", c.name)); !reflect.DeepEqual(got, mustJSON(t, c.v3)) {
			t.Errorf("v3 %s:\n got %v\nwant %s", c.name, got, c.v3)
		}
		v2, ok := docs.v2.Definitions[c.name]
		if !ok {
			t.Fatalf("v2 has no %s", c.name)
		}
		if got := asJSON(t, v2); !reflect.DeepEqual(got, mustJSON(t, c.v2)) {
			t.Errorf("v2 %s:\n got %v\nwant %s", c.name, got, c.v2)
		}
	}
	quantity := v3Schema(t, "api/v1", "io.k8s.apimachinery.pkg.api.resource.Quantity")
	if len(quantity.OneOf) != 2 || quantity.OneOf[0].Type[0] != "string" || quantity.OneOf[1].Type[0] != "number" {
		t.Errorf("Quantity oneOf = %v", quantity.OneOf)
	}
	if got := docs.v2.Definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"].Type; !reflect.DeepEqual(got, spec.StringOrArray{"string"}) {
		t.Errorf("v2 Quantity type = %v", got)
	}
}

func TestV2HasNoDefaultsAndPlainRefs(t *testing.T) {
	pod := asJSON(t, documents(t).v2.Definitions["io.k8s.api.core.v1.Pod"]).(map[string]interface{})
	metadata := pod["properties"].(map[string]interface{})["metadata"]
	want := mustJSON(t, `{"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
		"description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}`)
	if !reflect.DeepEqual(metadata, want) {
		t.Errorf("v2 Pod.metadata = %v, want %v", metadata, want)
	}
	b, err := json.Marshal(documents(t).v2)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]interface{}
	json.Unmarshal(b, &doc)
	// a schema's properties are named by their fields: JSONSchemaProps has one named "default"
	var walk func(v interface{}, path string, properties bool)
	walk = func(v interface{}, path string, properties bool) {
		switch v := v.(type) {
		case map[string]interface{}:
			if _, ok := v["default"]; ok && !properties {
				t.Errorf("v2 definition has a default at %s", path)
			}
			for k, x := range v {
				walk(x, path+"."+k, k == "properties" && !properties)
			}
		case []interface{}:
			for _, x := range v {
				walk(x, path, false)
			}
		}
	}
	for name, def := range doc["definitions"].(map[string]interface{}) {
		walk(def, "definitions."+name, false)
	}
}
