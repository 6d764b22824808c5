package apis

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func fullEventsV1Event() *eventsv1.Event {
	at := metav1.NewMicroTime(time.Date(2025, 3, 4, 5, 6, 7, 8000, time.UTC))
	first := metav1.NewTime(time.Date(2025, 3, 4, 5, 0, 0, 0, time.UTC))
	last := metav1.NewTime(time.Date(2025, 3, 4, 5, 6, 0, 0, time.UTC))
	return &eventsv1.Event{
		ObjectMeta:               metav1.ObjectMeta{Name: "web.1", Namespace: "ns", Labels: map[string]string{"a": "b"}},
		EventTime:                at,
		Series:                   &eventsv1.EventSeries{Count: 3, LastObservedTime: at},
		ReportingController:      "skiff.dev/scheduler",
		ReportingInstance:        "scheduler-1",
		Action:                   "Binding",
		Reason:                   "Scheduled",
		Regarding:                corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "web", UID: "u1", APIVersion: "v1"},
		Related:                  &corev1.ObjectReference{Kind: "Node", Name: "n1"},
		Note:                     "assigned ns/web to n1",
		Type:                     corev1.EventTypeNormal,
		DeprecatedSource:         corev1.EventSource{Component: "scheduler", Host: "h"},
		DeprecatedFirstTimestamp: first,
		DeprecatedLastTimestamp:  last,
		DeprecatedCount:          3,
	}
}

func TestConvertEventsV1EventToCoreV1MapsRenamedFields(t *testing.T) {
	in := fullEventsV1Event()
	out := &corev1.Event{}
	if err := Scheme.Convert(in, out, nil); err != nil {
		t.Fatal(err)
	}
	want := &corev1.Event{
		ObjectMeta:          in.ObjectMeta,
		InvolvedObject:      in.Regarding,
		Reason:              "Scheduled",
		Message:             "assigned ns/web to n1",
		Source:              corev1.EventSource{Component: "scheduler", Host: "h"},
		FirstTimestamp:      in.DeprecatedFirstTimestamp,
		LastTimestamp:       in.DeprecatedLastTimestamp,
		Count:               3,
		Type:                corev1.EventTypeNormal,
		EventTime:           in.EventTime,
		Series:              &corev1.EventSeries{Count: 3, LastObservedTime: in.Series.LastObservedTime},
		Action:              "Binding",
		Related:             in.Related,
		ReportingController: "skiff.dev/scheduler",
		ReportingInstance:   "scheduler-1",
	}
	if !equality.Semantic.DeepEqual(out, want) {
		t.Errorf("converted event:\n got %+v\nwant %+v", out, want)
	}
	out.Labels["a"] = "changed"
	if in.Labels["a"] != "b" {
		t.Error("the converted event shares its labels with the input")
	}
}

func TestConvertEventRoundTripsBothWays(t *testing.T) {
	in := fullEventsV1Event()
	core := &corev1.Event{}
	back := &eventsv1.Event{}
	if err := Scheme.Convert(in, core, nil); err != nil {
		t.Fatal(err)
	}
	if err := Scheme.Convert(core, back, nil); err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(in, back) {
		t.Errorf("round trip through v1:\n got %+v\nwant %+v", back, in)
	}

	list := &corev1.EventList{ListMeta: metav1.ListMeta{ResourceVersion: "9"}, Items: []corev1.Event{*core}}
	v1list := &eventsv1.EventList{}
	if err := Scheme.Convert(list, v1list, nil); err != nil {
		t.Fatal(err)
	}
	if v1list.ResourceVersion != "9" || len(v1list.Items) != 1 || !equality.Semantic.DeepEqual(&v1list.Items[0], in) {
		t.Errorf("list conversion = %+v", v1list)
	}
}

// An event of events.k8s.io has no deprecated source: the core field selector "source" finds
// it by its reporting controller, as upstream's.
func TestCoreEventSourceFieldFallsBackToTheReportingController(t *testing.T) {
	res := Builtin.Lookup(corev1.SchemeGroupVersion, "events")
	for _, tc := range []struct {
		ev   corev1.Event
		want string
	}{
		{corev1.Event{ReportingController: "test-controller"}, "test-controller"},
		{corev1.Event{Source: corev1.EventSource{Component: "kubelet"}, ReportingController: "other"}, "kubelet"},
	} {
		if got := res.SelectableFields(&tc.ev)["source"]; got != tc.want {
			t.Errorf("source of %+v = %q, want %q", tc.ev, got, tc.want)
		}
	}
}
