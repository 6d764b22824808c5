package apiserver_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// The tables stock kubectl prints from skiff's server-side Tables: the columns and cells
// upstream's kube-apiserver gives, as a user reads them. Ages of objects created by the test
// depend on the clock and read as AGE.

var (
	// kubectl separates columns by at least three spaces; cells hold at most one
	columnGap = regexp.MustCompile(`\s{2,}`)
	// an age of a few seconds or minutes
	freshAge = regexp.MustCompile(`^(\d+m)?\d+s$`)
)

// tableLines splits kubectl's table output into rows of cells, ages of just-created objects
// replaced by AGE.
func tableLines(out string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if line == "" {
			rows = append(rows, nil)
			continue
		}
		cells := columnGap.Split(strings.TrimSpace(line), -1)
		for i, c := range cells {
			if freshAge.MatchString(c) {
				cells[i] = "AGE"
			}
		}
		rows = append(rows, cells)
	}
	return rows
}

func row(cells ...string) []string { return cells }

func assertKubectlTable(t *testing.T, args []string, out string, want [][]string) {
	t.Helper()
	if got := tableLines(out); !reflect.DeepEqual(got, want) {
		t.Errorf("kubectl %s printed\n%s\ngot  %q\nwant %q", strings.Join(args, " "), out, got, want)
	}
}

type kubectl struct {
	t          *testing.T
	bin        string
	kubeconfig string
	home       string
}

func newKubectl(t *testing.T, s *apiservertest.Server, bin string) *kubectl {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := s.PKI.WriteKubeconfig(kubeconfig, s.URL); err != nil {
		t.Fatal(err)
	}
	return &kubectl{t: t, bin: bin, kubeconfig: kubeconfig, home: t.TempDir()}
}

func (k *kubectl) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, k.bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+k.kubeconfig, "HOME="+k.home)
	return cmd
}

func (k *kubectl) run(args ...string) string {
	k.t.Helper()
	out, err := k.command(context.Background(), args...).CombinedOutput()
	if err != nil {
		k.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// seedPrintedObjects creates one object of each kind in namespace shop, in states whose cells
// are known.
func seedPrintedObjects(t *testing.T, s *apiservertest.Server) {
	t.Helper()
	ctx := context.Background()
	c := s.Client
	longAgo := metav1.NewTime(time.Now().Add(-30 * time.Minute))
	must := func(_ interface{}, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}))

	setPodStatus := func(name, node string, status corev1.PodStatus) {
		t.Helper()
		p := testPod(name)
		p.Spec.NodeName = node
		created, err := c.CoreV1().Pods("shop").Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		created.Status = status
		must(c.CoreV1().Pods("shop").UpdateStatus(ctx, created, metav1.UpdateOptions{}))
	}
	setPodStatus("web", "node-1", corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.1.0.7", PodIPs: []corev1.PodIP{{IP: "10.1.0.7"}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "c", Image: "busybox:1.36", Ready: true, RestartCount: 2,
			State:                corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: longAgo}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, FinishedAt: longAgo}}}}})
	setPodStatus("crash", "node-1", corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.1.0.8", PodIPs: []corev1.PodIP{{IP: "10.1.0.8"}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "c", Image: "busybox:1.36", RestartCount: 5,
			State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, FinishedAt: longAgo}}}}})
	setPodStatus("done", "node-1", corev1.PodStatus{Phase: corev1.PodSucceeded,
		ContainerStatuses: []corev1.ContainerStatus{{Name: "c", Image: "busybox:1.36",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed", ExitCode: 0}}}}})
	setPodStatus("pending", "", corev1.PodStatus{Phase: corev1.PodPending})

	n, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1",
		Labels: map[string]string{"node-role.kubernetes.io/control-plane": ""}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status = corev1.NodeStatus{
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"}},
		Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}, {Type: corev1.NodeHostName, Address: "node-1"}},
		NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.37.0", OSImage: "Debian GNU/Linux 13 (trixie)", KernelVersion: "6.12.0-1-amd64",
			ContainerRuntimeVersion: "containerd://2.1.3"},
	}
	must(c.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}))
	must(c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-2"}, Spec: corev1.NodeSpec{Unschedulable: true}}, metav1.CreateOptions{}))

	rs, err := c.AppsV1().ReplicaSets("shop").Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-rs"},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](3), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}, {Name: "log", Image: "busybox:1.36"}}}}}},
		metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs.Status = appsv1.ReplicaSetStatus{Replicas: 3, ReadyReplicas: 2, AvailableReplicas: 2}
	must(c.AppsV1().ReplicaSets("shop").UpdateStatus(ctx, rs, metav1.UpdateOptions{}))

	must(c.CoreV1().Events("shop").Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "crash.1"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: "crash", FieldPath: "spec.containers{c}"},
		Reason:         "BackOff", Message: "Back-off restarting failed container c in pod crash_shop", Type: corev1.EventTypeWarning,
		Source: corev1.EventSource{Component: "kubelet", Host: "node-1"}, Count: 12,
		FirstTimestamp: metav1.NewTime(time.Now().Add(-45 * time.Minute)), LastTimestamp: longAgo}, metav1.CreateOptions{}))

	must(c.CoreV1().ConfigMaps("shop").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"},
		Data: map[string]string{"a": "1", "b": "2"}}, metav1.CreateOptions{}))
	must(c.CoreV1().Secrets("shop").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds"},
		Type: corev1.SecretTypeBasicAuth, Data: map[string][]byte{"username": []byte("u"), "password": []byte("p")}}, metav1.CreateOptions{}))
	must(c.CoreV1().ServiceAccounts("shop").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder"}}, metav1.CreateOptions{}))
	must(c.CoordinationV1().Leases("shop").Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "leader"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("web_7f3c")}}, metav1.CreateOptions{}))
}

