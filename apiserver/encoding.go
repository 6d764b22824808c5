package apiserver

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-dev/skiff/apis"
)

// Encoding the same stored object again and again is most of what a read costs: a LIST of
// 5,000 pods, a GET of a hot object, one event fanned out to a hundred watchers. An object
// state is identified by its uid and resourceVersion (the etcd revision of the write that
// made it), so its encoding can be kept and reused until the cache is full, whichever
// request asks. Objects without both (Status) are always encoded afresh, and so are dry-run
// answers (dryrun.go), which carry a stored object's pair with content never stored.

type encodedKey struct {
	typ       reflect.Type
	mediaType string
	gv        schema.GroupVersion
	uid       types.UID
	rv        string
	// typed: with apiVersion and kind (a single object), or without (a list item)
	typed bool
	// frame, when set, is a watch event type: the key is of a whole watch frame (watch.go)
	frame watch.EventType
}

type encodingCache struct {
	mu      sync.RWMutex
	entries map[encodedKey][]byte
	size    int // bytes held
	limit   int // bytes it may hold; 0 is maxEncodedBytes
}

// maxEncodedBytes bounds the cache; when it is reached the cache starts over, which costs a
// round of encodings and nothing else.
const maxEncodedBytes = 64 << 20

var encoded = &encodingCache{entries: map[encodedKey][]byte{}}

func (c *encodingCache) get(k encodedKey) ([]byte, bool) {
	c.mu.RLock()
	b, ok := c.entries[k]
	c.mu.RUnlock()
	return b, ok
}

func (c *encodingCache) put(k encodedKey, b []byte) {
	limit := c.limit
	if limit == 0 {
		limit = maxEncodedBytes
	}
	c.mu.Lock()
	if c.size+len(b) > limit {
		c.entries, c.size = map[encodedKey][]byte{}, 0
	}
	if _, ok := c.entries[k]; !ok {
		c.entries[k] = b
		c.size += len(b)
	}
	c.mu.Unlock()
}

// cacheKey returns the key of obj's encoding, or false when obj has no stable identity.
func cacheKey(obj runtime.Object, info runtime.SerializerInfo, gv schema.GroupVersion, typed bool) (encodedKey, bool) {
	m, err := meta.Accessor(obj)
	if err != nil || m.GetUID() == "" || m.GetResourceVersion() == "" || mustEncodeAfresh(obj) {
		return encodedKey{}, false
	}
	return encodedKey{typ: reflect.TypeOf(obj), mediaType: info.MediaType, gv: gv, uid: m.GetUID(), rv: m.GetResourceVersion(), typed: typed}, true
}

// encodeObject returns obj encoded in info's format with gv's apiVersion and kind.
func encodeObject(obj runtime.Object, info runtime.SerializerInfo, gv schema.GroupVersion) ([]byte, error) {
	if u, ok := isUnstructured(obj); ok {
		// served through their current schema (defaults, pruning): never cached by version
		return encodeUnstructured(u, info, gv)
	}
	key, cacheable := cacheKey(obj, info, gv, true)
	if cacheable && info.MediaType == runtime.ContentTypeJSON {
		if b, ok, err := encodeTypedJSON(obj, key, info, gv); ok || err != nil {
			return b, err
		}
	}
	if cacheable {
		if b, ok := encoded.get(key); ok {
			return b, nil
		}
	}
	var buf bytes.Buffer
	if err := apis.Codecs.EncoderForVersion(info.Serializer, gv).Encode(obj, &buf); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	if cacheable {
		encoded.put(key, b)
	}
	return b, nil
}

// A single object's JSON is its list item's JSON with its kind and apiVersion in front:
// {"kind":"Pod","apiVersion":"v1", then the item's fields. The encoding cache keeps only the
// item and splices the single object's encoding from it, which halves what it holds for the
// objects that are both read alone and listed (the bench's pods: created, got, listed). The
// splice is learned per type and group version from one whole encoding, and used only where
// that encoding is exactly prefix + item: the encoder sets apiVersion and kind and converts
// nothing when gv is the object's own.

type typedJSONPrefixKey struct {
	typ reflect.Type
	gv  schema.GroupVersion
}

