package clusterroleaggregation

import (
	"context"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/controllers"
)

func aggregated(name, label string) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		AggregationRule: &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{
			{MatchLabels: map[string]string{label: "true"}},
		}},
	}
}

func labelled(name, label string, rules ...rbacv1.PolicyRule) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{label: "true"}}, Rules: rules}
}

func rule(verb, resource string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: []string{verb}, APIGroups: []string{""}, Resources: []string{resource}}
}

func syncedFake(t *testing.T, objects ...runtime.Object) (*Controller, *fake.Clientset) {
	t.Helper()
	client := fake.NewClientset(objects...)
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(factory.Rbac().V1().ClusterRoles(), client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); factory.Shutdown() })
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		t.Fatal("caches not synced")
	}
	return c, client
}

func rulesOf(t *testing.T, client *fake.Clientset, name string) []rbacv1.PolicyRule {
	t.Helper()
	r, err := client.RbacV1().ClusterRoles().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r.Rules
}

func TestAggregatedRoleGetsTheRulesOfMatchingRolesInNameOrder(t *testing.T) {
	c, client := syncedFake(t,
		aggregated("view", "aggregate-to-view"),
		labelled("z-crd-view", "aggregate-to-view", rule("get", "widgets"), rule("get", "pods")),
		labelled("a-core-view", "aggregate-to-view", rule("get", "pods")),
		labelled("unrelated", "aggregate-to-edit", rule("delete", "pods")),
	)
	if err := c.sync(context.Background(), "view"); err != nil {
		t.Fatal(err)
	}
	want := []rbacv1.PolicyRule{rule("get", "pods"), rule("get", "widgets")}
	if got := rulesOf(t, client, "view"); !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("rules = %v, want %v", got, want)
	}
}

func TestRolesWithoutAggregationRuleAreLeftAlone(t *testing.T) {
	c, client := syncedFake(t, labelled("plain", "aggregate-to-view", rule("get", "pods")))
	client.ClearActions()
	if err := c.sync(context.Background(), "plain"); err != nil {
		t.Fatal(err)
	}
	if err := c.sync(context.Background(), "deleted"); err != nil {
		t.Fatal(err)
	}
	if len(client.Actions()) != 0 {
		t.Errorf("actions: %v", client.Actions())
	}
}

func TestUnchangedAggregationWritesNothing(t *testing.T) {
	view := aggregated("view", "aggregate-to-view")
	view.Rules = []rbacv1.PolicyRule{rule("get", "pods")}
	c, client := syncedFake(t, view, labelled("a", "aggregate-to-view", rule("get", "pods")))
	client.ClearActions()
	if err := c.sync(context.Background(), "view"); err != nil {
		t.Fatal(err)
	}
	if len(client.Actions()) != 0 {
		t.Errorf("actions: %v", client.Actions())
	}
}

func TestARoleDoesNotAggregateItself(t *testing.T) {
	self := aggregated("self", "aggregate-to-self")
	self.Labels = map[string]string{"aggregate-to-self": "true"}
	self.Rules = []rbacv1.PolicyRule{rule("get", "stale")}
	c, client := syncedFake(t, self, labelled("other", "aggregate-to-self", rule("list", "pods")))
	if err := c.sync(context.Background(), "self"); err != nil {
		t.Fatal(err)
	}
	if got := rulesOf(t, client, "self"); !equality.Semantic.DeepEqual(got, []rbacv1.PolicyRule{rule("list", "pods")}) {
		t.Errorf("rules = %v", got)
	}
}

func TestRunFollowsANewlyLabelledRole(t *testing.T) {
	client := fake.NewClientset(aggregated("edit", "aggregate-to-edit"))
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(factory.Rbac().V1().ClusterRoles(), client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	defer func() { cancel(); <-done; factory.Shutdown() }()
	factory.Start(ctx.Done())
	go func() { defer close(done); c.Run(ctx, 2) }()

	if _, err := client.RbacV1().ClusterRoles().Create(ctx, labelled("crd-edit", "aggregate-to-edit", rule("create", "widgets")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		r, err := client.RbacV1().ClusterRoles().Get(ctx, "edit", metav1.GetOptions{})
		return err == nil && len(r.Rules) == 1 && r.Rules[0].Resources[0] == "widgets", nil
	})
	if err != nil {
		t.Errorf("edit never got the new role's rules: %v", err)
	}
}
