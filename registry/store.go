// Package registry turns API requests on a resource into storage operations: it runs the
// resource's strategy (what a client may set, validation), owns the server-set metadata
// (uid, creationTimestamp, generateName, deletion), and maps storage failures to the
// metav1.Status errors upstream answers with. It never speaks HTTP.
package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/registry/storage"
	"github.com/skiff-dev/skiff/registry/storage/cacher"
)

// Store serves one resource (in one group version) from storage, as its declaration says.
type Store struct {
	Resource *apis.Resource
	// Strategy is the resource's own (Resource.Strategy).
	Strategy apis.Strategy
	Storage  storage.Interface
	// Allocator, when set, reserves what objects hold outside their key (service IPs and
	// ports) as they are created and updated, and frees it as they go.
	Allocator Allocator
	// Admit, when set, is the last say on a write, as upstream's validating admission: it
	// sees each create (old nil) and update once the strategy has prepared and validated it,
	// before it is stored, and refuses it with the error it returns.
	Admit func(ctx context.Context, obj, old runtime.Object) error
	// Mutate, when set, may change a write before the strategy sees it, as upstream's
	// mutating admission webhooks: it sees each create (old nil) and update in the served
	// kind, and returns the object to write or an error refusing it.
	Mutate func(ctx context.Context, obj, old runtime.Object) (runtime.Object, error)
	// AdmitDelete, when set, may refuse a delete, as upstream's validating admission of
	// DELETE: it sees the object as stored, in the served kind, once preconditions hold.
	AdmitDelete func(ctx context.Context, current runtime.Object, opts *metav1.DeleteOptions) error
	// ConvertCustomResource, when set, converts a custom resource to another version of its
	// kind (a conversion webhook); unset, versions differ only in apiVersion.
	ConvertCustomResource func(ctx context.Context, obj *unstructured.Unstructured, to schema.GroupVersion) (*unstructured.Unstructured, error)

	contentFieldsOnce sync.Once
	contentFields     bool // see selectsByContent
}

// NewStore builds the store of a served resource on the given storage.
func NewStore(r *apis.Resource, s storage.Interface) (*Store, error) {
	if r.Strategy == nil {
		return nil, fmt.Errorf("registry: %s declares no strategy", r.GroupVersionResource())
	}
	return &Store{Resource: r, Strategy: r.Strategy, Storage: s}, nil
}

// GroupResource names the resource in errors.
func (s *Store) GroupResource() schema.GroupResource {
	return s.Resource.GroupVersionResource().GroupResource()
}

// KeyPrefix is the etcd prefix holding the resource's objects in ns ("" for all namespaces).
func (s *Store) KeyPrefix(ns string) string {
	p := "/registry/" + s.Resource.StorageKey + "/"
	if s.Resource.Namespaced && ns != "" {
		p += ns + "/"
	}
	return p
}

// Key is the etcd key of one object.
func (s *Store) Key(ns, name string) string {
	if s.Resource.Namespaced {
		return "/registry/" + s.Resource.StorageKey + "/" + ns + "/" + name
	}
	return "/registry/" + s.Resource.StorageKey + "/" + name
}

// converts reports whether objects of this resource are stored as another kind, or (custom
// resources) must be made ready to serve from what storage holds.
func (s *Store) converts() bool {
	return s.Resource.StorageVersion != s.Resource.GroupVersion || s.Resource.Unstructured
}

func (s *Store) newStorageObject() runtime.Object {
	if s.Resource.Unstructured {
		u := s.Resource.New().(*unstructured.Unstructured)
		u.SetAPIVersion(s.Resource.StorageVersion.String())
		return u
	}
	if !s.converts() {
		return s.Resource.New()
	}
	obj, err := apis.Scheme.New(s.Resource.StorageVersion.WithKind(s.Resource.Kind))
	if err != nil {
		panic(err)
	}
	return obj
}

func (s *Store) newStorageList() runtime.Object {
	if s.Resource.Unstructured {
		l := s.Resource.NewList().(*unstructured.UnstructuredList)
		l.SetAPIVersion(s.Resource.StorageVersion.String())
		return l
	}
	if !s.converts() {
		return s.Resource.NewList()
	}
	obj, err := apis.Scheme.New(s.Resource.StorageVersion.WithKind(s.Resource.ListKind()))
	if err != nil {
		panic(err)
	}
	return obj
}

