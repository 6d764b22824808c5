package apiserver_test

import (
	"context"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// startWithServiceAccountAdmission starts a server running the ServiceAccount plugin, with
// namespace "team" and its default account made by hand (no controller runs here).
func startWithServiceAccountAdmission(t *testing.T) *apiservertest.Server {
	t.Helper()
	s := apiservertest.Start(t, apiservertest.EnableAdmission("ServiceAccount"))
	mustCreateNamespace(t, s, "team")
	mustCreateServiceAccount(t, s, "team", &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
	return s
}

// upstreamTokenVolume is the projected volume upstream's plugin adds, every default spelled out.
var upstreamTokenVolume = &corev1.ProjectedVolumeSource{
	DefaultMode: ptr.To[int32](420),
	Sources: []corev1.VolumeProjection{
		{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](3607)}},
		{ConfigMap: &corev1.ConfigMapProjection{
			LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
			Items:                []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}},
		}},
		{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{
			Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"},
		}}}},
	},
}

var tokenVolumeName = regexp.MustCompile(`^kube-api-access-[a-z0-9]{5}$`)

// tokenVolume returns the pod's kube-api-access volume, failing the test unless there is
// exactly one and it is upstream's.
func tokenVolume(t *testing.T, pod *corev1.Pod) string {
	t.Helper()
	var name string
	for _, v := range pod.Spec.Volumes {
		if !tokenVolumeName.MatchString(v.Name) {
			continue
		}
		if name != "" {
			t.Fatalf("two token volumes: %s and %s", name, v.Name)
		}
		name = v.Name
		if !reflect.DeepEqual(v.VolumeSource, corev1.VolumeSource{Projected: upstreamTokenVolume}) {
			got, _ := json.Marshal(v.VolumeSource)
			want, _ := json.Marshal(corev1.VolumeSource{Projected: upstreamTokenVolume})
			t.Errorf("token volume =\n%s\nwant\n%s", got, want)
		}
	}
	if name == "" {
		t.Fatalf("no kube-api-access volume in %+v", pod.Spec.Volumes)
	}
	return name
}

func hasTokenVolume(pod *corev1.Pod) bool {
	for _, v := range pod.Spec.Volumes {
		if tokenVolumeName.MatchString(v.Name) {
			return true
		}
	}
	return false
}

