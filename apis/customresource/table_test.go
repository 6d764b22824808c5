package customresource

import (
	"reflect"
	"testing"
	"time"

	metatable "k8s.io/apimachinery/pkg/api/meta/table"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var creationTimestampDoc = metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"]

func TestColumnsAreNameThenThePrinterColumns(t *testing.T) {
	name := metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: metav1.ObjectMeta{}.SwaggerDoc()["name"]}
	for _, tc := range []struct {
		fixture, version string
		want             []metav1.TableColumnDefinition
	}{
		{"certificates.cert-manager.io", "v1", []metav1.TableColumnDefinition{
			name,
			{Name: "Ready", Type: "string", Description: `Custom resource definition column (in JSONPath format): .status.conditions[?(@.type=="Ready")].status`},
			{Name: "Secret", Type: "string", Description: "Custom resource definition column (in JSONPath format): .spec.secretName"},
			{Name: "Issuer", Type: "string", Priority: 1, Description: "Custom resource definition column (in JSONPath format): .spec.issuerRef.name"},
			{Name: "Status", Type: "string", Priority: 1, Description: `Custom resource definition column (in JSONPath format): .status.conditions[?(@.type=="Ready")].message`},
			// the CRD's own description of its Age column
			{Name: "Age", Type: "date", Description: "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC."},
		}},
		// a version without printer columns prints its age
		{"certificates.cert-manager.io", "v1beta1", []metav1.TableColumnDefinition{name, {Name: "Age", Type: "date", Description: creationTimestampDoc}}},
		{"servicemonitors.monitoring.coreos.com", "v1", []metav1.TableColumnDefinition{name, {Name: "Age", Type: "date", Description: creationTimestampDoc}}},
	} {
		if got := compile(t, tc.fixture, tc.version).Columns(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s %s columns:\n%+v\nwant\n%+v", tc.fixture, tc.version, got, tc.want)
		}
	}
}

func TestRowFillsEachColumnByItsJSONPathAndType(t *testing.T) {
	created := metav1.NewTime(time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC))

	cert := object(t, `
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: web, namespace: default, creationTimestamp: "2020-01-02T03:04:05Z"}
spec: {secretName: web-tls, issuerRef: {name: letsencrypt}}
status:
  conditions:
  - {type: Issuing, status: "False"}
  - {type: Ready, status: "True", message: Certificate is up to date and has not expired}`)
	row := compile(t, "certificates.cert-manager.io", "v1").Row(cert)
	age := metatable.ConvertToHumanReadableDateType(created)
	want := []interface{}{"web", "True", "web-tls", "letsencrypt", "Certificate is up to date and has not expired", age}
	if !reflect.DeepEqual(row.Cells, want) {
		t.Errorf("cells %#v, want %#v", row.Cells, want)
	}
	if row.Object.Object != cert {
		t.Errorf("the row holds %v, not the object", row.Object.Object)
	}

	// a missing value is nil; a typed column holds only a value of its type; a list prints as JSON
	crontabs := compile(t, "crontabs.stable.example.com", "v1")
	for _, tc := range []struct {
		obj  string
		want []interface{}
	}{
		{`{metadata: {name: a}, spec: {cronSpec: "* * * * */5", replicas: 3, ratio: 0.5, suspend: true}, status: {lastScheduleTime: yesterday}}`,
			[]interface{}{"a", "* * * * */5", int64(3), 0.5, true, "<invalid>"}},
		{`{metadata: {name: b}, spec: {replicas: "3", ratio: 2, suspend: null}}`,
			[]interface{}{"b", nil, nil, float64(2), nil, nil}},
	} {
		if got := crontabs.Row(object(t, tc.obj)).Cells; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("cells %#v, want %#v", got, tc.want)
		}
	}

	route := object(t, `{metadata: {name: r}, spec: {hostnames: [a.example.com, b.example.com]}}`)
	if got := compile(t, "httproutes.gateway.networking.k8s.io", "v1").Row(route).Cells; !reflect.DeepEqual(got, []interface{}{"r", `["a.example.com","b.example.com"]`, nil}) {
		t.Errorf("cells %#v", got)
	}
}
