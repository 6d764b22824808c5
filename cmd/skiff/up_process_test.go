package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// skiffProcess is `skiff up` running as its own process, as a user runs it.
type skiffProcess struct {
	cmd   *exec.Cmd
	lines chan string
}

func buildSkiff(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "skiff")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func startSkiffUp(t *testing.T, bin, dataDir string, port int) *skiffProcess {
	t.Helper()
	cmd := exec.Command(bin, "up", "--data-dir", dataDir, "--port", strconv.Itoa(port))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &skiffProcess{cmd: cmd, lines: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return p
}

// waitFor returns the first stdout line containing want.
func (p *skiffProcess) waitFor(t *testing.T, want string) string {
	t.Helper()
	deadline := time.After(2 * time.Minute)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("skiff up exited before printing %q", want)
			}
			if strings.Contains(line, want) {
				return line
			}
		case <-deadline:
			t.Fatalf("skiff up never printed %q", want)
		}
	}
}

func (p *skiffProcess) interrupt(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("skiff up after SIGINT: %v, want exit 0", err)
	}
}

func TestSkiffUpProcessKeepsObjectsAcrossRestart(t *testing.T) {
	bin := buildSkiff(t)
	dataDir := t.TempDir()
	port := freePort(t)
	kubeconfig := filepath.Join(dataDir, "kubeconfig")

	first := startSkiffUp(t, bin, dataDir, port)
	if line := first.waitFor(t, "export KUBECONFIG="); line != "export KUBECONFIG="+kubeconfig {
		t.Errorf("export line %q", line)
	}
	first.waitFor(t, "ready")
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	if _, err := client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "survivor"}, Data: map[string]string{"k": "v"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	first.interrupt(t)

	second := startSkiffUp(t, bin, dataDir, port)
	second.waitFor(t, "ready")
	got, err := client.CoreV1().ConfigMaps("default").Get(ctx, "survivor", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("object lost across restart: %v", err)
	}
	if got.Data["k"] != "v" {
		t.Errorf("data %v", got.Data)
	}
	second.interrupt(t)
}
