package crashsafety_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-dev/skiff/kubelet/localcontainerd"
)

// The component chaos test: the cluster run as a person runs its parts apart (`skiff
// apiserver` with its embedded etcd, `skiff controller-manager`, `skiff scheduler` and `skiff
// kubelet` each from the kubeconfig the API server wrote for it, and a containerd of the
// kubelet's), a Deployment of busybox pods on it and the mixed client-go load of the chaos
// test against it, while one part at a time, chosen at random, is killed with kill -9 and
// started again. While it is down the Deployment is changed (scaled, a pod deleted), so that
// the part comes back to work it missed. After each restart the test waits for the cluster to
// converge (the Deployment at its replica count, every pod Running and Ready, one ready
// sandbox and one running container per pod in containerd, nothing of deleted pods running)
// and asserts that no pod ever had two of either, and that the pods that lived through the
// kill kept their sandbox and container; at the end the load's history is checked as in the
// chaos test. SKIFF_CHAOS_KILLS sets the kills (default 5), SKIFF_CHAOS_SEED the seed of the
// victims and timings (default the clock; it is logged), and SKIFF_CHAOS_TRACE=1 logs each
// change on the way to convergence, runs the API server with a line per request and keeps
// the parts' logs (DATA_DIR-NAME.log beside the data dir).

// components are the parts that are killed, one at a time.
var components = []string{"apiserver", "scheduler", "controller-manager", "kubelet", "containerd"}

const chaosApp = "chaos-web"

func componentKills() int {
	if n, err := strconv.Atoi(os.Getenv("SKIFF_CHAOS_KILLS")); err == nil && n > 0 {
		return n
	}
	return 5
}

func chaosSeed() uint64 {
	if n, err := strconv.ParseUint(os.Getenv("SKIFF_CHAOS_SEED"), 10, 64); err == nil {
		return n
	}
	return uint64(time.Now().UnixNano())
}

// partProcess is one `skiff <part>` process the test runs, as a service manager would.
type partProcess struct {
	name string
	args []string
	// ready is what the part prints on standard output once it serves; "" for parts that
	// print nothing.
	ready  string
	log    string
	cmd    *exec.Cmd
	exited chan struct{}
}

// splitCluster is a cluster whose parts run as processes of their own on one data directory
// laid out as skiff up's (so that skiff reset removes whatever the test leaves).
type splitCluster struct {
	*cluster
	parts      map[string]*partProcess
	containerd *localcontainerd.Daemon
	// exitsOnTheirOwn counts, by part, the times one stopped without being killed and was
	// started again, as systemd's Restart=always would.
	exitsOnTheirOwn map[string]int
	duplicates      []string
}

