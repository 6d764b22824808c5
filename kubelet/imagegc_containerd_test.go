package kubelet_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/kubelet"
	"github.com/skiff-dev/skiff/kubelet/cri"
	"github.com/skiff-dev/skiff/kubelet/kubelettest"
	"github.com/skiff-dev/skiff/kubelet/localcontainerd"
	"github.com/skiff-dev/skiff/kubelet/ociimage"
)

func TestRealImageGCRemovesUnusedImagesButNotTheRunningPodsNorTheSandboxImage(t *testing.T) {
	if testing.Short() {
		t.Skip("real containerd tests are skipped with -short")
	}
	if m := kubelettest.Missing(); m != "" {
		t.Skip(m)
	}
	// a containerd of the test's own: the collector removes what the package's other tests
	// may be about to run
	ctx := context.Background()
	d, err := kubelettest.StartContainerd(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("stop containerd: %v", err)
		}
	})
	unused := []string{"skiff.local/gc-a:1", "skiff.local/gc-b:1", "skiff.local/gc-c:1"}
	for i, name := range unused {
		img, err := ociimage.Busybox(name, "/bin/echo", strings.Repeat("x", i+1)) // a config, and so an ID, of its own
		if err != nil {
			t.Fatal(err)
		}
		var tarball bytes.Buffer
		if err := img.WriteOCI(&tarball); err != nil {
			t.Fatal(err)
		}
		if _, err := localcontainerd.Import(ctx, d.Socket, &tarball); err != nil {
			t.Fatal(err)
		}
	}
	rt, err := cri.Dial(d.Endpoint(), cri.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	imageNames := func() []string {
		images, err := rt.ListImages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, img := range images {
			names = append(names, img.RepoTags...)
		}
		slices.Sort(names)
		return names
	}
	if got := imageNames(); len(got) != 5 {
		t.Fatalf("images before: %v", got)
	}

	// the pod runs first, under a kubelet that does not collect yet; then a kubelet that
	// collects at once takes it over, so that its image is in use from the first round
	s := apiservertest.Start(t)
	root := t.TempDir()
	first := kubelettest.StartNode(t, s.Client, d, "node-real", func(c *kubelet.Config) { c.RootDir = root })
	pod := first.CreatePod(kubelettest.BusyboxPod("user", "sleep 3600"))
	first.WaitPod(pod, "ready", kubelettest.PodReady)
	first.Stop()
	// on the real image filesystem, fuller than 1%: every unused image old enough goes
	n := kubelettest.StartNode(t, s.Client, d, "node-real", func(c *kubelet.Config) {
		c.RootDir = root
		c.ImageGC = kubelet.ImageGCPolicy{HighThresholdPercent: 1, LowThresholdPercent: 1, MinAge: time.Nanosecond}
		c.ImageGCPeriod = 200 * time.Millisecond
	})

	want := []string{kubelettest.BusyboxImage, localcontainerd.PauseImage}
	slices.Sort(want)
	var got []string
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		got = imageNames()
		return slices.Equal(got, want), nil
	}); err != nil {
		t.Fatalf("images %v, want only %v", got, want)
	}
	n.WaitPod(pod, "still ready", kubelettest.PodReady)
	// what is left cannot bring the disk below 1%: the collector says so on the Node
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		events, err := s.Client.CoreV1().Events("default").List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("involvedObject.name", "node-real").String(),
		})
		if err != nil {
			return false, nil
		}
		return slices.ContainsFunc(events.Items, func(e v1.Event) bool {
			return e.InvolvedObject.Kind == "Node" && e.Reason == "FreeDiskSpaceFailed" &&
				strings.HasPrefix(e.Message, "Failed to garbage collect required amount of images. Attempted to free ")
		}), nil
	}); err != nil {
		t.Error("no FreeDiskSpaceFailed event on the Node")
	}
	if _, metrics := n.KubeletGet("/metrics"); !strings.Contains(metrics, `kubelet_image_garbage_collected_total{reason="space"} 3`) {
		t.Errorf("metrics lack three images collected for space:\n%s", metrics)
	}
}
