package localcontainerd

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-dev/skiff/kubelet/ociimage"
)

func TestParseRegistryMirror(t *testing.T) {
	for in, want := range map[string]RegistryMirror{
		"docker.io=http://127.0.0.1:5000":         {Registry: "docker.io", Endpoint: "http://127.0.0.1:5000"},
		"*=https://mirror.example:8443/prefix":    {Registry: "*", Endpoint: "https://mirror.example:8443/prefix"},
		"registry.k8s.io=http://10.0.0.1":         {Registry: "registry.k8s.io", Endpoint: "http://10.0.0.1"},
		"localhost:5000=http://127.0.0.1:5001/v2": {Registry: "localhost:5000", Endpoint: "http://127.0.0.1:5001/v2"},
	} {
		got, err := ParseRegistryMirror(in)
		if err != nil || got != want {
			t.Errorf("ParseRegistryMirror(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "docker.io", "=http://x", "docker.io=", "docker.io=ftp://x", "docker.io/library=http://x", "docker.io=127.0.0.1:5000"} {
		if _, err := ParseRegistryMirror(bad); err == nil {
			t.Errorf("ParseRegistryMirror(%q) accepted it", bad)
		}
	}
}

// A pull of an image no registry could serve here succeeds through a mirror: "*" sends
// every registry's pulls to it, a named registry only its own.
func TestPullThroughRegistryMirror(t *testing.T) {
	if testing.Short() {
		t.Skip("starts containerd")
	}
	if m := Missing(); m != "" {
		t.Skip("containerd cannot run here: " + m)
	}
	if os.Geteuid() != 0 {
		t.Skip("containerd needs root")
	}
	registry := ociimage.NewRegistry()
	for _, name := range []string{"registry.k8s.io/e2e-test-images/busybox:1.37.0-2", "docker.io/library/busybox:latest", "quay.io/skiff/only-mirrored-by-name:1"} {
		img, err := ociimage.Busybox(name)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := img.WriteOCI(&buf); err != nil {
			t.Fatal(err)
		}
		if _, err := registry.Load(&buf); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(registry)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "skiff-mirror-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	d, err := Start(ctx, dir, RegistryMirror{Registry: "*", Endpoint: srv.URL}, RegistryMirror{Registry: "quay.io", Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := d.Shutdown(context.Background(), dir); err != nil {
			t.Error(err)
		}
	}()
	if _, err := os.Stat(filepath.Join(dir, "certs.d", "_default", "hosts.toml")); err != nil {
		t.Fatal(err)
	}

	conn, err := grpc.NewClient("unix://"+d.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	images := runtimeapi.NewImageServiceClient(conn)
	for _, name := range []string{"registry.k8s.io/e2e-test-images/busybox:1.37.0-2", "busybox", "quay.io/skiff/only-mirrored-by-name:1"} {
		resp, err := images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: name}})
		if err != nil {
			t.Errorf("pull %s through the mirror: %v", name, err)
			continue
		}
		status, err := images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: resp.ImageRef}})
		if err != nil || status.Image == nil {
			t.Errorf("image %s pulled as %s is not there: %v", name, resp.ImageRef, err)
		}
	}
	// what the mirror does not have stays unpullable, with the registry's own refusal
	if _, err := images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "registry.k8s.io/not-mirrored:1"}}); err == nil {
		t.Error("an image the mirror lacks was pulled")
	}
}
