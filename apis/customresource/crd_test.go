package customresource

import (
	"context"
	"slices"
	"sort"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// checkErrorDetails asserts errs are exactly want, in any order, each as "<field>: <type>:
// <detail>", for errors whose value is too large to spell out (a whole list of versions).
func checkErrorDetails(t *testing.T, errs field.ErrorList, want ...string) {
	t.Helper()
	var got []string
	for _, e := range errs {
		got = append(got, e.Field+": "+e.Type.String()+": "+e.Detail)
	}
	sort.Strings(got)
	want = slices.Sorted(slices.Values(want))
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestDefaultCRDSetsUpstreamDefaults(t *testing.T) {
	crd := &apiextensionsv1.CustomResourceDefinition{Spec: apiextensionsv1.CustomResourceDefinitionSpec{
		Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Kind: "Widget"},
		Versions: []apiextensionsv1.CustomResourceDefinitionVersion{
			{Name: "v1beta1", Served: true}, {Name: "v1", Served: true, Storage: true},
		},
	}}
	DefaultCRD(crd)
	if crd.Spec.Names.Singular != "widget" || crd.Spec.Names.ListKind != "WidgetList" {
		t.Errorf("names: %+v", crd.Spec.Names)
	}
	if crd.Spec.Conversion == nil || crd.Spec.Conversion.Strategy != apiextensionsv1.NoneConverter {
		t.Errorf("conversion: %+v", crd.Spec.Conversion)
	}
	if got := crd.Status.StoredVersions; len(got) != 1 || got[0] != "v1" {
		t.Errorf("storedVersions: %v", got)
	}

	webhook := &apiextensionsv1.CustomResourceDefinition{Spec: apiextensionsv1.CustomResourceDefinitionSpec{
		Conversion: &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.WebhookConverter, Webhook: &apiextensionsv1.WebhookConversion{
			ClientConfig: &apiextensionsv1.WebhookClientConfig{Service: &apiextensionsv1.ServiceReference{Namespace: "ns", Name: "conv"}},
		}},
	}}
	DefaultCRD(webhook)
	if p := webhook.Spec.Conversion.Webhook.ClientConfig.Service.Port; p == nil || *p != 443 {
		t.Errorf("webhook service port: %v", p)
	}
}

