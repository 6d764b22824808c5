package apiserver_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func TestDiscoveryServesTheTable(t *testing.T) {
	s := apiservertest.Start(t)
	dc, err := discovery.NewDiscoveryClientForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	groups, resources, err := dc.ServerGroupsAndResources()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, g := range groups {
		names[g.Name] = true
	}
	for _, want := range []string{"", "apps", "coordination.k8s.io", "events.k8s.io"} {
		if !names[want] {
			t.Errorf("group %q missing from discovery", want)
		}
	}
	served := map[string]bool{}
	for _, list := range resources {
		for _, r := range list.APIResources {
			served[list.GroupVersion+"/"+r.Name] = true
		}
	}
	for _, r := range apis.Builtin.All() {
		if !served[r.GroupVersion.String()+"/"+r.Name] {
			t.Errorf("%s/%s missing from discovery", r.GroupVersion, r.Name)
		}
		for _, sub := range r.Subresources {
			if !served[r.GroupVersion.String()+"/"+r.Name+"/"+sub.Name] {
				t.Errorf("%s/%s/%s missing from discovery", r.GroupVersion, r.Name, sub.Name)
			}
		}
	}
	// kubectl's short names resolve through the REST mapper built from discovery
	grs, err := restmapper.GetAPIGroupResources(dc)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewShortcutExpander(restmapper.NewDiscoveryRESTMapper(grs), dc, nil)
	for short, want := range map[string]string{"po": "pods", "rs": "replicasets", "ns": "namespaces", "cm": "configmaps", "sa": "serviceaccounts", "no": "nodes"} {
		gvr, err := mapper.ResourceFor(schema.GroupVersionResource{Resource: short})
		if err != nil || gvr.Resource != want {
			t.Errorf("short name %s → %v %v, want %s", short, gvr, err, want)
		}
	}
}

func TestVersionReportsKubernetesAndSkiff(t *testing.T) {
	s := apiservertest.Start(t)
	body, err := s.Client.Discovery().RESTClient().Get().AbsPath("/version").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Major, Minor, GitVersion string }
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	if v.Major != "1" || v.Minor != "37" || v.GitVersion != "v1.37.0+skiff."+apis.SkiffVersion {
		t.Errorf("version %+v", v)
	}
}

func TestMetricsCountRequests(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	if _, err := s.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	w, err := s.Client.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	body, err := s.Client.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`apiserver_request_total{code="200",group="",resource="namespaces",subresource="",verb="list",version="v1"}`,
		`apiserver_request_duration_seconds_bucket{group="",resource="namespaces",subresource="",verb="list",version="v1"`,
		`etcd_request_duration_seconds_bucket{operation="create",type="namespaces"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// other tests' servers in this process count too: at least this watch is open
	if !regexp.MustCompile(`apiserver_registered_watchers\{group="",resource="configmaps"\} [1-9]`).Match(body) {
		t.Errorf("/metrics does not count the open watch")
	}
}

func TestAggregatedDiscoveryWithETag(t *testing.T) {
	s := apiservertest.Start(t)
	client := &http.Client{Transport: mustTransport(t, s)}
	for _, version := range []string{"v2", "v2beta1"} {
		accept := "application/json;g=apidiscovery.k8s.io;v=" + version + ";as=APIGroupDiscoveryList,application/json"
		req, _ := http.NewRequest("GET", s.URL+"/apis", nil)
		req.Header.Set("Accept", accept)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var doc apidiscoveryv2.APIGroupDiscoveryList
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatal(err)
		}
		if doc.APIVersion != "apidiscovery.k8s.io/"+version || len(doc.Items) == 0 ||
			!strings.Contains(resp.Header.Get("Content-Type"), "v="+version) {
			t.Errorf("%s: apiVersion %q, %d groups, content type %q", version, doc.APIVersion, len(doc.Items), resp.Header.Get("Content-Type"))
		}
		etag := resp.Header.Get("ETag")
		req.Header.Set("If-None-Match", etag)
		again, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		again.Body.Close()
		if etag == "" || again.StatusCode != http.StatusNotModified {
			t.Errorf("%s: ETag %q, revalidation answered %d, want 304", version, etag, again.StatusCode)
		}
	}
}

func mustTransport(t *testing.T, s *apiservertest.Server) http.RoundTripper {
	t.Helper()
	rt, err := rest.TransportFor(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}
