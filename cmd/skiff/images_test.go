package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-dev/skiff/kubelet/localcontainerd"
	"github.com/skiff-dev/skiff/kubelet/ociimage"
)

// requireContainerd skips a test that needs a containerd of its own, saying why it cannot
// have one here.
func requireContainerd(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("tests that start containerd are skipped with -short")
	}
	if m := ownContainerdMissing(); m != "" {
		t.Skipf("containerd cannot run here: %s; .ci/kubelet-deps.sh installs what it needs", m)
	}
}

// shortTempDir is a temporary directory short enough for a containerd socket beneath it
// (t.TempDir's names grow with the test's name), removed at the end of the test.
func shortTempDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// writeBusybox writes a busybox image named name into path, as an OCI layout or, with
// docker, as `docker save` writes it.
func writeBusybox(t *testing.T, path, name string, docker bool) {
	t.Helper()
	img, err := ociimage.Busybox(name)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if docker {
		err = img.WriteDocker(f)
	} else {
		err = img.WriteOCI(f)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// criImages is every image name the CRI at endpoint lists, as the kubelet sees them.
func criImages(t *testing.T, endpoint string) []string {
	t.Helper()
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := runtimeapi.NewImageServiceClient(conn).ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		t.Fatalf("CRI ListImages: %v", err)
	}
	var names []string
	for _, img := range resp.Images {
		names = append(names, img.RepoTags...)
	}
	return names
}

func TestImagesImportLoadsOCIAndDockerArchivesIntoSkiffUpsContainerd(t *testing.T) {
	requireContainerd(t)
	dataDir := shortTempDir(t, "skiff-img-")
	ctx := context.Background()
	d, err := localcontainerd.Start(ctx, filepath.Join(dataDir, "containerd"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })

	images := t.TempDir()
	oci := filepath.Join(images, "oci.tar")
	docker := filepath.Join(images, "docker.tar")
	writeBusybox(t, oci, "skiff.local/from-oci:1", false)
	// a short name, as `docker save busybox-docker:1` records it
	writeBusybox(t, docker, "busybox-docker:1", true)

	// found through --data-dir alone, as a user of `skiff up --data-dir` runs it
	var out bytes.Buffer
	if err := runImagesImport(ctx, &imagesImportOptions{dataDir: dataDir}, []string{oci, docker}, &out); err != nil {
		t.Fatalf("skiff images import: %v", err)
	}
	want := "skiff.local/from-oci:1\ndocker.io/library/busybox-docker:1\n"
	if out.String() != want {
		t.Errorf("skiff images import printed %q, want %q", out.String(), want)
	}
	listed := criImages(t, d.Endpoint())
	for _, name := range []string{"skiff.local/from-oci:1", "docker.io/library/busybox-docker:1"} {
		if !slices.Contains(listed, name) {
			t.Errorf("CRI ListImages has no %s after the import: %v", name, listed)
		}
	}

	// the same through an explicit endpoint, and gzip-compressed
	gz := filepath.Join(images, "again.tar.gz")
	img, err := ociimage.Busybox("skiff.local/gzipped:1")
	if err != nil {
		t.Fatal(err)
	}
	var tarball bytes.Buffer
	if err := img.WriteOCI(&tarball); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gz, gzipBytes(t, tarball.Bytes()), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := runImagesImport(ctx, &imagesImportOptions{runtimeEndpoint: d.Endpoint()}, []string{gz}, &out); err != nil {
		t.Fatalf("skiff images import --container-runtime-endpoint: %v", err)
	}
	if out.String() != "skiff.local/gzipped:1\n" {
		t.Errorf("printed %q", out.String())
	}
	if listed := criImages(t, d.Endpoint()); !slices.Contains(listed, "skiff.local/gzipped:1") {
		t.Errorf("CRI ListImages has no skiff.local/gzipped:1: %v", listed)
	}
}

func TestImagesImportSaysWhatIsWrong(t *testing.T) {
	dir := t.TempDir()
	notTar := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notTar, []byte("these are not the layers you are looking for\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	plainTar := filepath.Join(dir, "plain.tar")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "hello.txt", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2})
	tw.Write([]byte("hi"))
	tw.Close()
	if err := os.WriteFile(plainTar, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	image := filepath.Join(dir, "image.tar")
	img := &ociimage.Image{Name: "skiff.local/tiny:1", Files: map[string]ociimage.File{"etc": {Dir: true, Mode: 0o755}}}
	if err := img.WriteFile(image); err != nil {
		t.Fatal(err)
	}
	nowhere := filepath.Join(dir, "no-cluster")

	for _, tc := range []struct {
		name  string
		o     imagesImportOptions
		files []string
		want  []string
	}{
		{"missing file", imagesImportOptions{dataDir: nowhere}, []string{image, filepath.Join(dir, "typo.tar")},
			[]string{filepath.Join(dir, "typo.tar") + ": no such file"}},
		{"not a tar", imagesImportOptions{dataDir: nowhere}, []string{notTar},
			[]string{notTar, "not an image tarball"}},
		{"a tar of no image", imagesImportOptions{dataDir: nowhere}, []string{plainTar},
			[]string{plainTar, "not an image tarball", "manifest.json"}},
		{"no skiff up", imagesImportOptions{dataDir: nowhere}, []string{image},
			[]string{"containerd is not running at " + filepath.Join(nowhere, "containerd", "containerd.sock"), "start `skiff up --data-dir " + nowhere + "` or give --container-runtime-endpoint"}},
		{"no containerd at the endpoint", imagesImportOptions{runtimeEndpoint: "unix://" + filepath.Join(dir, "c.sock")}, []string{image},
			[]string{"containerd is not running at " + filepath.Join(dir, "c.sock")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := runImagesImport(context.Background(), &tc.o, tc.files, &out)
			if err == nil {
				t.Fatalf("no error; printed %q", out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if out.Len() != 0 {
				t.Errorf("printed %q though nothing was imported", out.String())
			}
		})
	}
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
