package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/skiff-dev/skiff/apiserver/authz/rbac"
)

// Reconciliation follows upstream's (the API server's start and `kubectl auth reconcile`): an
// object is created when missing; otherwise its labels and annotations gain the expected ones
// (its own values win), a role gains the rules and aggregation selectors it lacks, and a
// binding gains the subjects it lacks, keeping whatever users added unless asked to remove
// extras. A binding whose roleRef differs is deleted and created again, since roleRef is
// immutable. An object annotated rbac.authorization.kubernetes.io/autoupdate=false is left
// alone.

// Client reads and writes objects of one RBAC kind. Namespace is empty for cluster-scoped
// kinds. Errors are API status errors (NotFound, AlreadyExists, Conflict), as client-go's.
type Client[T any] interface {
	Get(ctx context.Context, namespace, name string) (T, error)
	Create(ctx context.Context, obj T) (T, error)
	Update(ctx context.Context, obj T) (T, error)
	Delete(ctx context.Context, namespace, name string) error
}

// Clients are the clients reconciliation writes policy through.
type Clients struct {
	Roles               Client[*rbacv1.Role]
	RoleBindings        Client[*rbacv1.RoleBinding]
	ClusterRoles        Client[*rbacv1.ClusterRole]
	ClusterRoleBindings Client[*rbacv1.ClusterRoleBinding]
	// EnsureNamespace, when set, makes a namespace exist before a Role or RoleBinding is created
	// in it, as upstream's reconciliation does.
	EnsureNamespace func(ctx context.Context, name string) error
}

// Operation is what reconciliation did, or would do, to one object.
type Operation string

const (
	OperationNone     Operation = "none"
	OperationCreate   Operation = "create"
	OperationUpdate   Operation = "update"
	OperationRecreate Operation = "recreate"
)

// Options are `kubectl auth reconcile`'s switches.
type Options struct {
	// RemoveExtra removes rules, aggregation selectors and subjects that the expected object
	// does not have (--remove-extra-permissions, --remove-extra-subjects).
	RemoveExtra bool
	// DryRun computes the result without writing.
	DryRun bool
}

// Result says what reconciling one object found and did.
type Result struct {
	Operation Operation
	// Protected: the object is annotated autoupdate=false, so nothing was written.
	Protected                   bool
	MissingRules, ExtraRules    []rbacv1.PolicyRule
	MissingAggregationSelectors []metav1.LabelSelector
	ExtraAggregationSelectors   []metav1.LabelSelector
	MissingSubjects             []rbacv1.Subject
	ExtraSubjects               []rbacv1.Subject
}

// maxAttempts bounds the retries when the object is created or deleted under reconciliation.
const maxAttempts = 3

var errTooManyAttempts = errors.New("exceeded maximum attempts")

// ReconcileClusterRole makes the ClusterRole expected.Name hold expected's rules, aggregation
// selectors, labels and annotations.
func ReconcileClusterRole(ctx context.Context, c Client[*rbacv1.ClusterRole], expected *rbacv1.ClusterRole, opts Options) (Result, error) {
	for range maxAttempts {
		existing, err := c.Get(ctx, "", expected.Name)
		if apierrors.IsNotFound(err) {
			res := Result{Operation: OperationCreate, MissingRules: expected.Rules}
			if expected.AggregationRule != nil {
				res.MissingAggregationSelectors = expected.AggregationRule.ClusterRoleSelectors
			}
			if opts.DryRun {
				return res, nil
			}
			if _, err := c.Create(ctx, expected.DeepCopy()); apierrors.IsAlreadyExists(err) {
				continue
			} else if err != nil {
				return Result{}, err
			}
			return res, nil
		}
		if err != nil {
			return Result{}, err
		}
		updated := existing.DeepCopy()
		res := reconcileRules(&updated.ObjectMeta, &updated.Rules, &updated.AggregationRule, &existing.ObjectMeta,
			existing.Rules, existing.AggregationRule, &expected.ObjectMeta, expected.Rules, expected.AggregationRule, opts.RemoveExtra)
		if res.Protected || opts.DryRun || res.Operation == OperationNone {
			return res, nil
		}
		if _, err := c.Update(ctx, updated); apierrors.IsNotFound(err) {
			continue
		} else if err != nil {
			return Result{}, err
		}
		return res, nil
	}
	return Result{}, errTooManyAttempts
}

