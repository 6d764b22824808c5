package apiserver

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/client-go/applyconfigurations"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/typed"

	"github.com/skiff-dev/skiff/apis"
)

// managedFields records, on every write, which manager set which fields
// (metadata.managedFields), with apimachinery's field manager and the type information
// client-go ships for the built-in kinds: operation Update for creates, updates and patches,
// operation Apply for server-side applies (apply.go), each per subresource.

var (
	typeConverterOnce sync.Once
	typeConverter     managedfields.TypeConverter
)

func sharedTypeConverter() managedfields.TypeConverter {
	typeConverterOnce.Do(func() { typeConverter = applyconfigurations.NewTypeConverter(apis.Scheme) })
	return typeConverter
}

// newFieldManager builds the field manager of a resource or one of its subresources. A write
// takes no ownership of the fields its strategy resets (upstream's GetResetFields): writes to
// the resource itself (and to namespaces/finalize) of status, status writes of the spec and
// what else the resource's status strategy keeps.
func newFieldManager(res *apis.Resource, subresource string) (*managedfields.FieldManager, error) {
	var reset []fieldpath.Path
	if res.Subresource("status") != nil {
		switch subresource {
		case "":
			reset = []fieldpath.Path{fieldpath.MakePathOrDie("status")}
		default:
			if sub := res.Subresource(subresource); sub != nil && sub.Strategy != nil {
				reset = resetPaths(sub.ResetFields)
			}
		}
	}
	var filters map[fieldpath.APIVersion]fieldpath.Filter
	if len(reset) > 0 {
		filters = map[fieldpath.APIVersion]fieldpath.Filter{
			fieldpath.APIVersion(res.GroupVersion.String()): fieldpath.NewExcludeSetFilter(fieldpath.NewSet(reset...)),
		}
	}
	if res.Unstructured {
		return managedfields.NewDefaultCRDFieldManager(res.TypeConverter, unstructuredConvertor{}, unstructuredDefaulter{res},
			unstructuredCreater{}, res.GroupVersionKind(), res.GroupVersion, subresource, filters)
	}
	converter := res.TypeConverter
	if converter == nil {
		converter = sharedTypeConverter()
	}
	return managedfields.NewDefaultFieldManager(converter, apis.Scheme, apis.Scheme, apis.Scheme,
		res.GroupVersionKind(), res.GroupVersion, subresource, filters)
}

// resetPaths are a subresource's declared reset fields ("spec" when it declares none).
func resetPaths(fields []string) []fieldpath.Path {
	if fields == nil {
		fields = []string{"spec"}
	}
	out := make([]fieldpath.Path, 0, len(fields))
	for _, f := range fields {
		var p fieldpath.Path
		for _, name := range strings.Split(f, ".") {
			p = append(p, fieldpath.PathElement{FieldName: &name})
		}
		out = append(out, p)
	}
	return out
}

// subresourceFieldManagers are the field managers of subresources the server did not build
// one for at start (namespaces/finalize), built on first use.
var subresourceFieldManagers sync.Map // subresourceKey → *managedfields.FieldManager

type subresourceKey struct {
	res         *apis.Resource
	subresource string
}

// fieldManager is the field manager of writes to the resource ("") or one of its
// subresources; nil when managed fields cannot be tracked for it.
func (h *resourceHandler) fieldManager(subresource string) *managedfields.FieldManager {
	if fm := h.fieldManagers[subresource]; fm != nil {
		return fm
	}
	key := subresourceKey{h.res, subresource}
	if fm, ok := subresourceFieldManagers.Load(key); ok {
		return fm.(*managedfields.FieldManager)
	}
	fm, err := newFieldManager(h.res, subresource)
	if err != nil {
		return nil
	}
	actual, _ := subresourceFieldManagers.LoadOrStore(key, fm)
	return actual.(*managedfields.FieldManager)
}

