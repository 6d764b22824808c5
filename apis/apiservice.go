package apis

import (
	"fmt"
	"strings"
	"time"

	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	aggregatorapply "k8s.io/kube-aggregator/pkg/client/applyconfiguration"
)

// APIServices (apiregistration.k8s.io/v1) say who serves a group version: the server itself
// ("Local", no service) or an extension API server behind a Service, to which the API server
// proxies the group version's requests. Validation, the strategy's status handling and the
// Table columns are upstream's (k8s.io/kube-aggregator).

var apiregistrationV1 = apiregistrationv1.SchemeGroupVersion

var apiServiceTypeConverter = aggregatorapply.NewTypeConverter(Scheme)

// APIServiceName is the name an APIService of a group version must have: version.group
// ("v1." for the core group).
func APIServiceName(gv schema.GroupVersion) string { return gv.Version + "." + gv.Group }

// LocalAvailableCondition is the condition a local APIService always has, as upstream sets it
// on create.
func LocalAvailableCondition(now time.Time) apiregistrationv1.APIServiceCondition {
	return apiregistrationv1.APIServiceCondition{
		Type: apiregistrationv1.Available, Status: apiregistrationv1.ConditionTrue,
		LastTransitionTime: metav1.NewTime(now), Reason: "Local", Message: "Local APIServices are always available",
	}
}

// APIServiceStrategy and APIServiceStatusStrategy are the strategies of apiservices and
// apiservices/status. A local APIService is Available from its creation.
var APIServiceStrategy, APIServiceStatusStrategy = SpecAndStatus[*apiregistrationv1.APIService]{
	PrepareForCreate: func(svc *apiregistrationv1.APIService) {
		if svc.Spec.Service == nil {
			svc.Status.Conditions = []apiregistrationv1.APIServiceCondition{LocalAvailableCondition(time.Now())}
		}
	},
	Validate: ValidateAPIService,
	ValidateUpdate: func(svc, old *apiregistrationv1.APIService) field.ErrorList {
		allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&svc.ObjectMeta, &old.ObjectMeta, metadataPath)
		return append(allErrs, ValidateAPIService(svc)...)
	},
	ValidateStatusUpdate: func(svc, old *apiregistrationv1.APIService) field.ErrorList {
		allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&svc.ObjectMeta, &old.ObjectMeta, metadataPath)
		for i, c := range svc.Status.Conditions {
			switch c.Status {
			case apiregistrationv1.ConditionTrue, apiregistrationv1.ConditionFalse, apiregistrationv1.ConditionUnknown:
			default:
				allErrs = append(allErrs, field.NotSupported(field.NewPath("status", "conditions").Index(i).Child("status"), c.Status,
					[]string{string(apiregistrationv1.ConditionTrue), string(apiregistrationv1.ConditionFalse), string(apiregistrationv1.ConditionUnknown)}))
			}
		}
		return allErrs
	},
}.Strategies()

