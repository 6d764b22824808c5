package controllers

import (
	"k8s.io/client-go/tools/record"
)

// Reporting is how a controller tells others what it does: Events on the objects it acts on
// (what `kubectl describe` shows) and metrics of its queues and syncs. The zero value reports
// nothing, which is what most unit tests want.
type Reporting struct {
	// Recorder makes the event recorder of one component, named as upstream's
	// ("replicaset-controller"). Nil drops every event.
	Recorder RecorderFunc
	// Metrics receives workqueue and sync metrics. Nil records none.
	Metrics *Metrics
}

// RecorderFunc makes the event recorder of the named component.
type RecorderFunc func(component string) record.EventRecorder

// EventRecorder is the recorder of the named component, or one that drops events.
func (r Reporting) EventRecorder(component string) record.EventRecorder {
	if r.Recorder == nil {
		return &record.FakeRecorder{} // a FakeRecorder without a channel drops what it gets
	}
	return r.Recorder(component)
}
