package apiserver

import (
	"bytes"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
)

// watch streams a resource's changes to the client: one frame per event in the negotiated
// media type (newline-separated JSON objects, or length-prefixed protobuf), until the timeout,
// the client leaving, or the storage ending the watch.
func (h *resourceHandler) watch(w http.ResponseWriter, r *http.Request, ri *requestInfo) {
	opts, internal, err := h.listOptions(ri, r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	mt, err := negotiate(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if mt.info.StreamSerializer == nil {
		writeError(w, r, apierrors.NewBadRequest("no stream serialization for "+mt.info.MediaType))
		return
	}
	ctx := r.Context()
	watcher, err := h.store.Watch(ctx, ri.Namespace, opts)
	if err != nil {
		writeError(w, r, err)
		return
	}
	defer watcher.Stop()
	watchesOpen.WithLabelValues(h.res.GroupVersion.Group, h.res.Name).Inc()
	defer watchesOpen.WithLabelValues(h.res.GroupVersion.Group, h.res.Name).Dec()

	flusher, _ := w.(http.Flusher)
	stream := mt.info.StreamSerializer
	frameEncoder := stream.Serializer
	contentType := mt.info.MediaType
	if mt.info.MediaType == runtime.ContentTypeJSON {
		contentType = "application/json;stream=watch"
	} else if mt.info.MediaType == runtime.ContentTypeProtobuf {
		contentType = "application/vnd.kubernetes.protobuf;stream=watch"
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	if flusher != nil {
		flusher.Flush()
	}
	framer := stream.Framer.NewFrameWriter(w)

	timeout := time.NewTimer(watchTimeout(internal))
	defer timeout.Stop()
	var frameBuf bytes.Buffer
	for {
		select {
		case <-ctx.Done():
			return
		case <-timeout.C:
			return
		case ev, ok := <-watcher.ResultChan():
			if !ok {
				return
			}
			gv, obj := h.gv(), ev.Object
			if ev.Type == watch.Error {
				gv = metav1.SchemeGroupVersion
			} else if obj, gv, err = transformResponse(r, mt, obj, gv); err != nil {
				return
			}
			frame, err := watchFrame(ev.Type, obj, mt, gv, frameEncoder, &frameBuf)
			if err != nil {
				return
			}
			if _, err := framer.Write(frame); err != nil {
				return
			}
			if len(watcher.ResultChan()) == 0 && flusher != nil {
				flusher.Flush()
			}
		}
	}
}

// watchFrames keeps the frames of recent events: one event reaches every watcher of its
// object (a hundred watches of one pod, a thousand kubelets' watches of one Node), and all
// of them send the same frame, so the first to send it encodes it and the others reuse it.
// Small, because a frame is wanted only while its event is being fanned out.
var watchFrames = &encodingCache{entries: map[encodedKey][]byte{}, limit: 4 << 20}

// watchFrame returns the frame (before the framer's length prefix, if any) of an event whose
// object is obj, transformed for mt and encoded for gv. An ADDED or MODIFIED event of a
// stored state is the same frame for every watcher in the same media type and version, so it
// is kept by the state's uid and resourceVersion; Tables (whose first frame carries the
// columns), errors, bookmarks and DELETED events (below) are encoded for each watcher. buf
// is the caller's scratch buffer: the frame returned may be in it.
func watchFrame(typ watch.EventType, obj runtime.Object, mt mediaType, gv schema.GroupVersion, frameEncoder runtime.Encoder, buf *bytes.Buffer) ([]byte, error) {
	key, shared := encodedKey{}, false
	if mt.convert == nil && (typ == watch.Added || typ == watch.Modified) {
		if _, uns := isUnstructured(obj); !uns {
			if key, shared = cacheKey(obj, mt.info, gv, true); shared {
				key.frame = typ
				if frame, ok := watchFrames.get(key); ok {
					return frame, nil
				}
			}
		}
	}
	encode := encodeObject
	if typ == watch.Deleted {
		// the last state of an object that is gone, or that left the watch's selector,
		// stamped with the revision of that change: a state nothing stored, so its
		// encoding must not be found by that uid and resourceVersion later
		encode = encodeObjectAfresh
	}
	objBytes, err := encode(obj, mt.info, gv)
	if err != nil {
		return nil, err
	}
	out := &metav1.WatchEvent{Type: string(typ), Object: runtime.RawExtension{Raw: objBytes}}
	buf.Reset()
	if err := frameEncoder.Encode(out, buf); err != nil {
		return nil, err
	}
	if !shared {
		return buf.Bytes(), nil
	}
	frame := bytes.Clone(buf.Bytes())
	watchFrames.put(key, frame)
	return frame, nil
}