// ValidateAPIService checks an APIService as upstream does: its name is version.group, the
// group a DNS subdomain (empty only for v1), the version a DNS label, the priorities in range,
// and a local APIService has no TLS settings while a remote one names its Service fully.
func ValidateAPIService(svc *apiregistrationv1.APIService) field.ErrorList {
	requiredName := svc.Spec.Version + "." + svc.Spec.Group
	allErrs := apimachineryvalidation.ValidateObjectMeta(&svc.ObjectMeta, false, func(name string, prefix bool) []string {
		if failures := path.IsValidPathSegmentName(name); len(failures) > 0 {
			return failures
		}
		if name != requiredName {
			return []string{fmt.Sprintf("must be `spec.version+\".\"+spec.group`: %q", requiredName)}
		}
		return nil
	}, metadataPath)
	spec := field.NewPath("spec")
	if svc.Spec.Group == "" && svc.Spec.Version != "v1" {
		allErrs = append(allErrs, field.Required(spec.Child("group"), "only v1 may have an empty group and it better be legacy kube"))
	}
	if svc.Spec.Group != "" {
		for _, msg := range utilvalidation.IsDNS1123Subdomain(svc.Spec.Group) {
			allErrs = append(allErrs, field.Invalid(spec.Child("group"), svc.Spec.Group, msg))
		}
	}
	for _, msg := range utilvalidation.IsDNS1035Label(svc.Spec.Version) {
		allErrs = append(allErrs, field.Invalid(spec.Child("version"), svc.Spec.Version, msg))
	}
	if svc.Spec.GroupPriorityMinimum <= 0 || svc.Spec.GroupPriorityMinimum > 20000 {
		allErrs = append(allErrs, field.Invalid(spec.Child("groupPriorityMinimum"), svc.Spec.GroupPriorityMinimum, "must be positive and less than 20000"))
	}
	if svc.Spec.VersionPriority <= 0 || svc.Spec.VersionPriority > 1000 {
		allErrs = append(allErrs, field.Invalid(spec.Child("versionPriority"), svc.Spec.VersionPriority, "must be positive and less than 1000"))
	}
	if svc.Spec.Service == nil {
		if len(svc.Spec.CABundle) != 0 {
			allErrs = append(allErrs, field.Invalid(spec.Child("caBundle"), fmt.Sprintf("%d bytes", len(svc.Spec.CABundle)), "local APIServices may not have a caBundle"))
		}
		if svc.Spec.InsecureSkipTLSVerify {
			allErrs = append(allErrs, field.Invalid(spec.Child("insecureSkipTLSVerify"), svc.Spec.InsecureSkipTLSVerify, "local APIServices may not have insecureSkipTLSVerify"))
		}
		return allErrs
	}
	ref := spec.Child("service")
	if svc.Spec.Service.Namespace == "" {
		allErrs = append(allErrs, field.Required(ref.Child("namespace"), ""))
	}
	if svc.Spec.Service.Name == "" {
		allErrs = append(allErrs, field.Required(ref.Child("name"), ""))
	}
	var port int32
	if svc.Spec.Service.Port != nil {
		port = *svc.Spec.Service.Port
	}
	if msgs := utilvalidation.IsValidPortNum(int(port)); msgs != nil {
		allErrs = append(allErrs, field.Invalid(ref.Child("port"), port, "port is not valid: "+strings.Join(msgs, ", ")))
	}
	if svc.Spec.InsecureSkipTLSVerify && len(svc.Spec.CABundle) > 0 {
		allErrs = append(allErrs, field.Invalid(spec.Child("insecureSkipTLSVerify"), svc.Spec.InsecureSkipTLSVerify, "may not be true if caBundle is present"))
	}
	return allErrs
}

// APIServiceAvailable returns the Available condition of an APIService, or nil.
func APIServiceAvailable(svc *apiregistrationv1.APIService) *apiregistrationv1.APIServiceCondition {
	for i := range svc.Status.Conditions {
		if svc.Status.Conditions[i].Type == apiregistrationv1.Available {
			return &svc.Status.Conditions[i]
		}
	}
	return nil
}

func apiServiceTable() *TablePrinter {
	return Columns(
		[]metav1.TableColumnDefinition{
			nameColumn,
			{Name: "Service", Type: "string", Description: "The reference to the service that hosts this API endpoint."},
			{Name: "Available", Type: "string", Description: "Whether this service is available."},
			ageColumn,
		},
		func(svc *apiregistrationv1.APIService) metav1.TableRow {
			service := "Local"
			if svc.Spec.Service != nil {
				service = svc.Spec.Service.Namespace + "/" + svc.Spec.Service.Name
			}
			available := string(apiregistrationv1.ConditionUnknown)
			if c := APIServiceAvailable(svc); c != nil {
				available = string(c.Status)
				if c.Status != apiregistrationv1.ConditionTrue && c.Reason != "" {
					available = fmt.Sprintf("%s (%s)", c.Status, c.Reason)
				}
			}
			return cells(svc.Name, service, available, translateTimestampSince(svc.CreationTimestamp))
		})
}
