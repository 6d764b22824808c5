package flowcontrol

import (
	"sync"
	"time"
)

// The Retry-After a level's rejection carries, as upstream's dropped-requests tracker sets
// it: 1 second, doubled (up to 32) when the level rejected at least three times as many
// requests as the current value in the last that many seconds (at most once per that many
// seconds), and lowered by one when it rejected fewer than the current value. It changes
// only when a rejection falls in a new second.

// maxRetryAfter is upstream's ceiling, in seconds.
const maxRetryAfter = 32

type rejections struct {
	now func() time.Time

	mu     sync.Mutex
	levels map[string]*levelRejections
}

// levelRejections counts one level's rejections by second.
type levelRejections struct {
	retryAfter  int64
	raisedAt    int64 // the second of the last rise
	second      int64 // the second being counted
	count       int64
	pastSeconds []secondCount // earlier seconds, oldest first
}

type secondCount struct{ second, count int64 }

func newRejections(now func() time.Time) *rejections {
	return &rejections{now: now, levels: map[string]*levelRejections{}}
}

func (r *rejections) record(level string) {
	now := r.now().Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.levels[level]
	if l == nil {
		l = &levelRejections{retryAfter: 1}
		r.levels[level] = l
	}
	if l.second == now {
		l.count++
		return
	}
	l.pastSeconds = append(l.pastSeconds, secondCount{l.second, l.count})
	// older seconds than twice the value (or the ceiling) will not be counted again
	keep := min(2*l.retryAfter, maxRetryAfter)
	for len(l.pastSeconds) > 0 && now-l.pastSeconds[0].second > keep {
		l.pastSeconds = l.pastSeconds[1:]
	}
	l.second, l.count = now, 1
	l.adjust(now)
}

// adjust looks at the rejections in the retryAfter seconds before now.
func (l *levelRejections) adjust(now int64) {
	var recent int64
	for i := len(l.pastSeconds) - 1; i >= 0 && now-l.pastSeconds[i].second <= l.retryAfter; i-- {
		if l.pastSeconds[i].second < now {
			recent += l.pastSeconds[i].count
		}
	}
	switch {
	case now-l.raisedAt >= l.retryAfter && recent >= 3*l.retryAfter:
		l.retryAfter = min(2*l.retryAfter, maxRetryAfter)
		l.raisedAt = now
	case recent < l.retryAfter && l.retryAfter > 1:
		l.retryAfter--
	}
}

func (r *rejections) retryAfter(level string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l := r.levels[level]; l != nil {
		return l.retryAfter
	}
	return 1
}