// ReconcileRole makes the Role expected.Namespace/expected.Name hold expected's rules, labels
// and annotations. ensureNamespace may be nil.
func ReconcileRole(ctx context.Context, c Client[*rbacv1.Role], ensureNamespace func(context.Context, string) error, expected *rbacv1.Role, opts Options) (Result, error) {
	for range maxAttempts {
		existing, err := c.Get(ctx, expected.Namespace, expected.Name)
		if apierrors.IsNotFound(err) {
			res := Result{Operation: OperationCreate, MissingRules: expected.Rules}
			if opts.DryRun {
				return res, nil
			}
			if ensureNamespace != nil {
				if err := ensureNamespace(ctx, expected.Namespace); err != nil {
					return Result{}, err
				}
			}
			if _, err := c.Create(ctx, expected.DeepCopy()); apierrors.IsAlreadyExists(err) {
				continue
			} else if err != nil {
				return Result{}, err
			}
			return res, nil
		}
		if err != nil {
			return Result{}, err
		}
		updated := existing.DeepCopy()
		var noAggregation *rbacv1.AggregationRule
		res := reconcileRules(&updated.ObjectMeta, &updated.Rules, &noAggregation, &existing.ObjectMeta,
			existing.Rules, nil, &expected.ObjectMeta, expected.Rules, nil, opts.RemoveExtra)
		if res.Protected || opts.DryRun || res.Operation == OperationNone {
			return res, nil
		}
		if _, err := c.Update(ctx, updated); apierrors.IsNotFound(err) {
			continue
		} else if err != nil {
			return Result{}, err
		}
		return res, nil
	}
	return Result{}, errTooManyAttempts
}

// reconcileRules computes the reconciled role into meta, rules and aggregation (a copy of the
// existing object's) and says what changed.
func reconcileRules(meta *metav1.ObjectMeta, rules *[]rbacv1.PolicyRule, aggregation **rbacv1.AggregationRule,
	existingMeta *metav1.ObjectMeta, existingRules []rbacv1.PolicyRule, existingAggregation *rbacv1.AggregationRule,
	expectedMeta *metav1.ObjectMeta, expectedRules []rbacv1.PolicyRule, expectedAggregation *rbacv1.AggregationRule,
	removeExtra bool) Result {
	res := Result{Operation: OperationNone, Protected: existingMeta.Annotations[rbacv1.AutoUpdateAnnotationKey] == "false"}
	if mergeMetadata(meta, existingMeta, expectedMeta) {
		res.Operation = OperationUpdate
	}
	// an aggregated role's rules are the aggregation controller's, not extras
	if expectedAggregation == nil || existingAggregation == nil {
		_, res.ExtraRules = rbac.Covers(expectedRules, existingRules)
	}
	_, res.MissingRules = rbac.Covers(existingRules, expectedRules)
	switch {
	case !removeExtra && len(res.MissingRules) > 0:
		*rules = append(*rules, res.MissingRules...)
		res.Operation = OperationUpdate
	case removeExtra && (len(res.MissingRules) > 0 || len(res.ExtraRules) > 0):
		*rules = expectedRules
		res.Operation = OperationUpdate
	}

	res.ExtraAggregationSelectors = missingSelectors(expectedAggregation, existingAggregation)
	res.MissingAggregationSelectors = missingSelectors(existingAggregation, expectedAggregation)
	switch {
	case expectedAggregation == nil && existingAggregation != nil:
		*aggregation = nil
		res.Operation = OperationUpdate
	case !removeExtra && len(res.MissingAggregationSelectors) > 0:
		if *aggregation == nil {
			*aggregation = &rbacv1.AggregationRule{}
		}
		(*aggregation).ClusterRoleSelectors = append((*aggregation).ClusterRoleSelectors, res.MissingAggregationSelectors...)
		res.Operation = OperationUpdate
	case removeExtra && (len(res.MissingAggregationSelectors) > 0 || len(res.ExtraAggregationSelectors) > 0):
		*aggregation = expectedAggregation.DeepCopy()
		res.Operation = OperationUpdate
	}
	return res
}

