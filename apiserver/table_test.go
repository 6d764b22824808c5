package apiserver_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// kubectlTableAccept is the Accept header kubectl get sends.
const kubectlTableAccept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"

type rawResponse struct {
	code        int
	contentType string
	body        []byte
}

// rawGet sends GET path with the Accept header over the admin's TLS client and returns the
// answer as it came.
func rawGet(t *testing.T, s *apiservertest.Server, path, accept string) rawResponse {
	t.Helper()
	hc, err := rest.HTTPClientFor(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return rawResponse{code: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: body}
}

func decodeTable(t *testing.T, r rawResponse) *metav1.Table {
	t.Helper()
	if r.code != http.StatusOK {
		t.Fatalf("status %d: %s", r.code, r.body)
	}
	var table metav1.Table
	if err := json.Unmarshal(r.body, &table); err != nil {
		t.Fatalf("decode table: %v\n%s", err, r.body)
	}
	if table.Kind != "Table" {
		t.Fatalf("kind %q, want Table: %s", table.Kind, r.body)
	}
	return &table
}

func headers(table *metav1.Table) []string {
	var out []string
	for _, c := range table.ColumnDefinitions {
		name := c.Name
		if c.Priority == 1 {
			name += "*"
		}
		out = append(out, name)
	}
	return out
}

// cellsOf returns the cells of the row of the named object, as JSON decoded them.
func cellsOf(t *testing.T, table *metav1.Table, name string) []interface{} {
	t.Helper()
	for _, row := range table.Rows {
		var m metav1.PartialObjectMetadata
		if err := json.Unmarshal(row.Object.Raw, &m); err != nil {
			t.Fatalf("row object: %v: %s", err, row.Object.Raw)
		}
		if m.Name == name {
			return row.Cells
		}
	}
	t.Fatalf("no row for %q in %d rows", name, len(table.Rows))
	return nil
}

// withoutAge drops the cells at the given indexes (ages, which depend on the clock).
func withoutAge(cells []interface{}, ageIndexes ...int) []interface{} {
	var out []interface{}
	for i, c := range cells {
		if !contains(ageIndexes, i) {
			out = append(out, c)
		}
	}
	return out
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func TestTableOfEveryResourceAsKubectlAsksForIt(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	c := s.Client
	ns := "default"

	pod, err := c.CoreV1().Pods(ns).Create(ctx, testPod("web"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP, pod.Status.PodIPs = "10.1.0.7", []corev1.PodIP{{IP: "10.1.0.7"}}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", Image: "busybox:1.36", Ready: true, RestartCount: 2,
		State:                corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, FinishedAt: metav1.NewTime(time.Now().Add(-30 * time.Minute))}}}}
	if _, err := c.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1",
		Labels: map[string]string{"node-role.kubernetes.io/control-plane": ""}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg"},
		Data: map[string]string{"a": "1", "b": "2"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tls"},
		Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"k": []byte("v")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-rs"},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](3), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoordinationV1().Leases(ns).Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "leader"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("node-1")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.EventsV1().Events(ns).Create(ctx, &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Name: "web.1"},
		EventTime: metav1.NowMicro(), ReportingController: "skiff/test", ReportingInstance: "test-1", Action: "Pulling",
		Reason: "Pulling", Type: corev1.EventTypeNormal, Note: "Pulling image busybox:1.36",
		Regarding: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "web", FieldPath: "spec.containers{c}"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		path    string
		name    string
		headers []string
		cells   []interface{} // without the AGE cells
		ages    []int
	}{
		{"/api/v1/namespaces/default/pods", "web",
			[]string{"Name", "Ready", "Status", "Restarts", "Age", "IP*", "Node*", "Nominated Node*", "Readiness Gates*"},
			[]interface{}{"web", "1/1", "Running", "2 (30m ago)", "10.1.0.7", "<none>", "<none>", "<none>"}, []int{4}},
		{"/api/v1/nodes", "node-1",
			[]string{"Name", "Status", "Roles", "Age", "Version", "Internal-IP*", "External-IP*", "OS-Image*", "Kernel-Version*", "Container-Runtime*"},
			[]interface{}{"node-1", "Unknown", "control-plane", "", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"}, []int{3}},
		{"/api/v1/namespaces", "default", []string{"Name", "Status", "Age"}, []interface{}{"default", "Active"}, []int{2}},
		{"/api/v1/namespaces/default/configmaps", "cfg", []string{"Name", "Data", "Age"}, []interface{}{"cfg", float64(2)}, []int{2}},
		{"/api/v1/namespaces/default/secrets", "tls", []string{"Name", "Type", "Data", "Age"}, []interface{}{"tls", "Opaque", float64(1)}, []int{3}},
		{"/api/v1/namespaces/default/serviceaccounts", "builder", []string{"Name", "Secrets", "Age"}, []interface{}{"builder", float64(0)}, []int{2}},
		{"/apis/apps/v1/namespaces/default/replicasets", "web-rs",
			[]string{"Name", "Desired", "Current", "Ready", "Age", "Containers*", "Images*", "Selector*"},
			[]interface{}{"web-rs", float64(3), float64(0), float64(0), "web", "nginx:1.27", "app=web"}, []int{4}},
		{"/apis/coordination.k8s.io/v1/namespaces/default/leases", "leader", []string{"Name", "Holder", "Age"}, []interface{}{"leader", "node-1"}, []int{2}},
		{"/api/v1/namespaces/default/events", "web.1",
			[]string{"Last Seen", "Type", "Reason", "Object", "Subobject*", "Source*", "Message", "First Seen*", "Count*", "Name*"},
			[]interface{}{"Normal", "Pulling", "pod/web", "spec.containers{c}", "skiff/test, test-1", "Pulling image busybox:1.36", float64(1), "web.1"}, []int{0, 7}},
		{"/apis/events.k8s.io/v1/namespaces/default/events", "web.1",
			[]string{"Last Seen", "Type", "Reason", "Object", "Subobject*", "Source*", "Message", "First Seen*", "Count*", "Name*"},
			[]interface{}{"Normal", "Pulling", "pod/web", "spec.containers{c}", "skiff/test, test-1", "Pulling image busybox:1.36", float64(1), "web.1"}, []int{0, 7}},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			r := rawGet(t, s, tc.path, kubectlTableAccept)
			if r.contentType != "application/json" {
				t.Errorf("content type %q", r.contentType)
			}
			table := decodeTable(t, r)
			if table.APIVersion != "meta.k8s.io/v1" {
				t.Errorf("apiVersion %q", table.APIVersion)
			}
			if got := headers(table); !reflect.DeepEqual(got, tc.headers) {
				t.Errorf("columns %q, want %q", got, tc.headers)
			}
			if table.ResourceVersion == "" {
				t.Errorf("table of a list without resourceVersion")
			}
			cells := cellsOf(t, table, tc.name)
			if len(cells) != len(tc.headers) {
				t.Fatalf("%d cells for %d columns: %v", len(cells), len(tc.headers), cells)
			}
			for _, i := range tc.ages {
				if age, _ := cells[i].(string); age == "" || strings.Contains(age, "unknown") {
					t.Errorf("age cell %d = %v", i, cells[i])
				}
			}
			if got := withoutAge(cells, tc.ages...); !reflect.DeepEqual(got, tc.cells) {
				t.Errorf("cells %#v, want %#v", got, tc.cells)
			}
			// the rows carry each object's metadata by default
			var partial metav1.PartialObjectMetadata
			json.Unmarshal(table.Rows[0].Object.Raw, &partial)
			if partial.Kind != "PartialObjectMetadata" || partial.APIVersion != "meta.k8s.io/v1" || partial.UID == "" || partial.ResourceVersion == "" {
				t.Errorf("row object %s", table.Rows[0].Object.Raw)
			}
		})
	}

	t.Run("one object", func(t *testing.T) {
		table := decodeTable(t, rawGet(t, s, "/api/v1/namespaces/default/pods/web", kubectlTableAccept))
		if len(table.Rows) != 1 || table.Rows[0].Cells[0] != "web" || len(table.ColumnDefinitions) != 9 {
			t.Errorf("table of one pod: %+v", table)
		}
		if table.ResourceVersion == "" {
			t.Errorf("table of one object without its resourceVersion")
		}
	})
	t.Run("status subresource", func(t *testing.T) {
		table := decodeTable(t, rawGet(t, s, "/api/v1/namespaces/default/pods/web/status", kubectlTableAccept))
		if got := table.Rows[0].Cells[2]; got != "Running" {
			t.Errorf("pods/status STATUS %v", got)
		}
	})
	t.Run("scale subresource", func(t *testing.T) {
		table := decodeTable(t, rawGet(t, s, "/apis/apps/v1/namespaces/default/replicasets/web-rs/scale", kubectlTableAccept))
		if got := headers(table); !reflect.DeepEqual(got, []string{"Name", "Desired", "Available", "Age"}) {
			t.Errorf("scale columns %q", got)
		}
		if got := withoutAge(table.Rows[0].Cells, 3); !reflect.DeepEqual(got, []interface{}{"web-rs", float64(3), float64(0)}) {
			t.Errorf("scale cells %v", got)
		}
	})
	t.Run("v1beta1", func(t *testing.T) {
		table := decodeTable(t, rawGet(t, s, "/api/v1/namespaces/default/configmaps", "application/json;as=Table;v=v1beta1;g=meta.k8s.io"))
		if table.APIVersion != "meta.k8s.io/v1beta1" {
			t.Errorf("apiVersion %q", table.APIVersion)
		}
		var partial metav1.PartialObjectMetadata
		json.Unmarshal(table.Rows[0].Object.Raw, &partial)
		if partial.APIVersion != "meta.k8s.io/v1beta1" {
			t.Errorf("row object %s", table.Rows[0].Object.Raw)
		}
	})
	t.Run("yaml", func(t *testing.T) {
		r := rawGet(t, s, "/api/v1/namespaces/default/configmaps", "application/yaml;as=Table;v=v1;g=meta.k8s.io")
		if r.code != http.StatusOK || r.contentType != "application/yaml" || !strings.Contains(string(r.body), "kind: Table") ||
			!strings.Contains(string(r.body), "- cfg") {
			t.Errorf("%d %s\n%s", r.code, r.contentType, r.body)
		}
	})
	t.Run("includeObject", func(t *testing.T) {
		table := decodeTable(t, rawGet(t, s, "/api/v1/namespaces/default/pods?includeObject=Object", kubectlTableAccept))
		var full corev1.Pod
		json.Unmarshal(table.Rows[0].Object.Raw, &full)
		if full.Kind != "Pod" || full.APIVersion != "v1" || full.Spec.Containers[0].Image != "busybox:1.36" {
			t.Errorf("includeObject=Object row: %s", table.Rows[0].Object.Raw)
		}
		table = decodeTable(t, rawGet(t, s, "/apis/events.k8s.io/v1/namespaces/default/events?includeObject=Object", kubectlTableAccept))
		var ev eventsv1.Event
		json.Unmarshal(table.Rows[0].Object.Raw, &ev)
		if ev.Kind != "Event" || ev.APIVersion != "events.k8s.io/v1" || ev.Note != "Pulling image busybox:1.36" {
			t.Errorf("includeObject=Object events.k8s.io row: %s", table.Rows[0].Object.Raw)
		}
		table = decodeTable(t, rawGet(t, s, "/api/v1/namespaces/default/pods?includeObject=None", kubectlTableAccept))
		if raw := string(table.Rows[0].Object.Raw); raw != "" && raw != "null" {
			t.Errorf("includeObject=None row object: %s", raw)
		}
		r := rawGet(t, s, "/api/v1/namespaces/default/pods?includeObject=All", kubectlTableAccept)
		assertStatus(t, r, http.StatusBadRequest, "BadRequest",
			`Unable to convert to Table as requested: includeObject: Invalid value: "All": must be 'Metadata', 'Object', 'None', or empty`)
	})
	t.Run("pagination", func(t *testing.T) {
		for _, name := range []string{"cfg2", "cfg3"} {
			c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		}
		table := decodeTable(t, rawGet(t, s, "/api/v1/namespaces/default/configmaps?limit=1", kubectlTableAccept))
		if len(table.Rows) != 1 || table.Continue == "" || table.RemainingItemCount == nil || *table.RemainingItemCount != 2 {
			t.Errorf("page of a table: %d rows, continue %q, remaining %v", len(table.Rows), table.Continue, table.RemainingItemCount)
		}
	})
}

