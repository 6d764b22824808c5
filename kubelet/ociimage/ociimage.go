// Package ociimage builds container images as OCI image layout tarballs (oci-layout,
// index.json, blobs/sha256/...), the form containerd imports without a registry. Its one
// rootfs is a static busybox with every applet linked, which is all the kubelet's tests and
// `skiff up`'s pause image need; Add puts more files in, such as a test's own static
// program. Registry serves such tarballs to pulls, as a registry mirror.
//
// It must never reach a network: images are built from files on this host, and the Registry
// only answers.
package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	goruntime "runtime"
	"slices"
	"sort"
	"strings"
	"time"
)

// BusyboxPath is where Debian's busybox-static installs its binary.
const BusyboxPath = "/bin/busybox"

// File is one entry of an image's single layer.
type File struct {
	// Data is a regular file's content; ignored for directories and links.
	Data []byte
	Mode int64
	// Dir makes the entry a directory; Link makes it a symlink to Link.
	Dir  bool
	Link string
}

// Image is an image with one layer, or with Below under it.
type Image struct {
	// Name is its reference, such as "skiff.local/busybox:1" (docker.io/library/ is not
	// implied: CRI matches what is given).
	Name  string
	Files map[string]File
	// Below are more layers under Files, the lowest first, each a map as Files (its parent
	// directories listed too); WriteOCI writes them, WriteDocker refuses them.
	Below      []map[string]File
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
}

// Busybox is an image of a static busybox with every applet as /bin/<applet>, /etc/passwd
// and /etc/group for root and nobody, and the usual empty directories. cmd is its default
// command (nil: sh).
func Busybox(name string, cmd ...string) (*Image, error) {
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, fmt.Errorf("busybox-static is needed to build images (apt-get install busybox-static): %w", err)
	}
	out, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list: %w", err)
	}
	files := map[string]File{
		"bin/busybox": {Data: bin, Mode: 0o755},
		"etc/passwd":  {Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"), Mode: 0o644},
		"etc/group":   {Data: []byte("root:x:0:\nnobody:x:65534:\n"), Mode: 0o644},
	}
	for _, d := range []string{"bin", "etc", "dev", "proc", "sys", "root", "var", "usr", "usr/bin"} {
		files[d] = File{Dir: true, Mode: 0o755}
	}
	files["tmp"] = File{Dir: true, Mode: 0o1777}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" {
			continue
		}
		files["bin/"+applet] = File{Link: "busybox", Mode: 0o777}
	}
	if len(cmd) == 0 {
		cmd = []string{"sh"}
	}
	return &Image{
		Name: name, Files: files, Cmd: cmd,
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	}, nil
}

// Add puts f at p (a path in the image, relative or absolute) and makes any parent directory
// p lacks, 0755 as Busybox's. A file already at p is replaced.
func (img *Image) Add(p string, f File) error {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if p == "" {
		return errors.New("cannot add the image's root")
	}
	if img.Files == nil {
		img.Files = map[string]File{}
	}
	for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
		if parent, ok := img.Files[dir]; ok && !parent.Dir {
			return fmt.Errorf("adding %s: %s is not a directory", p, dir)
		} else if !ok {
			img.Files[dir] = File{Dir: true, Mode: 0o755}
		}
	}
	img.Files[p] = f
	return nil
}

// digest is the sha256 digest string of b.
func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// layer is the image's top layer (Files) as a tar (for its diff ID) and its gzip (the blob).
func (img *Image) layer() (raw, gz []byte, err error) { return layerOf(img.Files) }

// layerOf is the layer of files as a tar and its gzip.
func layerOf(files map[string]File) (raw, gz []byte, err error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names) // parents before children, and a reproducible layer
	epoch := time.Unix(0, 0)
	for _, n := range names {
		f := files[n]
		h := &tar.Header{Name: n, Mode: f.Mode, ModTime: epoch, Format: tar.FormatPAX}
		switch {
		case f.Dir:
			h.Typeflag, h.Name = tar.TypeDir, n+"/"
		case f.Link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.Link
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Data); err != nil {
				return nil, nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, nil, err
	}
	raw = buf.Bytes()
	var zbuf bytes.Buffer
	zw := gzip.NewWriter(&zbuf)
	if _, err := zw.Write(raw); err != nil {
		return nil, nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, nil, err
	}
	return raw, zbuf.Bytes(), nil
}