func TestServiceAccountAdmissionMountsTokenInEveryContainer(t *testing.T) {
	s := startWithServiceAccountAdmission(t)
	p := testPod("web")
	p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox:1.36"}}
	p.Spec.Containers = append(p.Spec.Containers,
		corev1.Container{Name: "own-mount", Image: "busybox:1.36",
			VolumeMounts: []corev1.VolumeMount{{Name: "mine", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"}}})
	p.Spec.Volumes = []corev1.Volume{{Name: "mine", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	pod, err := s.Client.CoreV1().Pods("team").Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Spec.ServiceAccountName != "default" {
		t.Errorf("serviceAccountName = %q, want default", pod.Spec.ServiceAccountName)
	}
	name := tokenVolume(t, pod)
	want := corev1.VolumeMount{Name: name, ReadOnly: true, MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"}
	for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers[0]) {
		if !reflect.DeepEqual(c.VolumeMounts, []corev1.VolumeMount{want}) {
			t.Errorf("container %s mounts %+v, want %+v", c.Name, c.VolumeMounts, want)
		}
	}
	if got := pod.Spec.Containers[1].VolumeMounts; len(got) != 1 || got[0].Name != "mine" {
		t.Errorf("a container with its own mount at the token path got %+v", got)
	}
	// what was stored is what was answered
	stored, err := s.Client.CoreV1().Pods("team").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(stored.Spec.Volumes, pod.Spec.Volumes) {
		t.Errorf("stored volumes %+v differ from the answer's %+v", stored.Spec.Volumes, pod.Spec.Volumes)
	}
}

// The writer owns what it sent, not what the plugin added: upstream records managedFields
// before the mutating admission plugins run.
func TestServiceAccountAdmissionAddsFieldsNoManagerOwns(t *testing.T) {
	s := startWithServiceAccountAdmission(t)
	pod, err := s.Client.CoreV1().Pods("team").Create(context.Background(), testPod("owned"), metav1.CreateOptions{FieldManager: "writer"})
	if err != nil {
		t.Fatal(err)
	}
	name := tokenVolume(t, pod)
	if len(pod.ManagedFields) != 1 || pod.ManagedFields[0].Manager != "writer" || pod.ManagedFields[0].FieldsV1 == nil {
		t.Fatalf("managedFields = %+v, want writer's one entry", pod.ManagedFields)
	}
	fields := string(pod.ManagedFields[0].FieldsV1.Raw)
	for _, plugins := range []string{name, `"f:volumes"`, `"f:volumeMounts"`, `"f:serviceAccountName"`} {
		if strings.Contains(fields, plugins) {
			t.Errorf("the writer owns %s, which the plugin set: %s", plugins, fields)
		}
	}
	if !strings.Contains(fields, `"f:containers"`) {
		t.Errorf("the writer does not own its containers: %s", fields)
	}
}

func TestServiceAccountAdmissionHonoursAutomount(t *testing.T) {
	s := startWithServiceAccountAdmission(t)
	ctx := context.Background()
	mustCreateServiceAccount(t, s, "team", &corev1.ServiceAccount{
		ObjectMeta:                   metav1.ObjectMeta{Name: "quiet"},
		AutomountServiceAccountToken: ptr.To(false),
		ImagePullSecrets:             []corev1.LocalObjectReference{{Name: "registry"}},
	})
	cases := []struct {
		name, account string
		pod           *bool
		mounted       bool
	}{
		{"pod says no", "default", ptr.To(false), false},
		{"account says no", "quiet", nil, false},
		{"pod's yes beats the account's no", "quiet", ptr.To(true), true},
		{"nobody says", "default", nil, true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := testPod("p" + string(rune('a'+i)))
			p.Spec.ServiceAccountName, p.Spec.AutomountServiceAccountToken = c.account, c.pod
			pod, err := s.Client.CoreV1().Pods("team").Create(ctx, p, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := hasTokenVolume(pod); got != c.mounted {
				t.Errorf("token volume: %v, want %v (%+v)", got, c.mounted, pod.Spec.Volumes)
			}
			if c.mounted {
				tokenVolume(t, pod)
			} else if len(pod.Spec.Containers[0].VolumeMounts) != 0 {
				t.Errorf("mounts %+v, want none", pod.Spec.Containers[0].VolumeMounts)
			}
			// a pod without pull secrets takes its account's
			if wantSecrets := c.account == "quiet"; wantSecrets != (len(pod.Spec.ImagePullSecrets) == 1 && pod.Spec.ImagePullSecrets[0].Name == "registry") {
				t.Errorf("imagePullSecrets = %+v", pod.Spec.ImagePullSecrets)
			}
		})
	}
}

func TestServiceAccountAdmissionRefusesMissingAccountAndStoresNothing(t *testing.T) {
	s := startWithServiceAccountAdmission(t)
	ctx := context.Background()
	p := testPod("web")
	p.Spec.ServiceAccountName = "ghost"
	_, err := s.Client.CoreV1().Pods("team").Create(ctx, p, metav1.CreateOptions{})
	want := `pods "web" is forbidden: error looking up service account team/ghost: serviceaccount "ghost" not found`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Errorf("pod of a missing account: %v, want 403 %q", err, want)
	}
	resp, err := s.Etcd.Get(ctx, "/registry/pods/team/web")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != 0 {
		t.Error("a refused pod was stored")
	}

	// PUT and server-side apply create through the same admission
	body, _ := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "applied"},
		"spec": map[string]any{"serviceAccountName": "ghost", "containers": []any{map[string]any{"name": "c", "image": "busybox:1.36"}}},
	})
	_, err = s.Client.CoreV1().Pods("team").Patch(ctx, "applied", types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "test"})
	if !apierrors.IsForbidden(err) {
		t.Errorf("apply-create of a pod of a missing account: %v, want 403", err)
	}
	body, _ = json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "applied"},
		"spec": map[string]any{"containers": []any{map[string]any{"name": "c", "image": "busybox:1.36"}}},
	})
	pod, err := s.Client.CoreV1().Pods("team").Patch(ctx, "applied", types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "test"})
	if err != nil {
		t.Fatal(err)
	}
	tokenVolume(t, pod)
	if pod.Spec.ServiceAccountName != "default" {
		t.Errorf("applied pod's account = %q", pod.Spec.ServiceAccountName)
	}

	// a namespace that does not exist is NamespaceLifecycle's 404, which runs first
	_, err = s.Client.CoreV1().Pods("nowhere").Create(ctx, testPod("web"), metav1.CreateOptions{})
	if !apierrors.IsNotFound(err) || err.Error() != `namespaces "nowhere" not found` {
		t.Errorf("pod in a missing namespace: %v, want 404", err)
	}
}

func TestServiceAccountAdmissionLeavesMirrorPodsAlone(t *testing.T) {
	s := startWithServiceAccountAdmission(t)
	ctx := context.Background()
	p := testPod("static-web")
	p.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "hash"}
	p.Spec.NodeName = "node-a"
	pod, err := s.Client.CoreV1().Pods("team").Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Spec.ServiceAccountName != "" || len(pod.Spec.Volumes) != 0 {
		t.Errorf("mirror pod changed: account %q, volumes %+v", pod.Spec.ServiceAccountName, pod.Spec.Volumes)
	}
	p = testPod("static-sa")
	p.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "hash"}
	p.Spec.NodeName = "node-a"
	p.Spec.ServiceAccountName = "default"
	_, err = s.Client.CoreV1().Pods("team").Create(ctx, p, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || err.Error() != `pods "static-sa" is forbidden: a mirror pod may not reference service accounts` {
		t.Errorf("mirror pod with an account: %v, want 403", err)
	}
}

// A pod whose account admission chose reads back as v1 spells it (serviceAccount mirrors
// serviceAccountName), so that a client's read-modify-write does not look like a spec change.
func TestPodWithDefaultedServiceAccountCanBeUpdated(t *testing.T) {
	s := startWithServiceAccountAdmission(t)
	ctx := context.Background()
	pods := s.Client.CoreV1().Pods("team")
	pod, err := pods.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Spec.ServiceAccountName != "default" || pod.Spec.DeprecatedServiceAccount != "default" {
		t.Errorf("serviceAccountName, serviceAccount = %q, %q; want default twice", pod.Spec.ServiceAccountName, pod.Spec.DeprecatedServiceAccount)
	}
	pod.Labels = map[string]string{"tier": "web"}
	if _, err := pods.Update(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Errorf("update of the pod as read: %v", err)
	}
}
