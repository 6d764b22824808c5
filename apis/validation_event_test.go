package apis

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// legacyEvent is an event as kubectl and old clients write it through v1.
func legacyEvent() *corev1.Event {
	return &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "web-1.17a", Namespace: "ns", ResourceVersion: "4"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "web-1"},
		Reason:         "Started", Message: "Started container", Type: corev1.EventTypeNormal, Count: 1,
		Source: corev1.EventSource{Component: "kubelet"},
	}
}

// newStyleEvent is an event as events.k8s.io/v1 clients write it.
func newStyleEvent() *corev1.Event {
	return &corev1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: "web-1.17a", Namespace: "ns", ResourceVersion: "4"},
		InvolvedObject:      corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "web-1"},
		Reason:              "Scheduled",
		Message:             "assigned",
		Type:                corev1.EventTypeNormal,
		EventTime:           metav1.NewMicroTime(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)),
		Action:              "Binding",
		ReportingController: "skiff.dev/scheduler",
		ReportingInstance:   "scheduler-1",
	}
}

func TestValidateEventCreateThroughV1(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*corev1.Event)
		want   []string
	}{
		{name: "valid", change: func(*corev1.Event) {}},
		{
			name:   "involved object namespace must match",
			change: func(e *corev1.Event) { e.InvolvedObject.Namespace = "other" },
			want:   []string{`involvedObject.namespace: Invalid value: "other": does not match event.namespace`},
		},
		{
			name: "events about cluster objects live in default",
			change: func(e *corev1.Event) {
				e.Namespace = "default"
				e.InvolvedObject = corev1.ObjectReference{Kind: "Node", Name: "n1"}
			},
		},
		{
			name:   "events about cluster objects do not live in other namespaces",
			change: func(e *corev1.Event) { e.InvolvedObject = corev1.ObjectReference{Kind: "Node", Name: "n1"} },
			want:   []string{`involvedObject.namespace: Invalid value: "": does not match event.namespace`},
		},
		{
			name:   "any name usable in a path",
			change: func(e *corev1.Event) { e.Name = "Web_1:Started" },
		},
		{
			name:   "names may not contain a slash",
			change: func(e *corev1.Event) { e.Name = "a/b" },
			want:   []string{`metadata.name: Invalid value: "a/b": may not contain '/'`},
		},
		{
			name:   "new-style fields are checked once eventTime is set",
			change: func(e *corev1.Event) { e.EventTime = metav1.NowMicro(); e.Reason = "" },
			want: []string{
				`reportingController: Required value`,
				`reportingController: Invalid value: "": name part must be non-empty`,
				`reportingController: Invalid value: "": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`,
				`reportingInstance: Required value`,
				`action: Required value`,
				`reason: Required value`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			event := legacyEvent()
			tc.change(event)
			checkFieldErrors(t, ValidateEventCreate(event, corev1.SchemeGroupVersion), tc.want...)
		})
	}
}

func TestValidateEventCreateThroughEventsV1IsStrict(t *testing.T) {
	checkFieldErrors(t, ValidateEventCreate(newStyleEvent(), eventsV1))

	event := legacyEvent()
	event.Type = "Info"
	event.Series = &corev1.EventSeries{Count: 1}
	checkFieldErrors(t, ValidateEventCreate(event, eventsV1),
		`series.count: Invalid value: "": should be at least 2`,
		`series.lastObservedTime: Required value`,
		`eventTime: Required value`,
		`type: Invalid value: "": has invalid value: Info`,
		`count: Invalid value: "": needs to be unset`,
		`source: Invalid value: "": needs to be unset`)

	named := newStyleEvent()
	named.Name = "Web_1"
	checkFieldErrors(t, ValidateEventCreate(named, eventsV1),
		`metadata.name: Invalid value: "Web_1": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`)
}

func TestValidateEventUpdateThroughEventsV1ChangesOnlySeries(t *testing.T) {
	old := newStyleEvent()
	event := newStyleEvent()
	event.Series = &corev1.EventSeries{Count: 2, LastObservedTime: metav1.NowMicro()}
	checkFieldErrors(t, ValidateEventUpdate(event, old, eventsV1))

	event.Message = "reassigned"
	event.Action = "Rebinding"
	checkFieldErrors(t, ValidateEventUpdate(event, old, eventsV1),
		`message: Invalid value: "reassigned": field is immutable`,
		`action: Invalid value: "Rebinding": field is immutable`)

	// v1 keeps its old freedom: kubectl and the kubelet bump count and message in place.
	legacyOld, legacy := legacyEvent(), legacyEvent()
	legacy.Count, legacy.Message = 2, "Started again"
	checkFieldErrors(t, ValidateEventUpdate(legacy, legacyOld, corev1.SchemeGroupVersion))
}
