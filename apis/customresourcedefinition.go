package apis

import (
	"context"
	"slices"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	extapply "k8s.io/apiextensions-apiserver/pkg/client/applyconfiguration"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/apis/customresource"
)

// CustomResourceDefinitions (apiextensions.k8s.io/v1) are a built-in kind like any other;
// what each one means for its custom resources is apis/customresource's to say, and
// CustomResources turns an accepted definition into the declarations the server serves.

var apiextensionsV1 = apiextensionsv1.SchemeGroupVersion

// crdTypeConverter describes CustomResourceDefinitions' fields to managedFields, from the
// schemas apiextensions-apiserver's apply configurations ship.
var crdTypeConverter = extapply.NewTypeConverter(Scheme)

// CustomResourceCleanupFinalizer holds a deleted CustomResourceDefinition until every one of
// its objects is gone, as upstream's.
const CustomResourceCleanupFinalizer = apiextensionsv1.CustomResourceCleanupFinalizer

// crdStrategy is upstream's CustomResourceDefinition strategy.
type crdStrategy struct{}

// CRDStrategy is the strategy of customresourcedefinitions.
var CRDStrategy = crdStrategy{}

var _ Strategy = crdStrategy{}

func (crdStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	customresource.PrepareCRDForCreate(obj.(*apiextensionsv1.CustomResourceDefinition))
}

func (crdStrategy) Validate(ctx context.Context, obj runtime.Object) field.ErrorList {
	return customresource.ValidateCRD(ctx, obj.(*apiextensionsv1.CustomResourceDefinition))
}

func (crdStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	customresource.PrepareCRDForUpdate(obj.(*apiextensionsv1.CustomResourceDefinition), old.(*apiextensionsv1.CustomResourceDefinition))
}

func (crdStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return customresource.ValidateCRDUpdate(ctx, obj.(*apiextensionsv1.CustomResourceDefinition), old.(*apiextensionsv1.CustomResourceDefinition))
}

func (crdStrategy) AllowCreateOnUpdate() bool      { return false }
func (crdStrategy) AllowUnconditionalUpdate() bool { return false }

// crdStatusStrategy is the strategy of customresourcedefinitions/status.
type crdStatusStrategy struct{ crdStrategy }

// CRDStatusStrategy is the strategy of customresourcedefinitions/status.
var CRDStatusStrategy = crdStatusStrategy{}

func (crdStatusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	customresource.PrepareCRDForStatusUpdate(obj.(*apiextensionsv1.CustomResourceDefinition), old.(*apiextensionsv1.CustomResourceDefinition))
}

func (crdStatusStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return customresource.ValidateCRDStatusUpdate(ctx, obj.(*apiextensionsv1.CustomResourceDefinition), old.(*apiextensionsv1.CustomResourceDefinition))
}

func defaultCRD(crd *apiextensionsv1.CustomResourceDefinition) { customresource.DefaultCRD(crd) }

// markCRDTerminating is what the first delete of a CustomResourceDefinition sets: the cleanup
// finalizer, so that it stays until its objects are deleted, and the Terminating condition,
// which refuses new objects meanwhile.
func markCRDTerminating(obj runtime.Object) {
	crd := obj.(*apiextensionsv1.CustomResourceDefinition)
	if !slices.Contains(crd.Finalizers, CustomResourceCleanupFinalizer) {
		crd.Finalizers = append(crd.Finalizers, CustomResourceCleanupFinalizer)
	}
	SetCRDCondition(crd, apiextensionsv1.CustomResourceDefinitionCondition{
		Type: apiextensionsv1.Terminating, Status: apiextensionsv1.ConditionTrue,
		Reason: "InstanceDeletionPending", Message: "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
	})
}

// crdCleanedUp reports whether every object of a deleted CustomResourceDefinition is gone.
func crdCleanedUp(obj runtime.Object) bool {
	return !slices.Contains(obj.(*apiextensionsv1.CustomResourceDefinition).Finalizers, CustomResourceCleanupFinalizer)
}

// SetCRDCondition sets a condition of crd, moving its transition time only when its status
// changes.
func SetCRDCondition(crd *apiextensionsv1.CustomResourceDefinition, c apiextensionsv1.CustomResourceDefinitionCondition) {
	for i := range crd.Status.Conditions {
		old := &crd.Status.Conditions[i]
		if old.Type != c.Type {
			continue
		}
		if old.Status == c.Status {
			c.LastTransitionTime = old.LastTransitionTime
		}
		if c.LastTransitionTime.IsZero() {
			c.LastTransitionTime = nowRFC3339()
		}
		*old = c
		return
	}
	if c.LastTransitionTime.IsZero() {
		c.LastTransitionTime = nowRFC3339()
	}
	crd.Status.Conditions = append(crd.Status.Conditions, c)
}

// CRDCondition returns crd's condition of the given type, or nil.
func CRDCondition(crd *apiextensionsv1.CustomResourceDefinition, t apiextensionsv1.CustomResourceDefinitionConditionType) *apiextensionsv1.CustomResourceDefinitionCondition {
	for i := range crd.Status.Conditions {
		if crd.Status.Conditions[i].Type == t {
			return &crd.Status.Conditions[i]
		}
	}
	return nil
}

