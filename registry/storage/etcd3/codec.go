package etcd3

import (
	"bytes"
	"fmt"
	"reflect"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"

	"github.com/skiff-dev/skiff/apis"
)

// protoSerializer writes and reads upstream's storage encoding: a runtime.Unknown carrying the
// object's apiVersion and kind, in protobuf, behind the "k8s\x00" magic.
var protoSerializer = protobuf.NewSerializer(apis.Scheme, apis.Scheme)

// Encode returns obj as it is stored in etcd: protobuf in the "k8s\x00" envelope, tagged with
// obj's kind from apis.Scheme, with an empty resourceVersion (the revision is etcd's to say).
// obj itself is never modified, so objects shared with a cache can be encoded safely.
func Encode(obj runtime.Object) ([]byte, error) {
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

// Decode reads a stored value into into (or, when into is nil, into a new object of the kind
// the envelope records) and sets its resourceVersion to rev. When the stored kind is not
// into's type (a resource that shares storage with another version), the object is converted
// through apis.Scheme. The returned object has an empty TypeMeta, as upstream's storage
// returns objects: list items and watch events then encode without apiVersion and kind.
func Decode(value []byte, into runtime.Object, rev int64) (runtime.Object, error) {
	obj, _, err := protoSerializer.Decode(value, nil, into)
	if err != nil {
		return nil, fmt.Errorf("decoding stored object: %w", err)
	}
	if into != nil && obj != into {
		if err := apis.Scheme.Convert(obj, into, nil); err != nil {
			return nil, fmt.Errorf("converting stored %T to %T: %w", obj, into, err)
		}
		obj = into
	}
	obj.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
	if err := setResourceVersion(obj, rev); err != nil {
		return nil, err
	}
	return obj, nil
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

// ShallowCopy returns a copy of obj's top-level struct that shares everything it points to
// (maps, slices, nested pointers). The watch cache hands these out so that callers may set
// TypeMeta or ObjectMeta scalars (an encoder setting apiVersion and kind) without racing each
// other; anything deeper must be treated as read-only.
func ShallowCopy(obj runtime.Object) runtime.Object {
	cp, err := shallowCopy(obj)
	if err != nil {
		return obj.DeepCopyObject()
	}
	return cp
}