// toStorage converts an object of the served kind to the stored kind.
func (s *Store) toStorage(obj runtime.Object) (runtime.Object, error) {
	if !s.converts() || obj == nil {
		return obj, nil
	}
	if u, ok := obj.(*unstructured.Unstructured); ok {
		// custom resources are stored in the storage version: only their apiVersion differs
		if u.GetAPIVersion() == s.Resource.StorageVersion.String() {
			return u, nil
		}
		if s.ConvertCustomResource != nil {
			return s.ConvertCustomResource(context.Background(), u, s.Resource.StorageVersion)
		}
		out := u.DeepCopy()
		out.SetAPIVersion(s.Resource.StorageVersion.String())
		return out, nil
	}
	out := s.newStorageObject()
	if err := apis.Scheme.Convert(obj, out, nil); err != nil {
		return nil, err
	}
	return out, nil
}

// fromStorage converts a stored object to the served kind. A custom resource is copied (what
// storage returns may be the watch cache's), given the served apiVersion and made ready by its
// declaration's FromStorage.
func (s *Store) fromStorage(obj runtime.Object) (runtime.Object, error) {
	if !s.converts() || obj == nil {
		return obj, nil
	}
	if u, ok := obj.(*unstructured.Unstructured); ok {
		out := u.DeepCopy()
		if s.ConvertCustomResource != nil && u.GroupVersionKind() != s.Resource.GroupVersionKind() {
			var err error
			if out, err = s.ConvertCustomResource(context.Background(), u, s.Resource.GroupVersion); err != nil {
				return nil, err
			}
		}
		out.SetGroupVersionKind(s.Resource.GroupVersionKind())
		if s.Resource.FromStorage != nil {
			s.Resource.FromStorage(out)
		}
		return out, nil
	}
	out := s.Resource.New()
	if err := apis.Scheme.Convert(obj, out, nil); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Store) fromStorageList(list runtime.Object) (runtime.Object, error) {
	if !s.converts() {
		return list, nil
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	out := s.Resource.NewList()
	converted := make([]runtime.Object, 0, len(items))
	for _, it := range items {
		c, err := s.fromStorage(it)
		if err != nil {
			return nil, err
		}
		converted = append(converted, c)
	}
	if err := meta.SetList(out, converted); err != nil {
		return nil, err
	}
	src, _ := meta.ListAccessor(list)
	dst, _ := meta.ListAccessor(out)
	dst.SetResourceVersion(src.GetResourceVersion())
	dst.SetContinue(src.GetContinue())
	dst.SetRemainingItemCount(src.GetRemainingItemCount())
	return out, nil
}

// attrs returns labels and selectable fields of a stored object, for predicates.
func (s *Store) attrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	if s.Resource.Unstructured {
		// With conversion None a custom resource's versions differ only in apiVersion and it
		// selects the same in each: no copy is needed. A conversion webhook may move fields,
		// so the version's selectableFields are read from the object converted to it, as
		// upstream's storage of each version decodes it.
		if u, ok := obj.(*unstructured.Unstructured); ok && s.ConvertCustomResource != nil &&
			u.GroupVersionKind() != s.Resource.GroupVersionKind() && s.selectsByContent() {
			served, err := s.ConvertCustomResource(context.Background(), u, s.Resource.GroupVersion)
			if err != nil {
				return nil, nil, err
			}
			obj = served
		}
		m, err := meta.Accessor(obj)
		if err != nil {
			return nil, nil, err
		}
		return labels.Set(m.GetLabels()), s.Resource.SelectableFields(obj), nil
	}
	served, err := s.fromStorage(obj)
	if err != nil {
		return nil, nil, err
	}
	m, err := meta.Accessor(served)
	if err != nil {
		return nil, nil, err
	}
	return labels.Set(m.GetLabels()), s.Resource.SelectableFields(served), nil
}

// selectsByContent says whether the resource has field labels beyond metadata's: the
// selectableFields of a custom resource's version.
func (s *Store) selectsByContent() bool {
	s.contentFieldsOnce.Do(func() {
		for label := range s.Resource.FieldLabels() {
			if !strings.HasPrefix(label, "metadata.") {
				s.contentFields = true
			}
		}
	})
	return s.contentFields
}

// Get returns one object.
func (s *Store) Get(ctx context.Context, ns, name string, opts *metav1.GetOptions) (runtime.Object, error) {
	out := s.newStorageObject()
	if err := s.Storage.Get(ctx, s.Key(ns, name), storage.GetOptions{ResourceVersion: opts.ResourceVersion}, out); err != nil {
		return nil, s.interpret(err, name)
	}
	return s.fromStorage(out)
}