func newSplitCluster(t *testing.T) *splitCluster {
	c := newCluster(t)
	s := &splitCluster{cluster: c, parts: map[string]*partProcess{}, exitsOnTheirOwn: map[string]int{}}
	d := c.dataDir
	lease := []string{"--leader-elect-lease-duration=6s", "--leader-elect-renew-deadline=4s", "--leader-elect-retry-period=1s"}
	for _, p := range []*partProcess{
		{name: "apiserver", ready: "skiff apiserver is ready", args: []string{"apiserver", "--data-dir", d}},
		{name: "controller-manager", args: append([]string{"controller-manager",
			"--kubeconfig", filepath.Join(d, "controller-manager.kubeconfig"),
			"--root-ca-file", filepath.Join(d, "pki", "ca.crt"),
			"--cluster-signing-cert-file", filepath.Join(d, "pki", "ca.crt"),
			"--cluster-signing-key-file", filepath.Join(d, "pki", "ca.key"),
			"--use-service-account-credentials", "--port=-1"}, lease...)},
		{name: "scheduler", args: append([]string{"scheduler",
			"--kubeconfig", filepath.Join(d, "scheduler.kubeconfig"), "--port=0"}, lease...)},
		{name: "kubelet", args: []string{"kubelet",
			"--kubeconfig", filepath.Join(d, "kubelet.kubeconfig"),
			"--container-runtime-endpoint", "unix://" + localcontainerd.SocketIn(filepath.Join(d, "containerd")),
			"--cni-conf-dir", filepath.Join(d, "containerd", "cni", "net.d"),
			"--root-dir", filepath.Join(d, "kubelet"),
			"--pod-logs-dir", filepath.Join(d, "kubelet", "logs"),
			"--pod-cidr", "10.244.0.0/24",
			"--image-dir", c.imageDir,
			"--client-ca-file", filepath.Join(d, "pki", "ca.crt"),
			"--authorization-mode", "Webhook", "--authentication-token-webhook"}},
	} {
		p.log = filepath.Join(d, "..", filepath.Base(d)+"-"+p.name+".log")
		s.parts[p.name] = p
	}
	// registered after newCluster's clean-up, so run before it: the processes go, then the
	// pods with their containerd, then skiff reset removes whatever is left and the data dir
	t.Cleanup(func() {
		for _, p := range s.parts {
			if t.Failed() {
				b, _ := os.ReadFile(p.log)
				t.Logf("%s's log:\n%s", p.name, lastLines(string(b), 40))
			}
			s.kill(p.name)
			if os.Getenv("SKIFF_CHAOS_TRACE") == "" {
				os.Remove(p.log)
			}
		}
		if s.containerd != nil && s.containerdRunning() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := s.containerd.Shutdown(ctx, d); err != nil {
				t.Logf("cleanup: containerd shutdown: %v", err)
			}
		}
	})
	return s
}

