package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"unicode/utf8"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilnet "k8s.io/apimachinery/pkg/util/net"
)

// Warnings are how the server tells a client that a request succeeded but deserves attention
// (an unknown field it dropped, a deprecated API): one `Warning: 299 - "text"` response header
// each, which client-go hands to its warning handler and kubectl prints as "Warning: text".
// Handlers raise them with addWarning on the request context, at any point before the response
// is written; the recorder dedupes them and bounds their size as upstream's
// WithWarningRecorder does.

// Upstream's bounds: past 4096 runes of warning text in all, every warning is cut to 256 runes.
const (
	warningTruncateAtTotalRunes = 4 * 1024
	warningTruncateItemRunes    = 256
)

type warningRecorderKey struct{}

// warningRecorder writes the warnings of one request into its response headers.
type warningRecorder struct {
	mu sync.Mutex
	// header is the response's header map, written to before the status line goes out
	header     http.Header
	seen       map[string]bool
	ordered    []string
	written    int // runes of warning text in the header so far
	truncating bool
}

// withWarningRecorder returns r with a recorder that adds warnings to w's headers, unless r
// already carries one (so that the handler chain and a handler may both install it).
func withWarningRecorder(w http.ResponseWriter, r *http.Request) *http.Request {
	if _, ok := r.Context().Value(warningRecorderKey{}).(*warningRecorder); ok {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), warningRecorderKey{}, &warningRecorder{header: w.Header()}))
}

// addWarning records a warning for the client of the request ctx belongs to. Without a
// recorder (a call outside a request) it does nothing.
func addWarning(ctx context.Context, text string) {
	if rec, ok := ctx.Value(warningRecorderKey{}).(*warningRecorder); ok {
		rec.add(text)
	}
}

func (rec *warningRecorder) add(text string) {
	if text == "" {
		return
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.truncating && rec.written >= warningTruncateAtTotalRunes {
		return
	}
	if rec.seen == nil {
		rec.seen = map[string]bool{}
	}
	if rec.seen[text] {
		return
	}
	rec.seen[text] = true
	rec.ordered = append(rec.ordered, text)

	shown, runes := text, utf8.RuneCountInString(text)
	if rec.truncating {
		shown, runes = truncateWarning(text)
	}
	header, err := utilnet.NewWarningHeader(299, "", shown)
	if err != nil {
		return
	}
	if rec.written+runes <= warningTruncateAtTotalRunes || rec.truncating {
		rec.written += runes
		rec.header.Add("Warning", header)
		return
	}
	// over the limit: start again with every warning cut short
	rec.truncating = true
	rec.written = 0
	rec.header.Del("Warning")
	for _, t := range rec.ordered {
		shown, runes := truncateWarning(t)
		if header, err := utilnet.NewWarningHeader(299, "", shown); err == nil {
			rec.written += runes
			rec.header.Add("Warning", header)
		}
	}
}

func truncateWarning(text string) (string, int) {
	if n := utf8.RuneCountInString(text); n <= warningTruncateItemRunes {
		return text, n
	}
	return string([]rune(text)[:warningTruncateItemRunes]), warningTruncateItemRunes
}

// Upstream's warnings for a write whose ownerReferences name the same owner twice: the server
// drops the repeats and says so.
const (
	duplicateOwnerReferencesWarning = ".metadata.ownerReferences contains duplicate entries; API server dedups owner references in 1.20+, " +
		"and may reject such requests as early as 1.24; please fix your requests; duplicate UID(s) observed: %v"
	duplicateOwnerReferencesAfterAdmissionWarning = ".metadata.ownerReferences contains duplicate entries after mutating admission happens; " +
		"API server dedups owner references in 1.20+, and may reject such requests as early as 1.24; please fix your requests; duplicate UID(s) observed: %v"
)

// dedupOwnerReferences removes the repeated entries of obj's ownerReferences (equal in every
// field) with a warning, as upstream does to every create, update and patch: creates and
// updates before admission, patches after it.
func dedupOwnerReferences(ctx context.Context, obj runtime.Object, afterAdmission bool) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	refs := m.GetOwnerReferences()
	if len(refs) < 2 {
		return
	}
	var (
		kept       []metav1.OwnerReference
		duplicates []string
		seen       = map[types.UID]bool{}
	)
	for _, ref := range refs {
		if seen[ref.UID] && containsOwnerReference(kept, ref) {
			duplicates = append(duplicates, string(ref.UID))
			continue
		}
		seen[ref.UID] = true
		kept = append(kept, ref)
	}
	if len(duplicates) == 0 {
		return
	}
	format := duplicateOwnerReferencesWarning
	if afterAdmission {
		format = duplicateOwnerReferencesAfterAdmissionWarning
	}
	addWarning(ctx, fmt.Sprintf(format, strings.Join(duplicates, ", ")))
	m.SetOwnerReferences(kept)
}

func containsOwnerReference(refs []metav1.OwnerReference, ref metav1.OwnerReference) bool {
	for _, r := range refs {
		if apiequality.Semantic.DeepEqual(r, ref) {
			return true
		}
	}
	return false
}
