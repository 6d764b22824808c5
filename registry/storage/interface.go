// Package storage is the contract between skiff's registry and the place objects live: etcd,
// or the watch cache in front of it. It knows keys, revisions and encoded objects; it never
// knows HTTP, defaulting or validation.
//
// resourceVersion is the etcd revision everywhere: the resourceVersion of an object is the
// revision of the write that last changed it, and the resourceVersion of a list is the revision
// the list was read at.
//
// Objects are typed (a pointer to a k8s.io/api struct, stored as protobuf) or unstructured
// (an *unstructured.Unstructured custom resource, stored as JSON). Typed objects come back
// with an empty TypeMeta; unstructured ones keep the apiVersion and kind they were stored
// with, as upstream's storage returns custom resources (in list items and watch events too).
// Storage never converts a custom resource between versions: that is the caller's.
package storage

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

// Interface stores objects under keys. Keys are full etcd keys ("/registry/pods/ns/name");
// prefixes passed to GetList and Watch end in "/" (or are a single object's key when
// opts.Recursive is false). A store that was stopped (a watch cache's Stop, when its resource
// is removed) fails every call.
type Interface interface {
	// Create stores obj at key if no object is there, and decodes the stored object into out
	// with its resourceVersion set to the revision of the write. obj's resourceVersion must be
	// empty. It fails with a KeyExists error when key is taken.
	Create(ctx context.Context, key string, obj, out runtime.Object) error

	// Get decodes the object at key into out.
	//   opts.ResourceVersion "" : the latest state (a consistent read).
	//   "0"                     : any state the store has, possibly stale (served from cache).
	//   "N"                     : a state no older than revision N; TooLargeResourceVersion if
	//                             the store cannot reach N in time.
	// A missing key is a KeyNotFound error, unless opts.IgnoreNotFound, in which case out is
	// left zero.
	Get(ctx context.Context, key string, opts GetOptions, out runtime.Object) error

	// GetList decodes into listObj (a typed list, e.g. *corev1.PodList, or an
	// *unstructured.UnstructuredList, whose own apiVersion and kind are left as given) every
	// object under the prefix key that matches opts.Predicate, sorted by key, and sets the
	// list's resourceVersion, continue token and remainingItemCount.
	//   ResourceVersion "" with any match : the latest state (consistent list).
	//   "0", match "" or NotOlderThan    : any state no older than the given revision.
	//   "N", match "Exact"               : exactly revision N (Expired if compacted).
	//   "N", match ""                    : upstream's legacy meaning, exact when limit > 0,
	//                                      otherwise not older than N.
	// With Predicate.Limit > 0 at most Limit items are returned and Continue is set when more
	// remain; every page of a continued list is read at the first page's revision. A continue
	// token whose revision was compacted is an Expired error.
	GetList(ctx context.Context, key string, opts ListOptions, listObj runtime.Object) error

	// GuaranteedUpdate reads the object at key, calls tryUpdate with it, and writes what
	// tryUpdate returns only if the key has not changed since the read, retrying with the new
	// state otherwise (tryUpdate may run several times; it must not have side effects). The
	// stored result is decoded into out. preconditions are checked against each state read.
	// When the key is missing: a KeyNotFound error, unless ignoreNotFound, in which case
	// tryUpdate receives a zero object of out's type (an Unstructured with a nil Object) and
	// its result is created. If tryUpdate returns an object that encodes to the stored bytes,
	// nothing is written and out is the existing object (its resourceVersion unchanged).
	// cachedExisting, when not nil, is a state the caller already holds; the store may try it
	// first and falls back to a fresh read on conflict.
	GuaranteedUpdate(ctx context.Context, key string, out runtime.Object, ignoreNotFound bool,
		preconditions *Preconditions, tryUpdate UpdateFunc, cachedExisting runtime.Object) error

	// Delete removes the object at key if preconditions hold and validateDeletion (given the
	// current state) returns nil, retrying on concurrent change. out receives the last state.
	Delete(ctx context.Context, key string, out runtime.Object, preconditions *Preconditions,
		validateDeletion ValidateDeleteFunc, cachedExisting runtime.Object) error

	// Watch streams changes under key that match opts.Predicate.
	//   ResourceVersion "N" (N>0): events after revision N; Expired if N is compacted (or
	//                               older than the cache's history).
	//   "0" : synthetic ADDED events for the current state (any freshness), then changes.
	//   ""  : changes after the latest revision (a consistent read of "now"); with
	//         SendInitialEvents=true, ADDED events for the latest state first.
	// With SendInitialEvents=true (ResourceVersionMatch NotOlderThan), after the initial ADDED
	// events a BOOKMARK is sent carrying the revision they reflect and the annotation
	// metav1.InitialEventsAnnotationKey: "true". With Predicate.AllowWatchBookmarks,
	// BOOKMARK events carrying the current revision are sent periodically.
	// An object that stops matching the predicate arrives as DELETED; one that starts
	// matching arrives as ADDED. The watch ends (its result channel closes) when ctx is
	// done, Stop is called, or the store serving it is stopped (a watch cache's Stop).
	Watch(ctx context.Context, key string, opts ListOptions) (watch.Interface, error)

	// CurrentRevision is the latest revision of the whole store (a consistent read).
	CurrentRevision(ctx context.Context) (int64, error)
}