func TestValidateCRDRefusals(t *testing.T) {
	ctx := context.Background()
	specSchema := func(crd *apiextensionsv1.CustomResourceDefinition, edit func(*apiextensionsv1.JSONSchemaProps)) {
		s := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
		edit(&s)
		crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = s
	}
	for _, tc := range []struct {
		name   string
		mutate func(*apiextensionsv1.CustomResourceDefinition)
		want   []string
	}{
		{
			name: "a non-structural schema: an object field without a type",
			mutate: func(crd *apiextensionsv1.CustomResourceDefinition) {
				specSchema(crd, func(s *apiextensionsv1.JSONSchemaProps) { s.Type = "" })
			},
			want: []string{"spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"},
		},
		{
			name: "an invalid plural, and so an invalid name",
			mutate: func(crd *apiextensionsv1.CustomResourceDefinition) {
				crd.Spec.Names.Plural = "Cron_Tabs"
				crd.Name = "Cron_Tabs.stable.example.com"
			},
			want: []string{
				`metadata.name: Invalid value: "Cron_Tabs.stable.example.com": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
				`spec.names.plural: Invalid value: "Cron_Tabs": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`,
			},
		},
		{
			name:   "a name that is not plural.group",
			mutate: func(crd *apiextensionsv1.CustomResourceDefinition) { crd.Name = "crontab.stable.example.com" },
			want:   []string{`metadata.name: Invalid value: "crontab.stable.example.com": must be spec.names.plural+"."+spec.group`},
		},
		{
			name:   "an unknown scope",
			mutate: func(crd *apiextensionsv1.CustomResourceDefinition) { crd.Spec.Scope = "Global" },
			want:   []string{`spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced"`},
		},
		{
			name: "a CEL rule that does not compile",
			mutate: func(crd *apiextensionsv1.CustomResourceDefinition) {
				specSchema(crd, func(s *apiextensionsv1.JSONSchemaProps) {
					s.XValidations = apiextensionsv1.ValidationRules{{Rule: "self.replicas > 'x'", Message: "m"}, {Rule: "self.nosuchfield == 1"}}
				})
			},
			want: []string{
				`spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: {"Rule":"self.replicas \u003e 'x'","Message":"m","MessageExpression":"","Reason":null,"FieldPath":"","OptionalOldSelf":null}: compilation failed: ERROR: <input>:1:15: found no matching overload for '_>_' applied to '(int, string)'` + "\n | self.replicas > 'x'\n | ..............^",
				`spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[1].rule: Invalid value: {"Rule":"self.nosuchfield == 1","Message":"","MessageExpression":"","Reason":null,"FieldPath":"","OptionalOldSelf":null}: compilation failed: ERROR: <input>:1:5: undefined field 'nosuchfield'` + "\n | self.nosuchfield == 1\n | ....^",
			},
		},
		{
			name: "selectable fields must be scalar fields of the schema, once each",
			mutate: func(crd *apiextensionsv1.CustomResourceDefinition) {
				crd.Spec.Versions[0].SelectableFields = []apiextensionsv1.SelectableField{{JSONPath: ".spec.jobTemplate"}, {JSONPath: ".spec.nosuch"}, {JSONPath: ".spec.color"}, {JSONPath: ".spec.color"}}
			},
			want: []string{
				`spec.versions[0].selectableFields[0].jsonPath: Invalid value: ".spec.jobTemplate": must point to a field of type string, boolean or integer. Enum string fields and strings with formats are allowed.`,
				`spec.versions[0].selectableFields[1].jsonPath: Invalid value: ".spec.nosuch": is an invalid path: does not refer to a valid field`,
				`spec.versions[0].selectableFields[3].jsonPath: Duplicate value: ".spec.color"`,
			},
		},
		{
			name: "printer columns need a known type and a JSONPath",
			mutate: func(crd *apiextensionsv1.CustomResourceDefinition) {
				crd.Spec.Versions[0].AdditionalPrinterColumns[0].Type = "text"
				crd.Spec.Versions[0].AdditionalPrinterColumns[1].JSONPath = "spec.replicas"
			},
			want: []string{
				`spec.versions[0].additionalPrinterColumns[0].type: Invalid value: "text": must be one of boolean,date,integer,number,string`,
				`spec.versions[0].additionalPrinterColumns[1].JSONPath: Invalid value: "spec.replicas": must be a simple json path starting with .`,
			},
		},
		{
			name: "scale paths are simple paths, status replicas under .status",
			mutate: func(crd *apiextensionsv1.CustomResourceDefinition) {
				crd.Spec.Versions[0].Subresources.Scale.SpecReplicasPath = "spec.replicas"
				crd.Spec.Versions[0].Subresources.Scale.StatusReplicasPath = ".spec.replicas"
			},
			want: []string{
				`spec.versions[0].subresources.scale.specReplicasPath: Invalid value: "spec.replicas": must be a simple json path starting with .`,
				`spec.versions[0].subresources.scale.statusReplicasPath: Invalid value: ".spec.replicas": should be a json path under .status`,
			},
		},
		{
			name: "a deprecation warning only on a deprecated version",
			mutate: func(crd *apiextensionsv1.CustomResourceDefinition) {
				crd.Spec.Versions[2].DeprecationWarning = ptr.To("old")
			},
			want: []string{`spec.versions[2].deprecationWarning: Invalid value: "old": can only be set for deprecated versions`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			crd := loadCRD(t, "crontabs.stable.example.com")
			tc.mutate(crd)
			checkErrors(t, ValidateCRD(ctx, crd), tc.want...)
		})
	}
}

func TestValidateCRDRefusesTwoStorageVersions(t *testing.T) {
	crd := loadCRD(t, "crontabs.stable.example.com")
	crd.Spec.Versions[2].Storage = true
	checkErrorDetails(t, ValidateCRD(context.Background(), crd),
		"spec.versions: Invalid value: must have exactly one version marked as storage version",
		"status.storedVersions: Invalid value: must have the storage version v2alpha1")

	crd.Spec.Versions[0].Storage, crd.Spec.Versions[2].Storage = false, false
	checkErrorDetails(t, ValidateCRD(context.Background(), crd),
		"spec.versions: Invalid value: must have exactly one version marked as storage version")
}

// Upstream validates the internal form, in which a schema every version shares lives at
// spec.validation: errors in it are reported there, and a version may then not have
// selectable fields of its own.
func TestValidateCRDReportsASharedSchemaUnderSpecValidation(t *testing.T) {
	crd := loadCRD(t, "certificates.cert-manager.io")
	for i := range crd.Spec.Versions {
		crd.Spec.Versions[i].Schema.OpenAPIV3Schema.Properties["spec"].Properties["privateKey"].Properties["size"] = apiextensionsv1.JSONSchemaProps{Type: "int"}
	}
	crd.Spec.Versions[1].SelectableFields = nil
	checkErrors(t, ValidateCRD(context.Background(), crd),
		"spec.versions[0].selectableFields: Invalid value: \"\": may only be set when `version.schema.openAPIV3Schema` is not included",
		`spec.validation.openAPIV3Schema.properties[spec].properties[privateKey].properties[size].type: Unsupported value: "int": supported values: "array", "boolean", "integer", "number", "object", "string"`)
}

func TestValidateCRDUpdate(t *testing.T) {
	ctx := context.Background()
	old := loadCRD(t, "crontabs.stable.example.com")
	old.ResourceVersion = "7"
	old.Status.Conditions = []apiextensionsv1.CustomResourceDefinitionCondition{{Type: apiextensionsv1.Established, Status: apiextensionsv1.ConditionTrue}}
	old.Status.AcceptedNames = old.Spec.Names

	same := old.DeepCopy()
	PrepareCRDForUpdate(same, old)
	checkErrors(t, ValidateCRDUpdate(ctx, same, old))

	changed := old.DeepCopy()
	changed.Spec.Scope = apiextensionsv1.ClusterScoped
	changed.Spec.Group = "other.example.com"
	changed.Spec.Names.Kind = "Crontab"
	changed.Name = "crontabs.other.example.com"
	PrepareCRDForUpdate(changed, old)
	checkErrors(t, ValidateCRDUpdate(ctx, changed, old),
		`metadata.name: Invalid value: "crontabs.other.example.com": field is immutable`,
		`spec.scope: Invalid value: "Cluster": field is immutable`,
		`spec.names.kind: Invalid value: "Crontab": field is immutable`,
		`spec.group: Invalid value: "other.example.com": field is immutable`)
	if changed.Generation != old.Generation+1 {
		t.Errorf("generation %d after a spec change of generation %d", changed.Generation, old.Generation)
	}

	// a storage version that was stored stays in spec.versions until migrated away
	dropped := old.DeepCopy()
	dropped.Spec.Versions = dropped.Spec.Versions[1:]
	dropped.Spec.Versions[1].Storage = true
	PrepareCRDForUpdate(dropped, old)
	checkErrors(t, ValidateCRDUpdate(ctx, dropped, old),
		`status.storedVersions[0]: Invalid value: "v1": missing from spec.versions; v1 was previously a storage version, and must remain in spec.versions until a storage migration ensures no data remains persisted in v1 and removes v1 from status.storedVersions`)
}

func TestValidateCRDStatusUpdate(t *testing.T) {
	old := loadCRD(t, "crontabs.stable.example.com")
	old.ResourceVersion = "7"
	crd := old.DeepCopy()
	crd.Spec.Scope = "Global" // ignored: a status write keeps the old spec
	crd.Status.AcceptedNames = apiextensionsv1.CustomResourceDefinitionNames{Plural: "CronTabs", Kind: "CronTab", ListKind: "CronTabList"}
	PrepareCRDForStatusUpdate(crd, old)
	checkErrors(t, ValidateCRDStatusUpdate(context.Background(), crd, old),
		`status.acceptedNames.plural: Invalid value: "CronTabs": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`)
	if crd.Spec.Scope != apiextensionsv1.NamespaceScoped {
		t.Errorf("a status write changed the scope to %q", crd.Spec.Scope)
	}
}

func TestPrepareCRDForCreateRecordsTheStorageVersion(t *testing.T) {
	crd := loadCRD(t, "crontabs.stable.example.com")
	crd.Status.StoredVersions = []string{"v0"}
	crd.Generation = 9
	PrepareCRDForCreate(crd)
	if crd.Generation != 1 || len(crd.Status.StoredVersions) != 1 || crd.Status.StoredVersions[0] != "v1" {
		t.Errorf("generation %d, storedVersions %v", crd.Generation, crd.Status.StoredVersions)
	}
}

func TestCRDWarnings(t *testing.T) {
	crd := loadCRD(t, "crontabs.stable.example.com")
	crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["image"] = apiextensionsv1.JSONSchemaProps{Type: "string", Format: "docker-image"}
	crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["hosts"] = apiextensionsv1.JSONSchemaProps{
		Type: "array", XListType: ptr.To("set"),
		Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{Type: "object", XMapType: ptr.To("atomic")}},
	}
	want := []string{
		`unrecognized format "docker-image"`,
		`x-kubernetes-list-type: set for items of type "object" is not supported by server-side apply or CEL validation rules`,
	}
	if got := CRDWarnings(crd, nil); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings on create: %q", got)
	}
	if got := CRDWarnings(crd, crd.DeepCopy()); len(got) != 0 {
		t.Errorf("an update warns again of what the old CRD had: %q", got)
	}
}