// start starts a part and, for the API server, waits until it serves; a restarted API server
// writes the parts' kubeconfigs again (fresh certificates from the same CA).
func (s *splitCluster) start(name string) {
	t := s.t
	t.Helper()
	if name == "containerd" {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		d, err := localcontainerd.Start(ctx, filepath.Join(s.dataDir, "containerd"))
		if err != nil {
			t.Fatal(err)
		}
		s.containerd = d
		return
	}
	p := s.parts[name]
	log, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(log, "---- started by the test at %s\n", time.Now().Format(time.StampMilli))
	ready := &lineWaiter{want: p.ready, seen: make(chan struct{})}
	verbosity := "--v=0"
	if os.Getenv("SKIFF_CHAOS_TRACE") != "" && name == "apiserver" {
		verbosity = "--v=2" // a line per request
	}
	cmd := exec.Command(s.bin, append(p.args, verbosity)...)
	cmd.Stdout, cmd.Stderr = ready, log
	// a killed go test kills its parts too
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	go func(exited chan struct{}) {
		_ = cmd.Wait()
		log.Close()
		close(exited)
	}(p.exited)
	if p.ready == "" {
		return
	}
	select {
	case <-ready.seen:
	case <-p.exited:
		b, _ := os.ReadFile(p.log)
		t.Fatalf("%s exited at start:\n%s", name, lastLines(string(b), 30))
	case <-time.After(3 * time.Minute):
		t.Fatalf("%s did not say it was ready within 3 minutes", name)
	}
	if name == "apiserver" && s.client == nil {
		cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(s.dataDir, "kubeconfig"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.QPS, cfg.Burst = 50, 100
		s.config, s.client = cfg, kubernetes.NewForConfigOrDie(cfg)
	}
}

// lineWaiter is a part's standard output: it closes seen once want has been written.
type lineWaiter struct {
	mu   sync.Mutex
	want string
	buf  bytes.Buffer
	seen chan struct{}
	done bool
}

func (w *lineWaiter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || w.want == "" {
		return len(b), nil
	}
	w.buf.Write(b)
	if strings.Contains(w.buf.String(), w.want) {
		w.done = true
		w.buf.Reset()
		close(w.seen)
	}
	return len(b), nil
}

// kill is kill -9 of a part, when it runs; it returns once the process is gone.
func (s *splitCluster) kill(name string) {
	if name == "containerd" {
		pid := s.containerdPid()
		if pid <= 0 {
			return
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
		// localcontainerd reaps its daemon: wait until the pid is no process, or a zombie
		for deadline := time.Now().Add(30 * time.Second); s.containerdRunning() && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
		return
	}
	p := s.parts[name]
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	p.cmd = nil
}

func (s *splitCluster) containerdPid() int {
	b, err := os.ReadFile(filepath.Join(s.dataDir, "containerd", "containerd.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func (s *splitCluster) containerdRunning() bool {
	pid := s.containerdPid()
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && len(b) > 0
}

// keepRunning starts again any part that stopped without being killed, as a service manager
// would, and counts it: the scheduler, like kube-scheduler, exits when it loses its Lease.
func (s *splitCluster) keepRunning() {
	s.t.Helper()
	for _, name := range components {
		if name == "containerd" {
			if !s.containerdRunning() {
				s.t.Logf("containerd stopped on its own; starting it again")
				s.exitsOnTheirOwn[name]++
				s.start(name)
			}
			continue
		}
		p := s.parts[name]
		select {
		case <-p.exited:
			b, _ := os.ReadFile(p.log)
			s.t.Logf("%s stopped on its own; starting it again. Its last lines:\n%s", name, lastLines(string(b), 5))
			s.exitsOnTheirOwn[name]++
			p.cmd = nil
			s.start(name)
		default:
		}
	}
}

// startAll starts the parts in the order a person would.
func (s *splitCluster) startAll() {
	for _, name := range []string{"containerd", "apiserver", "controller-manager", "scheduler", "kubelet"} {
		s.start(name)
	}
}

// createDeployment creates the Deployment of busybox pods the test keeps converging.
func (s *splitCluster) createDeployment(replicas int32) {
	s.t.Helper()
	grace := int64(1)
	labels := map[string]string{"app": chaosApp}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: chaosApp},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &grace,
					Containers: []corev1.Container{{
						Name: "sleep", Image: busyboxImage, ImagePullPolicy: corev1.PullNever,
						Command: []string{"sleep", "3600"},
					}},
				},
			},
		},
	}
	// the default ServiceAccount and the namespace come from the controller manager: retry
	// until the API server takes it
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, last = s.client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{})
		return last == nil || apierrors.IsAlreadyExists(last), nil
	})
	if err != nil {
		s.t.Fatalf("creating the Deployment: %v", last)
	}
}

// disturb gives the parts work while one of them may be down: the Deployment scaled to
// another size and one of its pods deleted.
func (s *splitCluster) disturb(rng *rand.Rand) string {
	s.t.Helper()
	ctx := context.Background()
	var replicas int32
	var what []string
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		scale, err := s.client.AppsV1().Deployments("default").GetScale(ctx, chaosApp, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		if replicas == 0 {
			// another size, from 2 to 5
			replicas = 2 + (scale.Spec.Replicas-2+1+int32(rng.IntN(3)))%4
		}
		if scale.Spec.Replicas == replicas {
			return true, nil
		}
		scale.Spec.Replicas = replicas
		_, err = s.client.AppsV1().Deployments("default").UpdateScale(ctx, chaosApp, scale, metav1.UpdateOptions{})
		return err == nil, nil
	})
	if err != nil {
		s.t.Fatalf("scaling the Deployment to %d: %v", replicas, err)
	}
	what = append(what, fmt.Sprintf("scaled to %d", replicas))
	pods, err := s.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + chaosApp})
	if err != nil {
		s.t.Fatal(err)
	}
	var live []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	if len(live) > 0 {
		p := live[rng.IntN(len(live))]
		if err := s.client.CoreV1().Pods("default").Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			s.t.Fatal(err)
		}
		what = append(what, "pod "+p.Name+" deleted")
	}
	return strings.Join(what, ", ")
}

