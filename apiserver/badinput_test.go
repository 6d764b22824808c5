package apiserver_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// etcdSnapshot returns every key and its modification revision under /registry/.
func etcdSnapshot(t *testing.T, s *apiservertest.Server) map[string]int64 {
	t.Helper()
	resp, err := s.Etcd.Get(context.Background(), "/registry/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, kv := range resp.Kvs {
		// the servers' own heartbeat (the kubernetes Service's endpoint leases) is rewritten
		// every few seconds whatever the clients do
		if strings.HasPrefix(string(kv.Key), masterLeasesPrefix) {
			continue
		}
		out[string(kv.Key)] = kv.ModRevision
	}
	return out
}

// masterLeasesPrefix is where each API server renews its lease on the kubernetes Service's
// endpoints (apiserver/masterleases.go).
const masterLeasesPrefix = "/registry/masterleases/"

func sameSnapshot(a, b map[string]int64) bool { return len(snapshotDiff(a, b)) == 0 }

// snapshotDiff names the keys added, removed or rewritten between two snapshots.
func snapshotDiff(a, b map[string]int64) []string {
	var diff []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			diff = append(diff, "removed "+k)
		} else if w != v {
			diff = append(diff, "rewritten "+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			diff = append(diff, "added "+k)
		}
	}
	slices.Sort(diff)
	return diff
}

func TestBadInputGetsUpstreamsAnswerAndStoresNothing(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	if _, err := s.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "doomed"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "exists"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Client.CoreV1().Namespaces().Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	big := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"a":"` + strings.Repeat("x", 3<<20) + `"}}`

	cases := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		code        int32
		reason      metav1.StatusReason
		message     string
	}{
		{"body over 3 MiB", "POST", "/api/v1/namespaces/default/configmaps", "application/json", big,
			413, metav1.StatusReasonRequestEntityTooLarge, "Request entity too large: limit is 3145728"},
		{"malformed JSON", "POST", "/api/v1/namespaces/default/configmaps", "application/json", `{"apiVersion":"v1","kind":"ConfigMap",`,
			400, metav1.StatusReasonBadRequest, ""},
		{"malformed YAML", "POST", "/api/v1/namespaces/default/configmaps", "application/yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: [name: x\n",
			400, metav1.StatusReasonBadRequest, ""},
		{"apiVersion not the URL's", "POST", "/api/v1/namespaces/default/configmaps", "application/json", `{"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"name":"x"}}`,
			400, metav1.StatusReasonBadRequest, "the API version in the data (apps/v1) does not match the expected API version (v1)"},
		{"kind not the URL's", "POST", "/api/v1/namespaces/default/configmaps", "application/json", `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}`,
			400, metav1.StatusReasonBadRequest, ""},
		{"name not a DNS subdomain", "POST", "/api/v1/namespaces/default/configmaps", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}`,
			422, metav1.StatusReasonInvalid, `ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
		{"namespace in body differs", "POST", "/api/v1/namespaces/default/configmaps", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"other"}}`,
			400, metav1.StatusReasonBadRequest, "the namespace of the provided object does not match the namespace sent on the request"},
		{"missing namespace", "POST", "/api/v1/namespaces/nowhere/configmaps", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}`,
			404, metav1.StatusReasonNotFound, `namespaces "nowhere" not found`},
		{"terminating namespace", "POST", "/api/v1/namespaces/doomed/configmaps", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}`,
			403, metav1.StatusReasonForbidden, `configmaps is forbidden: unable to create new content in namespace doomed because it is being terminated`},
		{"already exists", "POST", "/api/v1/namespaces/default/configmaps", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"exists"}}`,
			409, metav1.StatusReasonAlreadyExists, `configmaps "exists" already exists`},
		{"name in body differs from URL", "PUT", "/api/v1/namespaces/default/configmaps/exists", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"other"}}`,
			400, metav1.StatusReasonBadRequest, "the name of the object (other) does not match the name on the URL (exists)"},
		{"unsupported field selector", "GET", "/api/v1/namespaces/default/pods?fieldSelector=spec.bogus%3Dx", "", "",
			400, metav1.StatusReasonBadRequest, "field label not supported: spec.bogus"},
		{"immortal namespace", "DELETE", "/api/v1/namespaces/default", "", "",
			403, metav1.StatusReasonForbidden, `namespaces "default" is forbidden: this namespace may not be deleted`},
		{"unknown resource", "GET", "/api/v1/frobs", "", "",
			404, metav1.StatusReasonNotFound, "the server could not find the requested resource"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := etcdSnapshot(t, s)
			req := s.Client.CoreV1().RESTClient().Verb(tc.method).AbsPath(strings.Split(tc.path, "?")[0])
			if i := strings.Index(tc.path, "?"); i >= 0 {
				k, v, _ := strings.Cut(tc.path[i+1:], "=")
				req = req.Param(k, strings.ReplaceAll(v, "%3D", "="))
			}
			if tc.body != "" {
				req = req.SetHeader("Content-Type", tc.contentType).Body([]byte(tc.body))
			}
			err := req.Do(ctx).Error()
			var se *apierrors.StatusError
			if !asStatus(err, &se) {
				t.Fatalf("error %v (%T), want a Status", err, err)
			}
			st := se.ErrStatus
			if st.Code != tc.code || st.Reason != tc.reason {
				t.Errorf("code %d reason %q, want %d %q (message %q)", st.Code, st.Reason, tc.code, tc.reason, st.Message)
			}
			if tc.message != "" && st.Message != tc.message {
				t.Errorf("message\n got %q\nwant %q", st.Message, tc.message)
			}
			if after := etcdSnapshot(t, s); !sameSnapshot(before, after) {
				t.Errorf("etcd changed by a rejected request")
			}
		})
	}
}

func asStatus(err error, out **apierrors.StatusError) bool {
	se, ok := err.(*apierrors.StatusError)
	if ok {
		*out = se
	}
	return ok
}

func TestAnonymousRequestGetsUnauthorizedStatus(t *testing.T) {
	s := apiservertest.Start(t)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.PKI.CAPool}}}
	resp, err := client.Get(s.URL + "/api/v1/namespaces/default/pods")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var st metav1.Status
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	if resp.StatusCode != 401 || st.Kind != "Status" || st.Reason != metav1.StatusReasonUnauthorized || st.Message != "Unauthorized" || st.Status != "Failure" {
		t.Errorf("anonymous request: %d %s", resp.StatusCode, body)
	}
	// health is public, as upstream's system:public-info-viewer allows
	resp2, err := client.Get(s.URL + "/readyz?verbose")
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	body2, _ := io.ReadAll(resp2.Body)
	if resp2.StatusCode != 200 || !strings.Contains(string(body2), "[+]etcd ok") || !strings.HasSuffix(string(body2), "readyz check passed\n") {
		t.Errorf("/readyz?verbose: %d %q", resp2.StatusCode, body2)
	}
}

func TestBearerTokenFromTokenFileAuthenticates(t *testing.T) {
	tokenFile := t.TempDir() + "/tokens.csv"
	if err := os.WriteFile(tokenFile, []byte(`s3cret,alice,1001,"dev,ops"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := apiservertest.Start(t, func(c *apiserver.Config) { c.TokenFile = tokenFile })
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.PKI.CAPool}}}
	// discovery is open to every authenticated user (system:discovery), so the answer tells
	// authentication alone
	for token, want := range map[string]int{"s3cret": 200, "wrong": 401} {
		req, _ := http.NewRequest("GET", s.URL+"/api/v1", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("token %q: %d, want %d", token, resp.StatusCode, want)
		}
	}
}
