package kubelet

import (
	"sync"
	"time"
)

// backOff is upstream's flowcontrol.Backoff as the kubelet uses it for crash loops and image
// pulls: per key, a delay that starts at initial and doubles on each failure up to max, and
// starts over once a key has had no failure for twice max.
type backOff struct {
	initial, max time.Duration
	now          func() time.Time

	mu      sync.Mutex
	entries map[string]*backOffEntry
}

type backOffEntry struct {
	delay      time.Duration
	lastUpdate time.Time
}

func newBackOff(initial, max time.Duration) *backOff {
	return &backOff{initial: initial, max: max, now: time.Now, entries: map[string]*backOffEntry{}}
}

// Next records a failure of key at eventTime and lengthens its delay.
func (b *backOff) Next(key string, eventTime time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[key]
	if !ok || eventTime.Sub(e.lastUpdate) > 2*b.max {
		b.entries[key] = &backOffEntry{delay: b.initial, lastUpdate: eventTime}
		return
	}
	e.delay = min(e.delay*2, b.max)
	e.lastUpdate = eventTime
}

// InBackOffSince reports whether key is still backing off from a failure at eventTime, and
// how long it has left.
func (b *backOff) InBackOffSince(key string, eventTime time.Time) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[key]
	if !ok || eventTime.Sub(e.lastUpdate) > 2*b.max {
		return false, 0
	}
	left := e.delay - b.now().Sub(eventTime)
	return left > 0, left
}

// Delay is key's current delay (0 when it has none).
func (b *backOff) Delay(key string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.entries[key]; ok {
		return e.delay
	}
	return 0
}

// Forget drops every key with the prefix (a pod's UID) once the pod is gone.
func (b *backOff) Forget(prefix string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k := range b.entries {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			delete(b.entries, k)
		}
	}
}

// InBackOffSinceUpdate reports whether key's last failure is less than its delay ago, and how
// long it has left.
func (b *backOff) InBackOffSinceUpdate(key string) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[key]
	if !ok {
		return false, 0
	}
	left := e.delay - b.now().Sub(e.lastUpdate)
	return left > 0, left
}
