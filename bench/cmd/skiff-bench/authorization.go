package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
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
// RoleBinding. Modes alternate (AlwaysAllow, Node,RBAC, Node,RBAC, AlwaysAllow, ...) over
// --rounds, so a drift of the machine falls on both alike.

var authorizationModes = []string{"AlwaysAllow", "Node,RBAC"}

// benchUser is the ordinary user whose requests are measured.
const benchUser = "skiff-bench-user"

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
	perMode := map[string][]row{}
	for round := range o.rounds {
		for i := range authorizationModes {
			mode := authorizationModes[i]
			if round%2 == 1 {
				mode = authorizationModes[len(authorizationModes)-1-i]
			}
			rows, err := authorizationRun(ctx, o, bin, filepath.Join(tmp, fmt.Sprintf("data-%d-%d", round, i)), mode, res)
			if err != nil {
				return fmt.Errorf("%s: %w", mode, err)
			}
			perMode[mode] = append(perMode[mode], rows...)
		}
	}
	// the cost: RBAC's mean throughput as a share of AlwaysAllow's, per phase
	for _, phase := range []string{"create", "get"} {
		allow, rbac := meanRate(perMode["AlwaysAllow"], phase), meanRate(perMode["Node,RBAC"], phase)
		if allow > 0 {
			res.Rows = append(res.Rows, row{Phase: phase + " Node,RBAC / AlwaysAllow", OpsPerSec: math.Round(rbac*10) / 10,
				Note: fmt.Sprintf("%.1f %% of AlwaysAllow's %.0f/s (means of %d runs each)", 100*rbac/allow, allow, o.rounds)})
		}
	}
	return nil
}

func meanRate(rows []row, phase string) float64 {
	var sum float64
	var n int
	for _, r := range rows {
		if strings.HasPrefix(r.Phase, phase+" ") {
			sum += r.OpsPerSec
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// authorizationRun starts a server in mode on a fresh data dir, writes the policy, and runs
// the creates and gets as benchUser; it returns their rows, which it also adds to res.
func authorizationRun(ctx context.Context, o options, bin, dataDir, mode string, res *results) (rows []row, err error) {
	progress := os.Stderr
	server, err := skiffproc.Start(ctx, bin, "apiserver", "--secure-port", dataDir,
		[]string{"--bind-address", "127.0.0.1", "--authorization-mode", mode}, progress, nil)
	if err != nil {
		return nil, err
	}
	defer func() {
		res.ServerLog = append(res.ServerLog, server.Problems()...)
		err = errors.Join(err, server.Stop(progress))
	}()
	admin, err := clientcmd.BuildConfigFromFlags("", server.Kubeconfig)
	if err != nil {
		return nil, err
	}
	admin.QPS, admin.Burst = -1, 0
	adminClient, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return nil, err
	}
	ns, err := writePolicy(ctx, adminClient, o.bindings)
	if err != nil {
		return nil, fmt.Errorf("writing the RBAC policy: %w", err)
	}

	// RBAC reads the server's caches: wait until they hold the user's binding
	if err := waitAllowed(ctx, adminClient, ns); err != nil {
		return nil, err
	}
	pki, err := certs.Ensure(filepath.Join(dataDir, "pki"))
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := pki.ClientCertificate(benchUser)
	if err != nil {
		return nil, err
	}
	user := rest.CopyConfig(admin)
	user.CertFile, user.KeyFile = "", ""
	user.CertData, user.KeyData = certPEM, keyPEM
	user.UserAgent = "skiff-bench"
	client, err := kubernetes.NewForConfig(user)
	if err != nil {
		return nil, err
	}

	l := &load{client: client, config: user, opts: o, progress: progress, ns: ns, res: &results{}}
	created := l.creates(ctx)
	if len(created) == 0 {
		return nil, fmt.Errorf("no pod could be created as %s: %v", benchUser, l.res.ErrorGroups)
	}
	l.gets(ctx, created)
	for _, r := range l.res.Rows {
		r.Phase += " (" + mode + ")"
		rows = append(rows, r)
	}
	res.Rows = append(res.Rows, rows...)
	res.ErrorGroups = append(res.ErrorGroups, l.res.ErrorGroups...)
	return rows, nil
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
