package apiserver_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// kubectlRun is one kubectl binary pointed at a test server.
type kubectlRun struct {
	t          *testing.T
	bin, kcfg  string
	home, dir  string
	lastStderr string
}

// run runs kubectl and returns stdout, stderr and whether it succeeded.
func (k *kubectlRun) run(args ...string) (string, string, bool) {
	k.t.Helper()
	cmd := exec.Command(k.bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+k.kcfg, "HOME="+k.home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		if _, exited := err.(*exec.ExitError); !exited {
			k.t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
		}
	}
	return stdout.String(), stderr.String(), err == nil
}

// ok runs kubectl, fails the test if it fails, and returns stdout.
func (k *kubectlRun) ok(args ...string) string {
	k.t.Helper()
	out, errOut, ok := k.run(args...)
	if !ok {
		k.t.Fatalf("kubectl %s failed:\n%s%s", strings.Join(args, " "), out, errOut)
	}
	k.lastStderr = errOut
	return out
}

// manifest writes a manifest file and returns its path.
func (k *kubectlRun) manifest(name, content string) string {
	k.t.Helper()
	p := filepath.Join(k.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		k.t.Fatal(err)
	}
	return p
}

func configMapManifest(name string, data ...string) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n  namespace: default\ndata:\n")
	for i := 0; i+1 < len(data); i += 2 {
		b.WriteString("  " + data[i] + ": \"" + data[i+1] + "\"\n")
	}
	return b.String()
}

// kubectlSuffix names a kubectl binary's objects apart from another's.
func kubectlSuffix(bin string) string {
	s := strings.TrimPrefix(filepath.Base(bin), "kubectl")
	s = strings.Trim(strings.ReplaceAll(s, ".", "-"), "-")
	if s == "" {
		return "path"
	}
	return s
}

func TestStockKubectlServerSideApplyConflictsAndForce(t *testing.T) {
	s := apiservertest.Start(t)
	kcfg := filepath.Join(s.DataDir, "kubeconfig")
	if err := s.PKI.WriteKubeconfig(kcfg, s.URL); err != nil {
		t.Fatal(err)
	}
	for _, bin := range kubectlBinaries(t) {
		t.Run(filepath.Base(bin), func(t *testing.T) {
			k := &kubectlRun{t: t, bin: bin, kcfg: kcfg, home: t.TempDir(), dir: t.TempDir()}
			name := "ssa-" + kubectlSuffix(bin)
			f := k.manifest("cm.yaml", configMapManifest(name, "a", "1"))
			if out := k.ok("apply", "--server-side", "-f", f); strings.TrimSpace(out) != "configmap/"+name+" serverside-applied" {
				t.Errorf("first server-side apply: %q", out)
			}
			f = k.manifest("cm.yaml", configMapManifest(name, "a", "2", "b", "x"))
			if out := k.ok("apply", "--server-side", "-f", f); strings.TrimSpace(out) != "configmap/"+name+" serverside-applied" {
				t.Errorf("second server-side apply: %q", out)
			}
			if out := k.ok("get", "cm", name, "-o", "jsonpath={.data.a}{.data.b}"); out != "2x" {
				t.Errorf("after the second apply: %q", out)
			}

			// another manager changing kubectl's field: kubectl's conflict text
			other := k.manifest("other.yaml", configMapManifest(name, "a", "3"))
			out, errOut, ok := k.run("apply", "--server-side", "--field-manager=other", "-f", other)
			if ok {
				t.Fatalf("conflicting apply succeeded: %s", out)
			}
			if !strings.HasPrefix(errOut, `error: Apply failed with 1 conflict: conflict with "kubectl": .data.a`+"\n") ||
				!strings.Contains(errOut, "Please review the fields above--they currently have other managers.") ||
				!strings.Contains(errOut, "--force-conflicts") {
				t.Errorf("conflict output:\n%s", errOut)
			}
			if out := k.ok("apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", other); strings.TrimSpace(out) != "configmap/"+name+" serverside-applied" {
				t.Errorf("forced apply: %q", out)
			}
			if out := k.ok("get", "cm", name, "-o", `jsonpath={.data.a}{range .metadata.managedFields[*]} {.manager}/{.operation}{end}`); out != "3 kubectl/Apply other/Apply" {
				t.Errorf("after the takeover: %q", out)
			}
			k.ok("delete", "cm", name)
		})
	}
}

