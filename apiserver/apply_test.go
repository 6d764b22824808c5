package apiserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	autoscalingv1ac "k8s.io/client-go/applyconfigurations/autoscaling/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// wireAnswer is an HTTP answer as a client sees it, before any client library reads it.
type wireAnswer struct {
	code   int
	header http.Header
	body   []byte
}

// status decodes the body as a metav1.Status.
func (r wireAnswer) status(t *testing.T) metav1.Status {
	t.Helper()
	var st metav1.Status
	if err := json.Unmarshal(r.body, &st); err != nil {
		t.Fatalf("body is not a Status: %v\n%s", err, r.body)
	}
	return st
}

// configMap decodes the body as a ConfigMap.
func (r wireAnswer) configMap(t *testing.T) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{}
	if err := json.Unmarshal(r.body, cm); err != nil {
		t.Fatalf("body is not a ConfigMap: %v\n%s", err, r.body)
	}
	return cm
}

// sendWire sends one request as the admin, with the given content type, and returns the answer.
// headers are more request headers, name then value, set after the defaults (an empty value
// leaves the header out).
func sendWire(t *testing.T, s *apiservertest.Server, method, path, contentType, body string, headers ...string) wireAnswer {
	t.Helper()
	client, err := rest.HTTPClientFor(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "skiff-test/1.0")
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return wireAnswer{code: resp.StatusCode, header: resp.Header, body: b}
}

const applyYAML = "application/apply-patch+yaml"

