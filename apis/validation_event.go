package apis

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Length limits of event fields, as upstream.
const (
	eventReportingInstanceLengthLimit = 128
	eventActionLengthLimit            = 128
	eventReasonLengthLimit            = 128
	eventNoteLengthLimit              = 1024
)

// Both event APIs store core v1 Events; validation always sees one, converted from
// events.k8s.io/v1 when that was the request's group version, and applies the strict rules of
// events.k8s.io/v1 only to requests made through it. Field paths are core v1's, as upstream's.

// ValidateEventCreate checks a new event written through requestVersion (v1 or events.k8s.io/v1).
func ValidateEventCreate(event *corev1.Event, requestVersion schema.GroupVersion) field.ErrorList {
	allErrs := legacyValidateEvent(event)
	if requestVersion != eventsV1 {
		// Names of v1 events only need to be usable in a URL path, as for any object upstream.
		return append(allErrs, ValidateObjectMeta(&event.ObjectMeta, true, path.ValidatePathSegmentName, metadataPath)...)
	}

	allErrs = append(allErrs, ValidateObjectMeta(&event.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, metadataPath)...)
	allErrs = append(allErrs, validateEventSeries(event)...)
	if event.EventTime.IsZero() {
		allErrs = append(allErrs, field.Required(field.NewPath("eventTime"), ""))
	}
	if event.Type != corev1.EventTypeNormal && event.Type != corev1.EventTypeWarning {
		allErrs = append(allErrs, field.Invalid(field.NewPath("type"), "", fmt.Sprintf("has invalid value: %v", event.Type)))
	}
	if !event.FirstTimestamp.IsZero() {
		allErrs = append(allErrs, field.Invalid(field.NewPath("firstTimestamp"), "", "needs to be unset"))
	}
	if !event.LastTimestamp.IsZero() {
		allErrs = append(allErrs, field.Invalid(field.NewPath("lastTimestamp"), "", "needs to be unset"))
	}
	if event.Count != 0 {
		allErrs = append(allErrs, field.Invalid(field.NewPath("count"), "", "needs to be unset"))
	}
	if event.Source.Component != "" || event.Source.Host != "" {
		allErrs = append(allErrs, field.Invalid(field.NewPath("source"), "", "needs to be unset"))
	}
	return allErrs
}

// ValidateEventUpdate checks event replacing old through requestVersion. Through
// events.k8s.io/v1 only the series (and metadata) may change.
func ValidateEventUpdate(event, old *corev1.Event, requestVersion schema.GroupVersion) field.ErrorList {
	allErrs := legacyValidateEvent(event)
	if requestVersion != eventsV1 {
		allErrs = append(allErrs, ValidateObjectMeta(&event.ObjectMeta, true, path.ValidatePathSegmentName, metadataPath)...)
		return append(allErrs, ValidateObjectMetaUpdate(&event.ObjectMeta, &old.ObjectMeta, metadataPath)...)
	}

	allErrs = append(allErrs, ValidateObjectMetaUpdate(&event.ObjectMeta, &old.ObjectMeta, metadataPath)...)
	if !apiequality.Semantic.DeepEqual(event.Series, old.Series) {
		allErrs = append(allErrs, validateEventSeries(event)...)
	}
	for _, f := range []struct {
		name     string
		new, old interface{}
	}{
		{"involvedObject", event.InvolvedObject, old.InvolvedObject},
		{"reason", event.Reason, old.Reason},
		{"message", event.Message, old.Message},
		{"source", event.Source, old.Source},
		{"firstTimestamp", event.FirstTimestamp, old.FirstTimestamp},
		{"lastTimestamp", event.LastTimestamp, old.LastTimestamp},
		{"count", event.Count, old.Count},
		{"type", event.Type, old.Type},
		{"eventTime", event.EventTime, old.EventTime},
		{"action", event.Action, old.Action},
		{"related", event.Related, old.Related},
		{"reportingController", event.ReportingController, old.ReportingController},
		{"reportingInstance", event.ReportingInstance, old.ReportingInstance},
	} {
		allErrs = append(allErrs, apivalidation.ValidateImmutableField(f.new, f.old, field.NewPath(f.name))...)
	}
	return allErrs
}