// missingSelectors are the selectors of want that have does not hold.
func missingSelectors(have, want *rbacv1.AggregationRule) []metav1.LabelSelector {
	if want == nil {
		return nil
	}
	var missing []metav1.LabelSelector
	for _, w := range want.ClusterRoleSelectors {
		found := false
		if have != nil {
			for _, h := range have.ClusterRoleSelectors {
				if reflect.DeepEqual(h, w) {
					found = true
					break
				}
			}
		}
		if !found {
			missing = append(missing, w)
		}
	}
	return missing
}

// mergeMetadata adds expected's labels and annotations to meta (existing values win) and says
// whether that changed anything.
func mergeMetadata(meta, existing, expected *metav1.ObjectMeta) bool {
	meta.Labels = mergeMaps(expected.Labels, existing.Labels)
	meta.Annotations = mergeMaps(expected.Annotations, existing.Annotations)
	return !reflect.DeepEqual(meta.Labels, existing.Labels) || !reflect.DeepEqual(meta.Annotations, existing.Annotations)
}

func mergeMaps(low, high map[string]string) map[string]string {
	if len(low) == 0 {
		return high
	}
	out := make(map[string]string, len(low)+len(high))
	for k, v := range low {
		out[k] = v
	}
	for k, v := range high {
		out[k] = v
	}
	return out
}

// ReconcileClusterRoleBinding makes the ClusterRoleBinding expected.Name refer to expected's
// role and bind at least its subjects.
func ReconcileClusterRoleBinding(ctx context.Context, c Client[*rbacv1.ClusterRoleBinding], expected *rbacv1.ClusterRoleBinding, opts Options) (Result, error) {
	return reconcileBinding(ctx, bindingClient[*rbacv1.ClusterRoleBinding]{c, func(b *rbacv1.ClusterRoleBinding) bindingFields {
		return bindingFields{&b.ObjectMeta, &b.RoleRef, &b.Subjects}
	}, (*rbacv1.ClusterRoleBinding).DeepCopy}, nil, expected, opts)
}

// ReconcileRoleBinding makes the RoleBinding expected.Namespace/expected.Name refer to
// expected's role and bind at least its subjects. ensureNamespace may be nil.
func ReconcileRoleBinding(ctx context.Context, c Client[*rbacv1.RoleBinding], ensureNamespace func(context.Context, string) error, expected *rbacv1.RoleBinding, opts Options) (Result, error) {
	return reconcileBinding(ctx, bindingClient[*rbacv1.RoleBinding]{c, func(b *rbacv1.RoleBinding) bindingFields {
		return bindingFields{&b.ObjectMeta, &b.RoleRef, &b.Subjects}
	}, (*rbacv1.RoleBinding).DeepCopy}, ensureNamespace, expected, opts)
}

type bindingFields struct {
	meta     *metav1.ObjectMeta
	roleRef  *rbacv1.RoleRef
	subjects *[]rbacv1.Subject
}

// bindingClient lets one reconciliation serve both binding kinds.
type bindingClient[T any] struct {
	Client[T]
	fields   func(T) bindingFields
	deepCopy func(T) T
}