// managedFieldsJSON renders managedFields without times, for comparing with what upstream
// records.
func managedFieldsJSON(t *testing.T, entries []metav1.ManagedFieldsEntry) string {
	t.Helper()
	var out []string
	for _, e := range entries {
		e.Time = nil
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return strings.Join(out, "\n")
}

func TestApplyTwoManagersOnAConfigMapConflictAndForcedTakeover(t *testing.T) {
	s := apiservertest.Start(t)
	path := "/api/v1/namespaces/default/configmaps/shared"

	// an apply to a missing object creates it
	alice := sendWire(t, s, "PATCH", path+"?fieldManager=alice", applyYAML,
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\ndata:\n  a: \"1\"\n")
	if alice.code != http.StatusCreated {
		t.Fatalf("first apply: %d, want 201\n%s", alice.code, alice.body)
	}
	cm := alice.configMap(t)
	if cm.UID == "" || cm.ResourceVersion == "" || cm.Data["a"] != "1" {
		t.Errorf("created by apply: %+v", cm)
	}
	if got, want := managedFieldsJSON(t, cm.ManagedFields),
		`{"manager":"alice","operation":"Apply","apiVersion":"v1","fieldsType":"FieldsV1","fieldsV1":{"f:data":{"f:a":{}}}}`; got != want {
		t.Errorf("managedFields after alice's apply:\n got %s\nwant %s", got, want)
	}

	// a second manager applies another field: both own what they applied
	bob := sendWire(t, s, "PATCH", path+"?fieldManager=bob", applyYAML,
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"shared"},"data":{"b":"2"}}`)
	if bob.code != http.StatusOK {
		t.Fatalf("bob's apply: %d\n%s", bob.code, bob.body)
	}
	cm = bob.configMap(t)
	if cm.Data["a"] != "1" || cm.Data["b"] != "2" {
		t.Errorf("after bob's apply: %v", cm.Data)
	}
	if got, want := managedFieldsJSON(t, cm.ManagedFields),
		`{"manager":"alice","operation":"Apply","apiVersion":"v1","fieldsType":"FieldsV1","fieldsV1":{"f:data":{"f:a":{}}}}`+"\n"+
			`{"manager":"bob","operation":"Apply","apiVersion":"v1","fieldsType":"FieldsV1","fieldsV1":{"f:data":{"f:b":{}}}}`; got != want {
		t.Errorf("managedFields after bob's apply:\n got %s\nwant %s", got, want)
	}

	// bob changing alice's field is a conflict, in upstream's words
	conflictBody := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"shared"},"data":{"a":"3","b":"2"}}`
	conflict := sendWire(t, s, "PATCH", path+"?fieldManager=bob", applyYAML, conflictBody)
	st := conflict.status(t)
	if conflict.code != http.StatusConflict || st.Reason != metav1.StatusReasonConflict ||
		st.Message != `Apply failed with 1 conflict: conflict with "alice": .data.a` {
		t.Errorf("conflict: %d %s %q", conflict.code, st.Reason, st.Message)
	}
	if st.Details == nil || len(st.Details.Causes) != 1 || st.Details.Causes[0] != (metav1.StatusCause{
		Type: metav1.CauseTypeFieldManagerConflict, Message: `conflict with "alice"`, Field: ".data.a"}) {
		t.Errorf("conflict details: %+v", st.Details)
	}

	// forced, bob takes the field over: alice owns nothing left and her entry goes
	forced := sendWire(t, s, "PATCH", path+"?fieldManager=bob&force=true", applyYAML, conflictBody)
	if forced.code != http.StatusOK {
		t.Fatalf("forced apply: %d\n%s", forced.code, forced.body)
	}
	cm = forced.configMap(t)
	if cm.Data["a"] != "3" {
		t.Errorf("forced apply did not change data.a: %v", cm.Data)
	}
	if got, want := managedFieldsJSON(t, cm.ManagedFields),
		`{"manager":"bob","operation":"Apply","apiVersion":"v1","fieldsType":"FieldsV1","fieldsV1":{"f:data":{"f:a":{},"f:b":{}}}}`; got != want {
		t.Errorf("managedFields after the takeover:\n got %s\nwant %s", got, want)
	}

	// an update is recorded beside the appliers, as operation Update
	cm.Data["c"] = "4"
	cm.ManagedFields = nil
	b, _ := json.Marshal(cm)
	put := sendWire(t, s, "PUT", path+"?fieldManager=carol", "application/json", string(b))
	if put.code != http.StatusOK {
		t.Fatalf("update: %d\n%s", put.code, put.body)
	}
	if got, want := managedFieldsJSON(t, put.configMap(t).ManagedFields),
		`{"manager":"bob","operation":"Apply","apiVersion":"v1","fieldsType":"FieldsV1","fieldsV1":{"f:data":{"f:a":{},"f:b":{}}}}`+"\n"+
			`{"manager":"carol","operation":"Update","apiVersion":"v1","fieldsType":"FieldsV1","fieldsV1":{"f:data":{"f:c":{}}}}`; got != want {
		t.Errorf("managedFields after carol's update:\n got %s\nwant %s", got, want)
	}

	// changing a field an updater set is a conflict naming the updater and its version
	taken := sendWire(t, s, "PATCH", path+"?fieldManager=bob", applyYAML,
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"shared"},"data":{"a":"3","b":"2","c":"5"}}`)
	if st := taken.status(t); taken.code != http.StatusConflict ||
		st.Message != `Apply failed with 1 conflict: conflict with "carol" using v1: .data.c` {
		t.Errorf("conflict with an updater: %d %q", taken.code, st.Message)
	}

	// a field bob leaves out of his next configuration is his no more, and goes
	dropped := sendWire(t, s, "PATCH", path+"?fieldManager=bob", applyYAML,
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"shared"},"data":{"a":"3"}}`)
	if dropped.code != http.StatusOK {
		t.Fatalf("apply without b: %d\n%s", dropped.code, dropped.body)
	}
	if data := dropped.configMap(t).Data; data["b"] != "" || data["a"] != "3" || data["c"] != "4" {
		t.Errorf("after bob dropped b: %v", data)
	}
}

