package apiserver_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// kubectlBinaries are the stock kubectl builds on this machine: the one on PATH and the
// versioned ones beside it.
func kubectlBinaries(t *testing.T) []string {
	path, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("no kubectl on PATH")
	}
	bins := []string{path}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		versioned, _ := filepath.Glob(filepath.Join(filepath.Dir(real), "kubectl.1.*"))
		bins = append(bins, versioned...)
	}
	// The newest, built from k8s.io/kubectl by `make kubectl` (tools/kubectl; .ci/run does).
	if built, err := filepath.Abs(filepath.Join("..", "bin", "kubectl-1.37")); err == nil {
		if _, err := os.Stat(built); err == nil {
			bins = append(bins, built)
		}
	}
	return bins
}

// adminKubeconfig writes a kubeconfig for the server's admin into its data dir.
func adminKubeconfig(t *testing.T, s *apiservertest.Server) string {
	t.Helper()
	kubeconfig := filepath.Join(s.DataDir, "kubeconfig")
	if err := s.PKI.WriteKubeconfig(kubeconfig, s.URL); err != nil {
		t.Fatal(err)
	}
	return kubeconfig
}

// kubectlCommand runs one kubectl binary against kubeconfig with args (after prefix) and env,
// with a home of its own, so that no discovery or OpenAPI cache is shared between binaries or
// tests, and returns what it printed.
func kubectlCommand(t *testing.T, bin, kubeconfig string, env []string, prefix ...string) func(args ...string) (string, error) {
	home := t.TempDir()
	return func(args ...string) (string, error) {
		cmd := exec.Command(bin, append(append([]string{}, prefix...), args...)...)
		cmd.Env = append(append(os.Environ(), "KUBECONFIG="+kubeconfig, "HOME="+home), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
}

// kubectlRunner is kubectlCommand failing the test when kubectl fails.
func kubectlRunner(t *testing.T, bin, kubeconfig string, env []string, prefix ...string) func(args ...string) string {
	kubectl := kubectlCommand(t, bin, kubeconfig, env, prefix...)
	return func(args ...string) string {
		t.Helper()
		out, err := kubectl(args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
}

// kubectlOnPath is the kubectl on PATH, or the test is skipped.
func kubectlOnPath(t *testing.T) string {
	bin, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("no kubectl on PATH")
	}
	return bin
}

func TestStockKubectlEverydayVerbs(t *testing.T) {
	s := apiservertest.Start(t)
	kubeconfig := adminKubeconfig(t, s)
	for _, bin := range kubectlBinaries(t) {
		t.Run(filepath.Base(bin), func(t *testing.T) {
			cm := "kc" + strings.ReplaceAll(strings.TrimPrefix(filepath.Base(bin), "kubectl"), ".", "-")
			run := kubectlRunner(t, bin, kubeconfig, nil)
			if out := run("get", "namespaces"); !strings.Contains(out, "kube-system") {
				t.Errorf("get namespaces:\n%s", out)
			}
			run("create", "configmap", cm, "--from-literal=a=b")
			if out := run("get", "cm", cm, "-o", "jsonpath={.data.a}"); out != "b" {
				t.Errorf("get cm jsonpath: %q", out)
			}
			run("label", "cm", cm, "tier=x")
			if out := run("get", "configmaps", "-l", "tier=x", "-o", "name"); strings.TrimSpace(out) != "configmap/"+cm {
				t.Errorf("get by label: %q", out)
			}
			run("patch", "cm", cm, "-p", `{"data":{"c":"d"}}`)
			if out := run("get", "cm", cm, "-o", "yaml"); !strings.Contains(out, "c: d") {
				t.Errorf("after patch:\n%s", out)
			}
			if out := run("api-resources"); !strings.Contains(out, "replicasets") || !strings.Contains(out, "rs") {
				t.Errorf("api-resources:\n%s", out)
			}
			run("delete", "cm", cm)
			if out, err := exec.Command(bin, "--kubeconfig", kubeconfig, "get", "cm", cm).CombinedOutput(); err == nil ||
				!strings.Contains(string(out), `configmaps "`+cm+`" not found`) {
				t.Errorf("get after delete: %v\n%s", err, out)
			}
		})
	}
}