// SharedLister is a store whose lists can hand out its own objects instead of copies: the
// watch cache. Only readers that encode the items and keep nothing (the API server's list
// writers) may use it; everyone else uses GetList.
type SharedLister interface {
	// GetListShared is GetList, except that the items are returned in key order instead of
	// being set in listObj: only listObj's resourceVersion, continue token and
	// remainingItemCount are set, its Items are left as given. The items may be the store's
	// own objects, shared with every other reader and watcher: the caller must not modify
	// them in any way (not even their TypeMeta) and must not keep them.
	GetListShared(ctx context.Context, key string, opts ListOptions, listObj runtime.Object) ([]runtime.Object, error)
}

// UpdateFunc computes a new object from the current one. Returning an error aborts the update
// and returns that error from GuaranteedUpdate. The input must not be modified.
type UpdateFunc func(current runtime.Object) (runtime.Object, error)

// ValidateDeleteFunc vetoes a delete given the object's current state.
type ValidateDeleteFunc func(ctx context.Context, current runtime.Object) error

// Preconditions must hold on the stored object for an update or delete to proceed; a mismatch
// is a Conflict error.
type Preconditions struct {
	UID             *types.UID
	ResourceVersion *string
}

// GetOptions modify Get.
type GetOptions struct {
	ResourceVersion string
	IgnoreNotFound  bool
}

// ListOptions modify GetList and Watch.
type ListOptions struct {
	ResourceVersion      string
	ResourceVersionMatch metav1.ResourceVersionMatch
	Predicate            SelectionPredicate
	// Recursive means key is a prefix; otherwise key names one object (a watch of one object).
	Recursive bool
	// SendInitialEvents asks a watch to start with the current state (see Watch).
	SendInitialEvents *bool
	// NewFunc, when set, returns an empty object of the resource under key: for a custom
	// resource an *unstructured.Unstructured with its apiVersion and kind set. A watch served
	// by etcd decodes every value into one (a typed one is converted through the scheme from
	// another stored version; an unstructured one is not converted) and builds its BOOKMARKs
	// from one. Without it, values are decoded by their
	// own kind, and no BOOKMARK can be sent before the first event; the one ending the
	// initial events is then lost. The watch cache sets it to its own when it passes a
	// watch to etcd. GetList does not use it: listObj's item type decides.
	NewFunc func() runtime.Object
	// ReadOnly says the caller of a Watch only reads the events' objects, and sets nothing on
	// them, not even apiVersion and kind: the watch cache then hands it its own objects
	// rather than a copy per event. For in-process informers without transforms, whose
	// stores would otherwise hold a copy of every object the cache holds.
	ReadOnly bool
}

// AttrFunc returns the labels and selectable fields of an object.
type AttrFunc func(obj runtime.Object) (labels.Set, fields.Set, error)

// SelectionPredicate selects objects by labels and fields, and pages lists.
type SelectionPredicate struct {
	Label               labels.Selector
	Field               fields.Selector
	GetAttrs            AttrFunc
	Limit               int64
	Continue            string
	AllowWatchBookmarks bool
}

// Empty reports whether the predicate selects everything.
func (p SelectionPredicate) Empty() bool {
	return (p.Label == nil || p.Label.Empty()) && (p.Field == nil || p.Field.Empty())
}

// Matches reports whether obj is selected.
func (p SelectionPredicate) Matches(obj runtime.Object) (bool, error) {
	if p.Empty() {
		return true, nil
	}
	l, f, err := p.GetAttrs(obj)
	if err != nil {
		return false, err
	}
	if p.Label != nil && !p.Label.Matches(l) {
		return false, nil
	}
	if p.Field != nil && !p.Field.Matches(f) {
		return false, nil
	}
	return true, nil
}
