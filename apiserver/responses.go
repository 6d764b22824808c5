package apiserver

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/apis"
)

// mediaType is one accepted representation of a response.
type mediaType struct {
	info runtime.SerializerInfo
	// as, g, v are the Accept parameters asking for a different kind (as=Table).
	as, group, version string
}

// negotiate picks the serializer for a response from the Accept header, as upstream: the first
// acceptable media type in the client's order; JSON when the header is empty or */*.
func negotiate(r *http.Request) (mediaType, error) {
	header := r.Header.Get("Accept")
	if header == "" {
		return mediaType{info: serializerFor(runtime.ContentTypeJSON)}, nil
	}
	for _, clause := range strings.Split(header, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(clause))
		if err != nil {
			continue
		}
		if mt == "*/*" || mt == "application/*" {
			return mediaType{info: serializerFor(runtime.ContentTypeJSON)}, nil
		}
		info := serializerFor(mt)
		if info.MediaType == "" {
			continue
		}
		if params["as"] != "" {
			// Table and PartialObjectMetadata conversions are not served yet: skip the
			// clause so the client's plain fallback is used, as upstream would for an
			// unsupported conversion.
			continue
		}
		return mediaType{info: info}, nil
	}
	return mediaType{}, apierrors.NewGenericServerResponse(http.StatusNotAcceptable, "", schema.GroupResource{}, "", "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf", 0, false)
}

func serializerFor(mt string) runtime.SerializerInfo {
	for _, info := range apis.Codecs.SupportedMediaTypes() {
		if info.MediaType == mt {
			return info
		}
	}
	return runtime.SerializerInfo{}
}

// writeObject encodes obj in the negotiated media type, with the apiVersion and kind of gv.
func writeObject(w http.ResponseWriter, r *http.Request, code int, gv schema.GroupVersion, obj runtime.Object) {
	mt, err := negotiate(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if obj, gv, err = transformResponse(r, mt, obj, gv); err != nil {
		writeError(w, r, err)
		return
	}
	if listWriter := listWriterFor(mt.info.MediaType); listWriter != nil && meta.IsListType(obj) {
		// lists are assembled from cached item encodings and streamed
		err := listWriter(w, func() {
			w.Header().Set("Content-Type", mt.info.MediaType)
			w.WriteHeader(code)
		}, obj, mt.info, gv)
		if err != nil {
			writeError(w, r, apierrors.NewInternalError(err))
		}
		return
	}
	body, err := encodeObject(obj, mt.info, gv)
	if err != nil {
		writeError(w, r, apierrors.NewInternalError(err))
		return
	}
	w.Header().Set("Content-Type", mt.info.MediaType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// statusFor converts any error into the metav1.Status upstream would answer with.
func statusFor(err error) *metav1.Status {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		s := se.Status()
		if s.Code == 0 {
			s.Code = http.StatusInternalServerError
		}
		s.Status = metav1.StatusFailure
		return &s
	}
	return &apierrors.NewInternalError(err).ErrStatus
}

// writeError answers with err as a metav1.Status.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := statusFor(err)
	status.Kind, status.APIVersion = "Status", "v1"
	if status.Code == http.StatusTooManyRequests || status.Code == http.StatusGatewayTimeout {
		if status.Details != nil && status.Details.RetryAfterSeconds > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(status.Details.RetryAfterSeconds)))
		}
	}
	mt, nerr := negotiate(r)
	if nerr != nil {
		mt = mediaType{info: serializerFor(runtime.ContentTypeJSON)}
	}
	var buf bytes.Buffer
	if err := apis.Codecs.EncoderForVersion(mt.info.Serializer, metav1.SchemeGroupVersion).Encode(status, &buf); err != nil {
		http.Error(w, fmt.Sprintf("encoding error: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", mt.info.MediaType)
	w.Header().Set("Cache-Control", "no-cache, private")
	w.WriteHeader(int(status.Code))
	w.Write(buf.Bytes())
}

// successStatus is the body of a delete that removed an object whose resource answers with a
// Status rather than the object.
func successStatus(name string, gvr schema.GroupVersionResource, uid string) *metav1.Status {
	return &metav1.Status{
		Status: metav1.StatusSuccess,
		Details: &metav1.StatusDetails{
			Name: name, Group: gvr.Group, Kind: gvr.Resource, UID: types.UID(uid),
		},
	}
}
