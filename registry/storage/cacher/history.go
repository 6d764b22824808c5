package cacher

import (
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// event is one change the cache applied, shared by every watcher it is dispatched to and
// never modified after the reflector builds it.
type event struct {
	typ watch.EventType // Added, Modified, Deleted; Bookmark for a bookmark offer
	key string
	rev int64
	// obj is the new state; for Deleted, the last state with the delete's revision.
	obj runtime.Object
	// prev is the state before (nil for Added): predicate transitions need it.
	prev runtime.Object
}

// matchesKey reports whether the event is under a watch on key.
func (e *event) matchesKey(key string, recursive bool) bool {
	if recursive {
		return strings.HasPrefix(e.key, key)
	}
	return e.key == key
}

// history is a ring of the most recent events, oldest first. It knows every event after
// revision complete: a watch from any revision >= complete can be replayed from it. Not safe
// for concurrent use: the Cacher's lock guards it.
type history struct {
	ring     []*event
	start, n int
	complete int64
}

func newHistory(capacity int, complete int64) *history {
	return &history{ring: make([]*event, capacity), complete: complete}
}

func (h *history) add(e *event) {
	if h.n == len(h.ring) {
		// Evicting the oldest: a watch from before its revision can no longer be served.
		h.complete = h.ring[h.start].rev
		h.ring[h.start] = nil
		h.start = (h.start + 1) % len(h.ring)
		h.n--
	}
	h.ring[(h.start+h.n)%len(h.ring)] = e
	h.n++
}

// since returns the events after rev under key, oldest first; ok is false when events after
// rev were already evicted.
func (h *history) since(rev int64, key string, recursive bool) (events []*event, ok bool) {
	if rev < h.complete {
		return nil, false
	}
	// Events are in revision order: binary search the first one after rev.
	lo, hi := 0, h.n
	for lo < hi {
		mid := (lo + hi) / 2
		if h.at(mid).rev <= rev {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	for i := lo; i < h.n; i++ {
		if e := h.at(i); e.matchesKey(key, recursive) {
			events = append(events, e)
		}
	}
	return events, true
}

func (h *history) at(i int) *event { return h.ring[(h.start+i)%len(h.ring)] }
