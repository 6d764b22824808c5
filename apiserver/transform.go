package apiserver

import (
	"errors"
	"fmt"
	"net/http"
	"path"
	"reflect"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1beta1 "k8s.io/apimachinery/pkg/apis/meta/v1beta1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/apis"
)

func init() {
	// Table and PartialObjectMetadata(List) in meta.k8s.io/v1 beside the v1beta1 ones, so that
	// responses can be encoded in either.
	if err := metav1.AddMetaToScheme(apis.Scheme); err != nil {
		panic(err)
	}
}

// transformResponse turns a response object into what the client's Accept asked for beyond
// the media type (as=Table, as=PartialObjectMetadata, as=PartialObjectMetadataList), as
// upstream does: it returns the object to encode and the group version to encode it in. A
// Status, and everything when no conversion was asked, passes through. On a watch it is
// called once per event with the same mt, and each event's object becomes a one-row Table
// (with the column definitions on the first only) or a PartialObjectMetadata.
func transformResponse(r *http.Request, mt mediaType, obj runtime.Object, gv schema.GroupVersion) (runtime.Object, schema.GroupVersion, error) {
	if mt.convert == nil {
		return obj, gv, nil
	}
	if _, ok := obj.(*metav1.Status); ok {
		return obj, gv, nil
	}
	target := mt.convert.GroupVersion()
	var (
		out runtime.Object
		err error
	)
	switch mt.convert.Kind {
	case "PartialObjectMetadata":
		out, err = asPartialObjectMetadata(obj, target)
	case "PartialObjectMetadataList":
		out, err = asPartialObjectMetadataList(obj, target)
	case "Table":
		out, err = asTable(r, obj, mt.table, gv, target)
	default:
		err = notAcceptableMediaTypes(false)
	}
	if err != nil {
		return nil, gv, err
	}
	return out, target, nil
}

// asTable prints obj as a Table of its kind's columns; each row carries the object as the
// request's includeObject says: its metadata as a PartialObjectMetadata (the default), the
// whole object in the response's group version, or nothing.
func asTable(r *http.Request, obj runtime.Object, opts *metav1.TableOptions, gv, target schema.GroupVersion) (runtime.Object, error) {
	if opts == nil {
		opts = &metav1.TableOptions{}
	}
	table, err := apis.ConvertToTable(tablePrinterFor(r), obj, opts.NoHeaders)
	if errors.Is(err, apis.ErrNotTabular) {
		resource := schema.GroupResource{}
		if ri := requestInfoFrom(r.Context()); ri != nil {
			resource = schema.GroupResource{Group: ri.APIGroup, Resource: ri.Resource}
		}
		return nil, notAcceptable{fmt.Sprintf("the resource %s does not support being converted to a Table", resource)}
	}
	if err != nil {
		return nil, err
	}
	// only the first event of a watch carries the column definitions
	opts.NoHeaders = true
	for i := range table.Rows {
		row := &table.Rows[i]
		switch opts.IncludeObject {
		case metav1.IncludeObject:
			// a copy: the row's object may be the watch cache's, whose type is left unset
			full := row.Object.Object.DeepCopyObject()
			kinds, _, err := apis.Scheme.ObjectKinds(full)
			if err != nil {
				return nil, err
			}
			full.GetObjectKind().SetGroupVersionKind(gv.WithKind(kinds[0].Kind))
			row.Object.Object = full
		case metav1.IncludeMetadata, "":
			m, err := meta.Accessor(row.Object.Object)
			if err != nil {
				return nil, err
			}
			partial := meta.AsPartialObjectMetadata(m)
			partial.GetObjectKind().SetGroupVersionKind(target.WithKind("PartialObjectMetadata"))
			row.Object.Object = partial
		case metav1.IncludeNone:
			row.Object.Object = nil
		default:
			return nil, apierrors.NewBadRequest(fmt.Sprintf("unrecognized includeObject value: %q", opts.IncludeObject))
		}
	}
	return table, nil
}

func asPartialObjectMetadata(obj runtime.Object, target schema.GroupVersion) (runtime.Object, error) {
	if meta.IsListType(obj) {
		return nil, notAcceptable{fmt.Sprintf("you requested PartialObjectMetadata, but the requested object is a list (%s)", internalTypeName(obj))}
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	partial := meta.AsPartialObjectMetadata(m)
	partial.GetObjectKind().SetGroupVersionKind(target.WithKind("PartialObjectMetadata"))
	return partial, nil
}

func asPartialObjectMetadataList(obj runtime.Object, target schema.GroupVersion) (runtime.Object, error) {
	li, ok := obj.(metav1.ListInterface)
	if !ok {
		return nil, notAcceptable{fmt.Sprintf("you requested PartialObjectMetadataList, but the requested object is not a list (%s)", internalTypeName(obj))}
	}
	gvk := target.WithKind("PartialObjectMetadata")
	var items []metav1.PartialObjectMetadata
	err := meta.EachListItem(obj, func(item runtime.Object) error {
		m, err := meta.Accessor(item)
		if err != nil {
			return err
		}
		partial := meta.AsPartialObjectMetadata(m)
		partial.GetObjectKind().SetGroupVersionKind(gvk)
		items = append(items, *partial)
		return nil
	})
	if err != nil {
		return nil, err
	}
	listMeta := metav1.ListMeta{ResourceVersion: li.GetResourceVersion(), Continue: li.GetContinue(), RemainingItemCount: li.GetRemainingItemCount()}
	if target == metav1beta1.SchemeGroupVersion {
		return &metav1beta1.PartialObjectMetadataList{ListMeta: listMeta, Items: items}, nil
	}
	return &metav1.PartialObjectMetadataList{ListMeta: listMeta, Items: items}, nil
}

// internalTypeName names obj's Go type the way upstream's messages do, which print the
// server's internal types: *core.Pod, *apps.ReplicaSetList, and *core.Event for
// events.k8s.io Events, which upstream keeps as core Events.
func internalTypeName(obj runtime.Object) string {
	t := reflect.TypeOf(obj)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	group := path.Base(path.Dir(t.PkgPath())) // k8s.io/api/core/v1 → core
	if group == "events" {
		group = "core"
	}
	return "*" + group + "." + t.Name()
}

// tablePrinterFor is the printer of what the request reads: its resource's, or the Scale's
// for a scale subresource; nil (the default columns) for anything else.
func tablePrinterFor(r *http.Request) *apis.TablePrinter {
	ri := requestInfoFrom(r.Context())
	if ri == nil || ri.resource == nil {
		return nil
	}
	switch ri.Subresource {
	case "":
		return ri.resource.Table
	case "scale":
		return apis.ScaleTable
	case "status":
		return ri.resource.Table
	}
	return nil
}
