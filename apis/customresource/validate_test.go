package customresource

import (
	"context"
	"strings"
	"testing"
)

const dnsSubdomainWords = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"

const rulesNotChecked = "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"

func TestValidateCustomResources(t *testing.T) {
	for _, tc := range []struct {
		name, fixture, obj string
		want               []string
	}{
		{
			name:    "a valid CronTab",
			fixture: "crontabs.stable.example.com",
			obj:     `{apiVersion: stable.example.com/v1, kind: CronTab, metadata: {name: c, namespace: d}, spec: {cronSpec: "*/5 * * * *", replicas: 3, ratio: 0.5, suspend: null, color: red, jobTemplate: {apiVersion: batch/v1, kind: Job, metadata: {name: j}}}, status: {replicas: 2, labelSelector: "app=c"}}`,
		},
		{
			name:    "types and enums",
			fixture: "crontabs.stable.example.com",
			obj:     `{apiVersion: stable.example.com/v1, kind: CronTab, metadata: {name: c, namespace: d}, spec: {cronSpec: "* * * * *", replicas: "string", color: pink, ratio: "x", suspend: null}}`,
			want: []string{
				`spec.ratio: Invalid value: "string": spec.ratio in body must be of type number: "string"`,
				`spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"`,
				`spec.color: Unsupported value: "pink": supported values: "red", "green", "blue"`,
				`.spec.replicas: Invalid value: 0: .spec.replicas accessor error: string is of the type string, expected int64`,
			},
		},
		{
			name:    "bounds, patterns and the scale subresource's paths",
			fixture: "crontabs.stable.example.com",
			obj:     `{apiVersion: stable.example.com/v1, kind: CronTab, metadata: {name: c, namespace: d}, spec: {cronSpec: "every minute", replicas: 11}, status: {replicas: -1, labelSelector: 3}}`,
			want: []string{
				`status.labelSelector: Invalid value: "integer": status.labelSelector in body must be of type string: "integer"`,
				`spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10`,
				`spec.cronSpec: Invalid value: "every minute": spec.cronSpec in body should match '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'`,
				`.status.replicas: Invalid value: -1: should be a non-negative integer`,
				`.status.labelSelector: Invalid value: "": .status.labelSelector accessor error: 3 is of the type int64, expected string`,
			},
		},
		{
			name:    "metadata, required fields and an embedded resource's apiVersion and kind",
			fixture: "crontabs.stable.example.com",
			obj:     `{apiVersion: stable.example.com/v1, kind: CronTab, metadata: {name: Web_1, labels: {"a b": c}, generateName: "X_"}, spec: {replicas: 0, jobTemplate: {metadata: {name: j}}}}`,
			want: []string{
				`metadata.generateName: Invalid value: "X_": ` + dnsSubdomainWords,
				`metadata.name: Invalid value: "Web_1": ` + dnsSubdomainWords,
				`metadata.namespace: Required value`,
				`metadata.labels: Invalid value: "a b": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`,
				`spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1`,
				`spec.cronSpec: Required value`,
				`spec.jobTemplate.apiVersion: Required value`,
				`spec.jobTemplate.kind: Required value`,
			},
		},
		{
			name:    "an embedded resource's metadata",
			fixture: "crontabs.stable.example.com",
			obj:     `{apiVersion: stable.example.com/v1, kind: CronTab, metadata: {name: c, namespace: d}, spec: {cronSpec: "* * * * *", jobTemplate: {apiVersion: batch/v1, kind: my_job, metadata: {name: "a/b"}}}}`,
			want: []string{
				`spec.jobTemplate.kind: Invalid value: "my_job": may have mixed case, but should otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`,
				`spec.jobTemplate.metadata.name: Invalid value: "a/b": may not contain '/'`,
			},
		},
		{
			name:    "kind and apiVersion are the version's, and nothing else is checked until they are",
			fixture: "crontabs.stable.example.com",
			obj:     `{apiVersion: stable.example.com/v2, kind: Crontab, metadata: {name: "!"}}`,
			want: []string{
				`kind: Invalid value: "Crontab": must be CronTab`,
				`apiVersion: Invalid value: "stable.example.com/v2": must be stable.example.com/v1`,
			},
		},
		{
			name:    "int-or-string, patterns, enums and a list-type set",
			fixture: "servicemonitors.monitoring.coreos.com",
			obj:     `{apiVersion: monitoring.coreos.com/v1, kind: ServiceMonitor, metadata: {name: s, namespace: d}, spec: {selector: {}, endpoints: [{targetPort: true, interval: 30 seconds, scheme: ftp}, {targetPort: web}, {targetPort: 8080, relabelings: [{action: replace, sourceLabels: ["1bad"]}]}], scrapeProtocols: [PrometheusProto, PrometheusProto]}}`,
			want: []string{
				`spec.endpoints[0].targetPort: Invalid value: "boolean": spec.endpoints[0].targetPort in body must be of type integer,string: "boolean"`,
				`<nil>: Invalid value: "": "spec.endpoints[0].targetPort" must validate at least one schema (anyOf)`,
				`spec.endpoints[0].targetPort: Invalid value: "boolean": spec.endpoints[0].targetPort in body must be of type integer: "boolean"`,
				`spec.endpoints[0].interval: Invalid value: "30 seconds": spec.endpoints[0].interval in body should match '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'`,
				`spec.endpoints[0].scheme: Unsupported value: "ftp": supported values: "http", "https", "HTTP", "HTTPS"`,
				`spec.endpoints[2].relabelings[0].sourceLabels[0]: Invalid value: "1bad": spec.endpoints[2].relabelings[0].sourceLabels[0] in body should match '^[a-zA-Z_][a-zA-Z0-9_]*$'`,
				`spec.scrapeProtocols[1]: Duplicate value: "PrometheusProto"`,
			},
		},
		{
			name:    "formats and a list-type map; the rules wait for a valid object",
			fixture: "certificates.cert-manager.io",
			obj:     `{apiVersion: cert-manager.io/v1, kind: Certificate, metadata: {name: c, namespace: d}, spec: {secretName: s, issuerRef: {name: ca}, renewBefore: 1h, renewBeforePercentage: 50}, status: {notAfter: yesterday, conditions: [{type: Ready, status: "True"}, {type: Ready, status: "False"}]}}`,
			want: []string{
				`status.notAfter: Invalid value: "yesterday": status.notAfter in body must be of type date-time: "yesterday"`,
				`status.conditions[1]: Duplicate value: {"type":"Ready"}`,
				rulesNotChecked,
			},
		},
		{
			name:    "a missing required field also holds the rules back",
			fixture: "certificates.cert-manager.io",
			obj:     `{apiVersion: cert-manager.io/v1, kind: Certificate, metadata: {name: c, namespace: d}, spec: {secretName: s, renewBefore: 1h, renewBeforePercentage: 50}}`,
			want:    []string{`spec.issuerRef: Required value`, rulesNotChecked},
		},
		{
			name:    "CEL rules: a message, and a messageExpression with its reason and fieldPath",
			fixture: "certificates.cert-manager.io",
			obj:     `{apiVersion: cert-manager.io/v1, kind: Certificate, metadata: {name: c, namespace: d}, spec: {secretName: s, issuerRef: {name: ca}, renewBefore: 1h, renewBeforePercentage: 50, privateKey: {algorithm: Ed25519, size: 256}}}`,
			want: []string{
				`spec: Invalid value: renewBefore and renewBeforePercentage are mutually exclusive`,
				`spec.privateKey.size: Forbidden: size cannot be set for algorithm Ed25519`,
			},
		},
		{
			name:    "HTTPRoute's rules on paths, backend references and timeouts",
			fixture: "httproutes.gateway.networking.k8s.io",
			obj:     `{apiVersion: gateway.networking.k8s.io/v1, kind: HTTPRoute, metadata: {name: r, namespace: d}, spec: {hostnames: ["Example.com", "*.example.com"], rules: [{matches: [{path: {type: PathPrefix, value: api}}, {path: {type: Exact, value: "/a//b"}}, {path: {type: RegularExpression, value: "api//.*"}}], backendRefs: [{name: web, group: "", kind: Service}, {name: bucket, group: storage.example.com, kind: Bucket}], timeouts: {request: 1s, backendRequest: 2s}}]}}`,
			want: []string{
				`spec.hostnames[0]: Invalid value: "Example.com": spec.hostnames[0] in body should match '^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'`,
				`spec.rules[0].backendRefs[0]: Invalid value: Must have port for Service reference`,
				`spec.rules[0].matches[0].path: Invalid value: value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']`,
				`spec.rules[0].matches[1].path: Invalid value: must not contain '//' when type one of ['Exact', 'PathPrefix']`,
				`spec.rules[0].timeouts: Invalid value: backendRequest timeout cannot be longer than request timeout`,
			},
		},
		{
			name:    "too many items",
			fixture: "httproutes.gateway.networking.k8s.io",
			obj:     `{apiVersion: gateway.networking.k8s.io/v1, kind: HTTPRoute, metadata: {name: r, namespace: d}, spec: {hostnames: [` + strings.Repeat("a.example.com, ", 16) + `b.example.com]}}`,
			want:    []string{`spec.hostnames: Too many: 17: must have at most 16 items`, rulesNotChecked},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := compile(t, tc.fixture, "v1")
			checkErrors(t, v.Validate(context.Background(), object(t, tc.obj)), tc.want...)
		})
	}
}

