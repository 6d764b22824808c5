package apiserver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func TestDryRunWritesAnswerAsTheWriteWouldAndStoreNothing(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	c := s.Client
	if _, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "kept", Labels: map[string]string{"set": "x"}}, Data: map[string]string{"a": "1"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Pods("default").Create(ctx, testPod("runner"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	all := "?dryRun=All"
	cms := "/api/v1/namespaces/default/configmaps"

	cases := []struct {
		name, method, path, contentType, body string
		code                                  int
		check                                 func(t *testing.T, r wireAnswer)
	}{
		{"create with generateName", "POST", "/api/v1/namespaces/default/pods" + all, "application/json",
			`{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"gen-"},"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}`,
			http.StatusCreated, func(t *testing.T, r wireAnswer) {
				var p corev1.Pod
				if err := json.Unmarshal(r.body, &p); err != nil {
					t.Fatal(err)
				}
				// what would be stored: name generated, server metadata and defaults set,
				// no resourceVersion since nothing was written
				if !strings.HasPrefix(p.Name, "gen-") || len(p.Name) != len("gen-")+5 || p.UID == "" || p.CreationTimestamp.IsZero() ||
					p.ResourceVersion != "" || p.Spec.RestartPolicy != corev1.RestartPolicyAlways || p.Status.Phase != corev1.PodPending ||
					len(p.ManagedFields) != 1 || p.ManagedFields[0].Manager != "skiff-test" {
					t.Errorf("dry-run pod: %+v", p)
				}
			}},
		{"create of an existing name", "POST", cms + all, "application/json",
			`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"kept"}}`,
			http.StatusConflict, func(t *testing.T, r wireAnswer) {
				if st := r.status(t); st.Reason != metav1.StatusReasonAlreadyExists || st.Message != `configmaps "kept" already exists` {
					t.Errorf("dry-run create of an existing name: %+v", st)
				}
			}},
		{"update", "PUT", cms + "/kept" + all, "application/json",
			`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"kept"},"data":{"a":"2"}}`,
			http.StatusOK, func(t *testing.T, r wireAnswer) {
				if cm := r.configMap(t); cm.Data["a"] != "2" || cm.UID == "" {
					t.Errorf("dry-run update: %+v", cm)
				}
			}},
		{"update that would create", "PUT", "/api/v1/namespaces/default/events/ev" + all, "application/json",
			`{"apiVersion":"v1","kind":"Event","metadata":{"name":"ev"},"involvedObject":{"kind":"Pod","name":"runner","namespace":"default"},"reason":"R","type":"Normal"}`,
			http.StatusCreated, nil},
		{"merge patch", "PATCH", cms + "/kept" + all, "application/merge-patch+json", `{"data":{"b":"3"}}`,
			http.StatusOK, func(t *testing.T, r wireAnswer) {
				if cm := r.configMap(t); cm.Data["b"] != "3" || cm.Data["a"] != "1" {
					t.Errorf("dry-run patch: %+v", cm.Data)
				}
			}},
		{"apply that would create", "PATCH", cms + "/applied" + all + "&fieldManager=m", applyYAML,
			`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"applied"},"data":{"x":"y"}}`,
			http.StatusCreated, func(t *testing.T, r wireAnswer) {
				if cm := r.configMap(t); cm.Data["x"] != "y" || cm.UID == "" || len(cm.ManagedFields) != 1 ||
					cm.ManagedFields[0].Operation != metav1.ManagedFieldsOperationApply {
					t.Errorf("dry-run apply: %+v", cm)
				}
			}},
		{"apply to an existing object", "PATCH", cms + "/kept" + all + "&fieldManager=m&force=true", applyYAML,
			`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"kept"},"data":{"a":"9"}}`,
			http.StatusOK, nil},
		{"status patch", "PATCH", "/api/v1/namespaces/default/pods/runner/status" + all, "application/merge-patch+json",
			`{"status":{"phase":"Running"}}`,
			http.StatusOK, func(t *testing.T, r wireAnswer) {
				var p corev1.Pod
				json.Unmarshal(r.body, &p)
				if p.Status.Phase != corev1.PodRunning {
					t.Errorf("dry-run status patch: %+v", p.Status)
				}
			}},
		{"binding", "POST", "/api/v1/namespaces/default/pods/runner/binding" + all, "application/json",
			`{"apiVersion":"v1","kind":"Binding","metadata":{"name":"runner"},"target":{"kind":"Node","name":"n1"}}`,
			http.StatusCreated, nil},
		{"delete", "DELETE", cms + "/kept" + all, "", "",
			http.StatusOK, nil},
		{"delete collection", "DELETE", cms + all + "&labelSelector=set%3Dx", "", "",
			http.StatusOK, func(t *testing.T, r wireAnswer) {
				var list corev1.ConfigMapList
				json.Unmarshal(r.body, &list)
				if len(list.Items) != 1 || list.Items[0].Name != "kept" {
					t.Errorf("dry-run deletecollection: %s", r.body)
				}
			}},
		{"invalid value", "POST", cms + "?dryRun=Yes", "application/json",
			`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"never"}}`,
			http.StatusUnprocessableEntity, func(t *testing.T, r wireAnswer) {
				if st := r.status(t); st.Message != `CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: ["Yes"]: supported values: "All"` {
					t.Errorf("invalid dryRun: %q", st.Message)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := etcdSnapshot(t, s)
			r := sendWire(t, s, tc.method, tc.path, tc.contentType, tc.body)
			if r.code != tc.code {
				t.Fatalf("%d, want %d\n%s", r.code, tc.code, r.body)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
			if diff := snapshotDiff(before, etcdSnapshot(t, s)); len(diff) > 0 {
				t.Errorf("etcd changed by a dry run: %v", diff)
			}
		})
	}
	if cm, err := c.CoreV1().ConfigMaps("default").Get(ctx, "kept", metav1.GetOptions{}); err != nil || cm.Data["a"] != "1" || cm.Data["b"] != "" {
		t.Errorf("after dry runs: %v %v", cm, err)
	}
	if _, err := c.CoreV1().ConfigMaps("default").Get(ctx, "applied", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a dry-run apply created: %v", err)
	}
}
