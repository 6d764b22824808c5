package customresource

import (
	"reflect"
	"testing"
)

func TestPrepareForCreateDropsStatusBehindAStatusSubresource(t *testing.T) {
	withStatus := compile(t, "crontabs.stable.example.com", "v1")
	obj := object(t, `{metadata: {name: c, generation: 7}, spec: {cronSpec: "* * * * *"}, status: {replicas: 3}}`)
	withStatus.PrepareForCreate(obj)
	if _, ok := obj.Object["status"]; ok || obj.GetGeneration() != 1 {
		t.Errorf("status %v, generation %d", obj.Object["status"], obj.GetGeneration())
	}

	withoutStatus := compile(t, "crontabs.stable.example.com", "v2alpha1")
	obj = object(t, `{metadata: {name: c}, status: {replicas: 3}}`)
	withoutStatus.PrepareForCreate(obj)
	if _, ok := obj.Object["status"]; !ok {
		t.Error("a version without a status subresource lost the status on create")
	}
}

func TestPrepareForUpdateKeepsStatusAndCountsSpecChanges(t *testing.T) {
	v := compile(t, "crontabs.stable.example.com", "v1")
	old := object(t, `{metadata: {name: c, generation: 4}, spec: {cronSpec: "* * * * *"}, status: {replicas: 3}}`)

	relabelled := object(t, `{metadata: {name: c, generation: 9, labels: {a: b}}, spec: {cronSpec: "* * * * *"}, status: {replicas: 5}}`)
	v.PrepareForUpdate(relabelled, old)
	if relabelled.GetGeneration() != 4 || !reflect.DeepEqual(relabelled.Object["status"], old.Object["status"]) {
		t.Errorf("a metadata change: generation %d, status %v", relabelled.GetGeneration(), relabelled.Object["status"])
	}

	rescheduled := object(t, `{metadata: {name: c, generation: 4}, spec: {cronSpec: "*/5 * * * *"}}`)
	v.PrepareForUpdate(rescheduled, old)
	if rescheduled.GetGeneration() != 5 || !reflect.DeepEqual(rescheduled.Object["status"], old.Object["status"]) {
		t.Errorf("a spec change: generation %d, status %v", rescheduled.GetGeneration(), rescheduled.Object["status"])
	}
}

func TestWarningsOnFinalizers(t *testing.T) {
	v := compile(t, "crontabs.stable.example.com", "v1")
	old := object(t, `{metadata: {name: c, finalizers: [legacy]}}`)
	obj := object(t, `{metadata: {name: c, finalizers: [legacy, kubernetes, example.com, example.com/cleanup, "bad finalizer"]}}`)
	want := []string{
		`metadata.finalizers: "bad finalizer": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`,
		`metadata.finalizers: "bad finalizer": prefer a domain-qualified finalizer name to avoid accidental conflicts with other finalizer writers`,
		`metadata.finalizers: "example.com": prefer a domain-qualified finalizer name including a path (/) to avoid accidental conflicts with other finalizer writers`,
	}
	if got := v.Warnings(obj, old); !reflect.DeepEqual(got, want) {
		t.Errorf("warnings\n%q\nwant\n%q", got, want)
	}
	if got := v.Warnings(old, nil); len(got) != 1 {
		t.Errorf("on create every finalizer is checked: %q", got)
	}
}

func TestVersionDescribesItsKind(t *testing.T) {
	versions, err := NewVersions(loadCRD(t, "crontabs.stable.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	v1 := versions["v1"]
	if gvk := v1.GroupVersionKind(); gvk.String() != "stable.example.com/v1, Kind=CronTab" || v1.Name() != "v1" || !v1.Namespaced() {
		t.Errorf("%v %s namespaced=%v", gvk, v1.Name(), v1.Namespaced())
	}
	if s := v1.Subresources(); s == nil || s.Status == nil || s.Scale == nil || s.Scale.SpecReplicasPath != ".spec.replicas" {
		t.Errorf("subresources %+v", s)
	}
	if deprecated, _ := v1.Deprecated(); deprecated {
		t.Error("v1 is deprecated")
	}
	if deprecated, w := versions["v1beta1"].Deprecated(); !deprecated || w != "stable.example.com/v1beta1 CronTab is going away in 2027; move to v1" {
		t.Errorf("v1beta1: %v %q", deprecated, w)
	}
	if _, err := NewVersion(loadCRD(t, "crontabs.stable.example.com"), "v3"); err == nil {
		t.Error("compiled a version the CRD does not have")
	}
}