// ListOptions are what a list or watch request asks for, already parsed.
type ListOptions struct {
	Label                labels.Selector
	Field                fields.Selector
	ResourceVersion      string
	ResourceVersionMatch metav1.ResourceVersionMatch
	Limit                int64
	Continue             string
	AllowWatchBookmarks  bool
	SendInitialEvents    *bool
	// ReadOnly: see storage.ListOptions.
	ReadOnly bool
}

func (s *Store) predicate(opts ListOptions) storage.SelectionPredicate {
	return storage.SelectionPredicate{
		Label: opts.Label, Field: opts.Field, GetAttrs: s.attrs,
		Limit: opts.Limit, Continue: opts.Continue, AllowWatchBookmarks: opts.AllowWatchBookmarks,
	}
}

// singleName returns the name a field selector pins (metadata.name=x), so that one key is
// read rather than a prefix, as upstream does.
func singleName(sel fields.Selector) (string, bool) {
	if sel == nil {
		return "", false
	}
	return sel.RequiresExactMatch("metadata.name")
}

// withoutKeyFields returns sel for a watch of the one key of ns/name: nil (select all) when
// sel requires only what every object under that key has (metadata.name=name and
// metadata.namespace=ns), sel itself otherwise. A hundred watches of one pod then evaluate
// no field selector, which meant computing the pod's selectable fields twice per watcher per
// event.
func withoutKeyFields(sel fields.Selector, ns, name string) fields.Selector {
	for _, r := range sel.Requirements() {
		equals := r.Operator == selection.Equals || r.Operator == selection.DoubleEquals
		switch {
		case equals && r.Field == "metadata.name" && r.Value == name:
		case equals && r.Field == "metadata.namespace" && ns != "" && r.Value == ns:
		default:
			return sel
		}
	}
	return nil
}

// List returns the objects in ns (all namespaces when ns is "").
func (s *Store) List(ctx context.Context, ns string, opts ListOptions) (runtime.Object, error) {
	list := s.newStorageList()
	sopts := storage.ListOptions{
		ResourceVersion: opts.ResourceVersion, ResourceVersionMatch: opts.ResourceVersionMatch,
		Predicate: s.predicate(opts), Recursive: true,
	}
	if err := s.Storage.GetList(ctx, s.KeyPrefix(ns), sopts, list); err != nil {
		return nil, s.interpret(err, "")
	}
	return s.fromStorageList(list)
}

// ListShared is List for a caller that only encodes the items and keeps none of them (the
// list writers of a LIST answer): items may be the watch cache's own objects, shared with
// every other reader and watcher, and must not be modified in any way, not even their
// TypeMeta. list carries the list's resourceVersion, continue token and remainingItemCount;
// its own items are not the answer's. Resources that are converted from a stored kind, or
// whose storage cannot share, get List's copies.
func (s *Store) ListShared(ctx context.Context, ns string, opts ListOptions) (list runtime.Object, items []runtime.Object, err error) {
	shared, ok := s.Storage.(storage.SharedLister)
	if !ok || s.converts() {
		if list, err = s.List(ctx, ns, opts); err != nil {
			return nil, nil, err
		}
		if items, err = meta.ExtractList(list); err != nil {
			return nil, nil, err
		}
		return list, items, nil
	}
	list = s.newStorageList()
	sopts := storage.ListOptions{
		ResourceVersion: opts.ResourceVersion, ResourceVersionMatch: opts.ResourceVersionMatch,
		Predicate: s.predicate(opts), Recursive: true,
	}
	if items, err = shared.GetListShared(ctx, s.KeyPrefix(ns), sopts, list); err != nil {
		return nil, nil, s.interpret(err, "")
	}
	return list, items, nil
}

