package etcd3

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/cbor"
	jsonserializer "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"

	"github.com/skiff-dev/skiff/apis"
)

// Two encodings live in etcd, as kube-apiserver writes them:
//   - built-in kinds: a runtime.Unknown carrying the object's apiVersion and kind, in
//     protobuf, behind the "k8s\x00" magic;
//   - custom resources (and built-in kinds of a kube-apiserver run with
//     --storage-media-type=application/json): the object as JSON, apiVersion and kind
//     included, with a trailing newline.
//
// Both are read whatever the caller asks for, so data written by either server is readable by
// the other. So is CBOR (behind its self-described tag), which a kube-apiserver with the
// CBORServingAndStorage feature gate writes for custom resources; skiff never writes it.
var (
	protoSerializer = protobuf.NewSerializer(apis.Scheme, apis.Scheme)
	jsonSerializer  = jsonserializer.NewSerializerWithOptions(jsonserializer.DefaultMetaFactory, apis.Scheme, apis.Scheme,
		jsonserializer.SerializerOptions{})
	cborSerializer = cbor.NewSerializer(apis.Scheme, apis.Scheme)

	protoMagic = []byte("k8s\x00")
	// cborMagic is the CBOR self-described tag (55799) every Kubernetes CBOR value starts with.
	cborMagic = []byte{0xd9, 0xd9, 0xf7}
	// encryptedPrefix starts values encrypted at rest; a value that still has it when it
	// reaches Decode was not decrypted: no provider of the store's transformer reads it.
	encryptedPrefix = []byte("k8s:enc:")
)

// Encode returns obj as it is stored in etcd, with an empty resourceVersion and selfLink (the
// revision is etcd's to say):
//   - an *unstructured.Unstructured (a custom resource) as JSON, as upstream's
//     apiextensions-apiserver writes it: the object's own apiVersion and kind, which must be
//     set (the caller decides the storage version);
//   - anything else as protobuf in the "k8s\x00" envelope, tagged with obj's kind from
//     apis.Scheme.
//
// obj itself is never modified, so objects shared with a cache can be encoded safely.
func Encode(obj runtime.Object) ([]byte, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return encodeUnstructured(u)
	}
	gvks, _, err := apis.Scheme.ObjectKinds(obj)
	if err != nil {
		return nil, fmt.Errorf("encoding %T for storage: %w", obj, err)
	}
	cp, err := shallowCopy(obj)
	if err != nil {
		return nil, err
	}
	accessor, err := meta.Accessor(cp)
	if err != nil {
		return nil, fmt.Errorf("encoding %T for storage: %w", obj, err)
	}
	accessor.SetResourceVersion("")
	accessor.SetSelfLink("")
	cp.GetObjectKind().SetGroupVersionKind(gvks[0])
	var buf bytes.Buffer
	if err := protoSerializer.Encode(cp, &buf); err != nil {
		return nil, fmt.Errorf("encoding %T for storage: %w", obj, err)
	}
	return buf.Bytes(), nil
}

