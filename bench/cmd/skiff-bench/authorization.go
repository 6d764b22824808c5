package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/apiserver/certs"
	"github.com/skiff-dev/skiff/bench/skiffproc"
)

// The authorization scenario measures what authorization costs a request: the same creates
// and gets, by the same ordinary user (not system:masters, whom every mode allows at once),
// against a server run with --authorization-mode AlwaysAllow and one run with Node,RBAC.
// Both servers hold the same --bindings RoleBindings and ClusterRoleBindings of other
// subjects, so RBAC looks through a realistic policy before it finds the user's own
// RoleBinding.
//
// On a shared machine the throughput of one run says as much about the neighbours as about
// the server, so both servers run side by side and the bench alternates short rounds between
// them (A B, B A, A B, ...): a drift of the machine falls on both modes alike, and the figures
// are medians over the rounds with their spread. Each round also reads the server's own CPU
// time (utime + stime) before and after, which a busy neighbour slows but does not inflate:
// CPU per request is the steadier measure of what authorization adds.

// defaultAuthorizationModes are --authorization-modes' default: the baseline, then the
// measured. The same mode twice (AlwaysAllow;AlwaysAllow) measures the bench's own noise.
const defaultAuthorizationModes = "AlwaysAllow;Node,RBAC"

// benchUser is the ordinary user whose requests are measured.
const benchUser = "skiff-bench-user"

// authzServer is one mode's server, its policy written and its user's client made.
type authzServer struct {
	mode   string
	server *skiffproc.Process
	load   *load
	// per round, per phase: requests per second, server CPU µs per request, and the
	// round's latency percentiles
	rates, cpu, p50, p99 map[string][]float64
}

