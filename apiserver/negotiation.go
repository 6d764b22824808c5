package apiserver

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/munnerz/goautoneg"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversionscheme "k8s.io/apimachinery/pkg/apis/meta/internalversion/scheme"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1beta1 "k8s.io/apimachinery/pkg/apis/meta/v1beta1"
	tablevalidation "k8s.io/apimachinery/pkg/apis/meta/v1beta1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/apis"
)

// mediaType is one accepted representation of a response: the serializer, and the kind the
// client asked the response to be turned into (as=Table;g=meta.k8s.io;v=v1), if any.
type mediaType struct {
	info runtime.SerializerInfo
	// convert is the requested conversion (Table, PartialObjectMetadata,
	// PartialObjectMetadataList in meta.k8s.io/v1 or v1beta1), nil for the object itself.
	convert *schema.GroupVersionKind
	// table holds the request's TableOptions when convert is a Table. A watch negotiates once
	// and shares it among its events: NoHeaders turns true once the first event's table has
	// carried the column definitions, as upstream sends them only once.
	table *metav1.TableOptions
}

// negotiate picks the representation of a response from the Accept header as upstream does:
// clauses by quality, then in the client's order; the first clause whose media type is served
// and whose parameters the endpoint allows wins; JSON when the header is empty. Resource
// endpoints allow the PartialObjectMetadata(List) conversions, and those of resources that can
// be listed the Table one too (JSON and YAML only); other endpoints (discovery) allow none.
// Clauses asking for what is not allowed are passed over. Nothing acceptable is 406 Not
// Acceptable.
func negotiate(r *http.Request) (mediaType, error) {
	ri := requestInfoFrom(r.Context())
	header := r.Header.Get("Accept")
	allowed := noConversions
	if ri != nil && ri.IsResourceRequest && strings.Contains(header, "as=") {
		allowed = metadataConversions
		// as upstream, only resources that can be listed print as Tables (create-only
		// reviews cannot)
		if res := ri.resource; res != nil && slices.Contains(res.Verbs, "list") {
			allowed = allConversions
		}
	}
	// custom resources have no protobuf encoding, though what they convert to does
	noRawProtobuf := ri != nil && ri.resource != nil && ri.resource.Unstructured && ri.Subresource != "scale"
	mt, ok := negotiateAccept(header, allowed, noRawProtobuf)
	if !ok {
		return mediaType{}, notAcceptableMediaTypes(false)
	}
	if ri != nil && ri.Verb == "watch" && mt.info.StreamSerializer == nil {
		return mediaType{}, notAcceptableMediaTypes(true)
	}
	if mt.convert != nil && mt.convert.Kind == "Table" {
		opts := &metav1.TableOptions{}
		if err := metainternalversionscheme.ParameterCodec.DecodeParameters(r.URL.Query(), metav1.SchemeGroupVersion, opts); err != nil {
			return mediaType{}, apierrors.NewBadRequest(err.Error())
		}
		switch errs := tablevalidation.ValidateTableOptions(opts); len(errs) {
		case 0:
		case 1:
			return mediaType{}, apierrors.NewBadRequest(fmt.Sprintf("Unable to convert to Table as requested: %v", errs[0].Error()))
		default:
			return mediaType{}, apierrors.NewBadRequest(fmt.Sprintf("Unable to convert to Table as requested: %v", errs))
		}
		mt.table = opts
	}
	return mt, nil
}

// negotiateStatus picks the representation of an error. A Status is never converted, so as
// upstream clauses asking for a conversion are passed over (the plain fallback kubectl and
// client-go send is used); JSON when nothing else fits.
func negotiateStatus(r *http.Request) mediaType {
	if mt, ok := negotiateAccept(r.Header.Get("Accept"), noConversions, false); ok {
		return mt
	}
	return mediaType{info: serializerFor(runtime.ContentTypeJSON)}
}

// conversions says which conversions an endpoint offers.
type conversions int

const (
	noConversions       conversions = iota
	metadataConversions             // PartialObjectMetadata(List)
	allConversions                  // and Table
)

func negotiateAccept(header string, allowed conversions, noRawProtobuf bool) (mediaType, bool) {
	served := apis.Codecs.SupportedMediaTypes()
	if header == "" {
		return mediaType{info: served[0]}, true
	}
	for _, clause := range goautoneg.ParseAccept(header) {
		for _, info := range served {
			switch {
			case clause.Type == info.MediaTypeType && clause.SubType == info.MediaTypeSubType,
				clause.Type == info.MediaTypeType && clause.SubType == "*",
				clause.Type == "*" && clause.SubType == "*":
				mt, ok := acceptClause(clause.Params, info, allowed)
				if ok && noRawProtobuf && mt.convert == nil && info.MediaType == runtime.ContentTypeProtobuf {
					continue
				}
				if ok {
					return mt, true
				}
			}
		}
	}
	return mediaType{}, false
}

// acceptClause reports whether the parameters of an Accept clause can be honoured with info.
func acceptClause(params map[string]string, info runtime.SerializerInfo, allowed conversions) (mediaType, bool) {
	mt := mediaType{info: info}
	for k, v := range params {
		switch k {
		case "as", "g", "v":
			if mt.convert == nil {
				mt.convert = &schema.GroupVersionKind{}
			}
			switch k {
			case "as":
				mt.convert.Kind = v
			case "g":
				mt.convert.Group = v
			case "v":
				mt.convert.Version = v
			}
		case "stream":
			if v != "" && (info.StreamSerializer == nil || v != "watch") {
				return mediaType{}, false
			}
		case "sv":
			// no server version is offered for the generic output
			if v != "" {
				return mediaType{}, false
			}
		}
	}
	if mt.convert == nil {
		return mt, true
	}
	if gv := mt.convert.GroupVersion(); gv != metav1.SchemeGroupVersion && gv != metav1beta1.SchemeGroupVersion {
		return mediaType{}, false
	}
	switch mt.convert.Kind {
	case "Table":
		// Tables hold objects that only JSON can embed
		return mt, allowed == allConversions &&
			info.MediaTypeType == "application" && (info.MediaTypeSubType == "json" || info.MediaTypeSubType == "yaml")
	case "PartialObjectMetadata", "PartialObjectMetadataList":
		return mt, allowed != noConversions
	}
	return mediaType{}, false
}

// notAcceptable is upstream's 406 Not Acceptable: a Status without details.
type notAcceptable struct{ message string }

func (e notAcceptable) Error() string { return e.message }

func (e notAcceptable) Status() metav1.Status {
	return metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    http.StatusNotAcceptable,
		Reason:  metav1.StatusReasonNotAcceptable,
		Message: e.message,
	}
}

var _ apierrors.APIStatus = notAcceptable{}

// notAcceptableMediaTypes is the 406 of a failed negotiation, listing what is served (the
// streaming forms for a watch).
func notAcceptableMediaTypes(stream bool) error {
	var served []string
	for _, info := range apis.Codecs.SupportedMediaTypes() {
		switch {
		case !stream:
			served = append(served, info.MediaType)
		case info.StreamSerializer != nil:
			served = append(served, info.MediaType+";stream=watch")
		}
	}
	return notAcceptable{"only the following media types are accepted: " + strings.Join(served, ", ")}
}

func serializerFor(mt string) runtime.SerializerInfo {
	for _, info := range apis.Codecs.SupportedMediaTypes() {
		if info.MediaType == mt {
			return info
		}
	}
	return runtime.SerializerInfo{}
}
