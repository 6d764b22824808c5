package apis

import (
	"context"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

func workloadTemplate(labels map[string]string) corev1.PodTemplateSpec {
	t := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox:1.36"}}},
	}
	DefaultPodSpec(&t.Spec)
	return t
}

func newTestDaemonSet() *appsv1.DaemonSet {
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: "default", ResourceVersion: "1"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
			Template: workloadTemplate(map[string]string{"app": "agent"}),
		},
	}
	defaultDaemonSet(ds)
	return ds
}

func newTestStatefulSet() *appsv1.StatefulSet {
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default", ResourceVersion: "1"},
		Spec: appsv1.StatefulSetSpec{
			ServiceName: "db",
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template:    workloadTemplate(map[string]string{"app": "db"}),
		},
	}
	defaultStatefulSet(sts)
	return sts
}

func expectOneError(t *testing.T, errs field.ErrorList, want string) {
	t.Helper()
	if len(errs) != 1 || errs[0].Error() != want {
		t.Errorf("errors = %q, want just %q", errorStrings(errs), want)
	}
}

func TestDaemonSetDefaultsToRollingUpdateOfOneUnavailableNode(t *testing.T) {
	ds := newTestDaemonSet()
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType || ru == nil ||
		*ru.MaxUnavailable != intstr.FromInt32(1) || *ru.MaxSurge != intstr.FromInt32(0) {
		t.Errorf("update strategy = %+v", ds.Spec.UpdateStrategy)
	}
	if *ds.Spec.RevisionHistoryLimit != 10 {
		t.Errorf("revisionHistoryLimit = %d, want 10", *ds.Spec.RevisionHistoryLimit)
	}
	if errs := ValidateDaemonSet(ds); len(errs) != 0 {
		t.Errorf("a defaulted daemon set is invalid: %v", errs)
	}
}

func TestDaemonSetSelectorMustMatchTemplateAndNeverChange(t *testing.T) {
	ds := newTestDaemonSet()
	ds.Spec.Template.Labels = map[string]string{"app": "other"}
	expectOneError(t, ValidateDaemonSet(ds), "spec.template.metadata.labels: Invalid value: {\"app\":\"other\"}: `selector` does not match template `labels`")

	old, ds := newTestDaemonSet(), newTestDaemonSet()
	ds.Spec.Selector.MatchLabels["tier"] = "x"
	ds.Spec.Template.Labels["tier"] = "x"
	errs := ValidateDaemonSetUpdate(ds, old)
	if len(errs) != 1 || errs[0].Field != "spec.selector" || !strings.Contains(errs[0].Error(), "field is immutable") {
		t.Errorf("errors = %q, want spec.selector immutable", errorStrings(errs))
	}
}

func TestDaemonSetRollingUpdateMaySurgeOrBeUnavailableButNotBoth(t *testing.T) {
	ds := newTestDaemonSet()
	ds.Spec.UpdateStrategy.RollingUpdate.MaxSurge = ptr.To(intstr.FromInt32(1))
	expectOneError(t, ValidateDaemonSet(ds), "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 1: may not be set when maxUnavailable is non-zero")
	ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromInt32(0))
	ds.Spec.UpdateStrategy.RollingUpdate.MaxSurge = ptr.To(intstr.FromInt32(0))
	expectOneError(t, ValidateDaemonSet(ds), "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0")
}

func TestDaemonSetTemplateGenerationCountsTemplateChanges(t *testing.T) {
	ctx := context.Background()
	ds := newTestDaemonSet()
	DaemonSetStrategy.PrepareForCreate(ctx, ds)
	if got := ds.Annotations[DaemonSetTemplateGenerationAnnotation]; got != "1" || ds.Generation != 1 {
		t.Fatalf("on create: template generation %q, generation %d", got, ds.Generation)
	}
	scaled := ds.DeepCopy()
	scaled.Spec.MinReadySeconds = 5
	scaled.Annotations[DaemonSetTemplateGenerationAnnotation] = "7" // a client may not set it
	DaemonSetStrategy.PrepareForUpdate(ctx, scaled, ds)
	if got := scaled.Annotations[DaemonSetTemplateGenerationAnnotation]; got != "1" || scaled.Generation != 2 {
		t.Errorf("after a spec change: template generation %q, generation %d; want 1, 2", got, scaled.Generation)
	}
	updated := scaled.DeepCopy()
	updated.Spec.Template.Spec.Containers[0].Image = "busybox:1.37"
	DaemonSetStrategy.PrepareForUpdate(ctx, updated, scaled)
	if got := updated.Annotations[DaemonSetTemplateGenerationAnnotation]; got != "2" || updated.Generation != 3 {
		t.Errorf("after a template change: template generation %q, generation %d; want 2, 3", got, updated.Generation)
	}
}