// convergenceProblems says what keeps the cluster from its desired state, nothing when it is
// there: the Deployment at its replica count and up to date, that many pods, none
// terminating, each Running and Ready; in containerd one ready sandbox and one running
// container of each, and nothing of another pod running. A pod with two ready sandboxes or
// two running containers of one name is also recorded in s.duplicates, which no convergence
// excuses.
func (s *splitCluster) convergenceProblems(ctx context.Context) []string {
	d, err := s.client.AppsV1().Deployments("default").Get(ctx, chaosApp, metav1.GetOptions{})
	if err != nil {
		return []string{err.Error()}
	}
	want := *d.Spec.Replicas
	var problems []string
	if st := d.Status; st.ObservedGeneration < d.Generation || st.Replicas != want || st.UpdatedReplicas != want || st.ReadyReplicas != want || st.AvailableReplicas != want {
		problems = append(problems, fmt.Sprintf("Deployment wants %d replicas, status: generation %d observed %d, %d replicas, %d updated, %d ready, %d available",
			want, d.Generation, st.ObservedGeneration, st.Replicas, st.UpdatedReplicas, st.ReadyReplicas, st.AvailableReplicas))
	}
	list, err := s.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + chaosApp})
	if err != nil {
		return append(problems, err.Error())
	}
	ready := 0
	pods := map[types.UID]string{}
	for _, p := range list.Items {
		pods[p.UID] = p.Name
		switch {
		case p.DeletionTimestamp != nil:
			problems = append(problems, fmt.Sprintf("pod %s is terminating", p.Name))
		case p.Status.Phase != corev1.PodRunning || !podReady(&p):
			problems = append(problems, fmt.Sprintf("pod %s is %s, not ready (node %q)", p.Name, p.Status.Phase, p.Spec.NodeName))
		default:
			ready++
		}
	}
	if len(list.Items) != int(want) || ready != int(want) {
		problems = append(problems, fmt.Sprintf("%d pods, %d running and ready, want %d", len(list.Items), ready, want))
	}
	rs, err := s.tryRuntimeState()
	if err != nil {
		return append(problems, err.Error())
	}
	for uid, name := range pods {
		sandboxes, containers := readySandboxes(rs.sandboxes[uid]), runningContainers(rs.containers[uid])
		if len(sandboxes) != 1 || len(containers) != 1 {
			problems = append(problems, fmt.Sprintf("pod %s has %d ready sandboxes and %d running containers in containerd, want one of each", name, len(sandboxes), len(containers)))
		}
	}
	duplicates, leftovers := runtimeDuplicates(pods, rs)
	for _, d := range duplicates {
		s.duplicate(d)
	}
	problems = append(problems, leftovers...)
	slices.Sort(problems)
	return problems
}

// runtimeDuplicates reads the runtime's state against the pods that exist (by UID): a pod
// with two ready sandboxes, or two running containers of one name, is a duplicate; a ready
// sandbox or a running container of a pod that no longer exists is a leftover, which the
// kubelet has yet to stop.
func runtimeDuplicates(pods map[types.UID]string, rs runtimeState) (duplicates, leftovers []string) {
	nameOf := func(uid types.UID) (string, bool) {
		name, live := pods[uid]
		if !live {
			name = "of deleted pod " + string(uid)
		}
		return name, live
	}
	for uid, sbs := range rs.sandboxes {
		name, live := nameOf(uid)
		if n := len(readySandboxes(sbs)); n > 1 {
			duplicates = append(duplicates, fmt.Sprintf("pod %s has %d ready sandboxes: %v", name, n, sandboxStates(sbs)))
		} else if n == 1 && !live {
			leftovers = append(leftovers, fmt.Sprintf("a sandbox %s is still ready", name))
		}
	}
	for uid, cts := range rs.containers {
		name, live := nameOf(uid)
		byName := map[string]int{}
		for _, c := range runningContainers(cts) {
			byName[c.Metadata.Name]++
		}
		for cname, n := range byName {
			if n > 1 {
				duplicates = append(duplicates, fmt.Sprintf("pod %s has %d running %s containers: %v", name, n, cname, containerStates(cts)))
			} else if !live {
				leftovers = append(leftovers, fmt.Sprintf("a container %s is still running", name))
			}
		}
	}
	slices.Sort(duplicates)
	return duplicates, leftovers
}

