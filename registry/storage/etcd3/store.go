// Package etcd3 stores Kubernetes objects in etcd exactly as kube-apiserver does: keys as given
// ("/registry/pods/ns/name"), values with an empty resourceVersion, in protobuf behind the
// "k8s\x00" magic for built-in kinds and in JSON for custom resources (unstructured objects),
// and resourceVersion = the etcd revision. A skiff and a kube-apiserver can read each other's
// data.
//
// It implements storage.Interface with plain etcd calls: every read goes to etcd (there is no
// cache here; that is registry/storage/cacher), every write is a compare-and-swap transaction.
// It must never hold objects between calls.
package etcd3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/registry/storage"
)

// maxPageSize caps how far a filtered paged list grows its etcd page when the predicate
// drops items (upstream's maxLimit).
const maxPageSize = 10000

// Store is storage.Interface over one etcd client. It is not tied to a resource: the type of
// what it decodes comes from the caller's out object, or from the value's envelope.
type Store struct {
	client    *clientv3.Client
	revisions *revisionReads
	// transformer, when set, turns every encoded value into what etcd holds and back
	// (encryption at rest); nil stores values as encoded.
	transformer storage.Transformer
}

var _ storage.Interface = &Store{}

// New returns a Store that reads and writes through client.
func New(client *clientv3.Client) *Store {
	s := &Store{client: client}
	s.revisions = &revisionReads{fetch: s.fetchRevision}
	return s
}

// WithTransformer returns a store on the same client that runs every value through t on its
// way to etcd and back (nil: none). The API server gives each resource whose values it
// encrypts such a store of its own; the store itself does not know which resource a key is.
func (s *Store) WithTransformer(t storage.Transformer) *Store {
	cp := *s
	cp.transformer = t
	return &cp
}

// encode returns obj encoded (plain, what update compares) and as etcd holds it (stored).
func (s *Store) encode(key string, obj runtime.Object) (plain, stored []byte, err error) {
	plain, err = Encode(obj)
	if err != nil || s.transformer == nil {
		return plain, plain, err
	}
	stored, err = s.transformer.ToStorage(plain, key)
	if err != nil {
		return nil, nil, fmt.Errorf("transforming %q for storage: %w", key, err)
	}
	return plain, stored, nil
}

// fromStorage returns the encoded object a value read from etcd holds, and whether it must
// be written again to be stored as the store writes values now.
func (s *Store) fromStorage(key, value []byte) ([]byte, bool, error) {
	if s.transformer == nil {
		return value, false, nil
	}
	plain, stale, err := s.transformer.FromStorage(value, string(key))
	if err != nil {
		return nil, false, fmt.Errorf("transforming %q from storage: %w", key, err)
	}
	return plain, stale, nil
}

// decode decodes a value read from etcd at key.
func (s *Store) decode(key, value []byte, into runtime.Object, rev int64) (runtime.Object, error) {
	plain, _, err := s.fromStorage(key, value)
	if err != nil {
		return nil, err
	}
	return Decode(plain, into, rev)
}

// Client is the etcd client the store uses (the watch cache watches through it too).
func (s *Store) Client() *clientv3.Client { return s.client }

// Create implements storage.Interface.
func (s *Store) Create(ctx context.Context, key string, obj, out runtime.Object) error {
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return fmt.Errorf("create %q: %w", key, err)
	}
	if accessor.GetResourceVersion() != "" {
		return fmt.Errorf("create %q: resourceVersion should not be set on objects to be created", key)
	}
	data, stored, err := s.encode(key, obj)
	if err != nil {
		return err
	}
	resp, err := s.client.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
	).Then(
		clientv3.OpPut(key, string(stored)),
	).Commit()
	if err != nil {
		return writeError("create", key, err)
	}
	if !resp.Succeeded {
		return storage.NewError(storage.ErrCodeKeyExists, key, 0, "key exists")
	}
	if out == nil {
		return nil
	}
	if _, unstructured := obj.(runtime.Unstructured); !unstructured && reflect.TypeOf(out) == reflect.TypeOf(obj) {
		// What was written is obj: a copy of it saves decoding the bytes again. Not for an
		// unstructured obj, whose copy would share its maps with the caller's object; it
		// comes back as stored (without selfLink, with its numbers as JSON gives them).
		reflect.ValueOf(out).Elem().Set(reflect.ValueOf(obj).Elem())
		return setResourceVersion(out, resp.Header.Revision)
	}
	_, err = Decode(data, out, resp.Header.Revision)
	return err
}

