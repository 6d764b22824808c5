package apiserver_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// crdFixtures are CustomResourceDefinitions written after real projects' published schemas
// (cert-manager's Certificate, the Gateway API's HTTPRoute, Prometheus operator's
// ServiceMonitor, and the documentation's CronTab).
var crdFixtures = filepath.Join("..", "apis", "customresource", "testdata")

func TestStockKubectlInstallsRealCRDsAndUsesTheirResources(t *testing.T) {
	s := apiservertest.Start(t)
	kubectl := kubectlRunner(t, kubectlOnPath(t), adminKubeconfig(t, s), nil)
	kubectlMayFail := kubectlCommand(t, kubectlOnPath(t), adminKubeconfig(t, s), nil)

	out := kubectl("apply", "-f", crdFixtures)
	for _, name := range []string{"certificates.cert-manager.io", "crontabs.stable.example.com",
		"httproutes.gateway.networking.k8s.io", "servicemonitors.monitoring.coreos.com"} {
		if !strings.Contains(out, "customresourcedefinition.apiextensions.k8s.io/"+name+" created") {
			t.Errorf("apply: %s", out)
		}
	}
	kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")

	// a Certificate: created, printed in its columns, explained from its published schema
	kubectl("apply", "--validate=strict", "-f", manifest(t, `
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: web, namespace: default}
spec:
  secretName: web-tls
  dnsNames: [web.example.com]
  issuerRef: {name: letsencrypt, kind: ClusterIssuer}
`))
	out = kubectl("get", "certificates")
	if lines := strings.Split(out, "\n"); len(lines) < 2 || strings.Join(strings.Fields(lines[0]), " ") != "NAME READY SECRET AGE" ||
		!strings.HasPrefix(strings.Join(strings.Fields(lines[1]), " "), "web web-tls ") {
		t.Errorf("get certificates:\n%s", out)
	}
	if out = kubectl("get", "certificates", "-o", "wide"); !strings.Contains(out, "ISSUER") || !strings.Contains(out, "letsencrypt") {
		t.Errorf("get -o wide:\n%s", out)
	}
	if out = kubectl("explain", "certificate.spec.secretName"); !strings.Contains(out, "FIELD: secretName <string>") {
		t.Errorf("explain:\n%s", out)
	}
	// client-side validation from the published schema refuses an unknown field
	if out, err := kubectlMayFail("apply", "--validate=strict", "-f", manifest(t, `
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: bad, namespace: default}
spec: {secretName: x, issuerRef: {name: y}, colour: blue}
`)); err == nil || !strings.Contains(out, `unknown field "spec.colour"`) {
		t.Errorf("apply of an unknown field: %v\n%s", err, out)
	}
	// the schema refuses, server side, what it requires
	if out, err := kubectlMayFail("create", "-f", manifest(t, `
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: bad, namespace: default}
spec: {secretName: x}
`)); err == nil || !strings.Contains(out, `spec.issuerRef: Required value`) {
		t.Errorf("create without a required field: %v\n%s", err, out)
	}

	// a CronTab scaled through its scale subresource, by its short name
	kubectl("apply", "-f", manifest(t, `
apiVersion: stable.example.com/v1
kind: CronTab
metadata: {name: nightly, namespace: default}
spec: {cronSpec: "0 0 * * *", replicas: 1}
`))
	kubectl("scale", "ct/nightly", "--replicas=3")
	if out = kubectl("get", "ct", "nightly", "-o", "jsonpath={.spec.replicas}"); out != "3" {
		t.Errorf("replicas after scale: %q", out)
	}

	// deleting the definitions deletes their objects and their API
	kubectl("delete", "-f", crdFixtures, "--timeout=60s")
	if out, err := kubectlMayFail("get", "certificates"); err == nil || !strings.Contains(out, "NotFound") {
		t.Errorf("get after delete: %v\n%s", err, out)
	}
}

// manifest writes a YAML manifest to a file of its own and returns its path.
func manifest(t *testing.T, yaml string) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(yaml); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}