func reconcileBinding[T any](ctx context.Context, c bindingClient[T], ensureNamespace func(context.Context, string) error, expected T, opts Options) (Result, error) {
	want := c.fields(expected)
	create := func() error {
		if ensureNamespace != nil && want.meta.Namespace != "" {
			if err := ensureNamespace(ctx, want.meta.Namespace); err != nil {
				return err
			}
		}
		_, err := c.Create(ctx, c.deepCopy(expected))
		return err
	}
	for range maxAttempts {
		existing, err := c.Get(ctx, want.meta.Namespace, want.meta.Name)
		if apierrors.IsNotFound(err) {
			res := Result{Operation: OperationCreate, MissingSubjects: *want.subjects}
			if opts.DryRun {
				return res, nil
			}
			if err := create(); apierrors.IsAlreadyExists(err) {
				continue
			} else if err != nil {
				return Result{}, err
			}
			return res, nil
		}
		if err != nil {
			return Result{}, err
		}
		have := c.fields(existing)
		res := Result{Operation: OperationNone, Protected: have.meta.Annotations[rbacv1.AutoUpdateAnnotationKey] == "false"}
		if *have.roleRef != *want.roleRef {
			// roleRef cannot change: start over with the expected binding
			res.Operation = OperationRecreate
			if res.Protected || opts.DryRun {
				return res, nil
			}
			if err := c.Delete(ctx, have.meta.Namespace, have.meta.Name); err != nil && !apierrors.IsNotFound(err) {
				return Result{}, err
			}
			if err := create(); apierrors.IsAlreadyExists(err) {
				continue
			} else if err != nil {
				return Result{}, err
			}
			return res, nil
		}
		updated := c.deepCopy(existing)
		upd := c.fields(updated)
		if mergeMetadata(upd.meta, have.meta, want.meta) {
			res.Operation = OperationUpdate
		}
		res.MissingSubjects, res.ExtraSubjects = diffSubjects(*want.subjects, *have.subjects)
		switch {
		case !opts.RemoveExtra && len(res.MissingSubjects) > 0:
			*upd.subjects = append(*upd.subjects, res.MissingSubjects...)
			res.Operation = OperationUpdate
		case opts.RemoveExtra && (len(res.MissingSubjects) > 0 || len(res.ExtraSubjects) > 0):
			*upd.subjects = *want.subjects
			res.Operation = OperationUpdate
		}
		if res.Protected || opts.DryRun || res.Operation == OperationNone {
			return res, nil
		}
		if _, err := c.Update(ctx, updated); apierrors.IsNotFound(err) {
			continue
		} else if err != nil {
			return Result{}, err
		}
		return res, nil
	}
	return Result{}, errTooManyAttempts
}

// diffSubjects returns the subjects of want that have lacks, and those of have that want lacks.
func diffSubjects(want, have []rbacv1.Subject) (missing, extra []rbacv1.Subject) {
	contains := func(list []rbacv1.Subject, s rbacv1.Subject) bool {
		for _, l := range list {
			if l == s {
				return true
			}
		}
		return false
	}
	for _, w := range want {
		if !contains(have, w) {
			missing = append(missing, w)
		}
	}
	for _, h := range have {
		if !contains(want, h) {
			extra = append(extra, h)
		}
	}
	return missing, extra
}

// EnsurePolicy reconciles the whole default policy, adding what is missing and keeping what
// users added, as upstream's API server does at start. It goes on past failures so as to
// write as much as it can, retries conflicts, and returns every failure.
func EnsurePolicy(ctx context.Context, c Clients) error {
	var errs []error
	try := func(kind, name string, reconcile func() (Result, error)) {
		var res Result
		err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
			var err error
			res, err = reconcile()
			return err
		})
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("unable to reconcile %s.%s/%s: %w", kind, rbacv1.GroupName, name, err))
		case res.Protected && res.Operation != OperationNone:
			slog.Warn("skipped reconcile-protected RBAC object", "kind", kind, "name", name, "missingRules", len(res.MissingRules), "missingSubjects", len(res.MissingSubjects))
		case res.Operation != OperationNone:
			slog.Debug("reconciled RBAC object", "kind", kind, "name", name, "operation", res.Operation)
		}
	}
	for _, r := range append(ClusterRoles(), ControllerRoles()...) {
		try("clusterrole", r.Name, func() (Result, error) { return ReconcileClusterRole(ctx, c.ClusterRoles, &r, Options{}) })
	}
	for _, b := range append(ClusterRoleBindings(), ControllerRoleBindings()...) {
		try("clusterrolebinding", b.Name, func() (Result, error) { return ReconcileClusterRoleBinding(ctx, c.ClusterRoleBindings, &b, Options{}) })
	}
	for _, roles := range NamespaceRoles() {
		for _, r := range roles {
			try("role", r.Namespace+"/"+r.Name, func() (Result, error) { return ReconcileRole(ctx, c.Roles, c.EnsureNamespace, &r, Options{}) })
		}
	}
	for _, bindings := range NamespaceRoleBindings() {
		for _, b := range bindings {
			try("rolebinding", b.Namespace+"/"+b.Name, func() (Result, error) {
				return ReconcileRoleBinding(ctx, c.RoleBindings, c.EnsureNamespace, &b, Options{})
			})
		}
	}
	return errors.Join(errs...)
}