// Get implements storage.Interface. Every resourceVersion is served by a linearizable etcd
// read, which is at least as new as any revision a client has seen from this etcd.
func (s *Store) Get(ctx context.Context, key string, opts storage.GetOptions, out runtime.Object) error {
	minRV, err := storage.ParseResourceVersion(key, opts.ResourceVersion)
	if err != nil {
		return err
	}
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("get %q: %w", key, err)
	}
	if minRV > resp.Header.Revision {
		return storage.NewTooLargeResourceVersionError(key, minRV, resp.Header.Revision)
	}
	if len(resp.Kvs) == 0 {
		if opts.IgnoreNotFound {
			return runtime.SetZeroValue(out)
		}
		return storage.NewError(storage.ErrCodeKeyNotFound, key, 0, "key not found")
	}
	_, err = s.decode(resp.Kvs[0].Key, resp.Kvs[0].Value, out, resp.Kvs[0].ModRevision)
	return err
}

// GetList implements storage.Interface.
func (s *Store) GetList(ctx context.Context, key string, opts storage.ListOptions, listObj runtime.Object) error {
	items, err := newListItems(listObj)
	if err != nil {
		return err
	}
	keyPrefix := key
	if opts.Recursive && !strings.HasSuffix(keyPrefix, "/") {
		keyPrefix += "/"
	}
	pred := opts.Predicate
	paging := opts.Recursive && pred.Limit > 0

	fromRV, err := storage.ParseResourceVersion(key, opts.ResourceVersion)
	if err != nil {
		return err
	}
	startKey := keyPrefix
	var withRev int64
	var continuing bool
	switch {
	case opts.Recursive && pred.Continue != "":
		if opts.ResourceVersion != "" && opts.ResourceVersion != "0" {
			return storage.NewError(storage.ErrCodeInvalidContinue, key, fromRV,
				"specifying resource version is not allowed when using continue")
		}
		continueKey, continueRV, err := storage.DecodeContinue(pred.Continue, keyPrefix)
		if err != nil {
			return err
		}
		continuing = true
		startKey = continueKey
		if continueRV > 0 { // -1: continue at the latest revision
			withRev = continueRV
		}
	case fromRV > 0:
		switch opts.ResourceVersionMatch {
		case metav1.ResourceVersionMatchNotOlderThan:
			// checked against the revision etcd answers at
		case metav1.ResourceVersionMatchExact:
			withRev = fromRV
		case "":
			if paging {
				withRev = fromRV
			}
		default:
			return fmt.Errorf("unknown ResourceVersionMatch value: %v", opts.ResourceVersionMatch)
		}
	}

	limit := pred.Limit
	var lastKey []byte
	var hasMore bool
	var resp *clientv3.GetResponse
	for {
		ops := make([]clientv3.OpOption, 0, 3)
		if opts.Recursive {
			ops = append(ops, clientv3.WithRange(clientv3.GetPrefixRangeEnd(keyPrefix)))
		}
		if paging {
			ops = append(ops, clientv3.WithLimit(limit))
		}
		if withRev != 0 {
			ops = append(ops, clientv3.WithRev(withRev))
		}
		resp, err = s.client.Get(ctx, startKey, ops...)
		if err != nil {
			return s.listError(ctx, key, err, withRev, continuing, startKey, keyPrefix)
		}
		if withRev == 0 && fromRV > resp.Header.Revision {
			return storage.NewTooLargeResourceVersionError(key, fromRV, resp.Header.Revision)
		}
		hasMore = resp.More
		if len(resp.Kvs) == 0 && resp.More {
			return fmt.Errorf("list %q: no results were found, but etcd indicated there were more values remaining", key)
		}
		items.grow(len(resp.Kvs), pred.Empty())
		for i, kv := range resp.Kvs {
			if paging && int64(items.len()) >= pred.Limit {
				hasMore = true
				break
			}
			lastKey = kv.Key
			value, _, err := s.fromStorage(kv.Key, kv.Value)
			if err != nil {
				return fmt.Errorf("list %q: %w", key, err)
			}
			if err := items.appendDecoded(value, kv.ModRevision, pred); err != nil {
				return fmt.Errorf("list %q: key %q: %w", key, kv.Key, err)
			}
			resp.Kvs[i] = nil // long lists take a while to decode; let the GC have what is done
		}
		if !paging || !hasMore || int64(items.len()) >= pred.Limit {
			break
		}
		// The predicate dropped items: fetch more, in bigger pages, at the same revision.
		if limit < maxPageSize {
			limit = min(limit*2, maxPageSize)
		}
		startKey = string(lastKey) + "\x00"
		if withRev == 0 {
			withRev = resp.Header.Revision
		}
	}
	if withRev == 0 {
		withRev = resp.Header.Revision
	}
	if err := items.finish(); err != nil {
		return err
	}

	var next string
	var remaining *int64
	if hasMore {
		next, err = storage.EncodeContinue(string(lastKey)+"\x00", keyPrefix, withRev)
		if err != nil {
			return err
		}
		// resp.Count counts objects the predicate would drop: only an empty predicate gives
		// an exact remaining count (as upstream).
		if pred.Empty() {
			c := resp.Count - pred.Limit
			remaining = &c
		}
	}
	return setListMeta(listObj, withRev, next, remaining)
}

