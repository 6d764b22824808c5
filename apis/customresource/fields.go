package customresource

import (
	"fmt"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/jsonpath"
)

// selectableField is one of a version's selectableFields: its field label (the JSONPath
// without the leading period) and the parsed path.
type selectableField struct {
	name string
	path *jsonpath.JSONPath
}

func compileSelectableFields(crdFields []apiextensionsv1.SelectableField) []selectableField {
	var out []selectableField
	for _, sf := range crdFields {
		p := jsonpath.New("selectableField")
		p.AllowMissingKeys(true)
		if err := p.Parse("{" + sf.JSONPath + "}"); err != nil {
			continue // CRD validation refuses such a path
		}
		out = append(out, selectableField{name: strings.TrimPrefix(sf.JSONPath, "."), path: p})
	}
	return out
}

// FieldLabels are the field labels the version's objects can be selected by:
// metadata.name, metadata.namespace when namespaced, and each selectableField's path
// ("spec.color").
func (v *Version) FieldLabels() []string {
	labels := []string{"metadata.name"}
	if v.namespaced {
		labels = append(labels, "metadata.namespace")
	}
	for _, sf := range v.selectable {
		labels = append(labels, sf.name)
	}
	return labels
}

// SelectableFields are obj's values of the version's field labels, as upstream filters lists
// and watches by them: metadata.name, metadata.namespace when namespaced, and each
// selectableField's value printed with fmt.Sprint ("3", "true", "blue"), "" when obj has none.
// obj is a custom resource (*unstructured.Unstructured); the signature fits a field function
// of the API table.
func (v *Version) SelectableFields(obj runtime.Object) fields.Set {
	set := fields.Set{}
	if m, err := meta.Accessor(obj); err == nil {
		set["metadata.name"] = m.GetName()
		if v.namespaced {
			set["metadata.namespace"] = m.GetNamespace()
		}
	}
	if len(v.selectable) == 0 {
		return set
	}
	var content map[string]interface{}
	if u, ok := obj.(runtime.Unstructured); ok {
		content = u.UnstructuredContent()
	}
	v.jsonPathMu.Lock()
	defer v.jsonPathMu.Unlock()
	for _, sf := range v.selectable {
		set[sf.name] = ""
		results, err := sf.path.FindResults(content)
		// a selectable field's path leads to one scalar at most (CRD validation sees to it)
		if err != nil || len(results) != 1 || len(results[0]) != 1 {
			continue
		}
		if value := results[0][0].Interface(); value != nil {
			set[sf.name] = fmt.Sprint(value)
		}
	}
	return set
}
