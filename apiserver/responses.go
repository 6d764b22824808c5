package apiserver

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/apis"
)

// writeObject encodes obj in the negotiated media type, with the apiVersion and kind of gv.
func writeObject(w http.ResponseWriter, r *http.Request, code int, gv schema.GroupVersion, obj runtime.Object) {
	mt, err := negotiate(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	fresh := mt.convert != nil && mustEncodeAfresh(obj)
	if obj, gv, err = transformResponse(r, mt, obj, gv); err != nil {
		writeError(w, r, err)
		return
	}
	if fresh {
		// what a dry-run answer turned into carries its uid and resourceVersion too
		defer encodeAfresh(obj)()
	}
	if _, uns := isUnstructured(obj); !uns && listWriterFor(mt.info.MediaType) != nil && meta.IsListType(obj) {
		items, err := meta.ExtractList(obj)
		if err != nil {
			writeError(w, r, apierrors.NewInternalError(err))
			return
		}
		writeList(w, r, code, mt, gv, obj, items)
		return
	}
	body, err := encodeObject(obj, mt.info, gv)
	if err != nil {
		writeError(w, r, apierrors.NewInternalError(err))
		return
	}
	w.Header().Set("Content-Type", mt.info.MediaType)
	if len(body) > gzipThreshold && r.Method != http.MethodHead && acceptsGzip(r) {
		cw := &compressingWriter{w: w}
		cw.WriteHeader(code)
		cw.Write(body)
		cw.Close()
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// writeList streams a typed list with the given items (list's own are ignored) in mt, which
// must have a list writer: assembled from cached item encodings, gzipped past gzipThreshold
// for a client that accepts it. The items are only read. An error before the first byte is
// answered with a Status; after it, the response is cut short.
func writeList(w http.ResponseWriter, r *http.Request, code int, mt mediaType, gv schema.GroupVersion, list runtime.Object, items []runtime.Object) {
	var out http.ResponseWriter = w
	var cw *compressingWriter
	if acceptsGzip(r) {
		cw = &compressingWriter{w: w}
		out = cw
	}
	started := false
	err := listWriterFor(mt.info.MediaType)(out, func() {
		started = true
		out.Header().Set("Content-Type", mt.info.MediaType)
		out.WriteHeader(code)
	}, list, items, mt.info, gv)
	if cw != nil && started {
		if cerr := cw.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil && !started {
		writeError(w, r, apierrors.NewInternalError(err))
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
	mt := negotiateStatus(r)
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