// listError turns an etcd error of a list into the storage error upstream would give.
func (s *Store) listError(ctx context.Context, key string, err error, withRev int64, continuing bool, continueKey, keyPrefix string) error {
	switch {
	case errors.Is(err, rpctypes.ErrCompacted):
		if continuing {
			e := &storage.ExpiredContinueError{
				Err: storage.NewError(storage.ErrCodeExpired, key, withRev, storage.InconsistentContinueDetail),
			}
			// The same list from the same key at the latest revision.
			if token, terr := storage.EncodeContinue(continueKey, keyPrefix, -1); terr == nil {
				e.Continue = token
			}
			return e
		}
		return storage.NewError(storage.ErrCodeExpired, key, withRev, storage.ExpiredListDetail)
	case errors.Is(err, rpctypes.ErrFutureRev):
		current, cerr := s.CurrentRevision(ctx)
		if cerr != nil {
			return fmt.Errorf("list %q: %w", key, err)
		}
		return storage.NewTooLargeResourceVersionError(key, withRev, current)
	}
	return fmt.Errorf("list %q: %w", key, err)
}

// objState is one read of a key: the decoded object, its revision (0 when missing) and the
// exact encoded bytes (before any transformation for storage), which decide whether an update
// changes anything. stale: the stored value is not as the store writes values now (an older
// encryption key), so an update writes even when nothing changes.
type objState struct {
	obj   runtime.Object
	rev   int64
	data  []byte
	stale bool
}

// readState reads key into a new object of out's type.
func (s *Store) readState(ctx context.Context, key string, out runtime.Object, ignoreNotFound bool) (*objState, error) {
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get %q: %w", key, err)
	}
	return s.stateFromKVs(key, resp.Kvs, out, ignoreNotFound)
}

func (s *Store) stateFromKVs(key string, kvs []*mvccpb.KeyValue, out runtime.Object, ignoreNotFound bool) (*objState, error) {
	obj, err := newLike(out)
	if err != nil {
		return nil, err
	}
	if len(kvs) == 0 {
		if !ignoreNotFound {
			return nil, storage.NewError(storage.ErrCodeKeyNotFound, key, 0, "key not found")
		}
		return &objState{obj: obj}, nil
	}
	data, stale, err := s.fromStorage(kvs[0].Key, kvs[0].Value)
	if err != nil {
		return nil, err
	}
	if _, err := Decode(data, obj, kvs[0].ModRevision); err != nil {
		return nil, fmt.Errorf("key %q: %w", key, err)
	}
	return &objState{obj: obj, rev: kvs[0].ModRevision, data: data, stale: stale}, nil
}