// Watch streams changes to the objects in ns.
func (s *Store) Watch(ctx context.Context, ns string, opts ListOptions) (watch.Interface, error) {
	sopts := storage.ListOptions{
		ResourceVersion: opts.ResourceVersion, ResourceVersionMatch: opts.ResourceVersionMatch,
		Predicate: s.predicate(opts), Recursive: true, SendInitialEvents: opts.SendInitialEvents,
		ReadOnly: opts.ReadOnly,
	}
	if opts.ResourceVersion == "" && opts.SendInitialEvents == nil {
		// a watch from "now" starts with the current state, as upstream's
		sendInitial := true
		sopts.SendInitialEvents = &sendInitial
	}
	key := s.KeyPrefix(ns)
	if name, ok := singleName(opts.Field); ok && (ns != "" || !s.Resource.Namespaced) {
		key, sopts.Recursive = s.Key(ns, name), false
		sopts.Predicate.Field = withoutKeyFields(opts.Field, ns, name)
	}
	w, err := s.Storage.Watch(ctx, key, sopts)
	if err != nil {
		return nil, s.interpret(err, "")
	}
	if !s.converts() {
		return w, nil
	}
	return watch.Filter(w, func(ev watch.Event) (watch.Event, bool) {
		if ev.Type == watch.Error {
			return ev, true
		}
		if ev.Type == watch.Bookmark {
			// a bookmark carries only a resourceVersion and annotations: keep them, in the served kind
			b := s.Resource.New()
			if src, err := meta.Accessor(ev.Object); err == nil {
				m, _ := meta.Accessor(b)
				m.SetResourceVersion(src.GetResourceVersion())
				m.SetAnnotations(src.GetAnnotations())
			}
			ev.Object = b
			return ev, true
		}
		obj, err := s.fromStorage(ev.Object)
		if err != nil {
			return watch.Event{Type: watch.Error, Object: &apierrors.NewInternalError(err).ErrStatus}, true
		}
		ev.Object = obj
		return ev, true
	}), nil
}

// Create stores a new object in ns. The object must already be decoded into the served kind
// and defaulted. Strategies see objects in the stored kind.
func (s *Store) Create(ctx context.Context, ns string, obj runtime.Object, dryRun bool) (runtime.Object, error) {
	if s.Mutate != nil {
		var err error
		if obj, err = s.Mutate(ctx, obj, nil); err != nil {
			return nil, err
		}
	}
	original, err := s.toStorage(obj)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	om, err := meta.Accessor(original)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	generated := om.GetName() == "" && om.GetGenerateName() != ""
	for attempt := 0; ; attempt++ {
		stored := original
		if generated {
			// the final name comes first, so that the strategy and validation see it; a
			// collision reruns the whole create with a new one, as upstream
			stored = original.DeepCopyObject()
		}
		m, _ := meta.Accessor(stored)
		if generated {
			m.SetName(generateName(m.GetGenerateName()))
		}
		if err := s.beforeCreate(ctx, ns, stored, m); err != nil {
			return nil, err
		}
		if s.Allocator != nil {
			if err := s.Allocator.Allocate(ctx, stored, nil, dryRun); err != nil {
				return nil, err
			}
		}
		if dryRun {
			return s.fromStorage(stored)
		}
		out := s.newStorageObject()
		err = s.Storage.Create(ctx, s.Key(ns, m.GetName()), stored, out)
		if storage.HasCode(err, storage.ErrCodeRequestTooLarge) && dropManagedFields(ctx, m) {
			err = s.Storage.Create(ctx, s.Key(ns, m.GetName()), stored, out)
		}
		if err == nil {
			return s.fromStorage(out)
		}
		if s.Allocator != nil {
			s.Allocator.Release(ctx, nil, stored)
		}
		if generated && storage.HasCode(err, storage.ErrCodeKeyExists) && attempt < 8 {
			continue
		}
		return nil, s.interpret(err, m.GetName())
	}
}

// beforeCreate sets the server-owned metadata, runs the strategy and validates.
func (s *Store) beforeCreate(ctx context.Context, ns string, obj runtime.Object, m metav1.Object) error {
	if s.Resource.Namespaced {
		if m.GetNamespace() == "" {
			m.SetNamespace(ns)
		}
	} else {
		m.SetNamespace("")
	}
	m.SetUID(types.UID(uuid.NewString()))
	m.SetCreationTimestamp(metav1.Now().Rfc3339Copy())
	m.SetResourceVersion("")
	m.SetDeletionTimestamp(nil)
	m.SetDeletionGracePeriodSeconds(nil)
	m.SetSelfLink("")
	s.Strategy.PrepareForCreate(ctx, obj)
	if errs := s.Strategy.Validate(ctx, obj); len(errs) > 0 {
		return apis.NewInvalid(s.Resource.GroupVersionKind().GroupKind(), m.GetName(), errs)
	}
	if s.Admit != nil {
		return s.Admit(ctx, obj, nil)
	}
	return nil
}

// generateName appends upstream's five random characters to a generateName prefix, trimming
// the prefix so the result stays within 63 characters.
func generateName(base string) string {
	const maxGeneratedNameLength = 63 - 5
	if len(base) > maxGeneratedNameLength {
		base = base[:maxGeneratedNameLength]
	}
	return base + utilrand.String(5)
}