func (s *splitCluster) duplicate(what string) {
	if !slices.Contains(s.duplicates, what) {
		s.duplicates = append(s.duplicates, what)
		s.t.Errorf("duplicate: %s", what)
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func readySandboxes(sbs []*runtimeapi.PodSandbox) []*runtimeapi.PodSandbox {
	return slices.DeleteFunc(slices.Clone(sbs), func(s *runtimeapi.PodSandbox) bool { return s.State != runtimeapi.PodSandboxState_SANDBOX_READY })
}

func runningContainers(cts []*runtimeapi.Container) []*runtimeapi.Container {
	return slices.DeleteFunc(slices.Clone(cts), func(c *runtimeapi.Container) bool { return c.State != runtimeapi.ContainerState_CONTAINER_RUNNING })
}

// runningContainers is, by pod UID, the IDs of the sandbox and container that run in
// containerd, for pods that have one of each.
func (s *splitCluster) runningContainers() map[types.UID]string {
	s.t.Helper()
	rs, err := s.tryRuntimeState()
	if err != nil {
		s.t.Fatal(err)
	}
	ids := map[types.UID]string{}
	for uid, sbs := range rs.sandboxes {
		sandboxes, containers := readySandboxes(sbs), runningContainers(rs.containers[uid])
		if len(sandboxes) == 1 && len(containers) == 1 {
			ids[uid] = sandboxes[0].Id[:12] + "/" + containers[0].Id[:12]
		}
	}
	return ids
}

// waitConverged waits until convergenceProblems has nothing to say, keeping the parts
// running meanwhile, and says how long it took; it fails the test after 5 minutes.
func (s *splitCluster) waitConverged(why string) time.Duration {
	t := s.t
	t.Helper()
	start := time.Now()
	var last []string
	trace := os.Getenv("SKIFF_CHAOS_TRACE") != ""
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		s.keepRunning()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		problems := s.convergenceProblems(cctx)
		if trace && !slices.Equal(problems, last) {
			t.Logf("%v: %s", time.Since(start).Round(time.Millisecond), strings.Join(problems, "; "))
		}
		last = problems
		return len(last) == 0, nil
	})
	if err != nil {
		t.Fatalf("the cluster did not converge %s: %s", why, strings.Join(last, "; "))
	}
	return time.Since(start)
}

