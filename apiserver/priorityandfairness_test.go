package apiserver_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fcbootstrap "k8s.io/apiserver/pkg/apis/flowcontrol/bootstrap"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func TestFlowControlBootstrapObjectsArePresentAndRestored(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	fc := s.Client.FlowcontrolV1()
	for _, fs := range append(fcbootstrap.MandatoryFlowSchemas, fcbootstrap.SuggestedFlowSchemas...) {
		got, err := fc.FlowSchemas().Get(ctx, fs.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("FlowSchema %s: %v", fs.Name, err)
		}
		if got.Annotations["apf.kubernetes.io/autoupdate-spec"] != "true" {
			t.Errorf("FlowSchema %s annotations %v", fs.Name, got.Annotations)
		}
	}
	for _, plc := range append(fcbootstrap.MandatoryPriorityLevelConfigurations, fcbootstrap.SuggestedPriorityLevelConfigurations...) {
		if _, err := fc.PriorityLevelConfigurations().Get(ctx, plc.Name, metav1.GetOptions{}); err != nil {
			t.Fatalf("PriorityLevelConfiguration %s: %v", plc.Name, err)
		}
	}

	// a deleted mandatory or suggested object comes back
	for _, name := range []string{"catch-all", "global-default"} {
		if err := fc.FlowSchemas().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "FlowSchema "+name+" restored", func() error {
			_, err := fc.FlowSchemas().Get(ctx, name, metav1.GetOptions{})
			return err
		})
	}

	// a suggested object's changed spec is put back while the server controls it...
	plc, err := fc.PriorityLevelConfigurations().Get(ctx, "workload-low", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	plc.Spec.Limited.NominalConcurrencyShares = ptr.To[int32](7)
	if _, err := fc.PriorityLevelConfigurations().Update(ctx, plc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "workload-low's spec restored", func() error {
		got, err := fc.PriorityLevelConfigurations().Get(ctx, "workload-low", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if n := *got.Spec.Limited.NominalConcurrencyShares; n != 100 {
			return fmt.Errorf("nominalConcurrencyShares %d", n)
		}
		return nil
	})
	// ...and kept once the annotation gives it to the users
	eventually(t, "workload-low handed to its users", func() error {
		plc, err := fc.PriorityLevelConfigurations().Get(ctx, "workload-low", metav1.GetOptions{})
		if err != nil {
			return err
		}
		plc.Annotations["apf.kubernetes.io/autoupdate-spec"] = "false"
		plc.Spec.Limited.NominalConcurrencyShares = ptr.To[int32](7)
		_, err = fc.PriorityLevelConfigurations().Update(ctx, plc, metav1.UpdateOptions{})
		return err
	})
	// another object's restoration shows a pass of the producer has run since
	if err := fc.FlowSchemas().Delete(ctx, "global-default", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "FlowSchema global-default restored again", func() error {
		_, err := fc.FlowSchemas().Get(ctx, "global-default", metav1.GetOptions{})
		return err
	})
	got, err := fc.PriorityLevelConfigurations().Get(ctx, "workload-low", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := *got.Spec.Limited.NominalConcurrencyShares; n != 7 {
		t.Errorf("user-controlled workload-low was reset to %d shares", n)
	}

	// the mandatory specs cannot be changed at all
	exempt, err := fc.PriorityLevelConfigurations().Get(ctx, "exempt", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	exempt.Spec.Exempt.NominalConcurrencyShares = ptr.To[int32](5)
	_, err = fc.PriorityLevelConfigurations().Update(ctx, exempt, metav1.UpdateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec of 'exempt' must equal the fixed value") {
		t.Errorf("changing exempt's spec: %v", err)
	}
}

func TestFlowSchemaDanglingConditionFollowsItsPriorityLevel(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	fc := s.Client.FlowcontrolV1()
	fs := &flowcontrolv1.FlowSchema{
		ObjectMeta: metav1.ObjectMeta{Name: "team-a"},
		Spec: flowcontrolv1.FlowSchemaSpec{
			PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: "team-a"},
			MatchingPrecedence:         500,
			Rules: []flowcontrolv1.PolicyRulesWithSubjects{{
				Subjects:      []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindUser, User: &flowcontrolv1.UserSubject{Name: "alice"}}},
				ResourceRules: []flowcontrolv1.ResourcePolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, Namespaces: []string{"*"}}},
			}},
		},
	}
	if _, err := fc.FlowSchemas().Create(ctx, fs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dangling := func(want flowcontrolv1.ConditionStatus, wantMessage string) func() error {
		return func() error {
			got, err := fc.FlowSchemas().Get(ctx, "team-a", metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, c := range got.Status.Conditions {
				if c.Type == flowcontrolv1.FlowSchemaConditionDangling && c.Status == want && c.Message == wantMessage {
					return nil
				}
			}
			return fmt.Errorf("conditions %+v", got.Status.Conditions)
		}
	}
	eventually(t, "Dangling True", dangling(flowcontrolv1.ConditionTrue,
		`This FlowSchema references the PriorityLevelConfiguration object named "team-a" but there is no such object`))
	plc := &flowcontrolv1.PriorityLevelConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "team-a"},
		Spec: flowcontrolv1.PriorityLevelConfigurationSpec{Type: flowcontrolv1.PriorityLevelEnablementLimited,
			Limited: &flowcontrolv1.LimitedPriorityLevelConfiguration{LimitResponse: flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeReject}}},
	}
	created, err := fc.PriorityLevelConfigurations().Create(ctx, plc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *created.Spec.Limited.NominalConcurrencyShares != 30 {
		t.Errorf("nominalConcurrencyShares defaulted to %d", *created.Spec.Limited.NominalConcurrencyShares)
	}
	eventually(t, "Dangling False", dangling(flowcontrolv1.ConditionFalse,
		`This FlowSchema references the PriorityLevelConfiguration object named "team-a" and it exists`))

	bindClusterAdmin(t, s, "alice")
	// alice's requests are now classified to team-a, and the response says so
	_, cfg := userClient(t, s, "alice")
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fsNow, _ := fc.FlowSchemas().Get(ctx, "team-a", metav1.GetOptions{})
	eventually(t, "alice classified to team-a", func() error {
		resp, err := hc.Get(s.URL + "/api/v1/namespaces/default/configmaps")
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if got := resp.Header.Get("X-Kubernetes-PF-FlowSchema-UID"); got != string(fsNow.UID) {
			return fmt.Errorf("FlowSchema UID %q, want %q", got, fsNow.UID)
		}
		if got := resp.Header.Get("X-Kubernetes-PF-PriorityLevel-UID"); got != string(created.UID) {
			return fmt.Errorf("PriorityLevel UID %q, want %q", got, created.UID)
		}
		return nil
	})
}

