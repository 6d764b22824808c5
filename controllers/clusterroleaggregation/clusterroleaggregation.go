// Package clusterroleaggregation is the ClusterRole aggregation controller: a ClusterRole with
// an aggregationRule gets, as its rules, the rules of every other ClusterRole its selectors
// match, in name order and without repeats, as upstream's. That is how admin, edit and view
// grow with the roles that CRDs and charts label aggregate-to-*.
//
// It writes only the rules of aggregated ClusterRoles, by server-side apply under its own field
// manager; it never touches a ClusterRole without an aggregationRule.
package clusterroleaggregation

import (
	"context"
	"sort"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
	rbacinformers "k8s.io/client-go/informers/rbac/v1"
	"k8s.io/client-go/kubernetes"
	rbaclisters "k8s.io/client-go/listers/rbac/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/controllers"
)

const (
	// Name is the controller's name in --controllers, logs and metrics, as upstream's.
	Name = "clusterrole-aggregation-controller"
	// FieldManager owns the rules the controller applies.
	FieldManager = "clusterrole-aggregation-controller"
)

// Controller is the ClusterRole aggregation controller.
type Controller struct {
	client  kubernetes.Interface
	lister  rbaclisters.ClusterRoleLister
	synced  []cache.InformerSynced
	queue   controllers.Queue
	metrics *controllers.Metrics
}

// New makes the controller on a shared ClusterRole informer.
func New(informer rbacinformers.ClusterRoleInformer, client kubernetes.Interface, r controllers.Reporting) (*Controller, error) {
	c := &Controller{
		client:  client,
		lister:  informer.Lister(),
		synced:  []cache.InformerSynced{informer.Informer().HasSynced},
		queue:   controllers.NewQueue(Name, r),
		metrics: r.Metrics,
	}
	// Any change may change what any aggregated role selects, and the set of roles is small:
	// every aggregated role is looked at again, each under its own key so failures retry alone.
	_, err := informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.enqueueAggregated() },
		UpdateFunc: func(_, _ any) { c.enqueueAggregated() },
		DeleteFunc: func(any) { c.enqueueAggregated() },
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Run aggregates ClusterRoles with workers goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	controllers.Workers{Name: Name, Queue: c.queue, Sync: c.sync, Metrics: c.metrics, Synced: c.synced}.Run(ctx, workers)
}

func (c *Controller) enqueueAggregated() {
	roles, err := c.lister.List(labels.Everything())
	if err != nil {
		return
	}
	for _, r := range roles {
		if r.AggregationRule != nil {
			c.queue.Add(r.Name)
		}
	}
}

// sync sets the rules of the aggregated ClusterRole named key to the union of the rules of the
// ClusterRoles its selectors match.
func (c *Controller) sync(ctx context.Context, key string) error {
	role, err := c.lister.Get(key)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if role.AggregationRule == nil {
		return nil
	}
	rules, err := AggregatedRules(role, c.lister.List)
	if err != nil {
		return err
	}
	if equality.Semantic.DeepEqual(rules, role.Rules) {
		return nil
	}
	err = c.apply(ctx, role.Name, rules)
	if apierrors.IsUnsupportedMediaType(err) {
		// a server without server-side apply
		updated := role.DeepCopy()
		updated.Rules = rules
		_, err = c.client.RbacV1().ClusterRoles().Update(ctx, updated, metav1.UpdateOptions{})
	}
	return err
}

// AggregatedRules are the rules an aggregated ClusterRole should hold: those of every other
// ClusterRole that list returns for its selectors, selector by selector, each selector's
// matches in name order, without repeats. A role without an aggregationRule aggregates nothing.
func AggregatedRules(role *rbacv1.ClusterRole, list func(labels.Selector) ([]*rbacv1.ClusterRole, error)) ([]rbacv1.PolicyRule, error) {
	rules := []rbacv1.PolicyRule{}
	if role.AggregationRule == nil {
		return rules, nil
	}
	for i := range role.AggregationRule.ClusterRoleSelectors {
		selector, err := metav1.LabelSelectorAsSelector(&role.AggregationRule.ClusterRoleSelectors[i])
		if err != nil {
			return nil, err
		}
		matched, err := list(selector)
		if err != nil {
			return nil, err
		}
		matched = append([]*rbacv1.ClusterRole(nil), matched...) // the lister's slice is shared
		sort.Slice(matched, func(a, b int) bool { return matched[a].Name < matched[b].Name })
		for _, m := range matched {
			if m.Name == role.Name {
				continue
			}
			for _, r := range m.Rules {
				if !hasRule(rules, r) {
					rules = append(rules, r)
				}
			}
		}
	}
	return rules, nil
}

func (c *Controller) apply(ctx context.Context, name string, rules []rbacv1.PolicyRule) error {
	ac := rbacv1ac.ClusterRole(name)
	for _, r := range rules {
		ac.WithRules(rbacv1ac.PolicyRule().
			WithVerbs(r.Verbs...).
			WithAPIGroups(r.APIGroups...).
			WithResources(r.Resources...).
			WithResourceNames(r.ResourceNames...).
			WithNonResourceURLs(r.NonResourceURLs...))
	}
	_, err := c.client.RbacV1().ClusterRoles().Apply(ctx, ac, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	return err
}

func hasRule(rules []rbacv1.PolicyRule, r rbacv1.PolicyRule) bool {
	for i := range rules {
		if equality.Semantic.DeepEqual(rules[i], r) {
			return true
		}
	}
	return false
}