func validateEventSeries(event *corev1.Event) field.ErrorList {
	var allErrs field.ErrorList
	if event.Series != nil {
		// Upstream builds these paths from one dotted segment; they print the same.
		if event.Series.Count < 2 {
			allErrs = append(allErrs, field.Invalid(field.NewPath("series.count"), "", "should be at least 2"))
		}
		if event.Series.LastObservedTime.IsZero() {
			allErrs = append(allErrs, field.Required(field.NewPath("series.lastObservedTime"), ""))
		}
	}
	return allErrs
}

// legacyValidateEvent holds the rules every event meets, whichever API wrote it: the involved
// object's namespace matches the event's, and events with an eventTime (the new style) name
// their reporter, action and reason within the length limits.
func legacyValidateEvent(event *corev1.Event) field.ErrorList {
	var allErrs field.ErrorList
	involvedNamespace := field.NewPath("involvedObject", "namespace")
	if event.EventTime.IsZero() {
		if event.InvolvedObject.Namespace == "" {
			// Events about cluster-scoped objects live in no namespace, or "default" for old
			// clients.
			if event.Namespace != metav1.NamespaceNone && event.Namespace != metav1.NamespaceDefault {
				allErrs = append(allErrs, field.Invalid(involvedNamespace, event.InvolvedObject.Namespace, "does not match event.namespace"))
			}
		} else if event.Namespace != event.InvolvedObject.Namespace {
			allErrs = append(allErrs, field.Invalid(involvedNamespace, event.InvolvedObject.Namespace, "does not match event.namespace"))
		}
	} else {
		if event.InvolvedObject.Namespace == "" && event.Namespace != metav1.NamespaceDefault && event.Namespace != metav1.NamespaceSystem {
			allErrs = append(allErrs, field.Invalid(involvedNamespace, event.InvolvedObject.Namespace, "does not match event.namespace"))
		}
		if event.ReportingController == "" {
			allErrs = append(allErrs, field.Required(field.NewPath("reportingController"), ""))
		}
		for _, msg := range validation.IsQualifiedName(event.ReportingController) {
			allErrs = append(allErrs, field.Invalid(field.NewPath("reportingController"), event.ReportingController, msg))
		}
		if event.ReportingInstance == "" {
			allErrs = append(allErrs, field.Required(field.NewPath("reportingInstance"), ""))
		}
		if len(event.ReportingInstance) > eventReportingInstanceLengthLimit {
			allErrs = append(allErrs, field.Invalid(field.NewPath("reportingInstance"), "", fmt.Sprintf("can have at most %v characters", eventReportingInstanceLengthLimit)))
		}
		if event.Action == "" {
			allErrs = append(allErrs, field.Required(field.NewPath("action"), ""))
		}
		if len(event.Action) > eventActionLengthLimit {
			allErrs = append(allErrs, field.Invalid(field.NewPath("action"), "", fmt.Sprintf("can have at most %v characters", eventActionLengthLimit)))
		}
		if event.Reason == "" {
			allErrs = append(allErrs, field.Required(field.NewPath("reason"), ""))
		}
		if len(event.Reason) > eventReasonLengthLimit {
			allErrs = append(allErrs, field.Invalid(field.NewPath("reason"), "", fmt.Sprintf("can have at most %v characters", eventReasonLengthLimit)))
		}
		if len(event.Message) > eventNoteLengthLimit {
			allErrs = append(allErrs, field.Invalid(field.NewPath("message"), "", fmt.Sprintf("can have at most %v characters", eventNoteLengthLimit)))
		}
	}
	for _, msg := range validation.IsDNS1123Subdomain(event.Namespace) {
		allErrs = append(allErrs, field.Invalid(field.NewPath("namespace"), event.Namespace, msg))
	}
	return allErrs
}
