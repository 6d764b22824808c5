package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/controllers"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
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

func startSkiffUp(t *testing.T, bin, dataDir string, port int, flags ...string) *skiffProcess {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"up", "--data-dir", dataDir, "--port", strconv.Itoa(port)}, flags...)...)
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

	first := startSkiffUp(t, bin, dataDir, port, "--container-runtime-endpoint=fake")
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

	second := startSkiffUp(t, bin, dataDir, port, "--container-runtime-endpoint=fake")
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

func TestSkiffUpRunsPodsInItsOwnContainerdAndLeavesNothingBehindOnSIGTERM(t *testing.T) {
	requireContainerd(t)
	bin := buildSkiff(t)
	dataDir := shortTempDir(t, "skiff-up-")
	// whatever happens below, nothing of this test's containerd outlives it
	t.Cleanup(func() { reapUnder(t, dataDir) })
	imageDir := t.TempDir()
	writeBusybox(t, filepath.Join(imageDir, "busybox.tar"), "skiff.local/busybox:1", false)
	port := freePort(t)
	kubeconfig := filepath.Join(dataDir, "kubeconfig")

	up := startSkiffUp(t, bin, dataDir, port, "--image-dir", imageDir)
	t.Cleanup(func() { up.terminate(t) }) // before startSkiffUp's kill: let up clean after itself
	up.waitFor(t, "ready")
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()

	var node *corev1.Node
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) == 0 {
			return false, nil
		}
		node = &nodes.Items[0]
		return controllers.IsNodeReady(node), nil
	}); err != nil {
		t.Fatalf("skiff up's node never became Ready: %+v", node)
	}
	if v := node.Status.NodeInfo.ContainerRuntimeVersion; !strings.HasPrefix(v, "containerd://") {
		t.Errorf("node runs %q, want skiff up's own containerd", v)
	}
	// Ready is posted only once --image-dir is imported
	if images := criImages(t, "unix://"+filepath.Join(dataDir, "containerd", "containerd.sock")); !slices.Contains(images, "skiff.local/busybox:1") {
		t.Errorf("the node is Ready but containerd has no skiff.local/busybox:1 from --image-dir: %v", images)
	}

	// the ServiceAccount admission plugin wants the namespace's default account first
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatal("no default service account")
	}
	grace := int64(1)
	if _, err := client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "from-image-dir"},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name: "c", Image: "skiff.local/busybox:1", ImagePullPolicy: corev1.PullNever,
				Command: []string{"sleep", "3600"},
			}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pod *corev1.Pod
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		pod, err = client.CoreV1().Pods("default").Get(ctx, "from-image-dir", metav1.GetOptions{})
		if apierrors.IsNotFound(err) || err != nil {
			return false, nil
		}
		return pod.Status.Phase == corev1.PodRunning, nil
	}); err != nil {
		t.Fatalf("the pod never ran: %+v", pod.Status)
	}

	if err := up.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := up.cmd.Wait(); err != nil {
		t.Errorf("skiff up after SIGTERM: %v, want exit 0", err)
	}
	if left := processesUnder(dataDir); len(left) > 0 {
		t.Errorf("processes of skiff up's containerd outlived it:\n%s", strings.Join(left, "\n"))
	}
	if left := mountsUnder(dataDir); len(left) > 0 {
		t.Errorf("still mounted under the data dir after skiff up stopped: %v", left)
	}
	conf, err := os.ReadFile(filepath.Join(dataDir, "containerd", "cni", "net.d", "10-skiff.conflist"))
	if err != nil {
		t.Fatalf("no pod network config: %v", err)
	}
	var network struct{ Plugins []struct{ Bridge string } }
	if err := json.Unmarshal(conf, &network); err != nil || network.Plugins[0].Bridge == "" {
		t.Fatalf("pod network config %s: %v", conf, err)
	}
	if _, err := os.Stat(filepath.Join("/sys/class/net", network.Plugins[0].Bridge)); err == nil {
		t.Errorf("the pods' bridge %s outlived skiff up", network.Plugins[0].Bridge)
	}
}

// terminate stops up as a service manager would, if it still runs, and waits for it.
func (p *skiffProcess) terminate(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Error("skiff up did not stop within a minute of SIGTERM")
		p.cmd.Process.Kill()
		<-done
	}
}

// processesUnder lists ("pid: cmdline") the processes whose command line names dir
// (containerd, its shims) or whose root is beneath it (the containers).
func processesUnder(dir string) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		root, _ := os.Readlink(filepath.Join("/proc", e.Name(), "root"))
		args := strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " ")
		if strings.Contains(args, dir) || strings.HasPrefix(root, dir+"/") {
			found = append(found, fmt.Sprintf("%d: %s", pid, args))
		}
	}
	return found
}

// mountsUnder lists the mount points beneath dir.
func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mounts")
	var found []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			found = append(found, f[1])
		}
	}
	return found
}

// reapUnder kills what a failed test left running under dir and unmounts what it left
// mounted, so that dir can go.
func reapUnder(t *testing.T, dir string) {
	for _, p := range processesUnder(dir) {
		pid, _ := strconv.Atoi(strings.SplitN(p, ":", 2)[0])
		t.Logf("killing a leftover: %s", p)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if err := unmountUnder(dir); err != nil {
		t.Logf("unmount leftovers: %v", err)
	}
}
