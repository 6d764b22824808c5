package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Custom resources have no Go types: a request body decodes into an
// *unstructured.Unstructured, the fields its schema does not know are pruned (and reported as
// fieldValidation asks), and what the server answers is encoded as JSON or YAML, never
// protobuf, as upstream's.

// customResourceMediaTypes are the body formats custom resources are written in.
var customResourceMediaTypes = []string{runtime.ContentTypeJSON, "application/yaml"}

// customResourcePatchTypes are the patches custom resources take: strategic merge needs Go
// types, so upstream refuses it with 415.
var customResourcePatchTypes = []string{string(types.JSONPatchType), string(types.MergePatchType), string(types.ApplyYAMLPatchType)}

// decodeUnstructured decodes a request body into an object of h's custom resource kind gvk:
// JSON or YAML, apiVersion and kind checked as for built-in kinds, unknown fields pruned and
// reported, defaults applied.
func (h *resourceHandler) decodeUnstructured(r *http.Request, body []byte, gvk schema.GroupVersionKind) (runtime.Object, error) {
	info, err := inputSerializer(r)
	if err != nil {
		return nil, err
	}
	if info.MediaType == runtime.ContentTypeProtobuf {
		return nil, unsupportedMediaType(customResourceMediaTypes...)
	}
	if info.MediaType != runtime.ContentTypeJSON {
		if body, err = yaml.YAMLToJSON(body); err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("error converting YAML to JSON: %v", err))
		}
	}
	directive := fieldValidation(r.URL.Query().Get("fieldValidation"))
	obj, duplicates, err := unmarshalUnstructured(body, checksFields(directive))
	if err != nil {
		return nil, decodeError(err, gvk, nil, body)
	}
	if obj.GetKind() == "" {
		return nil, apierrors.NewBadRequest(runtime.NewMissingKindErr(string(body)).Error())
	}
	actual := obj.GroupVersionKind()
	if actual.GroupVersion() != gvk.GroupVersion() {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)",
			obj.GetAPIVersion(), gvk.GroupVersion().String()))
	}
	if actual.Kind != gvk.Kind {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: the kind in the data (%s) does not match the expected kind",
			actual.Kind, actual.Version, gvk.Kind, actual.Kind))
	}
	if err := h.pruneAndDefault(r.Context(), obj, directive, duplicates, ""); err != nil {
		return nil, err
	}
	return obj, nil
}

// unmarshalUnstructured decodes JSON into an object, keeping integers as int64; with strict, it
// also returns the document's duplicate fields.
func unmarshalUnstructured(body []byte, strict bool) (*unstructured.Unstructured, []error, error) {
	content := map[string]interface{}{}
	var duplicates []error
	if strict {
		errs, err := kjson.UnmarshalStrict(body, &content)
		if err != nil {
			return nil, nil, err
		}
		duplicates = errs
	} else if err := kjson.UnmarshalCaseSensitivePreserveInts(body, &content); err != nil {
		return nil, nil, err
	}
	return &unstructured.Unstructured{Object: content}, duplicates, nil
}

// pruneAndDefault drops the fields obj's schema does not know and reports them with the
// document's duplicate fields as the fieldValidation directive asks (patched, when set, is the
// document a patch produced, for upstream's wording), then applies the schema's defaults.
func (h *resourceHandler) pruneAndDefault(ctx context.Context, obj *unstructured.Unstructured, directive string, duplicates []error, patched string) error {
	var unknown []string
	if h.res.PruneUnknown != nil {
		var err error
		if unknown, err = h.res.PruneUnknown(obj); err != nil {
			return apierrors.NewBadRequest(err.Error())
		}
	}
	if checksFields(directive) {
		problems := append([]error(nil), duplicates...)
		for _, path := range unknown {
			problems = append(problems, fmt.Errorf("unknown field %q", path))
		}
		if len(problems) > 0 {
			if directive == metav1.FieldValidationWarn {
				addStrictDecodingWarnings(ctx, problems)
			} else if patched != "" {
				return strictPatchError(patched, problems)
			} else {
				msgs := make([]string, len(problems))
				for i, p := range problems {
					msgs[i] = p.Error()
				}
				return apierrors.NewBadRequest("strict decoding error: " + strings.Join(msgs, ", "))
			}
		}
	}
	if h.res.Default != nil {
		h.res.Default(obj)
	}
	return nil
}

// jsonPatchUnstructured applies a JSON or merge patch to a custom resource.
func (p *patchRequest) jsonPatchUnstructured(ctx context.Context, current runtime.Object) (runtime.Object, error) {
	currentJSON, err := json.Marshal(current)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	patched, patchErrs, err := p.applyJSONPatch(currentJSON)
	if err != nil {
		return nil, err
	}
	obj, duplicates, err := unmarshalUnstructured(patched, false)
	if err != nil {
		return nil, invalidPatchError(string(patched), err)
	}
	if err := p.h.pruneAndDefault(ctx, obj, p.opts.validation, append(patchErrs, duplicates...), string(patched)); err != nil {
		return nil, err
	}
	return p.track(current, obj), nil
}

// encodeUnstructured encodes a custom resource, or a list of them, as JSON or YAML with gv's
// apiVersion; protobuf cannot carry them.
func encodeUnstructured(obj runtime.Unstructured, info runtime.SerializerInfo, gv schema.GroupVersion) ([]byte, error) {
	if info.MediaType == runtime.ContentTypeProtobuf {
		return nil, fmt.Errorf("custom resources have no protobuf encoding")
	}
	if kind := obj.GetObjectKind().GroupVersionKind().Kind; kind != "" {
		obj.GetObjectKind().SetGroupVersionKind(gv.WithKind(kind))
	}
	var buf bytes.Buffer
	if err := info.Serializer.Encode(obj, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// isUnstructured reports whether obj is a custom resource or a list of them.
func isUnstructured(obj runtime.Object) (runtime.Unstructured, bool) {
	u, ok := obj.(runtime.Unstructured)
	return u, ok
}
