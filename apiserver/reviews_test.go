package apiserver_test

import (
	"strings"
	"testing"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func TestKubectlAuthWhoamiAndCanI(t *testing.T) {
	s := apiservertest.Start(t)
	kubeconfig := adminKubeconfig(t, s)
	bin := kubectlOnPath(t)
	run := kubectlRunner(t, bin, kubeconfig, nil)
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
