package apis

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// eventColumns are upstream's event columns.
func eventColumns() []metav1.TableColumnDefinition {
	eventDoc := corev1.Event{}.SwaggerDoc()
	return []metav1.TableColumnDefinition{
		{Name: "Last Seen", Type: "string", Description: eventDoc["lastTimestamp"]},
		{Name: "Type", Type: "string", Description: eventDoc["type"]},
		{Name: "Reason", Type: "string", Description: eventDoc["reason"]},
		{Name: "Object", Type: "string", Description: eventDoc["involvedObject"]},
		{Name: "Subobject", Type: "string", Priority: 1, Description: corev1.ObjectReference{}.SwaggerDoc()["fieldPath"]},
		{Name: "Source", Type: "string", Priority: 1, Description: eventDoc["source"]},
		{Name: "Message", Type: "string", Description: eventDoc["message"]},
		{Name: "First Seen", Type: "string", Priority: 1, Description: eventDoc["firstTimestamp"]},
		{Name: "Count", Type: "string", Priority: 1, Description: eventDoc["count"]},
		{Name: "Name", Type: "string", Priority: 1, Format: "name", Description: objectMetaDoc["name"]},
	}
}

func eventTable() *TablePrinter { return Columns(eventColumns(), eventRow) }

// events.k8s.io/v1 Events are the same stored objects; upstream prints them with the
// same printer, from their core form.
func eventsV1EventTable() *TablePrinter {
	return Columns(eventColumns(), func(e *eventsv1.Event) metav1.TableRow {
		var core corev1.Event
		convertEventsV1ToCoreV1(e, &core)
		return eventRow(&core)
	})
}

// eventRow prints an event. Its times fall back from the old fields to the new ones (eventTime,
// series), and a singleton event of the new API counts once.
func eventRow(e *corev1.Event) metav1.TableRow {
	firstSeen := translateTimestampSince(e.FirstTimestamp)
	if e.FirstTimestamp.IsZero() {
		firstSeen = translateMicroTimestampSince(e.EventTime)
	}
	lastSeen := translateTimestampSince(e.LastTimestamp)
	if e.LastTimestamp.IsZero() {
		lastSeen = firstSeen
	}
	count := e.Count
	if e.Series != nil {
		lastSeen = translateMicroTimestampSince(e.Series.LastObservedTime)
		count = e.Series.Count
	} else if count == 0 {
		count = 1
	}
	object := strings.ToLower(e.InvolvedObject.Kind)
	if e.InvolvedObject.Name != "" {
		object = fmt.Sprintf("%s/%s", object, e.InvolvedObject.Name)
	}
	return cells(lastSeen, e.Type, e.Reason, object, e.InvolvedObject.FieldPath,
		eventSource(e), strings.TrimSpace(e.Message), firstSeen, int64(count), e.Name)
}

// eventSource is "component, host", taking the reporting controller and instance when the
// old source fields are empty, without the host when there is none.
func eventSource(e *corev1.Event) string {
	component, instance := e.Source.Component, e.Source.Host
	if component == "" {
		component = e.ReportingController
	}
	if instance == "" {
		instance = e.ReportingInstance
	}
	if instance == "" {
		return component
	}
	return component + ", " + instance
}
