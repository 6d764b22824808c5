// Package imagevolume mounts images for a pod's image volumes (spec.volumes[].image) on a
// containerd whose CRI cannot: containerd before 2.1 ignores CRI's Mount.Image. The kubelet
// pulls the image through CRI as usual; this package then asks containerd (namespace k8s.io,
// the one CRI uses) for a read-only view snapshot of the image's root filesystem, mounts it at a
// directory of the pod under the kubelet's root dir, and the container gets an ordinary bind
// mount of that directory.
//
// Each view is a snapshot whose key and labels name its pod, volume and directory, so that a
// restarted kubelet can find and remove the views of pods that are gone. It must never touch a
// snapshot it did not make (their keys start with KeyPrefix).
package imagevolume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/moby/sys/mountinfo"
	"github.com/opencontainers/image-spec/identity"
	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"
)

// Namespace is containerd's namespace for CRI's images.
const Namespace = "k8s.io"

// KeyPrefix starts the key of every view snapshot this package makes.
const KeyPrefix = "skiff-image-volume/"

const (
	// labelPod, labelVolume and labelDir name the view's pod UID, volume and directory.
	labelPod    = "skiff.dev/image-volume-pod"
	labelVolume = "skiff.dev/image-volume-name"
	labelDir    = "skiff.dev/image-volume-dir"
	// labelGCRoot keeps containerd's garbage collector off a view no lease holds.
	labelGCRoot = "containerd.io/gc.root"
)

// View is the image of one image volume of one pod, mounted at Dir.
type View struct {
	Pod    types.UID
	Volume string
	Dir    string
}

// key is the view's snapshot key.
func (v View) key() string { return KeyPrefix + string(v.Pod) + "/" + v.Volume }

// Mounter makes and removes image views on one containerd.
type Mounter struct {
	client      *containerd.Client
	snapshotter string
}

// New connects to the containerd at socket. snapshotter is the one CRI unpacks images with
// ("" : overlayfs, containerd's default).
func New(socket, snapshotter string) (*Mounter, error) {
	if snapshotter == "" {
		snapshotter = "overlayfs"
	}
	client, err := containerd.New(socket, containerd.WithDefaultNamespace(Namespace), containerd.WithTimeout(5*time.Second))
	if err != nil {
		return nil, err
	}
	return &Mounter{client: client, snapshotter: snapshotter}, nil
}

// Close ends the connection.
func (m *Mounter) Close() error { return m.client.Close() }

// Mount makes view.Dir show the root filesystem of the local image named image, read-only,
// without exec, setuid or devices. A view already mounted there is left as it is.
func (m *Mounter) Mount(ctx context.Context, view View, image string) error {
	key, dir := view.key(), view.Dir
	ctx = namespaces.WithNamespace(ctx, Namespace)
	if mounted, err := mountinfo.Mounted(dir); err == nil && mounted {
		return nil
	}
	img, err := m.client.GetImage(ctx, image)
	if err != nil {
		return fmt.Errorf("image %q: %w", image, err)
	}
	if ok, err := img.IsUnpacked(ctx, m.snapshotter); err != nil {
		return fmt.Errorf("image %q: %w", image, err)
	} else if !ok {
		if err := img.Unpack(ctx, m.snapshotter); err != nil {
			return fmt.Errorf("unpack image %q: %w", image, err)
		}
	}
	diffIDs, err := img.RootFS(ctx)
	if err != nil {
		return fmt.Errorf("image %q: %w", image, err)
	}
	parent := identity.ChainID(diffIDs).String()
	sn := m.client.SnapshotService(m.snapshotter)
	mounts, err := sn.View(ctx, key, parent, snapshots.WithLabels(map[string]string{
		labelPod:    string(view.Pod),
		labelVolume: view.Volume,
		labelDir:    dir,
		labelGCRoot: time.Now().UTC().Format(time.RFC3339),
	}))
	if errdefs.IsAlreadyExists(err) {
		// a view made before, whose mount did not happen or is gone: mount it again, unless
		// it is a view of another image (the volume's image changed under the same key)
		var info snapshots.Info
		if info, err = sn.Stat(ctx, key); err == nil && info.Parent != parent {
			if err = sn.Remove(ctx, key); err == nil {
				return m.Mount(ctx, view, image)
			}
		}
		if err == nil {
			mounts, err = sn.Mounts(ctx, key)
		}
	}
	if err != nil {
		return fmt.Errorf("view of image %q: %w", image, err)
	}
	for i := range mounts {
		mounts[i].Options = append(mounts[i].Options, "ro", "noexec", "nosuid", "nodev")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := mount.All(mounts, dir); err != nil {
		return fmt.Errorf("mount the view of image %q at %s: %w", image, dir, err)
	}
	return nil
}

// Unmount unmounts view.Dir, removes the directory and the view. What is already gone is no
// error.
func (m *Mounter) Unmount(ctx context.Context, view View) error {
	key, dir := view.key(), view.Dir
	ctx = namespaces.WithNamespace(ctx, Namespace)
	if dir != "" {
		for {
			// a view may have been mounted twice (a mount raced a restart): unmount them all
			err := unix.Unmount(dir, unix.MNT_DETACH)
			if err != nil {
				if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
					return fmt.Errorf("unmount %s: %w", dir, err)
				}
				break
			}
		}
		if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := m.client.SnapshotService(m.snapshotter).Remove(ctx, key); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove view %s: %w", key, err)
	}
	return nil
}

// Views lists the views Mount made that Unmount has not removed.
func (m *Mounter) Views(ctx context.Context) ([]View, error) {
	ctx = namespaces.WithNamespace(ctx, Namespace)
	var views []View
	err := m.client.SnapshotService(m.snapshotter).Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if strings.HasPrefix(info.Name, KeyPrefix) {
			views = append(views, View{
				Pod: types.UID(info.Labels[labelPod]), Volume: info.Labels[labelVolume], Dir: info.Labels[labelDir],
			})
		}
		return nil
	})
	return views, err
}