func TestStockKubectlPrintsUpstreamTables(t *testing.T) {
	bins := kubectlBinaries(t)
	s := apiservertest.Start(t)
	seedPrintedObjects(t, s)
	k := newKubectl(t, s, bins[0])

	check := func(want [][]string, args ...string) {
		t.Helper()
		assertKubectlTable(t, args, k.run(args...), want)
	}
	check([][]string{
		row("NAME", "READY", "STATUS", "RESTARTS", "AGE"),
		row("crash", "0/1", "CrashLoopBackOff", "5 (30m ago)", "AGE"),
		row("done", "0/1", "Completed", "0", "AGE"),
		row("pending", "0/1", "Pending", "0", "AGE"),
		row("web", "1/1", "Running", "2 (30m ago)", "AGE"),
	}, "get", "pods", "-n", "shop")
	// sorting asks for the whole objects in the rows (includeObject=Object)
	check([][]string{
		row("NAME", "READY", "STATUS", "RESTARTS", "AGE"),
		row("pending", "0/1", "Pending", "0", "AGE"),
		row("done", "0/1", "Completed", "0", "AGE"),
		row("web", "1/1", "Running", "2 (30m ago)", "AGE"),
		row("crash", "0/1", "CrashLoopBackOff", "5 (30m ago)", "AGE"),
	}, "get", "pods", "-n", "shop", "--sort-by=.status.podIP")
	check([][]string{
		row("NAME", "STATUS", "ROLES", "AGE", "VERSION"),
		row("node-1", "Ready", "control-plane", "AGE", "v1.37.0"),
		row("node-2", "Unknown,SchedulingDisabled", "<none>", "AGE"),
	}, "get", "nodes")
	check([][]string{
		row("NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"),
		row("node-1", "Ready", "control-plane", "AGE", "v1.37.0", "10.0.0.1", "<none>", "Debian GNU/Linux 13 (trixie)", "6.12.0-1-amd64", "containerd://2.1.3"),
		row("node-2", "Unknown,SchedulingDisabled", "<none>", "AGE", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"),
	}, "get", "nodes", "-o", "wide")
	check([][]string{
		row("NAME", "DESIRED", "CURRENT", "READY", "AGE"),
		row("web-rs", "3", "3", "2", "AGE"),
	}, "get", "rs", "-n", "shop")
	check([][]string{
		row("NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"),
		row("web-rs", "3", "3", "2", "AGE", "web,log", "nginx:1.27,busybox:1.36", "app=web"),
	}, "get", "replicasets", "-n", "shop", "-o", "wide")
	check([][]string{
		row("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"),
		row("30m", "Warning", "BackOff", "pod/crash", "Back-off restarting failed container c in pod crash_shop"),
	}, "get", "events", "-n", "shop")
	check([][]string{
		row("LAST SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE", "MESSAGE", "FIRST SEEN", "COUNT", "NAME"),
		row("30m", "Warning", "BackOff", "pod/crash", "spec.containers{c}", "kubelet, node-1", "Back-off restarting failed container c in pod crash_shop", "45m", "12", "crash.1"),
	}, "get", "events", "-n", "shop", "-o", "wide")
	check([][]string{
		row("NAME", "STATUS", "AGE"),
		row("default", "Active", "AGE"),
	}, "get", "namespace", "default")

	// several kinds across namespaces: one table per kind, names qualified by kind
	args := []string{"get", "cm,secrets,sa,leases", "-A"}
	out := k.run(args...)
	var shop [][]string
	for _, r := range tableLines(out) {
		if r == nil || r[0] == "NAMESPACE" || r[0] == "shop" {
			shop = append(shop, r)
		}
	}
	assertKubectlTable(t, args, strings.Join(joinRows(shop), "\n"), [][]string{
		row("NAMESPACE", "NAME", "DATA", "AGE"),
		row("shop", "configmap/settings", "2", "AGE"),
		nil,
		row("NAMESPACE", "NAME", "TYPE", "DATA", "AGE"),
		row("shop", "secret/creds", "kubernetes.io/basic-auth", "2", "AGE"),
		nil,
		row("NAMESPACE", "NAME", "SECRETS", "AGE"),
		row("shop", "serviceaccount/builder", "0", "AGE"),
		nil,
		row("NAMESPACE", "NAME", "HOLDER", "AGE"),
		row("shop", "lease.coordination.k8s.io/leader", "web_7f3c", "AGE"),
	})
}

// joinRows turns rows back into kubectl-like lines.
func joinRows(rows [][]string) []string {
	var out []string
	for _, r := range rows {
		out = append(out, strings.Join(r, "   "))
	}
	return out
}

func TestEveryStockKubectlPrintsPodsWide(t *testing.T) {
	bins := kubectlBinaries(t)
	s := apiservertest.Start(t)
	seedPrintedObjects(t, s)
	for _, bin := range bins {
		t.Run(filepath.Base(bin), func(t *testing.T) {
			k := newKubectl(t, s, bin)
			args := []string{"get", "pods", "-n", "shop", "-o", "wide"}
			assertKubectlTable(t, args, k.run(args...), [][]string{
				row("NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"),
				row("crash", "0/1", "CrashLoopBackOff", "5 (30m ago)", "AGE", "10.1.0.8", "node-1", "<none>", "<none>"),
				row("done", "0/1", "Completed", "0", "AGE", "<none>", "node-1", "<none>", "<none>"),
				row("pending", "0/1", "Pending", "0", "AGE", "<none>", "<none>", "<none>", "<none>"),
				row("web", "1/1", "Running", "2 (30m ago)", "AGE", "10.1.0.7", "node-1", "<none>", "<none>"),
			})
		})
	}
}

func TestStockKubectlWatchPrintsNewRows(t *testing.T) {
	bins := kubectlBinaries(t)
	s := apiservertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cms := s.Client.CoreV1().ConfigMaps("default")
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "before"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	k := newKubectl(t, s, bins[0])
	cmd := k.command(ctx, "get", "configmaps", "-w")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() []string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("kubectl get -w ended")
			}
			return tableLines(l)[0]
		case <-time.After(30 * time.Second):
			t.Fatal("kubectl get -w printed nothing in 30s")
		}
		return nil
	}
	if got := next(); !reflect.DeepEqual(got, row("NAME", "DATA", "AGE")) {
		t.Fatalf("header %q", got)
	}
	if got := next(); !reflect.DeepEqual(got, row("before", "0", "AGE")) {
		t.Fatalf("first row %q", got)
	}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := next(); !reflect.DeepEqual(got, row("after", "1", "AGE")) {
		t.Errorf("row of the new configmap %q", got)
	}
}
