package proxy

import (
	"io"
	"net/http/httptest"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestHealthChecksCountThisNodesReadyEndpointIPsOnceEach(t *testing.T) {
	local := func(ip string, port int32, ready bool) endpoint {
		return endpoint{ip: netip.MustParseAddr(ip), port: port, ready: ready, local: true}
	}
	svc := func(name string, etp corev1.ServiceExternalTrafficPolicy, hc int32) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: etp, HealthCheckNodePort: hc}}
	}
	services := []*corev1.Service{
		svc("local", corev1.ServiceExternalTrafficPolicyLocal, 31000),
		svc("cluster", corev1.ServiceExternalTrafficPolicyCluster, 0),
	}
	ports := []*servicePort{
		{namespace: "ns", name: "local", endpoints: []endpoint{local("10.0.0.1", 80, true), local("10.0.0.2", 80, false),
			{ip: netip.MustParseAddr("10.0.0.3"), port: 80, ready: true}}},
		{namespace: "ns", name: "local", endpoints: []endpoint{local("10.0.0.1", 443, true)}},
	}
	got := healthChecks(services, ports)
	if len(got) != 1 || got[0].name != "local" || got[0].port != 31000 || got[0].localEndpoints != 1 {
		t.Fatalf("health checks: %+v", got)
	}
}

func TestHealthCheckAnswersAsKubeProxy(t *testing.T) {
	healthy := true
	h := newHealthCheckServers(nil, func() bool { return healthy })
	s := &healthCheckServer{namespace: "ns", name: "web", localEndpoints: 2}
	for _, c := range []struct {
		endpoints int
		healthy   bool
		code      int
	}{{2, true, 200}, {0, true, 503}, {2, false, 503}} {
		s.localEndpoints, healthy = c.endpoints, c.healthy
		rec := httptest.NewRecorder()
		h.handler(s).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		body, _ := io.ReadAll(rec.Body)
		want := "{\n\t\"service\": {\n\t\t\"namespace\": \"ns\",\n\t\t\"name\": \"web\"\n\t},\n\t\"localEndpoints\": " +
			map[int]string{0: "0", 2: "2"}[c.endpoints] + ",\n\t\"serviceProxyHealthy\": " + map[bool]string{true: "true", false: "false"}[c.healthy] + "\n}"
		if rec.Code != c.code || string(body) != want || rec.Header().Get("Content-Type") != "application/json" ||
			rec.Header().Get("X-Load-Balancing-Endpoint-Weight") != map[int]string{0: "0", 2: "2"}[c.endpoints] {
			t.Errorf("%d endpoints, healthy %v: %d %q %v", c.endpoints, c.healthy, rec.Code, body, rec.Header())
		}
	}
}