func runAuthorization(ctx context.Context, o options, res *results) (err error) {
	progress := os.Stderr
	tmp, err := os.MkdirTemp("", "skiff-bench-authz-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := o.skiff
	if bin == "" {
		if bin, err = skiffproc.Build(ctx, tmp, progress); err != nil {
			return err
		}
	}
	res.Server = "skiff apiserver (" + bin + ")"
	var servers []*authzServer
	defer func() {
		for _, s := range servers {
			res.ServerLog = append(res.ServerLog, s.server.Problems()...)
			err = errors.Join(err, s.server.Stop(progress))
		}
	}()
	modes := strings.Split(o.authorizationModes, ";")
	if len(modes) != 2 {
		return fmt.Errorf("--authorization-modes %q: want two modes separated by ';'", o.authorizationModes)
	}
	for i, mode := range modes {
		s, err := startAuthzServer(ctx, o, bin, filepath.Join(tmp, fmt.Sprintf("data-%d", i)), mode)
		if s != nil && modes[0] == modes[1] {
			s.mode += fmt.Sprintf(" #%d", i+1)
		}
		if s != nil {
			servers = append(servers, s)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", mode, err)
		}
	}
	for round := range o.rounds {
		for i := range servers {
			s := servers[i]
			if round%2 == 1 {
				s = servers[len(servers)-1-i]
			}
			// what the previous round left running (the Node authorizer's graph catching up
			// on the pods, watch fan-out) settles first, on both servers
			for _, other := range servers {
				settle(ctx, other.server.Cmd.Process.Pid)
			}
			if err := s.round(ctx, round); err != nil {
				return fmt.Errorf("%s, round %d: %w", s.mode, round, err)
			}
		}
	}
	base, measured := servers[0], servers[1]
	for _, s := range servers {
		res.ErrorGroups = append(res.ErrorGroups, s.load.res.ErrorGroups...)
		for _, phase := range []string{"create", "get"} {
			res.Rows = append(res.Rows, row{Phase: fmt.Sprintf("%s (%s)", phase, s.mode), Ops: o.pods * o.rounds,
				OpsPerSec: median(s.rates[phase]), P50Ms: median(s.p50[phase]), P99Ms: median(s.p99[phase]), MaxMs: slices.Max(s.p99[phase]),
				Note: fmt.Sprintf("medians of %d rounds (ops/s %s); server CPU %.0f µs/request (%s)",
					o.rounds, spread(s.rates[phase], "%.0f"), median(s.cpu[phase]), spread(s.cpu[phase], "%.0f"))})
		}
	}
	for _, phase := range []string{"create", "get"} {
		// each round's figure of the measured mode over the baseline's of the same round, the
		// two runs nearest in time
		ratios, cpuRatios := make([]float64, o.rounds), make([]float64, o.rounds)
		for r := range o.rounds {
			ratios[r] = 100 * measured.rates[phase][r] / base.rates[phase][r]
			cpuRatios[r] = 100 * measured.cpu[phase][r] / base.cpu[phase][r]
		}
		res.Rows = append(res.Rows, row{Phase: phase + " " + measured.mode + " / " + base.mode,
			Note: fmt.Sprintf("throughput %.1f %% (median of rounds, %s), server CPU per request %.1f %% (%s)",
				median(ratios), spread(ratios, "%.1f"), median(cpuRatios), spread(cpuRatios, "%.1f"))})
	}
	return nil
}

// startAuthzServer starts a server in mode on a fresh data dir, writes the policy and makes
// benchUser's client. A server that started is returned even with an error, to be stopped.
func startAuthzServer(ctx context.Context, o options, bin, dataDir, mode string) (*authzServer, error) {
	progress := os.Stderr
	server, err := skiffproc.Start(ctx, bin, "apiserver", "--secure-port", dataDir,
		[]string{"--bind-address", "127.0.0.1", "--authorization-mode", mode}, progress, nil)
	if err != nil {
		return nil, err
	}
	s := &authzServer{mode: mode, server: server,
		rates: map[string][]float64{}, cpu: map[string][]float64{}, p50: map[string][]float64{}, p99: map[string][]float64{}}
	admin, err := clientcmd.BuildConfigFromFlags("", server.Kubeconfig)
	if err != nil {
		return s, err
	}
	admin.QPS, admin.Burst = -1, 0
	adminClient, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return s, err
	}
	ns, err := writePolicy(ctx, adminClient, o.bindings)
	if err != nil {
		return s, fmt.Errorf("writing the RBAC policy: %w", err)
	}
	// RBAC reads the server's caches: wait until they hold the user's binding
	if err := waitAllowed(ctx, adminClient, ns); err != nil {
		return s, err
	}
	pki, err := certs.Ensure(filepath.Join(dataDir, "pki"))
	if err != nil {
		return s, err
	}
	certPEM, keyPEM, err := pki.ClientCertificate(benchUser)
	if err != nil {
		return s, err
	}
	user := rest.CopyConfig(admin)
	user.CertFile, user.KeyFile = "", ""
	user.CertData, user.KeyData = certPEM, keyPEM
	user.UserAgent = "skiff-bench"
	client, err := kubernetes.NewForConfig(user)
	if err != nil {
		return s, err
	}
	s.load = &load{client: client, config: user, opts: o, progress: progress, ns: ns, res: &results{}}
	return s, nil
}

// round runs --pods creates of new pods and as many gets as benchUser, and records their
// throughput and the server's CPU per request.
func (s *authzServer) round(ctx context.Context, round int) error {
	pid := s.server.Cmd.Process.Pid
	fmt.Fprintf(s.load.progress, "round %d, %s\n", round, s.mode)
	s.load.prefix = fmt.Sprintf("r%02d-", round)
	before := s.load.res.Rows
	cpu0, err := cpuTime(pid)
	if err != nil {
		return err
	}
	created := s.load.creates(ctx)
	if len(created) == 0 {
		return fmt.Errorf("no pod could be created as %s: %v", benchUser, s.load.res.ErrorGroups)
	}
	// the work the creates leave running (the Node authorizer's graph of pods, watch caches)
	// is theirs, not the gets'
	settle(ctx, pid)
	cpu1, err := cpuTime(pid)
	if err != nil {
		return err
	}
	s.load.gets(ctx, created)
	cpu2, err := cpuTime(pid)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	rows := s.load.res.Rows[len(before):]
	for i, phase := range []string{"create", "get"} {
		s.rates[phase] = append(s.rates[phase], rows[i].OpsPerSec)
		s.p50[phase] = append(s.p50[phase], rows[i].P50Ms)
		s.p99[phase] = append(s.p99[phase], rows[i].P99Ms)
	}
	s.cpu["create"] = append(s.cpu["create"], float64((cpu1-cpu0).Microseconds())/float64(rows[0].Ops))
	s.cpu["get"] = append(s.cpu["get"], float64((cpu2-cpu1).Microseconds())/float64(rows[1].Ops))
	return nil
}