// UpdateFunc computes the new object from the current one (nil when it does not exist).
type UpdateFunc func(ctx context.Context, current runtime.Object) (runtime.Object, error)

// Update replaces the object ns/name with what update returns, compare-and-swap on the
// resourceVersion the new object carries. It reports whether the object was created.
// strategy is s.Strategy for the main resource, or a subresource's.
func (s *Store) Update(ctx context.Context, ns, name string, strategy apis.Strategy, update UpdateFunc, dryRun bool) (runtime.Object, bool, error) {
	if strategy == nil {
		strategy = s.Strategy
	}
	key := s.Key(ns, name)
	created := false
	var result runtime.Object
	// what the last attempt turned which stored state into, for the allocator
	var lastOld, lastNew runtime.Object
	out := s.newStorageObject()
	withoutManagedFields := false
	tryUpdate := func(current runtime.Object) (runtime.Object, error) {
		created = false
		cm, err := meta.Accessor(current)
		if err != nil {
			return nil, err
		}
		exists := cm.GetResourceVersion() != ""
		var served runtime.Object
		if exists {
			if served, err = s.fromStorage(current.DeepCopyObject()); err != nil {
				return nil, err
			}
		}
		servedNew, err := update(ctx, served)
		if err != nil {
			return nil, err
		}
		if _, marking := strategy.(markStrategy); s.Mutate != nil && !marking {
			if servedNew, err = s.Mutate(ctx, servedNew, served); err != nil {
				return nil, err
			}
		}
		obj, err := s.toStorage(servedNew)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		m, err := meta.Accessor(obj)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		if !exists {
			if !strategy.AllowCreateOnUpdate() {
				return nil, apierrors.NewNotFound(s.GroupResource(), name)
			}
			if err := s.beforeCreate(ctx, ns, obj, m); err != nil {
				return nil, err
			}
			created = true
		} else {
			if err := s.beforeUpdate(ctx, obj, current, m, cm, strategy); err != nil {
				return nil, err
			}
		}
		if s.Allocator != nil {
			var old runtime.Object
			if !created {
				old = current
			}
			if err := s.Allocator.Allocate(ctx, obj, old, dryRun); err != nil {
				return nil, err
			}
			lastOld, lastNew = old, obj
		}
		if dryRun {
			result, err = s.fromStorage(obj)
			if err != nil {
				return nil, err
			}
			return nil, errDryRun
		}
		if !created && s.finalizedAway(obj, current) {
			// the last finalizer of an object being deleted without grace went away: the
			// object goes with it, as upstream
			return nil, errDeleteNow
		}
		if withoutManagedFields {
			m.SetManagedFields(nil)
		}
		return obj, nil
	}
	err := s.Storage.GuaranteedUpdate(ctx, key, out, true, nil, tryUpdate, nil)
	if storage.HasCode(err, storage.ErrCodeRequestTooLarge) && managedFieldsDroppable(ctx) {
		if s.Allocator != nil && lastNew != nil {
			s.Allocator.Release(ctx, lastOld, lastNew) // what the refused write took
			lastOld, lastNew = nil, nil
		}
		withoutManagedFields = true
		err = s.Storage.GuaranteedUpdate(ctx, key, out, true, nil, tryUpdate, nil)
	}
	if s.Allocator != nil && lastNew != nil && err != errDryRun {
		if err == nil || err == errDeleteNow {
			if lastOld != nil {
				s.Allocator.Release(ctx, lastNew, lastOld) // what the old state held and the new does not
			}
		} else {
			s.Allocator.Release(ctx, lastOld, lastNew) // what this write took in vain
		}
	}
	switch {
	case err == errDryRun:
		return result, created, nil
	case err == errDeleteNow:
		deleted, _, err := s.deleteNow(ctx, ns, name, nil)
		return deleted, false, err
	case err != nil:
		return nil, false, s.interpret(err, name)
	}
	obj, err := s.fromStorage(out)
	return obj, created, err
}

var (
	errDryRun    = fmt.Errorf("dry run: nothing written")
	errDeleteNow = fmt.Errorf("finalizers gone: delete")
)

