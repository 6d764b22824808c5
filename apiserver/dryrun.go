package apiserver

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
)

// A dry run (dryRun=All on any write) goes through decoding, defaulting, admission, the
// strategy and validation like the write itself, and answers with what would be stored; the
// registry then stores nothing. Its answer carries the uid and resourceVersion of the stored
// object it started from with content that was never stored, so it must never enter the
// encoding cache, which keys encodings by exactly that pair.

type dryRunKey struct{}

// withDryRunNote returns r able to remember that its write turned out to be a dry run.
func withDryRunNote(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), dryRunKey{}, new(bool)))
}

// noteDryRun records that the request's write is a dry run.
func noteDryRun(ctx context.Context) {
	if p, ok := ctx.Value(dryRunKey{}).(*bool); ok {
		*p = true
	}
}

func isDryRunAnswer(ctx context.Context) bool {
	p, ok := ctx.Value(dryRunKey{}).(*bool)
	return ok && *p
}

// freshEncodings are the objects being written as dry-run answers, a list's items included.
var (
	freshEncodings sync.Map // runtime.Object → struct{}
	freshCount     atomic.Int64
)

// encodeAfresh keeps obj (and, for a list, its items) out of the encoding cache until the
// returned function is called.
func encodeAfresh(obj runtime.Object) (forget func()) {
	objs := []runtime.Object{obj}
	if meta.IsListType(obj) {
		if items, err := meta.ExtractList(obj); err == nil {
			objs = append(objs, items...)
		}
	}
	for _, o := range objs {
		freshEncodings.Store(o, struct{}{})
	}
	freshCount.Add(int64(len(objs)))
	return func() {
		for _, o := range objs {
			freshEncodings.Delete(o)
		}
		freshCount.Add(-int64(len(objs)))
	}
}

// mustEncodeAfresh reports whether obj is a dry-run answer, whose encoding may not be cached.
func mustEncodeAfresh(obj runtime.Object) bool {
	if freshCount.Load() == 0 {
		return false
	}
	_, ok := freshEncodings.Load(obj)
	return ok
}
