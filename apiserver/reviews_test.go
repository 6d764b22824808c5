package apiserver_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func TestKubectlAuthWhoamiAndCanI(t *testing.T) {
	s := apiservertest.Start(t)
	kubeconfig := filepath.Join(s.DataDir, "kubeconfig")
	if err := s.PKI.WriteKubeconfig(kubeconfig, s.URL); err != nil {
		t.Fatal(err)
	}
	bin, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("no kubectl on PATH")
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	who := run("auth", "whoami")
	for _, want := range []string{"Username", "admin", "Groups", "system:masters", "system:authenticated"} {
		if !strings.Contains(who, want) {
			t.Errorf("auth whoami lacks %q:\n%s", want, who)
		}
	}
	if out := run("auth", "can-i", "create", "pods"); strings.TrimSpace(out) != "yes" {
		t.Errorf("auth can-i create pods: %q", out)
	}
	if out := run("auth", "can-i", "--list"); !strings.Contains(out, "*.*") {
		t.Errorf("auth can-i --list:\n%s", out)
	}
}