func TestValidateUpdateEvaluatesTransitionRulesAgainstTheOldObject(t *testing.T) {
	v := compile(t, "certificates.cert-manager.io", "v1")
	old := object(t, `{apiVersion: cert-manager.io/v1, kind: Certificate, metadata: {name: c, namespace: d, resourceVersion: "1"}, spec: {secretName: s, issuerRef: {name: ca}}}`)
	ctx := context.Background()

	renamed := object(t, `{apiVersion: cert-manager.io/v1, kind: Certificate, metadata: {name: c, namespace: d, resourceVersion: "1"}, spec: {secretName: other, issuerRef: {name: ca}}}`)
	checkErrors(t, v.ValidateUpdate(ctx, renamed, old), `spec.secretName: Invalid value: "other": secretName is immutable`)

	reissued := object(t, `{apiVersion: cert-manager.io/v1, kind: Certificate, metadata: {name: c, namespace: d, resourceVersion: "1"}, spec: {secretName: s, issuerRef: {name: other-ca}}}`)
	checkErrors(t, v.ValidateUpdate(ctx, reissued, old))

	// on create there is no old object: a transition rule is not evaluated
	checkErrors(t, v.Validate(ctx, renamed))
}

func TestValidateUpdateRatchetsWhatDidNotChange(t *testing.T) {
	v := compile(t, "certificates.cert-manager.io", "v1")
	ctx := context.Background()
	long := strings.Repeat("x", 70)
	// stored when the schema allowed it: a commonName longer than 64 and both renewal settings
	old := object(t, `{apiVersion: cert-manager.io/v1, kind: Certificate, metadata: {name: c, namespace: d, resourceVersion: "1"}, spec: {secretName: s, issuerRef: {name: ca}, commonName: `+long+`, renewBefore: 1h, renewBeforePercentage: 50}}`)

	labelled := old.DeepCopy()
	labelled.SetLabels(map[string]string{"team": "web"})
	checkErrors(t, v.ValidateUpdate(ctx, labelled, old))

	changed := old.DeepCopy()
	changed.Object["spec"].(map[string]interface{})["commonName"] = long + "y"
	changed.Object["spec"].(map[string]interface{})["renewBeforePercentage"] = int64(40)
	checkErrors(t, v.ValidateUpdate(ctx, changed, old),
		`spec.commonName: Too long: may not be more than 64 bytes`,
		rulesNotChecked)

	moved := old.DeepCopy()
	moved.SetNamespace("e")
	checkErrors(t, v.ValidateUpdate(ctx, moved, old), `metadata.namespace: Invalid value: "e": field is immutable`)
}

