package customresource

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metatable "k8s.io/apimachinery/pkg/api/meta/table"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/jsonpath"
)

var objectMetaDoc = metav1.ObjectMeta{}.SwaggerDoc()

// ageColumn is the column upstream prints for a version without additionalPrinterColumns.
var ageColumn = apiextensionsv1.CustomResourceColumnDefinition{
	Name: "Age", Type: "date", Description: objectMetaDoc["creationTimestamp"], JSONPath: ".metadata.creationTimestamp",
}

// compileColumns returns the table columns of a version as upstream prints custom resources:
// Name, then the additionalPrinterColumns (Age when there are none), each with the JSONPath
// that fills it. Upstream's printer stops at a JSONPath it cannot parse and prints the columns
// before it; CRD validation refuses such paths anyway.
func compileColumns(crdColumns []apiextensionsv1.CustomResourceColumnDefinition) ([]metav1.TableColumnDefinition, []*jsonpath.JSONPath) {
	if len(crdColumns) == 0 {
		crdColumns = []apiextensionsv1.CustomResourceColumnDefinition{ageColumn}
	}
	columns := []metav1.TableColumnDefinition{{Name: "Name", Type: "string", Format: "name", Description: objectMetaDoc["name"]}}
	var paths []*jsonpath.JSONPath
	for _, col := range crdColumns {
		path := jsonpath.New(col.Name)
		if err := path.Parse(fmt.Sprintf("{%s}", col.JSONPath)); err != nil {
			break
		}
		path.AllowMissingKeys(true)
		desc := fmt.Sprintf("Custom resource definition column (in JSONPath format): %s", col.JSONPath)
		if len(col.Description) > 0 {
			desc = col.Description
		}
		columns = append(columns, metav1.TableColumnDefinition{
			Name: col.Name, Type: col.Type, Format: col.Format, Description: desc, Priority: col.Priority,
		})
		paths = append(paths, path)
	}
	return columns, paths
}

// Columns are the table columns of the version's objects, as upstream serves them for
// kubectl get: Name (format name), then the CRD's additionalPrinterColumns in order with their
// type, format, priority and description (by default "Custom resource definition column (in
// JSONPath format): <path>"), or Age (type date) when it has none.
func (v *Version) Columns() []metav1.TableColumnDefinition { return v.columns }

// Row is obj's row of the version's table, holding obj itself: its name, then each column's
// JSONPath value (nil when missing). A string column prints the value as JSONPath prints it
// (lists and objects as JSON); an integer, number or boolean column holds the value when it is
// of that type and nil otherwise; a date column prints the time since the RFC 3339 timestamp
// as kubectl does ("5m", "3d"), "<invalid>" for a value that is not one.
func (v *Version) Row(obj *unstructured.Unstructured) metav1.TableRow {
	content := obj.UnstructuredContent()
	cells := make([]interface{}, 1, len(v.columns))
	cells[0] = obj.GetName()
	var buf bytes.Buffer
	v.jsonPathMu.Lock()
	defer v.jsonPathMu.Unlock()
	for i, path := range v.columnPaths {
		col := v.columns[i+1]
		results, err := path.FindResults(content)
		if err != nil || len(results) == 0 || len(results[0]) == 0 {
			cells = append(cells, nil)
			continue
		}
		// a column's JSONPath is a simple path: one result at most
		value := results[0][0].Interface()
		if col.Type == "string" {
			if err := path.PrintResults(&buf, []reflect.Value{reflect.ValueOf(value)}); err == nil {
				cells = append(cells, buf.String())
				buf.Reset()
			} else {
				cells = append(cells, nil)
			}
			continue
		}
		cells = append(cells, cellForJSONValue(col.Type, value))
	}
	return metav1.TableRow{Cells: cells, Object: runtime.RawExtension{Object: obj}}
}

// cellForJSONValue is a cell of a typed column, or nil when the value is not of the type.
func cellForJSONValue(columnType string, value interface{}) interface{} {
	if value == nil {
		return nil
	}
	switch columnType {
	case "integer":
		switch typed := value.(type) {
		case int64:
			return typed
		case float64:
			return int64(typed)
		case json.Number:
			if i, err := typed.Int64(); err == nil {
				return i
			}
		}
	case "number":
		switch typed := value.(type) {
		case int64:
			return float64(typed)
		case float64:
			return typed
		case json.Number:
			if f, err := typed.Float64(); err == nil {
				return f
			}
		}
	case "boolean":
		if b, ok := value.(bool); ok {
			return b
		}
	case "string":
		if s, ok := value.(string); ok {
			return s
		}
	case "date":
		if s, ok := value.(string); ok {
			var t metav1.Time
			if err := t.UnmarshalQueryParameter(s); err != nil {
				return "<invalid>"
			}
			return metatable.ConvertToHumanReadableDateType(t)
		}
	}
	return nil
}