func TestWarningOfADeprecatedVersion(t *testing.T) {
	crontabs := loadCRD(t, "crontabs.stable.example.com")
	certificates := loadCRD(t, "certificates.cert-manager.io")
	for _, tc := range []struct {
		crd     *apiextensionsv1.CustomResourceDefinition
		version string
		want    string
	}{
		{certificates, "v1beta1", "cert-manager.io/v1beta1 Certificate is deprecated; use cert-manager.io/v1 Certificate"},
		{certificates, "v1", ""},
		{crontabs, "v1beta1", "stable.example.com/v1beta1 CronTab is going away in 2027; move to v1"},
		{crontabs, "v9", ""},
	} {
		if got := Warning(tc.crd, tc.version); got != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.crd.Name, tc.version, got, tc.want)
		}
	}

	// the newest newer served version is named; older ones and deprecated ones are not
	certificates.Spec.Versions = append(certificates.Spec.Versions,
		apiextensionsv1.CustomResourceDefinitionVersion{Name: "v2", Served: true},
		apiextensionsv1.CustomResourceDefinitionVersion{Name: "v3", Served: true, Deprecated: true},
		apiextensionsv1.CustomResourceDefinitionVersion{Name: "v1alpha1", Served: true})
	if got, want := Warning(certificates, "v1beta1"), "cert-manager.io/v1beta1 Certificate is deprecated; use cert-manager.io/v2 Certificate"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	if got, want := Warning(certificates, "v3"), "cert-manager.io/v3 Certificate is deprecated"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}
