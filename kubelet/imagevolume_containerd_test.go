package kubelet_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/kubelet"
	"github.com/skiff-dev/skiff/kubelet/imagevolume"
	"github.com/skiff-dev/skiff/kubelet/kubelettest"
	"github.com/skiff-dev/skiff/kubelet/localcontainerd"
	"github.com/skiff-dev/skiff/kubelet/ociimage"
)

var _ kubelet.ImageVolumeMounter = (*imagevolume.Mounter)(nil)

// mountsUnder are the mount points of this host at or below dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}

// mountOf is the filesystem type and the per-mount options of the mount at dir.
func mountOf(t *testing.T, dir string) (fstype string, opts []string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 5 && f[4] == dir {
			if i := slices.Index(f, "-"); i > 0 && i+1 < len(f) {
				fstype = f[i+1]
			}
			return fstype, strings.Split(f[5], ",")
		}
	}
	return "", nil
}

func TestRealImageVolumeIsReadOnlyWithItsSubPathAndGoesWithItsPod(t *testing.T) {
	d := sharedContainerd.For(t)
	ctx := context.Background()
	// an image of data only, as upstream's kitten (no shell, nothing to run), in two layers,
	// the upper one replacing a file of the lower, so that the view is an overlay of both
	data := &ociimage.Image{Name: "skiff.local/image-volume-data:1", Below: []map[string]ociimage.File{{
		"etc":            {Dir: true, Mode: 0o755},
		"etc/os-release": {Data: []byte("NAME=\"Alpine Linux\"\n"), Mode: 0o644},
		"data.json":      {Data: []byte(`{"image": "replaced by the upper layer"}`), Mode: 0o644},
	}}}
	if err := data.Add("data.json", ociimage.File{Data: []byte(`{"image": "kitten.jpg"}`), Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	var tarball bytes.Buffer
	if err := data.WriteOCI(&tarball); err != nil {
		t.Fatal(err)
	}
	if _, err := localcontainerd.Import(ctx, d.Socket, &tarball); err != nil {
		t.Fatal(err)
	}
	views, err := imagevolume.New(d.Socket, "")
	if err != nil {
		t.Fatal(err)
	}
	defer views.Close()
	root := t.TempDir()

	// a view left by a pod that went while no kubelet ran: the kubelet removes it when it starts
	left := imagevolume.View{Pod: "a-pod-that-is-gone", Volume: "data", Dir: filepath.Join(root, "pods", "a-pod-that-is-gone", "volumes", "kubernetes.io~image", "data")}
	if err := views.Mount(ctx, left, data.Name); err != nil {
		t.Fatal(err)
	}
	if got := mountsUnder(t, left.Dir); len(got) != 1 {
		t.Fatalf("left view mounted at %v", got)
	}

	s := apiservertest.Start(t)
	n := kubelettest.StartNode(t, s.Client, d, "node-real", func(c *kubelet.Config) { c.RootDir = root })
	noViews := func(what string) {
		t.Helper()
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			got, err := views.Views(ctx)
			return err == nil && len(got) == 0 && len(mountsUnder(t, filepath.Join(root, "pods"))) == 0, nil
		})
		if err != nil {
			got, _ := views.Views(ctx)
			t.Fatalf("%s: views %v, mounts %v", what, got, mountsUnder(t, filepath.Join(root, "pods")))
		}
	}
	noViews("the view of the pod that is gone")

	pod := kubelettest.BusyboxPod("image-volume", `cat /volume/data.json; echo; cat /etc-of-image/os-release
if (echo x > /volume/written) 2>/dev/null; then echo writable; else echo read-only; fi
sleep 3600`)
	pod.Spec.Volumes = []v1.Volume{{Name: "volume", VolumeSource: v1.VolumeSource{
		Image: &v1.ImageVolumeSource{Reference: data.Name, PullPolicy: v1.PullIfNotPresent}}}}
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{
		{Name: "volume", MountPath: "/volume"},
		{Name: "volume", MountPath: "/etc-of-image", SubPath: "etc"},
	}
	pod = n.CreatePod(pod)
	n.WaitPod(pod, "running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	want := "{\"image\": \"kitten.jpg\"}\nNAME=\"Alpine Linux\"\nread-only\n"
	var logs string
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		_, logs = n.KubeletGet("/containerLogs/default/image-volume/main")
		return strings.Contains(logs, "writable") || strings.Contains(logs, "read-only"), nil
	})
	if err != nil || logs != want {
		t.Fatalf("the container printed %q, want %q", logs, want)
	}
	got, err := views.Views(ctx)
	if err != nil || len(got) != 1 || got[0].Pod != pod.UID || got[0].Volume != "volume" {
		t.Fatalf("views while the pod runs: %v %v", got, err)
	}
	if fstype, opts := mountOf(t, got[0].Dir); fstype != "overlay" || !slices.Contains(opts, "ro") || !slices.Contains(opts, "noexec") {
		t.Errorf("the view is a %q mount with %v, want an overlay of the layers, ro and noexec", fstype, opts)
	}

	if err := s.Client.CoreV1().Pods("default").Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	noViews("after the pod was deleted")
}