func TestStatefulSetDefaults(t *testing.T) {
	sts := newTestStatefulSet()
	want := appsv1.StatefulSetSpec{
		Replicas:            ptr.To[int32](1),
		PodManagementPolicy: appsv1.OrderedReadyPodManagement,
		UpdateStrategy: appsv1.StatefulSetUpdateStrategy{
			Type:          appsv1.RollingUpdateStatefulSetStrategyType,
			RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To[int32](0), MaxUnavailable: ptr.To(intstr.FromInt32(1))},
		},
		PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
			WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
		},
		RevisionHistoryLimit: ptr.To[int32](10),
	}
	got := sts.Spec
	got.ServiceName, got.Selector, got.Template = "", nil, corev1.PodTemplateSpec{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaulted spec = %+v\nwant %+v", got, want)
	}
	if errs := ValidateStatefulSet(sts); len(errs) != 0 {
		t.Errorf("a defaulted stateful set is invalid: %v", errs)
	}
}

func TestStatefulSetUpdateMayOnlyChangeReplicasTemplateAndStrategy(t *testing.T) {
	old := newTestStatefulSet()
	ok := old.DeepCopy()
	ok.Spec.Replicas = ptr.To[int32](5)
	ok.Spec.Template.Spec.Containers[0].Image = "busybox:1.37"
	ok.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
	ok.Spec.MinReadySeconds = 3
	if errs := ValidateStatefulSetUpdate(ok, old); len(errs) != 0 {
		t.Errorf("allowed changes refused: %v", errs)
	}
	bad := old.DeepCopy()
	bad.Spec.ServiceName = "other"
	expectOneError(t, ValidateStatefulSetUpdate(bad, old), "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")
}

func TestStatefulSetRefusesBadPolicies(t *testing.T) {
	sts := newTestStatefulSet()
	sts.Spec.PodManagementPolicy = "Random"
	expectOneError(t, ValidateStatefulSet(sts), "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'")
	sts = newTestStatefulSet()
	sts.Spec.UpdateStrategy.Type = appsv1.OnDeleteStatefulSetStrategyType
	expectOneError(t, ValidateStatefulSet(sts), "spec.updateStrategy.rollingUpdate: Invalid value: {\"partition\":0,\"maxUnavailable\":1}: only allowed for updateStrategy 'RollingUpdate'")
	sts = newTestStatefulSet()
	sts.Name = "db.primary"
	if errs := ValidateStatefulSet(sts); len(errs) != 1 || errs[0].Field != "metadata.name" {
		t.Errorf("a name that is no DNS label: %q", errorStrings(errs))
	}
}

func TestControllerRevisionDataIsImmutableButItsRevisionIsNot(t *testing.T) {
	old := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Name: "agent-5d8f", Namespace: "default", ResourceVersion: "1"},
		Data:       runtime.RawExtension{Raw: []byte(`{"spec":{"template":{"a":1}}}`)},
		Revision:   1,
	}
	if errs := ValidateControllerRevision(old); len(errs) != 0 {
		t.Fatalf("valid revision refused: %v", errs)
	}
	bumped := old.DeepCopy()
	bumped.Revision = 3
	bumped.Data.Raw = []byte(`{ "spec": {"template": {"a": 1}} }`)
	if errs := ValidateControllerRevisionUpdate(bumped, old); len(errs) != 0 {
		t.Errorf("a rollback's new revision number refused: %v", errs)
	}
	changed := old.DeepCopy()
	changed.Data.Raw = []byte(`{"spec":{"template":{"a":2}}}`)
	errs := ValidateControllerRevisionUpdate(changed, old)
	if len(errs) != 1 || errs[0].Field != "data" || !strings.Contains(errs[0].Error(), "field is immutable") {
		t.Errorf("errors = %q, want data immutable", errorStrings(errs))
	}
	empty := old.DeepCopy()
	empty.Data = runtime.RawExtension{}
	expectOneError(t, ValidateControllerRevision(empty), "data: Required value: data is mandatory")
}