// encodeUnstructured writes what unstructured.UnstructuredJSONScheme writes (encoding/json of
// the object's map, keys sorted, newline-terminated), without resourceVersion and selfLink.
// Only the top-level and metadata maps are copied: the rest of the object is shared, read-only.
func encodeUnstructured(u *unstructured.Unstructured) ([]byte, error) {
	if u.GetKind() == "" || u.GetAPIVersion() == "" {
		return nil, fmt.Errorf("encoding %s/%s for storage: apiVersion and kind must be set, got %q and %q",
			u.GetNamespace(), u.GetName(), u.GetAPIVersion(), u.GetKind())
	}
	content := u.Object
	if md, ok := content["metadata"].(map[string]any); ok && (hasKey(md, "resourceVersion") || hasKey(md, "selfLink")) {
		md = maps.Clone(md)
		delete(md, "resourceVersion")
		delete(md, "selfLink")
		content = maps.Clone(content)
		content["metadata"] = md
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(content); err != nil {
		return nil, fmt.Errorf("encoding %s %s/%s for storage: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	return buf.Bytes(), nil
}

func hasKey(m map[string]any, k string) bool {
	_, ok := m[k]
	return ok
}

// Decode reads a stored value, protobuf, JSON or CBOR, into into (or, when into is nil, into a new
// object of the kind the value records) and sets its resourceVersion to rev.
//
//   - into a typed object: when the stored kind is not into's type (a resource that shares
//     storage with another version) it is converted through apis.Scheme. The result has an
//     empty TypeMeta, as upstream's storage returns built-in objects: list items and watch
//     events then encode without apiVersion and kind.
//   - into an *unstructured.Unstructured: into's content is replaced by the stored object,
//     which keeps its apiVersion and kind (upstream's custom resources keep them in list
//     items and watch events). A protobuf value (a built-in kind) is converted through
//     apis.Scheme to its unstructured form; a kind apis.Scheme does not know is an error.
//     No version conversion happens: a custom resource comes back in the version it was
//     stored in.
//   - into nil: protobuf by its envelope's kind; JSON or CBOR as the typed kind apis.Scheme
//     knows, else as an *unstructured.Unstructured.
func Decode(value []byte, into runtime.Object, rev int64) (runtime.Object, error) {
	var obj runtime.Object
	var err error
	switch {
	case bytes.HasPrefix(value, protoMagic):
		obj, err = decodeProtobuf(value, into)
	case bytes.HasPrefix(value, encryptedPrefix):
		err = errors.New("the value is encrypted at rest (k8s:enc:), and no encryption provider configured for it reads it")
	case bytes.HasPrefix(value, cborMagic):
		obj, err = decodeDocument(value, into, "CBOR", cborSerializer, cborSerializer)
	default:
		obj, err = decodeDocument(value, into, "JSON", jsonSerializer, unstructured.UnstructuredJSONScheme)
	}
	if err != nil {
		return nil, err
	}
	if _, ok := obj.(runtime.Unstructured); !ok {
		obj.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
	}
	if err := setResourceVersion(obj, rev); err != nil {
		return nil, err
	}
	return obj, nil
}

func decodeProtobuf(value []byte, into runtime.Object) (runtime.Object, error) {
	protoInto := into
	if _, ok := into.(runtime.Unstructured); ok {
		protoInto = nil // the envelope says the typed kind; converted below
	}
	obj, _, err := protoSerializer.Decode(value, nil, protoInto)
	if err != nil {
		return nil, fmt.Errorf("decoding stored object: %w", err)
	}
	return convertInto(obj, into)
}

// decodeDocument decodes a self-describing document (JSON or CBOR: apiVersion and kind are
// in it) with typed, or with unstructured when into is unstructured or the kind is not one
// apis.Scheme knows.
func decodeDocument(value []byte, into runtime.Object, format string, typed, unstructuredDecoder runtime.Decoder) (runtime.Object, error) {
	switch into.(type) {
	case *unstructured.Unstructured:
		if _, _, err := unstructuredDecoder.Decode(value, nil, into); err != nil {
			return nil, fmt.Errorf("decoding stored %s object: %w", format, err)
		}
		return into, nil
	case nil:
		obj, _, err := typed.Decode(value, nil, nil)
		if runtime.IsNotRegisteredError(err) {
			u := &unstructured.Unstructured{}
			if _, _, err := unstructuredDecoder.Decode(value, nil, u); err != nil {
				return nil, fmt.Errorf("decoding stored %s object: %w", format, err)
			}
			return u, nil
		}
		if err != nil {
			return nil, fmt.Errorf("decoding stored %s object: %w", format, err)
		}
		return obj, nil
	}
	// Unmarshalling a document merges into what is there, protobuf's replaces: start from
	// zero so that a reused object (a list's slot) keeps nothing of its previous content.
	if v := reflect.ValueOf(into); v.Kind() == reflect.Pointer && !v.IsNil() {
		v.Elem().Set(reflect.Zero(v.Elem().Type()))
	}
	obj, _, err := typed.Decode(value, nil, into)
	if err != nil {
		return nil, fmt.Errorf("decoding stored %s object: %w", format, err)
	}
	return convertInto(obj, into)
}

// convertInto converts obj into into through apis.Scheme when they differ (into nil: obj).
func convertInto(obj, into runtime.Object) (runtime.Object, error) {
	if into == nil || obj == into {
		return obj, nil
	}
	if err := apis.Scheme.Convert(obj, into, nil); err != nil {
		return nil, fmt.Errorf("converting stored %T to %T: %w", obj, into, err)
	}
	return into, nil
}

func setResourceVersion(obj runtime.Object, rev int64) error {
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return fmt.Errorf("setting resourceVersion on %T: %w", obj, err)
	}
	if rev == 0 {
		accessor.SetResourceVersion("")
	} else {
		accessor.SetResourceVersion(formatRV(rev))
	}
	return nil
}

// shallowCopy copies the top-level struct of obj (a pointer to a struct), sharing its maps,
// slices and pointers. It is enough to change TypeMeta or a scalar of ObjectMeta (both held
// by value) without touching obj.
func shallowCopy(obj runtime.Object) (runtime.Object, error) {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("expected a pointer to a struct, got %T", obj)
	}
	cp := reflect.New(v.Elem().Type())
	cp.Elem().Set(v.Elem())
	return cp.Interface().(runtime.Object), nil
}

// ShallowCopy returns a copy of obj that its holder may change apiVersion, kind or a
// metadata scalar (resourceVersion, an encoder's TypeMeta) of without touching obj:
//   - a typed object: a copy of its top-level struct, sharing everything it points to (maps,
//     slices, nested pointers);
//   - an *unstructured.Unstructured: a new top-level map and a new metadata map, sharing
//     every other value (spec, status, labels, annotations).
//
// The watch cache hands these out so that callers do not race each other; anything deeper
// must be treated as read-only.
func ShallowCopy(obj runtime.Object) runtime.Object {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return &unstructured.Unstructured{Object: shallowCopyContent(u.Object)}
	}
	cp, err := shallowCopy(obj)
	if err != nil {
		return obj.DeepCopyObject()
	}
	return cp
}