func TestClusterConvergesAfterKill9OfEachPartAlone(t *testing.T) {
	requireRealNode(t)
	seed := chaosSeed()
	t.Logf("seed %d (SKIFF_CHAOS_SEED=%d repeats the victims and timings)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 22))

	s := newSplitCluster(t)
	began := time.Now()
	s.startAll()
	s.createDeployment(3)
	t.Logf("the cluster converged %v after the start of its parts", s.waitConverged("at the start").Round(time.Millisecond))

	load := startAPILoad(s.config)
	defer load.stop()
	converge := map[string][]time.Duration{}
	for k := range componentKills() {
		victim := components[rng.IntN(len(components))]
		time.Sleep(time.Duration(300+rng.IntN(2000)) * time.Millisecond) // a random point in the load
		s.keepRunning()
		before := s.runningContainers()
		s.kill(victim)
		var disturbed string
		if victim != "apiserver" {
			disturbed = s.disturb(rng)
		}
		time.Sleep(time.Duration(rng.IntN(2000)) * time.Millisecond) // down a while
		s.start(victim)
		if victim == "apiserver" {
			disturbed = s.disturb(rng)
		}
		took := s.waitConverged(fmt.Sprintf("after kill %d (%s)", k+1, victim))
		converge[victim] = append(converge[victim], took)
		// a restart of any part, containerd's too (its shims keep the containers), leaves
		// the pods it did not have to touch as they were
		for uid, after := range s.runningContainers() {
			if was, ok := before[uid]; ok && was != after {
				t.Errorf("after kill %d (%s) pod %s runs container %s, was %s: started again", k+1, victim, uid, after, was)
			}
		}
		t.Logf("kill %d: %s; %s; converged %v after its restart", k+1, victim, disturbed, took.Round(time.Millisecond))
	}
	// the load runs on a while against the converged cluster, then stops and is checked
	time.Sleep(2 * time.Second)
	load.stop()
	figures := load.check(t, s.client)
	// and the cluster stays converged: no late second container
	time.Sleep(3 * time.Second)
	if problems := s.convergenceProblems(context.Background()); len(problems) > 0 {
		t.Errorf("the cluster left its converged state: %s", strings.Join(problems, "; "))
	}

	t.Logf("%d kills in %v; %s", componentKills(), time.Since(began).Round(time.Second), figures)
	for _, name := range components {
		ds := converge[name]
		if len(ds) == 0 {
			continue
		}
		slices.Sort(ds)
		t.Logf("%s: %d kills, converged in median %v, max %v", name, len(ds), ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
	}
	for name, n := range s.exitsOnTheirOwn {
		t.Logf("%s stopped on its own %d times and was started again", name, n)
	}
}

func TestRuntimeDuplicatesFindsTwoRunningContainersOrReadySandboxesOfOnePod(t *testing.T) {
	ready, notReady := runtimeapi.PodSandboxState_SANDBOX_READY, runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	running, exited := runtimeapi.ContainerState_CONTAINER_RUNNING, runtimeapi.ContainerState_CONTAINER_EXITED
	sandbox := func(id string, st runtimeapi.PodSandboxState) *runtimeapi.PodSandbox {
		return &runtimeapi.PodSandbox{Id: id + "0000000000000", State: st}
	}
	container := func(id, name string, st runtimeapi.ContainerState) *runtimeapi.Container {
		return &runtimeapi.Container{Id: id + "0000000000000", Metadata: &runtimeapi.ContainerMetadata{Name: name}, State: st}
	}
	pods := map[types.UID]string{"a": "pod-a", "b": "pod-b", "c": "pod-c"}
	// a restarted its sandbox and container (fine), b has two ready sandboxes, c two running
	// sleep containers, and x is deleted but its sandbox is still ready (a leftover)
	rs := runtimeState{
		sandboxes: map[types.UID][]*runtimeapi.PodSandbox{
			"a": {sandbox("a1", notReady), sandbox("a2", ready)},
			"b": {sandbox("b1", ready), sandbox("b2", ready)},
			"c": {sandbox("c1", ready)},
			"x": {sandbox("x1", ready)},
		},
		containers: map[types.UID][]*runtimeapi.Container{
			"a": {container("a1", "sleep", exited), container("a2", "sleep", running)},
			"b": {container("b1", "sleep", running)},
			"c": {container("c1", "sleep", running), container("c2", "sleep", running), container("c3", "side", running)},
			"x": {container("x1", "sleep", exited)},
		},
	}
	duplicates, leftovers := runtimeDuplicates(pods, rs)
	if len(duplicates) != 2 || !strings.HasPrefix(duplicates[0], "pod pod-b has 2 ready sandboxes") || !strings.HasPrefix(duplicates[1], "pod pod-c has 2 running sleep containers") {
		t.Errorf("duplicates: %q, want pod-b's two ready sandboxes and pod-c's two running sleep containers", duplicates)
	}
	if len(leftovers) != 1 || leftovers[0] != "a sandbox of deleted pod x is still ready" {
		t.Errorf("leftovers: %q, want the deleted pod x's ready sandbox", leftovers)
	}
}