func TestReplicationControllerSelectorAndLabelsDefaultFromTemplate(t *testing.T) {
	tmpl := workloadTemplate(map[string]string{"app": "web"})
	rc := &corev1.ReplicationController{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec:       corev1.ReplicationControllerSpec{Template: &tmpl},
	}
	defaultReplicationController(rc)
	if !reflect.DeepEqual(rc.Spec.Selector, map[string]string{"app": "web"}) || !reflect.DeepEqual(rc.Labels, map[string]string{"app": "web"}) {
		t.Errorf("selector %v, labels %v; want both app=web", rc.Spec.Selector, rc.Labels)
	}
	if ptr.Deref(rc.Spec.Replicas, 0) != 1 {
		t.Errorf("replicas = %v, want 1", rc.Spec.Replicas)
	}
	if errs := ValidateReplicationController(rc); len(errs) != 0 {
		t.Errorf("a defaulted replication controller is invalid: %v", errs)
	}
	rc.Spec.Selector = map[string]string{"app": "api"}
	expectOneError(t, ValidateReplicationController(rc), "spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`")
	rc.Spec.Template = nil
	rc.Spec.Selector = nil
	errs := ValidateReplicationController(rc)
	if got := errorStrings(errs); !reflect.DeepEqual(got, []string{"spec.selector: Required value", "spec.template: Required value"}) {
		t.Errorf("errors = %q", got)
	}
}

func TestReplicationControllersAreSelectableByStatusReplicas(t *testing.T) {
	r := Builtin.Lookup(coreV1, "replicationcontrollers")
	rc := &corev1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}, Status: corev1.ReplicationControllerStatus{Replicas: 3}}
	if got := r.SelectableFields(rc)["status.replicas"]; got != "3" {
		t.Errorf("status.replicas = %q, want 3", got)
	}
}

func TestWorkloadRows(t *testing.T) {
	ds := newTestDaemonSet()
	ds.Spec.Template.Spec.NodeSelector = map[string]string{"disk": "ssd"}
	ds.Status = appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, CurrentNumberScheduled: 3, NumberReady: 2, UpdatedNumberScheduled: 1, NumberAvailable: 2}
	sts := newTestStatefulSet()
	sts.Spec.Replicas = ptr.To[int32](3)
	sts.Status.ReadyReplicas = 2
	tmpl := workloadTemplate(map[string]string{"app": "web"})
	rc := &corev1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:   corev1.ReplicationControllerSpec{Replicas: ptr.To[int32](2), Selector: map[string]string{"app": "web"}, Template: &tmpl},
		Status: corev1.ReplicationControllerStatus{Replicas: 2, ReadyReplicas: 1}}
	cr := &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: "agent-5d8f", OwnerReferences: []metav1.OwnerReference{
		{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "agent", Controller: ptr.To(true)}}}, Revision: 2}
	pt := &corev1.PodTemplate{ObjectMeta: metav1.ObjectMeta{Name: "tmpl"}, Template: tmpl}
	for _, tc := range []struct {
		resource string
		obj      runtime.Object
		want     []interface{}
	}{
		{"daemonsets", ds, []interface{}{"agent", int64(3), int64(3), int64(2), int64(1), int64(2), "disk=ssd", "<unknown>", "app", "busybox:1.36", "app=agent"}},
		{"statefulsets", sts, []interface{}{"db", "2/3", "<unknown>", "app", "busybox:1.36"}},
		{"replicationcontrollers", rc, []interface{}{"web", int64(2), int64(2), int64(1), "<unknown>", "app", "busybox:1.36", "app=web"}},
		{"controllerrevisions", cr, []interface{}{"agent-5d8f", "daemonset.apps/agent", int64(2), "<unknown>"}},
		{"podtemplates", pt, []interface{}{"tmpl", "app", "busybox:1.36", "app=web"}},
	} {
		var r *Resource
		for _, gv := range Builtin.GroupVersions() {
			if r = Builtin.Lookup(gv, tc.resource); r != nil {
				break
			}
		}
		if got := r.Table.row(tc.obj).Cells; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s row = %#v\nwant %#v", tc.resource, got, tc.want)
		}
	}
}