// CustomResources declares the resources a CustomResourceDefinition serves, one per served
// version, for its accepted names. Their objects are unstructured and stored as JSON under
// /registry/<group>/<plural>/, in the storage version's apiVersion.
func CustomResources(crd *apiextensionsv1.CustomResourceDefinition) ([]*Resource, error) {
	versions, err := customresource.NewVersions(crd)
	if err != nil {
		return nil, err
	}
	names := crd.Status.AcceptedNames
	storageVersion := ""
	for _, v := range crd.Spec.Versions {
		if v.Storage {
			storageVersion = v.Name
		}
	}
	var out []*Resource
	for _, spec := range crd.Spec.Versions {
		if !spec.Served {
			continue
		}
		v := versions[spec.Name]
		gv := schema.GroupVersion{Group: crd.Spec.Group, Version: spec.Name}
		r := &Resource{
			GroupVersion: gv, Name: names.Plural, SingularName: names.Singular, Kind: names.Kind,
			ListKindName: names.ListKind, Namespaced: crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
			Verbs: verbsAll, ShortNames: names.ShortNames, Categories: names.Categories,
			StorageKey:     crd.Spec.Group + "/" + names.Plural,
			StorageVersion: schema.GroupVersion{Group: crd.Spec.Group, Version: storageVersion},
			Unstructured:   true,
			Fields:         customResourceFields(v),
			Default:        func(obj runtime.Object) { v.Default(obj.(*unstructured.Unstructured).Object) },
			PruneUnknown:   func(obj runtime.Object) ([]string, error) { return v.Prune(obj.(*unstructured.Unstructured).Object) },
			FromStorage: func(obj runtime.Object) {
				u := obj.(*unstructured.Unstructured)
				_ = v.PruneStored(u.Object) // what cannot be repaired is served as stored
				v.Default(u.Object)
			},
			Strategy:      customResourceStrategy{v},
			Table:         Columns(v.Columns(), v.Row),
			TypeConverter: v.TypeConverter(),
			Warning:       customresource.Warning(crd, spec.Name),
			OpenAPI:       v.OpenAPI,
		}
		if c := crd.Spec.Conversion; c != nil && c.Strategy == apiextensionsv1.WebhookConverter && c.Webhook != nil {
			r.ConversionWebhook = c.Webhook.DeepCopy()
			// the store validates the object it is about to store, which a webhook has
			// converted to the storage version: by that version's schema
			r.Strategy = customResourceStrategy{versions[storageVersion]}
		}
		if sub := spec.Subresources; sub != nil {
			if sub.Status != nil {
				r.Subresources = append(r.Subresources, Subresource{Name: "status", Kind: names.Kind, Verbs: verbsGetPatchUp,
					Strategy: customResourceStatusStrategy{customResourceStrategy{v}}})
			}
			if sc := sub.Scale; sc != nil {
				r.Subresources = append(r.Subresources, Subresource{Name: "scale", Kind: "Scale", GroupVersion: autoscalingV1, Verbs: verbsGetPatchUp})
				r.Scale = &ScalePaths{SpecReplicasPath: sc.SpecReplicasPath, StatusReplicasPath: sc.StatusReplicasPath}
				if sc.LabelSelectorPath != nil {
					r.Scale.LabelSelectorPath = *sc.LabelSelectorPath
				}
			}
		}
		if st := r.Subresource("status"); st != nil && r.ConversionWebhook != nil {
			st.Strategy = customResourceStatusStrategy{customResourceStrategy{versions[storageVersion]}}
		}
		out = append(out, r)
	}
	return out, nil
}

// customResourceFields selects custom resources by metadata.name, metadata.namespace and the
// version's selectableFields; an object that lacks one selects as "".
func customResourceFields(v *customresource.Version) func(runtime.Object) fields.Set {
	labels := v.FieldLabels()
	return func(obj runtime.Object) fields.Set {
		set := v.SelectableFields(obj)
		for _, l := range labels {
			if _, ok := set[l]; !ok {
				set[l] = ""
			}
		}
		return set
	}
}

// customResourceStrategy is upstream's custom resource strategy, by the version's schema.
type customResourceStrategy struct{ v *customresource.Version }

var _ Strategy = customResourceStrategy{}

func (s customResourceStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	s.v.PrepareForCreate(obj.(*unstructured.Unstructured))
}

func (s customResourceStrategy) Validate(ctx context.Context, obj runtime.Object) field.ErrorList {
	return s.v.Validate(ctx, s.served(obj))
}

func (s customResourceStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	s.v.PrepareForUpdate(obj.(*unstructured.Unstructured), old.(*unstructured.Unstructured))
}

func (s customResourceStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return s.v.ValidateUpdate(ctx, s.served(obj), s.served(old))
}

// served is obj, which the store holds in the storage version, as the version this strategy
// serves wrote it: upstream validates a custom resource in the version of the request, and
// with conversion None the versions differ only in apiVersion. The copy is shallow: validation
// only reads.
func (s customResourceStrategy) served(obj runtime.Object) *unstructured.Unstructured {
	u := obj.(*unstructured.Unstructured)
	want := s.v.GroupVersionKind().GroupVersion().String()
	if u.GetAPIVersion() == want {
		return u
	}
	out := &unstructured.Unstructured{Object: make(map[string]interface{}, len(u.Object))}
	for k, v := range u.Object {
		out.Object[k] = v
	}
	out.SetAPIVersion(want)
	return out
}

func (customResourceStrategy) AllowCreateOnUpdate() bool      { return false }
func (customResourceStrategy) AllowUnconditionalUpdate() bool { return false }

// customResourceStatusStrategy is the strategy of a custom resource's status subresource.
type customResourceStatusStrategy struct{ customResourceStrategy }

func (s customResourceStatusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	s.v.PrepareForStatusUpdate(obj.(*unstructured.Unstructured), old.(*unstructured.Unstructured))
}

func (s customResourceStatusStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return s.v.ValidateStatusUpdate(ctx, s.served(obj), s.served(old))
}

func nowRFC3339() metav1.Time { return metav1.Now().Rfc3339Copy() }