func TestValidateStatusUpdateChecksTheStatusSchema(t *testing.T) {
	v := compile(t, "httproutes.gateway.networking.k8s.io", "v1")
	ctx := context.Background()
	old := object(t, `{apiVersion: gateway.networking.k8s.io/v1, kind: HTTPRoute, metadata: {name: r, namespace: d, resourceVersion: "1"}, spec: {hostnames: ["Example.com"]}}`)

	obj := object(t, `{apiVersion: gateway.networking.k8s.io/v1, kind: HTTPRoute, metadata: {name: r, namespace: d, resourceVersion: "1"}, spec: {hostnames: [ignored]},
		status: {parents: [{controllerName: example.com/gateway, parentRef: {name: gw}, conditions: [{type: Accepted, status: Maybe, reason: Accepted, message: "", lastTransitionTime: "2026-01-02T03:04:05Z"}]}]}}`)
	v.PrepareForStatusUpdate(obj, old)
	if hosts := obj.Object["spec"].(map[string]interface{})["hostnames"].([]interface{}); hosts[0] != "Example.com" {
		t.Errorf("a status write changed the spec: %v", hosts)
	}
	// the spec's invalid hostname, unchanged, is not the status write's concern
	checkErrors(t, v.ValidateStatusUpdate(ctx, obj, old),
		`status.parents[0].conditions[0].status: Unsupported value: "Maybe": supported values: "True", "False", "Unknown"`,
		rulesNotChecked)

	obj.Object["status"] = map[string]interface{}{}
	checkErrors(t, v.ValidateStatusUpdate(ctx, obj, old), `status.parents: Required value`, rulesNotChecked)
}