// cpuTime is the CPU time process pid has used so far: the sum of its threads' run times in
// /proc/<pid>/task/*/schedstat, in nanoseconds where /proc/<pid>/stat counts 10 ms ticks (a
// thousand gets are about a tenth of a second). A Go process keeps its threads, so none of
// its time leaves with an exited thread.
func cpuTime(pid int) (time.Duration, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // the thread has just exited
		}
		if err != nil {
			return 0, err
		}
		ns, err := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/task/%s/schedstat: %w", pid, t.Name(), err)
		}
		total += time.Duration(ns)
	}
	return total, nil
}

// settle waits, at most 10 s, until process pid uses less than a tenth of a core over half a
// second.
func settle(ctx context.Context, pid int) {
	const window = 500 * time.Millisecond
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
		t0, err := cpuTime(pid)
		if err != nil {
			return
		}
		time.Sleep(window)
		t1, err := cpuTime(pid)
		if err != nil || t1-t0 < window/10 {
			return
		}
	}
}

// median is the middle of xs (the mean of the two middle ones for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// spread is "min–max" of xs in format f.
func spread(xs []float64, f string) string {
	if len(xs) == 0 {
		return "-"
	}
	return fmt.Sprintf(f+"–"+f, slices.Min(xs), slices.Max(xs))
}

// writePolicy makes the bench's namespace, a Role there that lets benchUser create and get
// pods with its RoleBinding, and bindings more RoleBindings and ClusterRoleBindings of other
// users and groups: a fifth cluster-wide, the rest spread over twenty namespaces, the
// bench's among them. It returns the bench's namespace.
func writePolicy(ctx context.Context, client kubernetes.Interface, bindings int) (string, error) {
	const namespaces = 20
	names := make([]string, namespaces)
	for i := range names {
		names[i] = fmt.Sprintf("skiff-bench-team-%02d", i)
		if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: names[i]}}, metav1.CreateOptions{}); err != nil {
			return "", err
		}
	}
	rbac := client.RbacV1()
	for i := range names {
		if _, err := rbac.Roles(names[i]).Create(ctx, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "team"},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"configmaps", "secrets", "services"}, Verbs: []string{"get", "list", "watch", "create", "update", "delete"}},
				{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets"}, Verbs: []string{"*"}},
			},
		}, metav1.CreateOptions{}); err != nil {
			return "", err
		}
	}
	bench := names[namespaces-1]
	if err := createDefaultServiceAccount(ctx, client, bench); err != nil {
		return "", err
	}
	if _, err := rbac.Roles(bench).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-writer"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "create"}}},
	}, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	clusterWide := bindings / 5
	for i := range bindings {
		subject := rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: fmt.Sprintf("user-%04d", i)}
		if i%3 == 0 {
			subject = rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: fmt.Sprintf("group-%04d", i)}
		}
		meta := metav1.ObjectMeta{Name: fmt.Sprintf("binding-%04d", i)}
		var err error
		if i < clusterWide {
			_, err = rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: meta,
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
				Subjects: []rbacv1.Subject{subject}}, metav1.CreateOptions{})
		} else {
			_, err = rbac.RoleBindings(names[i%namespaces]).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: meta,
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "team"},
				Subjects: []rbacv1.Subject{subject}}, metav1.CreateOptions{})
		}
		if err != nil {
			return "", err
		}
	}
	// the user's own binding is created last, so that it is not the first one looked at
	if _, err := rbac.RoleBindings(bench).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-user-pod-writer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pod-writer"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: benchUser}},
	}, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	return bench, nil
}

// waitAllowed waits until the server says benchUser may create pods in ns.
func waitAllowed(ctx context.Context, client kubernetes.Interface, ns string) error {
	review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: benchUser,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "create", Resource: "pods"}}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		answer, err := client.AuthorizationV1().SubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		if answer.Status.Allowed {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s may not create pods in %s: %s", benchUser, ns, answer.Status.Reason)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