// finalizedAway reports whether an update takes the last finalizer off an object that is
// being deleted with no grace period left, so that it must be removed now (upstream's
// shouldDeleteDuringUpdate).
func (s *Store) finalizedAway(obj, old runtime.Object) bool {
	m, _ := meta.Accessor(obj)
	om, _ := meta.Accessor(old)
	if len(m.GetFinalizers()) > 0 || len(om.GetFinalizers()) == 0 || om.GetDeletionTimestamp() == nil {
		return false
	}
	if g := om.GetDeletionGracePeriodSeconds(); g == nil || *g != 0 {
		return false
	}
	return s.Resource.Terminating == nil || s.Resource.Terminating.Done(obj)
}

// beforeUpdate checks the update's preconditions, keeps the immutable metadata, runs the
// strategy and validates.
func (s *Store) beforeUpdate(ctx context.Context, obj, old runtime.Object, m, oldMeta metav1.Object, strategy apis.Strategy) error {
	rv := m.GetResourceVersion()
	if rv == "" {
		if !strategy.AllowUnconditionalUpdate() {
			return apis.NewInvalid(s.Resource.GroupVersionKind().GroupKind(), m.GetName(), field.ErrorList{
				field.Invalid(field.NewPath("metadata", "resourceVersion"), rv, "must be specified for an update"),
			})
		}
		// an unconditional update applies to whatever is stored now
		m.SetResourceVersion(oldMeta.GetResourceVersion())
	} else if rv != oldMeta.GetResourceVersion() {
		return apierrors.NewConflict(s.GroupResource(), m.GetName(),
			fmt.Errorf("the object has been modified; please apply your changes to the latest version and try again"))
	}
	if uid := m.GetUID(); uid != "" && uid != oldMeta.GetUID() {
		return apierrors.NewConflict(s.GroupResource(), m.GetName(),
			fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", uid, oldMeta.GetUID()))
	}
	if s.Resource.Namespaced && m.GetNamespace() == "" {
		m.SetNamespace(oldMeta.GetNamespace())
	}
	// what the server owns
	m.SetUID(oldMeta.GetUID())
	m.SetCreationTimestamp(oldMeta.GetCreationTimestamp())
	if _, marking := strategy.(markStrategy); !marking {
		// only deletion sets these (and bumps generation); a client's write keeps what is stored
		m.SetDeletionTimestamp(oldMeta.GetDeletionTimestamp())
		m.SetDeletionGracePeriodSeconds(oldMeta.GetDeletionGracePeriodSeconds())
		if m.GetGeneration() == 0 || m.GetGeneration() != oldMeta.GetGeneration() {
			m.SetGeneration(oldMeta.GetGeneration())
		}
	}
	m.SetSelfLink("")
	strategy.PrepareForUpdate(ctx, obj, old)
	if errs := strategy.ValidateUpdate(ctx, obj, old); len(errs) > 0 {
		return apis.NewInvalid(s.Resource.GroupVersionKind().GroupKind(), m.GetName(), errs)
	}
	// a deletion's marking write was admitted as the DELETE it is (AdmitDelete), as upstream
	// admits it once; it is no UPDATE for NodeRestriction, policies or webhooks
	if _, marking := strategy.(markStrategy); s.Admit != nil && !marking {
		if err := s.Admit(ctx, obj, old); err != nil {
			return err
		}
	}
	if oldMeta.GetDeletionTimestamp() != nil && len(m.GetFinalizers()) > len(oldMeta.GetFinalizers()) {
		for _, f := range m.GetFinalizers() {
			if !containsString(oldMeta.GetFinalizers(), f) {
				return apierrors.NewForbidden(s.GroupResource(), m.GetName(),
					fmt.Errorf("no new finalizers can be added if the object is being deleted, found new finalizers %q", []string{f}))
			}
		}
	}
	return nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Delete deletes ns/name as upstream's generic store does: objects with finalizers, or whose
// strategy asks for a grace period, are marked with a deletionTimestamp and stay; others are
// removed. It reports whether the object is gone.
func (s *Store) Delete(ctx context.Context, ns, name string, opts *metav1.DeleteOptions) (runtime.Object, bool, error) {
	if opts == nil {
		opts = &metav1.DeleteOptions{}
	}
	if s.Resource.OrphanWarning != "" && opts.PropagationPolicy == nil && opts.OrphanDependents == nil {
		orphan := metav1.DeletePropagationOrphan
		opts = opts.DeepCopy()
		opts.PropagationPolicy = &orphan
	}
	if s.Resource.Terminating != nil {
		return s.deleteTerminating(ctx, ns, name, opts)
	}
	return s.GenericDelete(ctx, ns, name, opts)
}

// GenericDelete is the generic two-step deletion (see Delete).
func (s *Store) GenericDelete(ctx context.Context, ns, name string, opts *metav1.DeleteOptions) (runtime.Object, bool, error) {
	dryRun := len(opts.DryRun) > 0
	current, err := s.Get(ctx, ns, name, &metav1.GetOptions{})
	if err != nil {
		return nil, false, err
	}
	if err := s.checkPreconditions(name, current, opts.Preconditions); err != nil {
		return nil, false, err
	}
	if s.AdmitDelete != nil {
		if err := s.AdmitDelete(ctx, current, opts); err != nil {
			return nil, false, err
		}
	}
	cm, _ := meta.Accessor(current)
	graceful := false
	if gd, ok := s.Strategy.(apis.GracefulDeleter); ok {
		graceful = gd.CheckGracefulDelete(ctx, current, opts)
	}
	finalizers := deletionFinalizers(cm, opts)
	pendingGrace := graceful && opts.GracePeriodSeconds != nil && *opts.GracePeriodSeconds > 0
	if !pendingGrace && len(finalizers) == 0 {
		if dryRun {
			return current, true, nil
		}
		return s.deleteNow(ctx, ns, name, opts.Preconditions)
	}
	// mark for deletion: set deletionTimestamp (or shorten the grace period) and finalizers
	var obj runtime.Object
	stillThere := false
	obj, _, err = s.Update(ctx, ns, name, markStrategy{}, func(_ context.Context, cur runtime.Object) (runtime.Object, error) {
		if cur == nil {
			return nil, apierrors.NewNotFound(s.GroupResource(), name)
		}
		if err := s.checkPreconditions(name, cur, opts.Preconditions); err != nil {
			return nil, err
		}
		m, _ := meta.Accessor(cur)
		m.SetFinalizers(deletionFinalizers(m, opts))
		now := metav1.NewTime(time.Now())
		var grace int64
		if graceful && opts.GracePeriodSeconds != nil {
			grace = *opts.GracePeriodSeconds
		}
		if old := m.GetDeletionTimestamp(); old != nil {
			// already being deleted: only a shorter grace period moves the deadline
			oldGrace := m.GetDeletionGracePeriodSeconds()
			if oldGrace != nil && grace < *oldGrace {
				t := metav1.NewTime(now.Add(time.Duration(grace) * time.Second))
				m.SetDeletionTimestamp(&t)
				m.SetDeletionGracePeriodSeconds(&grace)
			}
		} else {
			t := metav1.NewTime(now.Add(time.Duration(grace) * time.Second).Truncate(time.Second))
			m.SetDeletionTimestamp(&t)
			m.SetDeletionGracePeriodSeconds(&grace)
			if g := m.GetGeneration(); graceful && g > 0 {
				// a graceful deletion is a change its controllers observe, as upstream's
				// BeforeDelete counts it
				m.SetGeneration(g + 1)
			}
		}
		g := m.GetDeletionGracePeriodSeconds()
		stillThere = len(m.GetFinalizers()) > 0 || (g != nil && *g > 0)
		return cur, nil
	}, dryRun)
	if err != nil {
		return nil, false, err
	}
	if !stillThere && !dryRun {
		return s.deleteNow(ctx, ns, name, opts.Preconditions)
	}
	return obj, false, nil
}

// deletionFinalizers returns the object's finalizers with those the propagation policy asks
// for: orphan (also the deprecated orphanDependents) or foregroundDeletion.
func deletionFinalizers(m metav1.Object, opts *metav1.DeleteOptions) []string {
	fs := append([]string(nil), m.GetFinalizers()...)
	want := ""
	switch {
	case opts.PropagationPolicy != nil && *opts.PropagationPolicy == metav1.DeletePropagationOrphan:
		want = metav1.FinalizerOrphanDependents
	case opts.PropagationPolicy != nil && *opts.PropagationPolicy == metav1.DeletePropagationForeground:
		want = metav1.FinalizerDeleteDependents
	case opts.PropagationPolicy == nil && opts.OrphanDependents != nil && *opts.OrphanDependents:
		want = metav1.FinalizerOrphanDependents
	}
	if want == "" {
		return fs
	}
	// the two policies exclude each other: asking for one replaces the other
	out := fs[:0]
	for _, f := range fs {
		if f != metav1.FinalizerOrphanDependents && f != metav1.FinalizerDeleteDependents {
			out = append(out, f)
		}
	}
	return append(out, want)
}

func (s *Store) checkPreconditions(name string, obj runtime.Object, p *metav1.Preconditions) error {
	if p == nil {
		return nil
	}
	m, _ := meta.Accessor(obj)
	if p.UID != nil && *p.UID != m.GetUID() {
		return apierrors.NewConflict(s.GroupResource(), name,
			fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", *p.UID, m.GetUID()))
	}
	if p.ResourceVersion != nil && *p.ResourceVersion != m.GetResourceVersion() {
		return apierrors.NewConflict(s.GroupResource(), name,
			fmt.Errorf("Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *p.ResourceVersion, m.GetResourceVersion()))
	}
	return nil
}

// deleteNow removes the object from storage.
func (s *Store) deleteNow(ctx context.Context, ns, name string, p *metav1.Preconditions) (runtime.Object, bool, error) {
	var sp *storage.Preconditions
	if p != nil {
		sp = &storage.Preconditions{UID: p.UID, ResourceVersion: p.ResourceVersion}
	}
	out := s.newStorageObject()
	if err := s.Storage.Delete(ctx, s.Key(ns, name), out, sp, nil, nil); err != nil {
		return nil, false, s.interpret(err, name)
	}
	if s.Allocator != nil {
		s.Allocator.Release(ctx, nil, out)
	}
	obj, err := s.fromStorage(out)
	return obj, true, err
}

// markStrategy is the strategy of the metadata-only writes deletion makes.
type markStrategy struct{}

func (markStrategy) PrepareForCreate(context.Context, runtime.Object)                 {}
func (markStrategy) Validate(context.Context, runtime.Object) field.ErrorList         { return nil }
func (markStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}
func (markStrategy) ValidateUpdate(context.Context, runtime.Object, runtime.Object) field.ErrorList {
	return nil
}
func (markStrategy) AllowCreateOnUpdate() bool      { return false }
func (markStrategy) AllowUnconditionalUpdate() bool { return true }

// interpret maps a storage error to the Status error upstream answers with.
func (s *Store) interpret(err error, name string) error {
	if errors.Is(err, cacher.ErrStopped) {
		// the resource stopped being served while the request ran (its definition went)
		return apierrors.NewNotFound(s.GroupResource(), name)
	}
	var se *storage.Error
	if !errors.As(err, &se) {
		return err
	}
	gr := s.GroupResource()
	switch se.Code {
	case storage.ErrCodeKeyNotFound:
		return apierrors.NewNotFound(gr, name)
	case storage.ErrCodeKeyExists:
		return apierrors.NewAlreadyExists(gr, name)
	case storage.ErrCodeConflict:
		detail := se.Detail
		if detail == "" {
			detail = "the object has been modified; please apply your changes to the latest version and try again"
		}
		return apierrors.NewConflict(gr, name, fmt.Errorf("%s", detail))
	case storage.ErrCodeExpired:
		msg := se.Detail
		if msg == "" {
			msg = fmt.Sprintf("too old resource version: %d", se.ResourceVersion)
		}
		expired := apierrors.NewResourceExpired(msg)
		var ec *storage.ExpiredContinueError
		if errors.As(err, &ec) {
			// where to continue, inconsistently, at the latest revision
			expired.ErrStatus.ListMeta.Continue = ec.Continue
		}
		return expired
	case storage.ErrCodeTooLargeResourceVersion:
		var asked, current int64
		fmt.Sscanf(se.Detail, "Too large resource version: %d, current: %d", &asked, &current)
		return tooLargeResourceVersion(asked, se.ResourceVersion)
	case storage.ErrCodeInvalidContinue:
		return apierrors.NewBadRequest(se.Detail)
	case storage.ErrCodeRequestTooLarge:
		// kube-apiserver answers 500 with etcd's words here; the client sent too much, so
		// the words come with 413, as for a body beyond the size limit
		return apierrors.NewRequestEntityTooLargeError(se.Detail)
	case storage.ErrCodeInvalidObj:
		return apierrors.NewInternalError(err)
	}
	return err
}

// tooLargeResourceVersion is upstream's answer to a read at a revision the store has not
// reached: a 504 Timeout whose cause tells clients to retry.
func tooLargeResourceVersion(asked, current int64) error {
	err := apierrors.NewTimeoutError(fmt.Sprintf("Too large resource version: %d, current: %d", asked, current), 1)
	err.ErrStatus.Details.Causes = []metav1.StatusCause{{
		Type: metav1.CauseTypeResourceVersionTooLarge, Message: "Too large resource version",
	}}
	return err
}