func TestApplyWithClientGoTypedClient(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	cms := s.Client.CoreV1().ConfigMaps("default")
	ac := corev1ac.ConfigMap("typed", "default").WithLabels(map[string]string{"app": "web"}).WithData(map[string]string{"k": "v"})
	cm, err := cms.Apply(ctx, ac, metav1.ApplyOptions{FieldManager: "controller"})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Labels["app"] != "web" || cm.Data["k"] != "v" || len(cm.ManagedFields) != 1 ||
		cm.ManagedFields[0].Operation != metav1.ManagedFieldsOperationApply || cm.ManagedFields[0].Manager != "controller" {
		t.Fatalf("applied: %+v", cm)
	}
	// the apply configuration client-go extracts is the manager's own fields
	extracted, err := corev1ac.ExtractConfigMap(cm, "controller")
	if err != nil {
		t.Fatal(err)
	}
	if extracted.Data["k"] != "v" || extracted.Labels["app"] != "web" {
		t.Errorf("extracted: %+v", extracted)
	}
	// a status apply of a pod is recorded against the status subresource
	pods := s.Client.CoreV1().Pods("default")
	if _, err := pods.Apply(ctx, corev1ac.Pod("p", "default").WithSpec(corev1ac.PodSpec().WithContainers(
		corev1ac.Container().WithName("c").WithImage("busybox:1.36"))), metav1.ApplyOptions{FieldManager: "me"}); err != nil {
		t.Fatal(err)
	}
	pod, err := pods.ApplyStatus(ctx, corev1ac.Pod("p", "default").WithStatus(corev1ac.PodStatus().WithMessage("hello")),
		metav1.ApplyOptions{FieldManager: "kubelet", Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Status.Message != "hello" {
		t.Errorf("status apply: %+v", pod.Status)
	}
	var statusEntry *metav1.ManagedFieldsEntry
	for i, e := range pod.ManagedFields {
		if e.Manager == "kubelet" {
			statusEntry = &pod.ManagedFields[i]
		}
	}
	if statusEntry == nil || statusEntry.Subresource != "status" || statusEntry.Operation != metav1.ManagedFieldsOperationApply ||
		!bytes.Contains(statusEntry.FieldsV1.Raw, []byte(`"f:message"`)) {
		t.Errorf("status apply entry: %+v", pod.ManagedFields)
	}
	// a status apply to a missing pod does not create it
	_, err = pods.ApplyStatus(ctx, corev1ac.Pod("ghost", "default").WithStatus(corev1ac.PodStatus().WithMessage("x")),
		metav1.ApplyOptions{FieldManager: "kubelet"})
	if err == nil || err.Error() != `pods "ghost" not found` {
		t.Errorf("status apply to a missing pod: %v", err)
	}
}

func TestApplyRefusalsInUpstreamsWords(t *testing.T) {
	s := apiservertest.Start(t)
	path := "/api/v1/namespaces/default/configmaps/refused"
	cfg := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"refused"},"data":{"a":"1"}}`
	cases := []struct {
		name, path, contentType, body string
		code                          int
		reason                        metav1.StatusReason
		message                       string
	}{
		{"no field manager", path, applyYAML, cfg, 422, metav1.StatusReasonInvalid,
			`PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch`},
		{"force on a merge patch", path + "?force=true", "application/merge-patch+json", `{"data":{"a":"2"}}`, 422, metav1.StatusReasonInvalid,
			`PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch`},
		{"CBOR apply", path + "?fieldManager=m", "application/apply-patch+cbor", "\xa0", 415, metav1.StatusReasonUnsupportedMediaType,
			"the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"},
		{"not YAML", path + "?fieldManager=m", applyYAML, "a: [", 400, metav1.StatusReasonBadRequest,
			"error decoding YAML: error converting YAML to JSON: yaml: line 1: did not find expected node content"},
		{"no kind", path + "?fieldManager=m", applyYAML, `{"metadata":{"name":"refused"}}`, 400, metav1.StatusReasonBadRequest,
			"invalid object type: /, Kind="},
		{"another version", path + "?fieldManager=m", applyYAML, `{"apiVersion":"v2","kind":"ConfigMap","metadata":{"name":"refused"}}`, 400, metav1.StatusReasonBadRequest,
			"invalid object type: /v2, Kind=ConfigMap"},
		{"name not the URL's", path + "?fieldManager=m", applyYAML, `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"other"}}`, 400, metav1.StatusReasonBadRequest,
			"the name of the object (other) does not match the name on the URL (refused)"},
		{"namespace not the URL's", path + "?fieldManager=m", applyYAML, `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"refused","namespace":"kube-system"}}`, 400, metav1.StatusReasonBadRequest,
			"the namespace of the provided object does not match the namespace sent on the request"},
		{"uid of nothing", path + "?fieldManager=m", applyYAML, `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"refused","uid":"1234"}}`, 409, metav1.StatusReasonConflict,
			`Operation cannot be fulfilled on configmaps "refused": uid mismatch: the provided object specified uid 1234, and no existing object was found`},
		{"managedFields in the configuration", path + "?fieldManager=m", applyYAML,
			`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"refused","managedFields":[{"manager":"x","operation":"Apply"}]}}`, 400, metav1.StatusReasonBadRequest,
			"metadata.managedFields must be nil"},
		// upstream's field manager answers a field the kind does not have with a reasonless 500
		{"unknown field", path + "?fieldManager=m", applyYAML, `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"refused"},"spec":{"foo":1}}`, 500, metav1.StatusReasonUnknown,
			"failed to create typed patch object (/refused; /v1, Kind=ConfigMap): .spec: field not declared in schema"},
		{"duplicate field, strict", path + "?fieldManager=m&fieldValidation=Strict", applyYAML,
			"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: refused\ndata:\n  a: \"1\"\n  a: \"2\"\n", 400, metav1.StatusReasonBadRequest,
			"error strict decoding YAML: error converting YAML to JSON: yaml: unmarshal errors:\n  line 7: key \"a\" already set in map"},
		{"missing namespace", "/api/v1/namespaces/nowhere/configmaps/refused?fieldManager=m", applyYAML, cfg, 404, metav1.StatusReasonNotFound,
			`namespaces "nowhere" not found`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := etcdSnapshot(t, s)
			resp := sendWire(t, s, "PATCH", tc.path, tc.contentType, tc.body)
			st := resp.status(t)
			if resp.code != tc.code || st.Code != int32(tc.code) || st.Reason != tc.reason || st.Message != tc.message {
				t.Errorf("got %d %q %q\nwant %d %q %q", resp.code, st.Reason, st.Message, tc.code, tc.reason, tc.message)
			}
			if after := etcdSnapshot(t, s); !sameSnapshot(before, after) {
				t.Errorf("etcd changed by a refused apply")
			}
		})
	}

	// duplicate fields under the default validation succeed with a warning per field
	resp := sendWire(t, s, "PATCH", path+"?fieldManager=m", applyYAML,
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: refused\ndata:\n  a: \"1\"\n  a: \"2\"\n")
	if resp.code != http.StatusCreated {
		t.Fatalf("apply with a duplicate field: %d %s", resp.code, resp.body)
	}
	if got := resp.header.Values("Warning"); len(got) != 1 || got[0] != `299 - "line 7: key \"a\" already set in map"` {
		t.Errorf("warnings %q", got)
	}
}

func TestScaleSubresourceSharesReplicasOwnershipWithTheWorkload(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	rss := s.Client.AppsV1().ReplicaSets("default")
	labels := map[string]string{"app": "web"}
	rsApply := appsv1ac.ReplicaSet("web", "default").WithSpec(appsv1ac.ReplicaSetSpec().WithReplicas(2).
		WithSelector(metav1ac.LabelSelector().WithMatchLabels(labels)).
		WithTemplate(corev1ac.PodTemplateSpec().WithLabels(labels).WithSpec(corev1ac.PodSpec().WithContainers(
			corev1ac.Container().WithName("c").WithImage("busybox:1.36")))))
	if _, err := rss.Apply(ctx, rsApply, metav1.ApplyOptions{FieldManager: "deployer"}); err != nil {
		t.Fatal(err)
	}

	// an autoscaler's scale update takes spec.replicas from the applier, recorded on the
	// workload against the scale subresource
	scale, err := rss.GetScale(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = 5
	if _, err := rss.UpdateScale(ctx, "web", scale, metav1.UpdateOptions{FieldManager: "autoscaler"}); err != nil {
		t.Fatal(err)
	}
	rs, err := rss.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *rs.Spec.Replicas != 5 {
		t.Errorf("replicas %d after the scale update", *rs.Spec.Replicas)
	}
	var deployer, autoscaler *metav1.ManagedFieldsEntry
	for i, e := range rs.ManagedFields {
		switch e.Manager {
		case "deployer":
			deployer = &rs.ManagedFields[i]
		case "autoscaler":
			autoscaler = &rs.ManagedFields[i]
		}
	}
	if autoscaler == nil || autoscaler.Subresource != "scale" || autoscaler.Operation != metav1.ManagedFieldsOperationUpdate ||
		autoscaler.APIVersion != "apps/v1" || string(autoscaler.FieldsV1.Raw) != `{"f:spec":{"f:replicas":{}}}` {
		t.Errorf("autoscaler's entry: %+v", autoscaler)
	}
	if deployer == nil || bytes.Contains(deployer.FieldsV1.Raw, []byte("f:replicas")) {
		t.Errorf("deployer's entry still owns replicas: %+v", deployer)
	}

	// the applier's next apply of replicas conflicts with the autoscaler
	_, err = rss.Apply(ctx, rsApply, metav1.ApplyOptions{FieldManager: "deployer"})
	if err == nil || err.Error() != `Apply failed with 1 conflict: conflict with "autoscaler" with subresource "scale" using apps/v1: .spec.replicas` {
		t.Errorf("re-apply over the autoscaler: %v", err)
	}

	// an apply to the scale subresource itself
	applied, err := rss.ApplyScale(ctx, "web", autoscalingv1ac.Scale().WithSpec(autoscalingv1ac.ScaleSpec().WithReplicas(7)),
		metav1.ApplyOptions{FieldManager: "scaler", Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if applied.Spec.Replicas != 7 {
		t.Errorf("scale apply: %+v", applied.Spec)
	}
	rs, _ = rss.Get(ctx, "web", metav1.GetOptions{})
	found := false
	for _, e := range rs.ManagedFields {
		if e.Manager == "scaler" && e.Operation == metav1.ManagedFieldsOperationApply && e.Subresource == "scale" {
			found = true
		}
		if e.Manager == "autoscaler" {
			t.Errorf("the forced scale apply left the autoscaler's entry: %+v", e)
		}
	}
	if !found || *rs.Spec.Replicas != 7 {
		t.Errorf("after the scale apply: replicas %d, managedFields %+v", *rs.Spec.Replicas, rs.ManagedFields)
	}
}

func TestSubresourceWritesAreRecordedAgainstTheirSubresource(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	nss := s.Client.CoreV1().Namespaces()
	ns, err := nss.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "recorded"}}, metav1.CreateOptions{FieldManager: "creator"})
	if err != nil {
		t.Fatal(err)
	}
	ns.Spec.Finalizers = append(ns.Spec.Finalizers, "example.com/hold")
	if ns, err = nss.Finalize(ctx, ns, metav1.UpdateOptions{FieldManager: "finalizer"}); err != nil {
		t.Fatal(err)
	}
	ns.Status.Conditions = append(ns.Status.Conditions, corev1.NamespaceCondition{Type: "Example", Status: corev1.ConditionTrue})
	if ns, err = nss.UpdateStatus(ctx, ns, metav1.UpdateOptions{FieldManager: "reporter"}); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range ns.ManagedFields {
		got[e.Manager] = string(e.Operation) + "/" + e.Subresource + " " + string(e.FieldsV1.Raw)
	}
	want := map[string]string{
		"creator":   `Update/ {"f:metadata":{"f:labels":{".":{},"f:kubernetes.io/metadata.name":{}}}}`,
		"finalizer": `Update/finalize {"f:spec":{"f:finalizers":{}}}`,
		"reporter":  `Update/status {"f:status":{"f:conditions":{".":{},"k:{\"type\":\"Example\"}":{".":{},"f:lastTransitionTime":{},"f:status":{},"f:type":{}}}}}`,
	}
	for m, w := range want {
		if got[m] != w {
			t.Errorf("%s: got %s\n want %s", m, got[m], w)
		}
	}
}