// assertStatus checks an error answer is the Status upstream sends.
func assertStatus(t *testing.T, r rawResponse, code int, reason, message string) {
	t.Helper()
	var st metav1.Status
	if err := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(r.body), 4096).Decode(&st); err != nil {
		t.Fatalf("%d: not a Status: %s", r.code, r.body)
	}
	if r.code != code || st.Code != int32(code) || string(st.Reason) != reason || st.Message != message || st.Kind != "Status" {
		t.Errorf("got %d %s %q, want %d %s %q\n%s", r.code, st.Reason, st.Message, code, reason, message, r.body)
	}
}

func TestAcceptNegotiationOfConversions(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	if _, err := s.Client.CoreV1().Pods("default").Create(ctx, testPod("p"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const notAcceptable = "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"
	pods := "/api/v1/namespaces/default/pods"

	// Tables are JSON or YAML only: a protobuf Table clause is passed over
	assertStatus(t, rawGet(t, s, pods, "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io"), http.StatusNotAcceptable, "NotAcceptable", notAcceptable)
	r := rawGet(t, s, pods, "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json")
	if r.code != http.StatusOK || !strings.Contains(string(r.body), `"kind":"PodList"`) {
		t.Errorf("fallback to the plain clause: %d %s", r.code, r.body)
	}
	// unknown group versions and kinds of conversion
	assertStatus(t, rawGet(t, s, pods, "application/json;as=Table;v=v2;g=meta.k8s.io"), http.StatusNotAcceptable, "NotAcceptable", notAcceptable)
	assertStatus(t, rawGet(t, s, pods, "application/json;as=Table"), http.StatusNotAcceptable, "NotAcceptable", notAcceptable)
	assertStatus(t, rawGet(t, s, pods, "application/json;as=Pod;v=v1;g="), http.StatusNotAcceptable, "NotAcceptable", notAcceptable)
	// the client's order decides, and quality before order
	if table := decodeTable(t, rawGet(t, s, pods, "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json;as=Table;v=v1;g=meta.k8s.io")); table.APIVersion != "meta.k8s.io/v1beta1" {
		t.Errorf("first clause not used: %s", table.APIVersion)
	}
	if r := rawGet(t, s, pods, "application/json;as=Table;v=v1;g=meta.k8s.io;q=0.5,application/json"); !strings.Contains(string(r.body), `"kind":"PodList"`) {
		t.Errorf("quality ignored: %s", r.body)
	}
	// a list asked as one object's metadata, an object as a list
	assertStatus(t, rawGet(t, s, pods, "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io"), http.StatusNotAcceptable, "NotAcceptable",
		"you requested PartialObjectMetadata, but the requested object is a list (*core.PodList)")
	assertStatus(t, rawGet(t, s, pods+"/p", "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"), http.StatusNotAcceptable, "NotAcceptable",
		"you requested PartialObjectMetadataList, but the requested object is not a list (*core.Pod)")
	// errors are never converted: they come in the plain fallback
	r = rawGet(t, s, pods+"/missing", kubectlTableAccept)
	assertStatus(t, r, http.StatusNotFound, "NotFound", `pods "missing" not found`)
	if r.contentType != "application/json" {
		t.Errorf("error content type %q", r.contentType)
	}
	r = rawGet(t, s, pods+"/missing", "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json")
	assertStatus(t, r, http.StatusNotFound, "NotFound", `pods "missing" not found`)
	// discovery offers no conversions
	assertStatus(t, rawGet(t, s, "/api/v1", "application/json;as=Table;v=v1;g=meta.k8s.io"), http.StatusNotAcceptable, "NotAcceptable", notAcceptable)
	// create-only reviews print no Table: the plain clause answers
	body, err := s.Client.AuthorizationV1().RESTClient().Post().AbsPath("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews").
		SetHeader("Accept", kubectlTableAccept).SetHeader("Content-Type", "application/json").
		Body([]byte(`{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview","spec":{"resourceAttributes":{"verb":"get","resource":"pods"}}}`)).
		Do(ctx).Raw()
	if err != nil || !strings.Contains(string(body), `"kind":"SelfSubjectAccessReview"`) {
		t.Errorf("review with a Table Accept: %v %s", err, body)
	}
	// a watch needs a streaming format
	assertStatus(t, rawGet(t, s, pods+"?watch=1", "application/yaml"), http.StatusNotAcceptable, "NotAcceptable",
		"only the following media types are accepted: application/json;stream=watch, application/vnd.kubernetes.protobuf;stream=watch")
}

func TestDeleteAnswersWithATableOfTheDeletedPod(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	if _, err := s.Client.CoreV1().Pods("default").Create(ctx, testPod("gone"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	body, err := s.Client.CoreV1().RESTClient().Delete().AbsPath("/api/v1/namespaces/default/pods/gone").
		SetHeader("Accept", kubectlTableAccept).Do(ctx).Raw()
	if err != nil {
		t.Fatal(err)
	}
	var table metav1.Table
	json.Unmarshal(body, &table)
	if table.Kind != "Table" || len(table.Rows) != 1 || table.Rows[0].Cells[0] != "gone" {
		t.Errorf("delete answer: %s", body)
	}
	// resources that answer a delete with a Status answer so with a Table Accept too
	if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "gone"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	body, err = s.Client.CoreV1().RESTClient().Delete().AbsPath("/api/v1/namespaces/default/configmaps/gone").
		SetHeader("Accept", kubectlTableAccept).Do(ctx).Raw()
	if err != nil || !strings.Contains(string(body), `"kind":"Status"`) || !strings.Contains(string(body), `"status":"Success"`) {
		t.Errorf("delete of a configmap: %v %s", err, body)
	}
}

// watchTable opens a watch asking for Tables and returns its events' objects as they come.
func watchTable(t *testing.T, ctx context.Context, s *apiservertest.Server, path string) <-chan metav1.WatchEvent {
	t.Helper()
	hc, err := rest.HTTPClientFor(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path, nil)
	req.Header.Set("Accept", kubectlTableAccept)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("watch: %d %s", resp.StatusCode, b)
	}
	events := make(chan metav1.WatchEvent, 10)
	go func() {
		defer resp.Body.Close()
		defer close(events)
		dec := json.NewDecoder(bufio.NewReader(resp.Body))
		for {
			var ev metav1.WatchEvent
			if err := dec.Decode(&ev); err != nil {
				return
			}
			events <- ev
		}
	}()
	return events
}

func nextTableEvent(t *testing.T, events <-chan metav1.WatchEvent) (string, *metav1.Table) {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("watch ended")
		}
		var table metav1.Table
		if err := json.Unmarshal(ev.Object.Raw, &table); err != nil || table.Kind != "Table" {
			t.Fatalf("event object is not a Table: %v %s", err, ev.Object.Raw)
		}
		return ev.Type, &table
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event in 10s")
	}
	return "", nil
}

func TestWatchAsTableSendsColumnsOnlyWithTheFirstEvent(t *testing.T) {
	s := apiservertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cms := s.Client.CoreV1().ConfigMaps("default")
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "first"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	list, err := cms.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// from the start: the existing object comes as ADDED
	events := watchTable(t, ctx, s, "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=0")
	typ, table := nextTableEvent(t, events)
	if typ != "ADDED" || len(table.Rows) != 1 || table.Rows[0].Cells[0] != "first" || len(table.ColumnDefinitions) != 3 {
		t.Errorf("first event %s: %+v", typ, table)
	}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "second"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	typ, table = nextTableEvent(t, events)
	if typ != "ADDED" || len(table.Rows) != 1 || !reflect.DeepEqual(table.Rows[0].Cells[:2], []interface{}{"second", float64(1)}) {
		t.Errorf("second event %s: %+v", typ, table)
	}
	if table.ColumnDefinitions != nil {
		t.Errorf("columns sent again: %+v", table.ColumnDefinitions)
	}
	if err := cms.Delete(ctx, "first", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	typ, table = nextTableEvent(t, events)
	if typ != "DELETED" || table.Rows[0].Cells[0] != "first" {
		t.Errorf("delete event %s: %+v", typ, table)
	}

	// a fresh watch from the list's version starts with the columns again
	events = watchTable(t, ctx, s, "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion="+list.ResourceVersion)
	typ, table = nextTableEvent(t, events)
	if typ != "ADDED" || table.Rows[0].Cells[0] != "second" || len(table.ColumnDefinitions) != 3 {
		t.Errorf("first event of the second watch %s: %+v", typ, table)
	}
}
