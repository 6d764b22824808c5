package etcd3

import (
	"fmt"
	"reflect"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/registry/storage"
)

// listItems fills the Items slice of a typed list (e.g. []corev1.Pod) in place: each value is
// decoded straight into the slot it will occupy, so a 5,000 item list allocates the slice once
// and no per-item object (meta.SetList would allocate and copy each). Lists whose items are
// not structs (e.g. []runtime.Object) go through meta.SetList.
type listItems struct {
	listObj runtime.Object
	v       reflect.Value // the Items slice, settable
	structs bool          // elements are structs whose pointer is a runtime.Object
	objs    []runtime.Object
	n       int // items kept so far
}

func newListItems(listObj runtime.Object) (*listItems, error) {
	ptr, err := meta.GetItemsPtr(listObj)
	if err != nil {
		return nil, err
	}
	v := reflect.ValueOf(ptr)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Slice {
		return nil, fmt.Errorf("%T: items are not a slice", listObj)
	}
	v = v.Elem()
	elem := v.Type().Elem()
	structs := elem.Kind() == reflect.Struct && reflect.PointerTo(elem).Implements(reflect.TypeFor[runtime.Object]())
	l := &listItems{listObj: listObj, v: v, structs: structs}
	if structs {
		v.SetLen(0)
	}
	return l, nil
}

func (l *listItems) len() int { return l.n }

// grow makes room for up to n more items; a filtered list grows more cautiously since most
// of the page may be dropped.
func (l *listItems) grow(n int, unfiltered bool) {
	if !l.structs {
		return
	}
	if !unfiltered {
		n = min(n, 2048)
	}
	if want := l.n + n; want > l.v.Cap() {
		grown := reflect.MakeSlice(l.v.Type(), l.n, want)
		reflect.Copy(grown, l.v)
		l.v.Set(grown)
	}
}

// appendDecoded decodes value and keeps it if it matches pred.
func (l *listItems) appendDecoded(value []byte, rev int64, pred storage.SelectionPredicate) error {
	if !l.structs {
		obj, err := Decode(value, nil, rev)
		if err != nil {
			return err
		}
		if ok, err := pred.Matches(obj); err != nil {
			return err
		} else if ok {
			l.objs = append(l.objs, obj)
			l.n++
		}
		return nil
	}
	if l.n == l.v.Cap() {
		l.v.Set(reflect.Append(l.v, reflect.Zero(l.v.Type().Elem())))
	} else {
		l.v.SetLen(l.n + 1)
	}
	slot := l.v.Index(l.n).Addr().Interface().(runtime.Object)
	if _, err := Decode(value, slot, rev); err != nil {
		l.v.SetLen(l.n)
		return err
	}
	ok, err := pred.Matches(slot)
	if err != nil {
		l.v.SetLen(l.n)
		return err
	}
	if ok {
		l.n++
	}
	l.v.SetLen(l.n)
	return nil
}

// finish stores the items in the list; Items is never nil, as upstream returns it.
func (l *listItems) finish() error {
	if !l.structs {
		return meta.SetList(l.listObj, l.objs)
	}
	if l.v.IsNil() {
		l.v.Set(reflect.MakeSlice(l.v.Type(), 0, 0))
	}
	return nil
}
