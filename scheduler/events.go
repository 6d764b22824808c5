package scheduler

import (
	"context"
	"errors"
	"sync/atomic"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
)

// Events say what happened; bindings make it happen. Under a burst of pods an event write costs
// the API server about as much as a binding, so the scheduler writes at most
// eventWriteConcurrency events at a time and lets them trail the bindings by a few seconds
// rather than slow them (kube-scheduler writes them all at once). Beyond maxEventBacklog waiting
// events, new ones are dropped, as client-go's broadcaster drops events when its own queue is
// full.
const (
	eventWriteConcurrency = 4
	maxEventBacklog       = 10_000
)

// eventRecorder starts client-go's events.k8s.io/v1 broadcaster on a sink that paces the
// writes, and returns a recorder reporting as controller and a function that stops it. A
// server without events.k8s.io/v1 gets core/v1 Events through client-go's adapter instead.
func eventRecorder(ctx context.Context, client kubernetes.Interface, controller string) (events.EventRecorder, func()) {
	if _, err := client.Discovery().ServerResourcesForGroupVersion(eventsv1.SchemeGroupVersion.String()); err != nil {
		adapter := events.NewEventBroadcasterAdapterWithContext(ctx, client)
		adapter.StartRecordingToSink(ctx.Done())
		return adapter.NewRecorder(controller), adapter.Shutdown
	}
	sink := &pacedEventSink{
		inner: &events.EventSinkImpl{Interface: client.EventsV1()},
		slots: make(chan struct{}, eventWriteConcurrency),
	}
	b := events.NewBroadcaster(sink)
	b.StartRecordingToSink(ctx.Done())
	return b.NewRecorder(scheme.Scheme, controller), b.Shutdown
}

// pacedEventSink writes at most cap(slots) events at once; the broadcaster's goroutine for each
// event waits here for a slot.
type pacedEventSink struct {
	inner   events.EventSink
	slots   chan struct{}
	waiting atomic.Int64
}

var _ events.EventSink = (*pacedEventSink)(nil)

// errEventBacklog makes client-go give up an event without retrying it: it treats a request
// it could not construct as final.
var errEventBacklog = &rest.RequestConstructionError{Err: errors.New("too many scheduler events waiting to be written; dropped")}

func (s *pacedEventSink) acquire(ctx context.Context) error {
	if s.waiting.Add(1) > maxEventBacklog {
		s.waiting.Add(-1)
		return errEventBacklog
	}
	defer s.waiting.Add(-1)
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *pacedEventSink) release() { <-s.slots }

func (s *pacedEventSink) Create(ctx context.Context, e *eventsv1.Event) (*eventsv1.Event, error) {
	if err := s.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.release()
	return s.inner.Create(ctx, e)
}

func (s *pacedEventSink) Update(ctx context.Context, e *eventsv1.Event) (*eventsv1.Event, error) {
	if err := s.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.release()
	return s.inner.Update(ctx, e)
}

func (s *pacedEventSink) Patch(ctx context.Context, e *eventsv1.Event, data []byte) (*eventsv1.Event, error) {
	if err := s.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.release()
	return s.inner.Patch(ctx, e, data)
}
