package customresource

import (
	"reflect"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestPruneRemovesUnknownFieldsAndReportsThem(t *testing.T) {
	for _, tc := range []struct {
		name, fixture, in, want string
		unknown                 []string
	}{
		{
			name:    "unknown fields at the root, in spec, in list items and in metadata",
			fixture: "certificates.cert-manager.io",
			in: `
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: web, namespace: default, labels: {app: web}, color: blue}
extra: 1
spec:
  secretName: web-tls
  issuerRef: {name: ca, port: 1}
  foo: bar
status:
  conditions: [{type: Ready, status: "True", bogus: x}]`,
			want: `
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: web, namespace: default, labels: {app: web}}
spec:
  secretName: web-tls
  issuerRef: {name: ca}
status:
  conditions: [{type: Ready, status: "True"}]`,
			unknown: []string{"metadata.color", "extra", "spec.foo", "spec.issuerRef.port", "status.conditions[0].bogus"},
		},
		{
			name:    "preserved fields stay, embedded resources keep apiVersion, kind and known metadata",
			fixture: "crontabs.stable.example.com",
			in: `
apiVersion: stable.example.com/v1
kind: CronTab
metadata: {name: c}
spec:
  cronSpec: "* * * * */5"
  image: null
  suspend: null
  extra: {anything: [1, 2], goes: {deep: true}}
  jobTemplate:
    apiVersion: batch/v1
    kind: Job
    metadata: {name: j, labels: {a: b}, shoeSize: 9}
    spec: {template: {spec: {containers: [{name: c, image: busybox}]}}}`,
			want: `
apiVersion: stable.example.com/v1
kind: CronTab
metadata: {name: c}
spec:
  cronSpec: "* * * * */5"
  suspend: null
  extra: {anything: [1, 2], goes: {deep: true}}
  jobTemplate:
    apiVersion: batch/v1
    kind: Job
    metadata: {name: j, labels: {a: b}}
    spec: {template: {spec: {containers: [{name: c, image: busybox}]}}}`,
			unknown: []string{"spec.jobTemplate.metadata.shoeSize"},
		},
		{
			name:    "a version whose schema preserves unknown fields prunes only metadata",
			fixture: "crontabs.stable.example.com:v2alpha1",
			in:      `{apiVersion: stable.example.com/v2alpha1, kind: CronTab, metadata: {name: c, x: 1}, spec: {anything: 1}, more: 2}`,
			want:    `{apiVersion: stable.example.com/v2alpha1, kind: CronTab, metadata: {name: c}, spec: {anything: 1}, more: 2}`,
			unknown: []string{"metadata.x"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fixture, version := tc.fixture, "v1"
			if i := len(fixture) - len(":v2alpha1"); i > 0 && fixture[i:] == ":v2alpha1" {
				fixture, version = fixture[:i], "v2alpha1"
			}
			v := compile(t, fixture, version)
			obj := object(t, tc.in)
			unknown, err := v.Prune(obj.Object)
			if err != nil {
				t.Fatal(err)
			}
			if want := object(t, tc.want); !reflect.DeepEqual(obj.Object, want.Object) {
				got, _ := yaml.Marshal(obj.Object)
				t.Errorf("pruned to\n%s", got)
			}
			if !reflect.DeepEqual(unknown, tc.unknown) {
				t.Errorf("unknown fields %q, want %q", unknown, tc.unknown)
			}
		})
	}
}

func TestPruneRefusesMalformedMetadata(t *testing.T) {
	v := compile(t, "crontabs.stable.example.com", "v1")
	for _, in := range []string{
		`{apiVersion: stable.example.com/v1, kind: CronTab, metadata: "web"}`,
		`{apiVersion: stable.example.com/v1, kind: CronTab, metadata: {name: c, labels: [a]}}`,
		`{apiVersion: stable.example.com/v1, kind: CronTab, metadata: {name: c}, spec: {jobTemplate: {kind: Job, metadata: {labels: 1}}}}`,
	} {
		if unknown, err := v.Prune(object(t, in).Object); err == nil {
			t.Errorf("%s: pruned (unknown %q) without an error", in, unknown)
		}
	}
}

func TestDefaultSetsSchemaDefaults(t *testing.T) {
	for _, tc := range []struct {
		name, fixture, in, want string
	}{
		{
			name:    "HTTPRoute rules default to a PathPrefix / match, references to their group, kind and weight",
			fixture: "httproutes.gateway.networking.k8s.io",
			in: `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: gw}]`,
			want: `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: gw, group: gateway.networking.k8s.io, kind: Gateway}]
  rules: [{matches: [{path: {type: PathPrefix, value: /}}]}]`,
		},
		{
			name:    "a rule without matches gets the default match; backend references their defaults",
			fixture: "httproutes.gateway.networking.k8s.io",
			in: `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  rules:
  - backendRefs: [{name: web, port: 80}]
  - matches: [{path: {value: /api}, headers: [{name: x-env, value: prod}]}]`,
			want: `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  rules:
  - backendRefs: [{name: web, port: 80, group: "", kind: Service, weight: 1}]
    matches: [{path: {type: PathPrefix, value: /}}]
  - matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: x-env, value: prod, type: Exact}]}]`,
		},
		{
			name:    "defaults inside an object that is present",
			fixture: "certificates.cert-manager.io",
			in:      `{spec: {secretName: s, privateKey: {algorithm: ECDSA}}}`,
			want:    `{spec: {secretName: s, privateKey: {algorithm: ECDSA, rotationPolicy: Always}}}`,
		},
		{
			name:    "no default for an absent object",
			fixture: "certificates.cert-manager.io",
			in:      `{spec: {secretName: s}}`,
			want:    `{spec: {secretName: s}}`,
		},
		{
			name:    "a relabeling action defaults to replace",
			fixture: "servicemonitors.monitoring.coreos.com",
			in:      `{spec: {endpoints: [{port: web, relabelings: [{targetLabel: pod}, {action: drop}]}], selector: {}}}`,
			want:    `{spec: {endpoints: [{port: web, relabelings: [{targetLabel: pod, action: replace}, {action: drop}]}], selector: {}}}`,
		},
		{
			name:    "a null in a field with a default gets the default",
			fixture: "crontabs.stable.example.com",
			in:      `{spec: {cronSpec: "* * * * *", replicas: null}}`,
			want:    `{spec: {cronSpec: "* * * * *", replicas: 1}}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := compile(t, tc.fixture, "v1")
			obj := object(t, tc.in)
			v.Default(obj.Object)
			if want := object(t, tc.want); !reflect.DeepEqual(obj.Object, want.Object) {
				got, _ := yaml.Marshal(obj.Object)
				t.Errorf("defaulted to\n%s", got)
			}
		})
	}
}

func TestPruneStoredDropsMalformedMetadataAndRepairsGeneration(t *testing.T) {
	v := compile(t, "crontabs.stable.example.com", "v1")
	obj := object(t, `{apiVersion: stable.example.com/v1, kind: CronTab, metadata: {name: c, labels: [a], shoeSize: 9}, spec: {cronSpec: "* * * * *", nosuch: 1, jobTemplate: {kind: Job, metadata: {name: j, labels: 1}}}}`)
	if err := v.PruneStored(obj.Object); err != nil {
		t.Fatal(err)
	}
	want := object(t, `{apiVersion: stable.example.com/v1, kind: CronTab, metadata: {name: c, generation: 1}, spec: {cronSpec: "* * * * *", jobTemplate: {kind: Job, metadata: {name: j}}}}`)
	if !reflect.DeepEqual(obj.Object, want.Object) {
		got, _ := yaml.Marshal(obj.Object)
		t.Errorf("pruned to\n%s", got)
	}
}