// typedJSONPrefixes holds, by typedJSONPrefixKey, what a single object's JSON has before its
// item's fields.
var typedJSONPrefixes sync.Map

// encodeTypedJSON returns obj's single-object JSON spliced from its cached item encoding, or
// false when the splice does not apply to it.
func encodeTypedJSON(obj runtime.Object, key encodedKey, info runtime.SerializerInfo, gv schema.GroupVersion) ([]byte, bool, error) {
	if !obj.GetObjectKind().GroupVersionKind().Empty() || !isOwnVersion(obj, gv) {
		return nil, false, nil
	}
	itemKey := key
	itemKey.typed = false
	pk := typedJSONPrefixKey{key.typ, gv}
	item, haveItem := encoded.get(itemKey)
	if prefix, ok := typedJSONPrefixes.Load(pk); ok && haveItem {
		if b, ok := spliceTypedJSON(prefix.([]byte), item); ok {
			return b, true, nil
		}
	}
	var buf bytes.Buffer
	if err := apis.Codecs.EncoderForVersion(info.Serializer, gv).Encode(obj, &buf); err != nil {
		return nil, false, err
	}
	typed := buf.Bytes()
	if !haveItem {
		var itemBuf bytes.Buffer
		if err := info.Serializer.Encode(obj, &itemBuf); err != nil {
			return nil, false, err
		}
		item = bytes.TrimRight(itemBuf.Bytes(), "\n")
		encoded.put(itemKey, item)
	}
	if _, ok := typedJSONPrefixes.Load(pk); !ok {
		if prefix, ok := typedJSONPrefix(typed, item); ok {
			typedJSONPrefixes.Store(pk, prefix)
		}
	}
	return typed, true, nil
}

// typedJSONPrefix returns what typed has before item's fields, if typed is exactly
// {"kind":...,"apiVersion":..., then item's fields, then a newline.
func typedJSONPrefix(typed, item []byte) ([]byte, bool) {
	if len(item) < 3 || item[0] != '{' || len(typed) <= len(item) {
		return nil, false
	}
	prefix := typed[:len(typed)-len(item)]
	if !bytes.HasPrefix(prefix, []byte(`{"kind":`)) || !bytes.HasSuffix(prefix, []byte(",")) ||
		!bytes.HasSuffix(typed, append(bytes.Clone(item[1:]), '\n')) {
		return nil, false
	}
	return bytes.Clone(prefix), true
}

func spliceTypedJSON(prefix, item []byte) ([]byte, bool) {
	if len(item) < 3 || item[0] != '{' {
		return nil, false // {} has no field to put a comma before
	}
	b := make([]byte, 0, len(prefix)+len(item))
	b = append(b, prefix...)
	b = append(b, item[1:]...)
	return append(b, '\n'), true
}

// isOwnVersion reports whether obj's type is registered in gv, so that encoding it for gv
// sets its apiVersion and kind and converts nothing.
func isOwnVersion(obj runtime.Object, gv schema.GroupVersion) bool {
	gvks, unversioned, err := apis.Scheme.ObjectKinds(obj)
	if err != nil || unversioned {
		return false
	}
	for _, gvk := range gvks {
		if gvk.GroupVersion() == gv {
			return true
		}
	}
	return false
}