func TestStockKubectlClientSideApplyCreatesModifiesAndPrunes(t *testing.T) {
	s := apiservertest.Start(t)
	kcfg := filepath.Join(s.DataDir, "kubeconfig")
	if err := s.PKI.WriteKubeconfig(kcfg, s.URL); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, bin := range kubectlBinaries(t) {
		t.Run(filepath.Base(bin), func(t *testing.T) {
			k := &kubectlRun{t: t, bin: bin, kcfg: kcfg, home: t.TempDir(), dir: t.TempDir()}
			name := "csa-" + kubectlSuffix(bin)
			f := k.manifest("cm.yaml", configMapManifest(name, "a", "1", "b", "2"))
			if out := k.ok("apply", "-f", f); strings.TrimSpace(out) != "configmap/"+name+" created" {
				t.Errorf("first apply: %q", out)
			}
			f = k.manifest("cm.yaml", configMapManifest(name, "a", "9"))
			if out := k.ok("apply", "-f", f); strings.TrimSpace(out) != "configmap/"+name+" configured" {
				t.Errorf("second apply: %q", out)
			}
			if out := k.ok("apply", "-f", f); strings.TrimSpace(out) != "configmap/"+name+" unchanged" {
				t.Errorf("third apply: %q", out)
			}
			cm, err := s.Client.CoreV1().ConfigMaps("default").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(cm.Data) != 1 || cm.Data["a"] != "9" {
				t.Errorf("data after pruning b: %v", cm.Data)
			}
			if last := cm.Annotations["kubectl.kubernetes.io/last-applied-configuration"]; !strings.Contains(last, `"a":"9"`) || strings.Contains(last, `"b"`) {
				t.Errorf("last-applied-configuration: %q", last)
			}
			managers := map[string]metav1.ManagedFieldsOperationType{}
			for _, e := range cm.ManagedFields {
				managers[e.Manager] = e.Operation
			}
			if managers["kubectl-client-side-apply"] != metav1.ManagedFieldsOperationUpdate {
				t.Errorf("managedFields: %+v", cm.ManagedFields)
			}

			// taking over a client-side applied field server-side is a conflict with the
			// client-side applier, in upstream's words
			f = k.manifest("cm.yaml", configMapManifest(name, "a", "10"))
			_, errOut, ok := k.run("apply", "--server-side", "--field-manager=ssa", "-f", f)
			if ok || !strings.HasPrefix(errOut, `error: Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using v1: .data.a`) {
				t.Errorf("server-side apply over client-side apply: ok=%v\n%s", ok, errOut)
			}
			k.ok("delete", "-f", f)
		})
	}
}

func TestStockKubectlFieldValidationAndServerDryRun(t *testing.T) {
	s := apiservertest.Start(t)
	kcfg := filepath.Join(s.DataDir, "kubeconfig")
	if err := s.PKI.WriteKubeconfig(kcfg, s.URL); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cms := s.Client.CoreV1().ConfigMaps("default")
	for _, bin := range kubectlBinaries(t) {
		t.Run(filepath.Base(bin), func(t *testing.T) {
			k := &kubectlRun{t: t, bin: bin, kcfg: kcfg, home: t.TempDir(), dir: t.TempDir()}
			name := "fv-" + kubectlSuffix(bin)
			bad := k.manifest("bad.yaml", configMapManifest(name, "a", "1")+"spec:\n  foo: bar\n")

			out, errOut, ok := k.run("create", "-f", bad)
			if ok {
				t.Fatalf("create with an unknown field succeeded: %s", out)
			}
			want := `Error from server (BadRequest): error when creating "` + bad + `": ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "spec"` + "\n"
			if errOut != want {
				t.Errorf("strict create:\n got %q\nwant %q", errOut, want)
			}

			out = k.ok("create", "--validate=warn", "-f", bad)
			if strings.TrimSpace(out) != "configmap/"+name+" created" || k.lastStderr != `Warning: unknown field "spec"`+"\n" {
				t.Errorf("--validate=warn: %q %q", out, k.lastStderr)
			}
			k.ok("delete", "cm", name)
			out = k.ok("create", "--validate=false", "-f", bad)
			if strings.TrimSpace(out) != "configmap/"+name+" created" || k.lastStderr != "" {
				t.Errorf("--validate=false: %q %q", out, k.lastStderr)
			}
			k.ok("delete", "cm", name)

			// server-side dry runs print what would be stored and store nothing
			good := k.manifest("good.yaml", configMapManifest(name, "a", "1"))
			before := etcdSnapshot(t, s)
			out = k.ok("create", "--dry-run=server", "-o", "yaml", "-f", good)
			if !strings.Contains(out, "name: "+name) || !strings.Contains(out, "uid: ") || !strings.Contains(out, "creationTimestamp: \"") ||
				strings.Contains(out, "resourceVersion") {
				t.Errorf("create --dry-run=server -o yaml:\n%s", out)
			}
			if _, err := cms.Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("dry-run create stored the object: %v", err)
			}
			k.ok("create", "-f", good)
			before = etcdSnapshot(t, s)
			// kubectl 1.37 names the namespace
			if out := strings.TrimSpace(k.ok("delete", "--dry-run=server", "cm", name)); out != `configmap "`+name+`" deleted (server dry run)` &&
				out != `configmap "`+name+`" deleted from default namespace (server dry run)` {
				t.Errorf("delete --dry-run=server: %q", out)
			}
			if out := k.ok("apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", k.manifest("more.yaml", configMapManifest(name, "a", "5"))); strings.TrimSpace(out) != "configmap/"+name+" serverside-applied (server dry run)" {
				t.Errorf("apply --server-side --dry-run=server: %q", out)
			}
			// only ConfigMaps are the dry runs' to write: the server's own background writers
			// may touch other keys meanwhile
			if diff := snapshotDiff(configMapKeys(before), configMapKeys(etcdSnapshot(t, s))); len(diff) > 0 {
				t.Errorf("etcd changed by server-side dry runs: %v", diff)
			}
			if out := k.ok("get", "cm", name, "-o", "jsonpath={.data.a}"); out != "1" {
				t.Errorf("after dry runs: %q", out)
			}
			k.ok("delete", "cm", name)
		})
	}
}

// configMapKeys are the ConfigMaps' keys of an etcd snapshot.
func configMapKeys(snapshot map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range snapshot {
		if strings.HasPrefix(k, "/registry/configmaps/") {
			out[k] = v
		}
	}
	return out
}
