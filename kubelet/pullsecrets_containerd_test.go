package kubelet_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/kubelet"
	"github.com/skiff-dev/skiff/kubelet/kubelettest"
	"github.com/skiff-dev/skiff/kubelet/localcontainerd"
	"github.com/skiff-dev/skiff/kubelet/ociimage"
)

// TestRealPullFromRegistryThatWantsCredentials runs a registry that answers 401 without
// alice's password, as a private registry does, behind containerd's mirror of a registry host
// of its own: containerd hands the credentials the kubelet found in the pod's pull secret to
// the registry when it asks for them, and the image it pulled is for pods with the secret only.
func TestRealPullFromRegistryThatWantsCredentials(t *testing.T) {
	if testing.Short() {
		t.Skip("real containerd tests are skipped with -short")
	}
	if m := kubelettest.Missing(); m != "" {
		t.Skip(m)
	}
	const image = "private.skiff.test/team/app:1"
	registry := ociimage.NewRegistry()
	img, err := ociimage.Busybox(image)
	if err != nil {
		t.Fatal(err)
	}
	var tarball bytes.Buffer
	if err := img.WriteOCI(&tarball); err != nil {
		t.Fatal(err)
	}
	if _, err := registry.Load(&tarball); err != nil {
		t.Fatal(err)
	}
	var refused, admitted atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, pass, ok := r.BasicAuth(); !ok || user != "alice" || pass != "s3cret" {
			refused.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="skiff test registry"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		admitted.Add(1)
		registry.ServeHTTP(w, r)
	}))
	defer srv.Close()

	// a containerd of the test's own, mirroring the private registry's host
	ctx := context.Background()
	d, err := kubelettest.StartContainerd(ctx, localcontainerd.RegistryMirror{Registry: "private.skiff.test", Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("stop containerd: %v", err)
		}
	})
	s := apiservertest.Start(t)
	n := kubelettest.StartNode(t, s.Client, d, "node-private", func(c *kubelet.Config) { c.PodCIDR = "10.244.9.0/24" })
	createPullSecret(t, s.Client, "default", "registry", "private.skiff.test", "alice", "s3cret")

	// without the secret: the registry refuses the pull
	anonymous := kubelettest.BusyboxPod("anonymous", "sleep 3600")
	anonymous.Spec.Containers[0].Image = image
	anonymous = n.CreatePod(anonymous)
	got := n.WaitPod(anonymous, "in ErrImagePull", waitingFor("main", "ErrImagePull"))
	if msg := containerStatus(got, "main").State.Waiting.Message; !strings.Contains(msg, "401 Unauthorized") {
		t.Errorf("waiting message %q, want the registry's 401", msg)
	}
	if admitted.Load() != 0 {
		t.Fatalf("the registry let %d requests in without credentials", admitted.Load())
	}

	// with it: pulled and running
	with := kubelettest.BusyboxPod("with-secret", "sleep 3600")
	with.Spec.Containers[0].Image = image
	with.Spec.ImagePullSecrets = pullSecrets("registry")
	with = n.CreatePod(with)
	n.WaitPod(with, "running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	if admitted.Load() == 0 || refused.Load() == 0 {
		t.Errorf("registry: %d requests refused, %d admitted", refused.Load(), admitted.Load())
	}

	// the image is on the node now, but a pod without the secret may not use it: it pulls, and
	// the registry refuses it
	borrower := kubelettest.BusyboxPod("borrower", "sleep 3600")
	borrower.Spec.Containers[0].Image = image
	borrower = n.CreatePod(borrower)
	n.WaitPod(borrower, "in ErrImagePull", waitingFor("main", "ErrImagePull"))
}