// WriteOCI writes the image as an OCI image layout tarball, with its name in index.json's
// io.containerd.image.name annotation, as containerd's import reads it.
func (img *Image) WriteOCI(w io.Writer) error {
	if img.Name == "" {
		return errors.New("image has no name")
	}
	var raws, gzs [][]byte
	var layers []map[string]any
	for _, files := range append(slices.Clone(img.Below), img.Files) {
		raw, gz, err := layerOf(files)
		if err != nil {
			return err
		}
		raws, gzs = append(raws, raw), append(gzs, gz)
		layers = append(layers, map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(gz), "size": len(gz)})
	}
	config, err := img.config(raws...)
	if err != nil {
		return err
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": len(config)},
		"layers":        layers,
	})
	if err != nil {
		return err
	}
	tag := img.Name[strings.LastIndex(img.Name, ":")+1:]
	if strings.Contains(tag, "/") || !strings.Contains(img.Name, ":") {
		tag = "latest"
	}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests": []map[string]any{{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(manifest), "size": len(manifest),
			"platform":    map[string]string{"architecture": goruntime.GOARCH, "os": "linux"},
			"annotations": map[string]string{"io.containerd.image.name": img.Name, "org.opencontainers.image.ref.name": tag},
		}},
	})
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	entries := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
		{blobPath(manifest), manifest},
		{blobPath(config), config},
	}
	for _, gz := range gzs {
		entries = append(entries, struct {
			name string
			data []byte
		}{blobPath(gz), gz})
	}
	if err := tw.WriteHeader(&tar.Header{Name: "blobs/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "blobs/sha256/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
		return err
	}
	for _, e := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(e.data))}); err != nil {
			return err
		}
		if _, err := tw.Write(e.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// config is the image's config blob (the same JSON in both formats) for its layers raws,
// the lowest first.
func (img *Image) config(raws ...[]byte) ([]byte, error) {
	diffIDs := make([]string, 0, len(raws))
	var history []map[string]any
	for _, raw := range raws {
		diffIDs = append(diffIDs, digest(raw))
		history = append(history, map[string]any{"created": "1970-01-01T00:00:00Z", "created_by": "skiff ociimage"})
	}
	return json.Marshal(map[string]any{
		"architecture": goruntime.GOARCH,
		"os":           "linux",
		"created":      "1970-01-01T00:00:00Z",
		"config": map[string]any{
			"Entrypoint": img.Entrypoint, "Cmd": img.Cmd, "Env": img.Env, "WorkingDir": img.WorkingDir,
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": diffIDs},
		"history": history,
	})
}

// WriteDocker writes the image as `docker save` does (the Docker archive format):
// manifest.json with the name in RepoTags, the config as <hex>.json and the uncompressed
// layer as <hex>/layer.tar.
func (img *Image) WriteDocker(w io.Writer) error {
	if img.Name == "" {
		return errors.New("image has no name")
	}
	if len(img.Below) > 0 {
		return errors.New("WriteDocker writes images of one layer only")
	}
	raw, _, err := img.layer()
	if err != nil {
		return err
	}
	config, err := img.config(raw)
	if err != nil {
		return err
	}
	configName := strings.TrimPrefix(digest(config), "sha256:") + ".json"
	layerDir := strings.TrimPrefix(digest(raw), "sha256:")
	manifest, err := json.Marshal([]map[string]any{{
		"Config": configName, "RepoTags": []string{img.Name}, "Layers": []string{layerDir + "/layer.tar"},
	}})
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(&tar.Header{Name: layerDir + "/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
		return err
	}
	for _, e := range []struct {
		name string
		data []byte
	}{
		{configName, config},
		{layerDir + "/layer.tar", raw},
		{"manifest.json", manifest},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(e.data))}); err != nil {
			return err
		}
		if _, err := tw.Write(e.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

func blobPath(b []byte) string {
	return path.Join("blobs", "sha256", strings.TrimPrefix(digest(b), "sha256:"))
}

// WriteFile writes the image's OCI tarball to path.
func (img *Image) WriteFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := img.WriteOCI(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
