package apiserver

import (
	"net/http"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/client-go/applyconfigurations"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/skiff-dev/skiff/apis"
)

// managedFields records, on every write, which manager set which fields
// (metadata.managedFields), with apimachinery's field manager and the type information
// client-go ships for the built-in kinds, as upstream does for update operations.

var (
	typeConverterOnce sync.Once
	typeConverter     managedfields.TypeConverter
)

func sharedTypeConverter() managedfields.TypeConverter {
	typeConverterOnce.Do(func() { typeConverter = applyconfigurations.NewTypeConverter(apis.Scheme) })
	return typeConverter
}

// newFieldManager builds the field manager of a resource or one of its subresources. Writes
// to the main resource do not take ownership of status, and status writes do not take
// ownership of the spec, as upstream's reset fields say.
func newFieldManager(res *apis.Resource, subresource string) (*managedfields.FieldManager, error) {
	version := fieldpath.APIVersion(res.GroupVersion.String())
	var reset map[fieldpath.APIVersion]*fieldpath.Set
	if res.Subresource("status") != nil {
		switch subresource {
		case "":
			reset = map[fieldpath.APIVersion]*fieldpath.Set{version: fieldpath.NewSet(fieldpath.MakePathOrDie("status"))}
		case "status":
			reset = map[fieldpath.APIVersion]*fieldpath.Set{version: fieldpath.NewSet(
				fieldpath.MakePathOrDie("spec"), fieldpath.MakePathOrDie("metadata", "labels"),
				fieldpath.MakePathOrDie("metadata", "annotations"))}
		}
	}
	filters := map[fieldpath.APIVersion]fieldpath.Filter{}
	for v, set := range reset {
		filters[v] = fieldpath.NewExcludeSetFilter(set)
	}
	return managedfields.NewDefaultFieldManager(sharedTypeConverter(), apis.Scheme, apis.Scheme, apis.Scheme,
		res.GroupVersionKind(), res.GroupVersion, subresource, filters)
}

// fieldManagerName is the manager a write is recorded under: the fieldManager parameter, or,
// as upstream, the client's user agent up to its first "/".
func fieldManagerName(r *http.Request) string {
	if m := r.URL.Query().Get("fieldManager"); m != "" {
		return m
	}
	ua := r.UserAgent()
	if i := strings.Index(ua, "/"); i >= 0 {
		ua = ua[:i]
	}
	return ua
}

// trackManagedFields updates obj's managedFields for a write that turns live (nil on create)
// into obj. A failure leaves the live object's entries, never the write.
func trackManagedFields(fm *managedfields.FieldManager, res *apis.Resource, live, obj runtime.Object, manager string) runtime.Object {
	if fm == nil {
		return obj
	}
	if live == nil {
		live = res.New()
	}
	return fm.UpdateNoErrors(live, obj, manager)
}