// ShallowCopyInto makes out (a pointer of obj's type) what ShallowCopy(obj) returns, without
// allocating a new object for typed ones: the watch cache fills Get's out and list slots so.
func ShallowCopyInto(out, obj runtime.Object) error {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		uo, ok := out.(*unstructured.Unstructured)
		if !ok {
			return fmt.Errorf("cannot copy %T into %T", obj, out)
		}
		*uo = unstructured.Unstructured{Object: shallowCopyContent(u.Object)}
		return nil
	}
	ov, v := reflect.ValueOf(out), reflect.ValueOf(obj)
	if ov.Type() != v.Type() || v.Kind() != reflect.Pointer || v.IsNil() || ov.IsNil() || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("cannot copy %T into %T", obj, out)
	}
	ov.Elem().Set(v.Elem())
	return nil
}

func shallowCopyContent(content map[string]any) map[string]any {
	cp := maps.Clone(content)
	if md, ok := cp["metadata"].(map[string]any); ok {
		cp["metadata"] = maps.Clone(md)
	}
	return cp
}

// newEmptyLike returns a new, empty object of obj's type; for an unstructured object one with
// obj's apiVersion and kind, which is all a bookmark needs to say what it is.
func newEmptyLike(obj runtime.Object) (runtime.Object, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		out := &unstructured.Unstructured{}
		out.SetGroupVersionKind(u.GroupVersionKind())
		return out, nil
	}
	return newLike(obj)
}
