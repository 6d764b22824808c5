package deployment_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestKubectlRolloutVerbs drives a Deployment through stock kubectl as a user would: create,
// rollout status, set image, rollout history, rollout undo, rollout restart, scale, get rs.
func TestKubectlRolloutVerbs(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("no kubectl on PATH")
	}
	c := startCluster(t)
	kubeconfig := filepath.Join(c.s.DataDir, "kubeconfig")
	if err := c.s.PKI.WriteKubeconfig(kubeconfig, c.s.URL); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(kubectl, args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "HOME="+home)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	ctx := context.Background()

	run("create", "deployment", "web", "--image=busybox:1.36", "--replicas=3")
	if out := run("rollout", "status", "deployment/web", "--timeout=90s"); !strings.Contains(out, `deployment "web" successfully rolled out`) {
		t.Errorf("rollout status:\n%s", out)
	}
	run("set", "image", "deployment/web", "busybox=busybox:1.37")
	run("rollout", "status", "deployment/web", "--timeout=90s")
	history := run("rollout", "history", "deployment/web")
	if !strings.Contains(history, "REVISION") || !strings.Contains(history, "1 ") || !strings.Contains(history, "2 ") {
		t.Errorf("rollout history:\n%s", history)
	}
	if out := run("rollout", "history", "deployment/web", "--revision=1"); !strings.Contains(out, "busybox:1.36") {
		t.Errorf("rollout history --revision=1:\n%s", out)
	}

	run("rollout", "undo", "deployment/web")
	run("rollout", "status", "deployment/web", "--timeout=90s")
	d, err := c.client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "busybox:1.36" || d.Annotations["deployment.kubernetes.io/revision"] != "3" {
		t.Errorf("after undo: image %s revision %s, want busybox:1.36 at revision 3", img, d.Annotations["deployment.kubernetes.io/revision"])
	}
	byImage, _, _ := c.livePods(ctx, "web")
	if byImage["busybox:1.36"] != 3 || byImage["busybox:1.37"] != 0 {
		t.Errorf("pods after undo: %v", byImage)
	}

	run("rollout", "restart", "deployment/web")
	run("rollout", "status", "deployment/web", "--timeout=90s")
	if rss := c.replicaSets(ctx, "web"); len(rss) != 3 {
		t.Errorf("%d replica sets after a restart, want 3 (two images and the restart)", len(rss))
	}

	run("scale", "deployment/web", "--replicas=5")
	run("rollout", "status", "deployment/web", "--timeout=90s")
	out := run("get", "rs", "-l", "app=web")
	var current *appsv1.ReplicaSet
	for _, rs := range c.replicaSets(ctx, "web") {
		if *rs.Spec.Replicas == 5 {
			current = &rs
		}
	}
	if current == nil || !strings.Contains(out, current.Name) {
		t.Fatalf("get rs:\n%s\nwant the current replica set with 5 replicas", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, current.Name+" ") && len(strings.Fields(line)) >= 4 {
			if f := strings.Fields(line); f[1] != "5" || f[2] != "5" || f[3] != "5" {
				t.Errorf("get rs line %q, want DESIRED CURRENT READY 5 5 5", line)
			}
		}
	}
}
