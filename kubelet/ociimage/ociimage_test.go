package ociimage

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"testing"
)

func TestWriteOCIIsAnImageLayoutNamingTheImage(t *testing.T) {
	img := &Image{Name: "skiff.local/test:2", Cmd: []string{"/hello"}, Files: map[string]File{
		"hello": {Data: []byte("#!/bin/sh\necho hi\n"), Mode: 0o755},
		"etc":   {Dir: true, Mode: 0o755},
	}}
	var buf bytes.Buffer
	if err := img.WriteOCI(&buf); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = b
	}
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout %q", files["oci-layout"])
	}
	var index struct {
		Manifests []struct {
			Digest      string
			Annotations map[string]string
		}
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 1 || index.Manifests[0].Annotations["io.containerd.image.name"] != "skiff.local/test:2" ||
		index.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "2" {
		t.Fatalf("index %+v", index)
	}
	manifest := files["blobs/sha256/"+index.Manifests[0].Digest[len("sha256:"):]]
	var m struct {
		Config struct{ Digest string }
		Layers []struct{ Digest string }
	}
	if err := json.Unmarshal(manifest, &m); err != nil {
		t.Fatalf("manifest %q: %v", manifest, err)
	}
	for _, d := range append([]string{m.Config.Digest}, m.Layers[0].Digest) {
		b, ok := files["blobs/sha256/"+d[len("sha256:"):]]
		if !ok || digest(b) != d {
			t.Errorf("blob %s missing or not matching its digest", d)
		}
	}
}

func TestBusyboxImageLinksEveryApplet(t *testing.T) {
	if _, err := os.Stat(BusyboxPath); err != nil {
		t.Skip("busybox-static is not installed (.ci/kubelet-deps.sh installs it)")
	}
	img, err := Busybox("skiff.local/busybox:1")
	if err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"bin/sh", "bin/sleep", "bin/wget", "bin/httpd"} {
		if img.Files[applet].Link != "busybox" {
			t.Errorf("%s is not a link to busybox: %+v", applet, img.Files[applet].Link)
		}
	}
	if len(img.Files["bin/busybox"].Data) == 0 {
		t.Error("no busybox binary")
	}
}

func TestAddPutsAFileWithItsParentDirectories(t *testing.T) {
	img := &Image{Name: "skiff.local/test:4", Files: map[string]File{"usr": {Dir: true, Mode: 0o700}}}
	if err := img.Add("/usr/local/bin/client", File{Data: []byte("\x7fELF"), Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	if f := img.Files["usr/local/bin/client"]; string(f.Data) != "\x7fELF" || f.Mode != 0o755 {
		t.Errorf("the file is %+v", f)
	}
	for _, dir := range []string{"usr/local", "usr/local/bin"} {
		if f := img.Files[dir]; !f.Dir || f.Mode != 0o755 {
			t.Errorf("%s is %+v, want a 0755 directory", dir, f)
		}
	}
	if f := img.Files["usr"]; f.Mode != 0o700 {
		t.Errorf("the existing usr became %+v", f)
	}
	if err := img.Add("usr/local/bin/client/x", File{}); err == nil {
		t.Error("a file was added under a regular file")
	}
}

func TestWriteDockerIsADockerSaveArchiveNamingTheImage(t *testing.T) {
	img := &Image{Name: "skiff.local/test:3", Cmd: []string{"/hello"}, Files: map[string]File{
		"hello": {Data: []byte("#!/bin/sh\necho hi\n"), Mode: 0o755},
	}}
	var buf bytes.Buffer
	if err := img.WriteDocker(&buf); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = b
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		t.Fatalf("manifest.json %q: %v", files["manifest.json"], err)
	}
	if len(manifest) != 1 || len(manifest[0].RepoTags) != 1 || manifest[0].RepoTags[0] != "skiff.local/test:3" || len(manifest[0].Layers) != 1 {
		t.Fatalf("manifest.json %+v", manifest)
	}
	var config struct {
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(files[manifest[0].Config], &config); err != nil {
		t.Fatalf("config %s: %v", manifest[0].Config, err)
	}
	layer, ok := files[manifest[0].Layers[0]]
	if !ok || len(config.RootFS.DiffIDs) != 1 || digest(layer) != config.RootFS.DiffIDs[0] {
		t.Errorf("layer %s missing or not the config's diff ID %v", manifest[0].Layers[0], config.RootFS.DiffIDs)
	}
}