// encodeObjectAfresh encodes obj without the cache, for states that were never stored.
func encodeObjectAfresh(obj runtime.Object, info runtime.SerializerInfo, gv schema.GroupVersion) ([]byte, error) {
	if u, ok := isUnstructured(obj); ok {
		return encodeUnstructured(u, info, gv)
	}
	var buf bytes.Buffer
	if err := apis.Codecs.EncoderForVersion(info.Serializer, gv).Encode(obj, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// listWriter writes a typed list to w with the given items (list's own items are ignored; its
// list metadata is written). The items are only read: they may be the watch cache's own
// objects. start is called once, before the first byte.
type listWriter func(w io.Writer, start func(), list runtime.Object, items []runtime.Object, info runtime.SerializerInfo, gv schema.GroupVersion) error

var (
	_ listWriter = writeJSONListItems
	_ listWriter = writeProtobufListItems
)

// writeJSONList writes a typed list as JSON to w with its own items (writeJSONListItems).
func writeJSONList(w io.Writer, start func(), list runtime.Object, info runtime.SerializerInfo, gv schema.GroupVersion) error {
	items, err := meta.ExtractList(list)
	if err != nil {
		return err
	}
	return writeJSONListItems(w, start, list, items, info, gv)
}

// writeJSONListItems writes a typed list as JSON to w, reusing the encodings of its items.
// Every list kind ends with its items, so the envelope is the list encoded without items,
// with the items written in before its closing "]}".
func writeJSONListItems(w io.Writer, start func(), list runtime.Object, items []runtime.Object, info runtime.SerializerInfo, gv schema.GroupVersion) error {
	envelope, err := emptyListLike(list)
	if err != nil {
		return err
	}
	if err := meta.SetList(envelope, []runtime.Object{}); err != nil {
		return err
	}
	var head bytes.Buffer
	if err := apis.Codecs.EncoderForVersion(info.Serializer, gv).Encode(envelope, &head); err != nil {
		return err
	}
	h := bytes.TrimRight(head.Bytes(), "\n")
	if !bytes.HasSuffix(h, []byte(`"items":[]}`)) {
		// not the shape expected: encode it whole, with the items given
		whole, err := withItems(envelope, items)
		if err != nil {
			return err
		}
		var body bytes.Buffer
		if err := apis.Codecs.EncoderForVersion(info.Serializer, gv).Encode(whole, &body); err != nil {
			return err
		}
		start()
		_, err = w.Write(body.Bytes())
		return err
	}
	// encode what is not cached before the first byte goes out, so that an encoding error
	// can still be answered with a Status
	encodedItems := make([][]byte, len(items))
	var itemBuf bytes.Buffer
	for i, it := range items {
		key, cacheable := cacheKey(it, info, gv, false)
		if cacheable {
			if b, ok := encoded.get(key); ok {
				encodedItems[i] = b
				continue
			}
		}
		itemBuf.Reset()
		if err := info.Serializer.Encode(it, &itemBuf); err != nil {
			return err
		}
		b := bytes.Clone(bytes.TrimRight(itemBuf.Bytes(), "\n"))
		if cacheable {
			encoded.put(key, b)
		}
		encodedItems[i] = b
	}
	start()
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(h[:len(h)-2])
	for i, b := range encodedItems {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.Write(b)
	}
	bw.WriteString("]}\n")
	return bw.Flush()
}

// protoMarshaler is what the generated k8s.io/api types implement.
type protoMarshaler interface {
	Marshal() ([]byte, error)
}

// writeProtobufList writes a typed list in the protobuf encoding with its own items
// (writeProtobufListItems).
func writeProtobufList(w io.Writer, start func(), list runtime.Object, info runtime.SerializerInfo, gv schema.GroupVersion) error {
	items, err := meta.ExtractList(list)
	if err != nil {
		return err
	}
	return writeProtobufListItems(w, start, list, items, info, gv)
}

// writeProtobufListItems writes a typed list in the protobuf encoding (the k8s\x00 envelope
// around a runtime.Unknown), reusing the encodings of its items: a list message is its
// ListMeta and each item as length-delimited fields, so cached item bytes are framed, not
// re-encoded, and streamed without assembling the whole body in memory. The bytes are
// exactly what apimachinery's encoder writes (tested).
func writeProtobufListItems(w io.Writer, start func(), list runtime.Object, items []runtime.Object, info runtime.SerializerInfo, gv schema.GroupVersion) error {
	gvks, _, err := apis.Scheme.ObjectKinds(list)
	if err != nil {
		return err
	}
	metaField, itemsField, err := listFieldNumbers(reflect.TypeOf(list).Elem())
	if err != nil {
		return err
	}
	listMeta, ok := reflect.ValueOf(list).Elem().FieldByName("ListMeta").Addr().Interface().(protoMarshaler)
	if !ok {
		return fmt.Errorf("%T has no ListMeta", list)
	}
	metaBytes, err := listMeta.Marshal()
	if err != nil {
		return err
	}
	encodedItems := make([][]byte, len(items))
	rawLen := fieldLen(len(metaBytes))
	for i, it := range items {
		key, cacheable := cacheKey(it, info, gv, false)
		var b []byte
		if cacheable {
			b, _ = encoded.get(key)
		}
		if b == nil {
			m, ok := it.(protoMarshaler)
			if !ok {
				return fmt.Errorf("%T cannot be encoded as protobuf", it)
			}
			if b, err = m.Marshal(); err != nil {
				return err
			}
			if cacheable {
				encoded.put(key, b)
			}
		}
		encodedItems[i] = b
		rawLen += fieldLen(len(b))
	}
	typeMeta := runtime.TypeMeta{APIVersion: gv.String(), Kind: gvks[0].Kind}
	typeMetaBytes, err := typeMeta.Marshal()
	if err != nil {
		return err
	}
	start()
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write([]byte{'k', '8', 's', 0})
	var hdr []byte
	hdr = appendField(hdr, 1, typeMetaBytes) // Unknown.typeMeta
	hdr = binary.AppendUvarint(hdr, 2<<3|2)  // Unknown.raw, the list message:
	hdr = binary.AppendUvarint(hdr, uint64(rawLen))
	hdr = appendField(hdr, metaField, metaBytes)
	bw.Write(hdr)
	for _, b := range encodedItems {
		hdr = binary.AppendUvarint(hdr[:0], uint64(itemsField<<3|2))
		hdr = binary.AppendUvarint(hdr, uint64(len(b)))
		bw.Write(hdr)
		bw.Write(b)
	}
	bw.Write([]byte{3<<3 | 2, 0, 4<<3 | 2, 0}) // Unknown.contentEncoding and contentType, empty
	return bw.Flush()
}

// fieldLen is the encoded size of a length-delimited field with a one-byte tag.
func fieldLen(n int) int {
	return 1 + len(binary.AppendUvarint(nil, uint64(n))) + n
}

// listFieldNumbers reads the protobuf field numbers of a list type's ListMeta and Items from
// their struct tags (most lists are 1 and 2; meta.k8s.io/v1beta1's metadata list is not).
func listFieldNumbers(t reflect.Type) (meta, items int, err error) {
	number := func(name string) int {
		f, ok := t.FieldByName(name)
		if !ok {
			return 0
		}
		parts := strings.Split(f.Tag.Get("protobuf"), ",")
		if len(parts) < 2 {
			return 0
		}
		n, _ := strconv.Atoi(parts[1])
		return n
	}
	meta, items = number("ListMeta"), number("Items")
	if meta == 0 || items == 0 {
		return 0, 0, fmt.Errorf("%v has no protobuf ListMeta and Items", t)
	}
	return meta, items, nil
}

// appendField appends a length-delimited protobuf field.
func appendField(b []byte, field int, value []byte) []byte {
	b = binary.AppendUvarint(b, uint64(field<<3|2))
	b = binary.AppendUvarint(b, uint64(len(value)))
	return append(b, value...)
}

// listWriterFor returns the list writer for a media type, or nil when lists are encoded whole.
func listWriterFor(mediaType string) listWriter {
	switch mediaType {
	case runtime.ContentTypeJSON:
		return writeJSONListItems
	case runtime.ContentTypeProtobuf:
		return writeProtobufListItems
	}
	return nil
}

// withItems returns a new list like envelope (its list metadata) holding copies of items.
func withItems(envelope runtime.Object, items []runtime.Object) (runtime.Object, error) {
	whole, err := emptyListLike(envelope)
	if err != nil {
		return nil, err
	}
	// SetList copies each item's struct into the new slice: the items stay untouched
	return whole, meta.SetList(whole, items)
}

// emptyListLike returns a fresh list of list's type with its list metadata (resourceVersion,
// continue, remainingItemCount) and no items: copying the list itself would copy every item.
func emptyListLike(list runtime.Object) (runtime.Object, error) {
	out := reflect.New(reflect.TypeOf(list).Elem()).Interface().(runtime.Object)
	src, err := meta.ListAccessor(list)
	if err != nil {
		return nil, err
	}
	dst, err := meta.ListAccessor(out)
	if err != nil {
		return nil, err
	}
	dst.SetResourceVersion(src.GetResourceVersion())
	dst.SetContinue(src.GetContinue())
	dst.SetRemainingItemCount(src.GetRemainingItemCount())
	return out, nil
}