// stateFromObject builds the state of an object the caller already holds; it may be stale,
// and whether its stored value is stale is not known (refresh finds out before a no-op).
func stateFromObject(obj runtime.Object) (*objState, error) {
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	rev, err := strconv.ParseInt(accessor.GetResourceVersion(), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("cached object has resourceVersion %q: %w", accessor.GetResourceVersion(), err)
	}
	data, err := Encode(obj)
	if err != nil {
		return nil, err
	}
	return &objState{obj: obj, rev: rev, data: data}, nil
}

// workingState is the state of a key an update or delete works from: one the caller already
// held (cachedExisting), or one read from etcd in this call.
type workingState struct {
	s              *Store
	ctx            context.Context
	key            string
	out            runtime.Object
	ignoreNotFound bool
	orig           *objState
	// current: orig was read from etcd in this call, so a failure against it is final
	current bool
}

func (s *Store) startFrom(ctx context.Context, key string, out runtime.Object, ignoreNotFound bool, cachedExisting runtime.Object) (*workingState, error) {
	st := &workingState{s: s, ctx: ctx, key: key, out: out, ignoreNotFound: ignoreNotFound}
	var err error
	if cachedExisting != nil {
		st.orig, err = stateFromObject(cachedExisting)
	}
	if cachedExisting == nil || err != nil {
		st.orig, err = s.readState(ctx, key, out, ignoreNotFound)
		st.current = true
	}
	return st, err
}

// refresh re-reads when orig may be stale; it reports whether the caller should retry.
func (st *workingState) refresh() (bool, error) {
	if st.current {
		return false, nil
	}
	staleRev := st.orig.rev
	fresh, err := st.s.readState(st.ctx, st.key, st.out, st.ignoreNotFound)
	if err != nil {
		return false, err
	}
	st.orig, st.current = fresh, true
	return fresh.rev != staleRev, nil
}

// settle takes the state a failed compare-and-swap read back as the one to retry from.
func (st *workingState) settle(kvs []*mvccpb.KeyValue) error {
	orig, err := st.s.stateFromKVs(st.key, kvs, st.out, st.ignoreNotFound)
	if err != nil {
		return err
	}
	st.orig, st.current = orig, true
	return nil
}

// GuaranteedUpdate implements storage.Interface.
func (s *Store) GuaranteedUpdate(ctx context.Context, key string, out runtime.Object, ignoreNotFound bool,
	preconditions *storage.Preconditions, tryUpdate storage.UpdateFunc, cachedExisting runtime.Object) error {
	st, err := s.startFrom(ctx, key, out, ignoreNotFound, cachedExisting)
	if err != nil {
		return err
	}

	for {
		if err := checkPreconditions(key, preconditions, st.orig.obj); err != nil {
			if retry, rerr := st.refresh(); rerr != nil {
				return rerr
			} else if retry {
				continue
			}
			return err
		}
		ret, err := tryUpdate(st.orig.obj)
		if err != nil {
			if retry, rerr := st.refresh(); rerr != nil {
				return rerr
			} else if retry {
				continue
			}
			return err
		}
		data, stored, err := s.encode(key, ret)
		if err != nil {
			return err
		}
		if st.orig.rev != 0 && !st.orig.stale && bytes.Equal(data, st.orig.data) {
			// Nothing changes; make sure that is true of what etcd holds, not of a stale copy.
			if !st.current {
				if _, err := st.refresh(); err != nil {
					return err
				}
				if st.orig.stale || !bytes.Equal(data, st.orig.data) {
					continue
				}
			}
			_, err = Decode(st.orig.data, out, st.orig.rev)
			return err
		}

		resp, err := s.client.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(key), "=", st.orig.rev),
		).Then(
			clientv3.OpPut(key, string(stored)),
		).Else(
			clientv3.OpGet(key),
		).Commit()
		if err != nil {
			return writeError("update", key, err)
		}
		if !resp.Succeeded {
			// Someone wrote in between: retry on the state the Else branch read.
			if err := st.settle(resp.Responses[0].GetResponseRange().Kvs); err != nil {
				return err
			}
			continue
		}
		_, err = Decode(data, out, resp.Header.Revision)
		return err
	}
}