// managerOrUserAgent is the manager a write is recorded under: the fieldManager parameter
// (already validated), or, as upstream, the client's user agent up to its first "/", without
// unprintable characters and within the 128 bytes a manager name may have.
func managerOrUserAgent(manager, userAgent string) string {
	if manager != "" {
		return manager
	}
	prefix, _, _ := strings.Cut(userAgent, "/")
	var b strings.Builder
	for _, r := range prefix {
		if !unicode.IsPrint(r) {
			continue
		}
		if b.Len()+utf8.RuneLen(r) > metav1validation.FieldManagerMaxLength {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
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

// The scale subresource (autoscaling/v1 Scale) has a field manager of its own, and its
// managedFields live in the parent's, with spec.replicas translated between the two, as
// upstream's ScaleHandler does.

var (
	scaleFieldManagerOnce sync.Once
	scaleFieldManager     *managedfields.FieldManager
	errScaleFieldManager  error
)

// scaleFieldManagerFor returns the field manager of writes to a scale subresource.
func scaleFieldManagerFor() (*managedfields.FieldManager, error) {
	scaleFieldManagerOnce.Do(func() {
		parser, err := typed.NewParser(scaleSchema)
		if err != nil {
			errScaleFieldManager = fmt.Errorf("schema of scale: %w", err)
			return
		}
		gvk := schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}
		scaleFieldManager, errScaleFieldManager = managedfields.NewDefaultFieldManager(managedfields.NewSchemeTypeConverter(apis.Scheme, parser),
			apis.Scheme, apis.Scheme, apis.Scheme, gvk, gvk.GroupVersion(), "scale", nil)
		if errScaleFieldManager != nil {
			errScaleFieldManager = fmt.Errorf("field manager for scale: %w", errScaleFieldManager)
		}
	})
	return scaleFieldManager, errScaleFieldManager
}

// scaleSchema is the structured-merge schema of autoscaling/v1 Scale, which the schemas
// client-go ships leave out (Scale is no resource of its own). Its metadata is deduced: the
// field manager strips what the server sets, and nothing else of a scale's metadata is written.
const scaleSchema typed.YAMLObject = `types:
- name: io.k8s.api.autoscaling.v1.Scale
  map:
    fields:
    - name: apiVersion
      type:
        scalar: string
    - name: kind
      type:
        scalar: string
    - name: metadata
      type:
        namedType: __untyped_deduced_
      default: {}
    - name: spec
      type:
        namedType: io.k8s.api.autoscaling.v1.ScaleSpec
      default: {}
    - name: status
      type:
        namedType: io.k8s.api.autoscaling.v1.ScaleStatus
      default: {}
- name: io.k8s.api.autoscaling.v1.ScaleSpec
  map:
    fields:
    - name: replicas
      type:
        scalar: numeric
- name: io.k8s.api.autoscaling.v1.ScaleStatus
  map:
    fields:
    - name: replicas
      type:
        scalar: numeric
      default: 0
    - name: selector
      type:
        scalar: string
- name: __untyped_atomic_
  scalar: untyped
  list:
    elementType:
      namedType: __untyped_atomic_
    elementRelationship: atomic
  map:
    elementType:
      namedType: __untyped_atomic_
    elementRelationship: atomic
- name: __untyped_deduced_
  scalar: untyped
  list:
    elementType:
      namedType: __untyped_atomic_
    elementRelationship: atomic
  map:
    elementType:
      namedType: __untyped_deduced_
    elementRelationship: separable
`

// scaleManagedFields carries managedFields between a workload and its scale: before a write
// of the scale, scale.ManagedFields = f.ToSubresource(); after it, the parent's
// managedFields = f.ToParent(scale.ManagedFields). gv is the parent's group version, whose
// replicas field its declaration names.
func scaleManagedFields(parent []metav1.ManagedFieldsEntry, gv schema.GroupVersion, res *apis.Resource) *managedfields.ScaleHandler {
	path := fieldpath.Path{}
	for _, f := range strings.Split(strings.TrimPrefix(res.Scale.SpecReplicasPath, "."), ".") {
		path = append(path, fieldpath.PathElement{FieldName: &f})
	}
	return managedfields.NewScaleHandler(parent, gv, managedfields.ResourcePathMappings{gv.String(): path})
}

// trackScaleUpdate records a PUT of a scale (old is the scale before it, with the managed
// fields scaleManagedFields gave it).
func trackScaleUpdate(r *http.Request, old, scale runtime.Object) runtime.Object {
	fm, err := scaleFieldManagerFor()
	if err != nil {
		return scale
	}
	return fm.UpdateNoErrors(old, scale, managerOrUserAgent(r.URL.Query().Get("fieldManager"), r.UserAgent()))
}

// Custom resources' versions differ only in apiVersion (conversion None): the field manager
// converts them by copying with the asked apiVersion, creates them empty with their kind, and
// defaults them by their declaration.

type unstructuredConvertor struct{}

var _ runtime.ObjectConvertor = unstructuredConvertor{}

func (unstructuredConvertor) Convert(in, out, _ interface{}) error {
	src, ok := in.(*unstructured.Unstructured)
	dst, ok2 := out.(*unstructured.Unstructured)
	if !ok || !ok2 {
		return fmt.Errorf("cannot convert %T to %T", in, out)
	}
	dst.Object = runtime.DeepCopyJSON(src.Object)
	return nil
}

func (unstructuredConvertor) ConvertToVersion(in runtime.Object, target runtime.GroupVersioner) (runtime.Object, error) {
	u, ok := in.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("cannot convert %T", in)
	}
	gvk, ok := target.KindForGroupVersionKinds([]schema.GroupVersionKind{u.GroupVersionKind()})
	if !ok {
		return nil, fmt.Errorf("%v is not suitable for converting to %v", u.GroupVersionKind(), target)
	}
	out := u.DeepCopy()
	out.SetGroupVersionKind(gvk)
	return out, nil
}

func (unstructuredConvertor) ConvertFieldLabel(_ schema.GroupVersionKind, label, value string) (string, string, error) {
	return label, value, nil
}

type unstructuredCreater struct{}

func (unstructuredCreater) New(gvk schema.GroupVersionKind) (runtime.Object, error) {
	u := &unstructured.Unstructured{Object: map[string]interface{}{}}
	u.SetGroupVersionKind(gvk)
	return u, nil
}

type unstructuredDefaulter struct{ res *apis.Resource }

func (d unstructuredDefaulter) Default(obj runtime.Object) {
	if d.res.Default != nil {
		d.res.Default(obj)
	}
}