func TestKubectlGetsFlowControlObjectsWithUpstreamsColumns(t *testing.T) {
	_, kubeconfig := startForKubectl(t)
	kubectl := kubectlRunner(t, kubectlOnPath(t), kubeconfig, nil)
	out := kubectl("get", "flowschemas")
	if !strings.Contains(out, "NAME") || !strings.Contains(strings.Join(strings.Fields(strings.SplitN(out, "\n", 2)[0]), " "),
		"NAME PRIORITYLEVEL MATCHINGPRECEDENCE DISTINGUISHERMETHOD AGE MISSINGPL") {
		t.Errorf("kubectl get flowschemas:\n%s", out)
	}
	if !strings.Contains(out, "exempt") || !strings.Contains(out, "global-default") {
		t.Errorf("bootstrap FlowSchemas missing:\n%s", out)
	}
	out = kubectl("get", "prioritylevelconfigurations")
	if got := strings.Join(strings.Fields(strings.SplitN(out, "\n", 2)[0]), " "); got != "NAME TYPE NOMINALCONCURRENCYSHARES QUEUES HANDSIZE QUEUELENGTHLIMIT AGE" {
		t.Errorf("header %q", got)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "global-default" && strings.Join(f[1:6], " ") != "Limited 20 128 6 50" {
			t.Errorf("global-default row %q", line)
		}
	}
}