// Delete implements storage.Interface. out receives the deleted object with the revision of
// the delete as its resourceVersion, as upstream returns it.
func (s *Store) Delete(ctx context.Context, key string, out runtime.Object, preconditions *storage.Preconditions,
	validateDeletion storage.ValidateDeleteFunc, cachedExisting runtime.Object) error {
	st, err := s.startFrom(ctx, key, out, false, cachedExisting)
	if err != nil {
		return err
	}

	for {
		err := checkPreconditions(key, preconditions, st.orig.obj)
		if err == nil && validateDeletion != nil {
			err = validateDeletion(ctx, st.orig.obj)
		}
		if err != nil {
			if retry, rerr := st.refresh(); rerr != nil {
				return rerr
			} else if retry {
				continue
			}
			return err
		}
		resp, err := s.client.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(key), "=", st.orig.rev),
		).Then(
			clientv3.OpDelete(key),
		).Else(
			clientv3.OpGet(key),
		).Commit()
		if err != nil {
			return fmt.Errorf("delete %q: %w", key, err)
		}
		if !resp.Succeeded {
			if err := st.settle(resp.Responses[0].GetResponseRange().Kvs); err != nil {
				return err
			}
			continue
		}
		_, err = Decode(st.orig.data, out, resp.Header.Revision)
		return err
	}
}

// CurrentRevision implements storage.Interface with a linearizable count-only read.
func (s *Store) CurrentRevision(ctx context.Context) (int64, error) {
	return s.revisions.get(ctx)
}

// fetchRevision reads the current revision with a linearizable request.
func (s *Store) fetchRevision(ctx context.Context) (int64, error) {
	resp, err := s.client.Get(ctx, "compact_rev_key", clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("reading the current revision: %w", err)
	}
	return resp.Header.Revision, nil
}

// checkPreconditions words a mismatch as upstream does ("Precondition failed: UID in
// precondition: x, UID in object meta: y"), as a Conflict.
func checkPreconditions(key string, p *storage.Preconditions, obj runtime.Object) error {
	if p == nil {
		return nil
	}
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return fmt.Errorf("can't enforce preconditions on %T: %w", obj, err)
	}
	if p.UID != nil && *p.UID != accessor.GetUID() {
		return storage.NewError(storage.ErrCodeConflict, key, 0, fmt.Sprintf(
			"Precondition failed: UID in precondition: %v, UID in object meta: %v", *p.UID, accessor.GetUID()))
	}
	if p.ResourceVersion != nil && *p.ResourceVersion != accessor.GetResourceVersion() {
		return storage.NewError(storage.ErrCodeConflict, key, 0, fmt.Sprintf(
			"Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v",
			*p.ResourceVersion, accessor.GetResourceVersion()))
	}
	return nil
}

func formatRV(rev int64) string { return strconv.FormatInt(rev, 10) }

// newLike returns a new, empty object of obj's type.
func newLike(obj runtime.Object) (runtime.Object, error) {
	t := reflect.TypeOf(obj)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("expected a pointer to a struct, got %T", obj)
	}
	return reflect.New(t.Elem()).Interface().(runtime.Object), nil
}

// setListMeta sets a list's resourceVersion, continue token and remaining item count.
func setListMeta(listObj runtime.Object, rev int64, next string, remaining *int64) error {
	lm, err := meta.ListAccessor(listObj)
	if err != nil {
		return err
	}
	lm.SetResourceVersion(formatRV(rev))
	lm.SetContinue(next)
	lm.SetRemainingItemCount(remaining)
	return nil
}