// A user flooding the server does not starve a second user of the same priority level, nor
// the kubelets of theirs: their requests keep succeeding, never 429, while the flooder's own
// are turned away.
func TestAFloodFromOneUserDoesNotStarveAnotherUserOrTheNodes(t *testing.T) {
	// two seats in all: every limited level has one
	s := apiservertest.Start(t, func(c *apiserver.Config) {
		c.MaxRequestsInFlight, c.MaxMutatingRequestsInFlight = 1, 1
	})
	ctx := context.Background()
	bindClusterAdmin(t, s, "flooder", "victim")
	for i := 0; i < 200; i++ {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i)}, Data: map[string]string{"k": strings.Repeat("v", 200)}}
		if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	get := func(hc *http.Client, path string) (int, error) {
		resp, err := hc.Get(s.URL + path)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	httpClient := func(user string, groups ...string) *http.Client {
		_, cfg := userClient(t, s, user, groups...)
		hc, err := rest.HTTPClientFor(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return hc
	}
	flooder, victim, node := httpClient("flooder"), httpClient("victim"), httpClient("system:node:n1", "system:nodes")
	eventually(t, "victim may list", func() error {
		if code, err := get(victim, "/api/v1/namespaces/default/configmaps"); err != nil || code != 200 {
			return fmt.Errorf("%d %v", code, err)
		}
		return nil
	})

	floodCtx, stopFlood := context.WithCancel(ctx)
	var rejected, highestRetryAfter atomic.Int64
	var badRetryAfter atomic.Value
	firstRejection := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for i := 0; i < 400; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for floodCtx.Err() == nil {
				resp, err := flooder.Get(s.URL + "/api/v1/namespaces/default/configmaps")
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusTooManyRequests {
					rejected.Add(1)
					once.Do(func() { close(firstRejection) })
					v, err := strconv.ParseInt(resp.Header.Get("Retry-After"), 10, 64)
					if err != nil || v < 1 || v > 32 {
						badRetryAfter.Store(resp.Header.Get("Retry-After"))
					}
					for h := highestRetryAfter.Load(); v > h && !highestRetryAfter.CompareAndSwap(h, v); h = highestRetryAfter.Load() {
					}
				}
			}
		}()
	}
	defer func() {
		stopFlood()
		wg.Wait()
	}()
	<-firstRejection // the flood is more than its level takes

	for i := 0; i < 20; i++ {
		if code, err := get(victim, "/api/v1/namespaces/default/configmaps"); err != nil || code != http.StatusOK {
			t.Fatalf("victim's list %d during the flood: %d %v", i, code, err)
		}
		// the node reads its own Node: 404, since none is registered, but never 429
		if code, err := get(node, "/api/v1/nodes/n1"); err != nil || code != http.StatusNotFound {
			t.Fatalf("node's get %d during the flood: %d %v", i, code, err)
		}
	}
	// a level that keeps rejecting asks for longer waits, as upstream's
	eventually(t, "a rising Retry-After", func() error {
		if h := highestRetryAfter.Load(); h < 2 {
			return fmt.Errorf("highest Retry-After so far %d", h)
		}
		return nil
	})
	if bad := badRetryAfter.Load(); bad != nil {
		t.Errorf("a 429 with Retry-After %q", bad)
	}
	stopFlood()
	wg.Wait()
	t.Logf("flooder's requests rejected: %d, highest Retry-After %d", rejected.Load(), highestRetryAfter.Load())
}

// bindClusterAdmin makes users cluster admins by RBAC: allowed everything, yet not in
// system:masters, so not exempt from priority and fairness.
func bindClusterAdmin(t *testing.T, s *apiservertest.Server, users ...string) {
	t.Helper()
	for _, u := range users {
		if _, err := s.Client.RbacV1().ClusterRoleBindings().Create(context.Background(), &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "test-" + u},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
			Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: u}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}
