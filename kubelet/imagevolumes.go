package kubelet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-dev/skiff/kubelet/imagevolume"
)

// ImageVolumeMounter mounts the images of image volumes (KEP-4639) as read-only directories
// of the node, for a runtime whose CRI cannot mount them itself (containerd before 2.1 ignores
// CRI's Mount.Image). kubelet/imagevolume's Mounter is the one for containerd.
type ImageVolumeMounter interface {
	// Mount makes view.Dir show the root filesystem of the local image (a name or ID CRI
	// knows) read-only; a view already mounted there is left as it is.
	Mount(ctx context.Context, view imagevolume.View, image string) error
	// Unmount unmounts view.Dir and removes the view; what is already gone is no error.
	Unmount(ctx context.Context, view imagevolume.View) error
	// Views lists every view Mount made and Unmount has not removed.
	Views(ctx context.Context) ([]imagevolume.View, error)
}

// criMountsImages is whether the runtime's CRI mounts image volumes itself (CRI's
// Mount.Image): containerd from 2.1 on, and any other runtime (upstream's assumption).
func criMountsImages(version *runtimeapi.VersionResponse) bool {
	if version.GetRuntimeName() != "containerd" {
		return true
	}
	parts := strings.SplitN(strings.TrimPrefix(version.GetRuntimeVersion(), "v"), ".", 3)
	if len(parts) < 2 {
		return true
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return true
	}
	return major > 2 || (major == 2 && minor >= 1)
}

// setUpImageVolumes pulls the image of each image volume of the pod as its pullPolicy says,
// with upstream's events (about the pod) and the waiting reasons of the containers that mount
// it, then, where the kubelet mounts images itself, mounts a read-only view of it. ok is
// false when the pod's containers cannot start yet; wait is when to try again.
func (k *Kubelet) setUpImageVolumes(ctx context.Context, pod *v1.Pod, sandbox *runtimeapi.PodSandbox, state *podState) (wait time.Duration, ok bool) {
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		if v.Image == nil {
			continue
		}
		ref, wait, ok := k.pullImage(ctx, pod, v.Image.Reference, v.Image.PullPolicy, "", containersMounting(pod, v.Name), sandbox, state)
		if !ok {
			return wait, false
		}
		if err := k.volumes.setUpImage(ctx, pod, v, ref); err != nil {
			k.recorder.Eventf(pod, v1.EventTypeWarning, "FailedMount", "MountVolume.SetUp failed for volume %q : %v", v.Name, err)
			return 2 * time.Second, false
		}
	}
	return 0, true
}

// containersMounting names the containers of the pod that mount the volume name.
func containersMounting(pod *v1.Pod, name string) []string {
	var out []string
	each := func(c *v1.Container) {
		for _, vm := range c.VolumeMounts {
			if vm.Name == name {
				out = append(out, c.Name)
				return
			}
		}
	}
	for i := range pod.Spec.InitContainers {
		each(&pod.Spec.InitContainers[i])
	}
	for i := range pod.Spec.Containers {
		each(&pod.Spec.Containers[i])
	}
	return out
}

// setUpImage records an image volume whose image (imageRef, its ID) is present; where the
// kubelet mounts images itself, it mounts the view at the volume's directory first.
func (m *volumeManager) setUpImage(ctx context.Context, pod *v1.Pod, v *v1.Volume, imageRef string) error {
	if !m.enabled() {
		return nil
	}
	vol := mountedVolume{image: imageRef}
	if mounter := m.k.imageViews; mounter != nil {
		view := imagevolume.View{Pod: pod.UID, Volume: v.Name, Dir: m.volumeDir(pod.UID, v)}
		// the name pulled first: CRI's image ID is not a name containerd knows for an
		// imported image
		err := mounter.Mount(ctx, view, v.Image.Reference)
		if err != nil {
			err = mounter.Mount(ctx, view, imageRef)
		}
		if err != nil {
			return err
		}
		vol.path = view.Dir
	}
	m.record(pod, v.Name, vol)
	return nil
}

// imageMount is the CRI mount of an image volume into a container: a read-only bind of the
// view the kubelet mounted (of subPath in it), or CRI's image mount where the runtime does it.
func (m *volumeManager) imageMount(pod *v1.Pod, vol *v1.Volume, vm *v1.VolumeMount, subPath string) (*runtimeapi.Mount, error) {
	m.mu.Lock()
	var mv mountedVolume
	if p := m.mounted[pod.UID]; p != nil {
		mv = p.volumes[vol.Name]
	}
	m.mu.Unlock()
	if mv.image == "" {
		return nil, fmt.Errorf("image volume %q is not set up", vol.Name)
	}
	if err := checkSubPath(subPath); err != nil {
		return nil, err
	}
	if mv.path == "" {
		return &runtimeapi.Mount{
			ContainerPath: vm.MountPath, Readonly: true, ImageSubPath: subPath,
			Image: &runtimeapi.ImageSpec{Image: mv.image, UserSpecifiedImage: vol.Image.Reference},
		}, nil
	}
	host, err := imageSubPath(mv.path, subPath)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.Mount{ContainerPath: vm.MountPath, HostPath: host, Readonly: true}, nil
}

// checkSubPath is prepareSubPath's check of a subPath's words.
func checkSubPath(subPath string) error {
	if filepath.IsAbs(subPath) {
		return fmt.Errorf("error SubPath `%s` must not be an absolute path", subPath)
	}
	for _, part := range strings.Split(filepath.ToSlash(subPath), "/") {
		if part == ".." {
			return fmt.Errorf("unable to provision SubPath `%s`: must not contain '..'", subPath)
		}
	}
	return nil
}

// imageSubPath is subPath inside the image view at root, which must exist (an image is
// read-only: nothing is made) and be reached without a symbolic link, which the host would
// resolve outside the image.
func imageSubPath(root, subPath string) (string, error) {
	host := filepath.Clean(root)
	for _, part := range strings.Split(filepath.ToSlash(subPath), "/") {
		if part == "" || part == "." {
			continue
		}
		host = filepath.Join(host, part)
		info, err := os.Lstat(host)
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("subPath %q does not exist in the image", subPath)
		}
		if err != nil {
			return "", err
		}
		if info.Mode()&os.ModeSymlink != 0 {
			return "", fmt.Errorf("subPath %q goes through a symbolic link of the image", subPath)
		}
	}
	return host, nil
}

// removeImageViews unmounts and removes this kubelet's image views (those under its root dir)
// of the pod uid ("": of every pod the node no longer has: no worker, not in the informer).
func (m *volumeManager) removeImageViews(ctx context.Context, uid types.UID) {
	mounter := m.k.imageViews
	if mounter == nil {
		return
	}
	views, err := mounter.Views(ctx)
	if err != nil {
		m.k.log.Warn("list image volume views", "err", err)
		return
	}
	pods := filepath.Join(m.k.cfg.RootDir, "pods") + string(filepath.Separator)
	for _, view := range views {
		switch {
		case !strings.HasPrefix(view.Dir, pods):
			continue // another kubelet's, on the same runtime
		case uid != "" && view.Pod != uid:
			continue
		case uid == "":
			if m.k.workers.has(view.Pod) {
				continue
			}
			if _, err := m.k.podByUID(view.Pod); err == nil {
				continue
			}
			m.k.log.Info("removing an image volume of a pod that is gone", "uid", view.Pod, "volume", view.Volume)
		}
		if err := mounter.Unmount(ctx, view); err != nil {
			m.k.log.Warn("remove image volume view", "uid", view.Pod, "volume", view.Volume, "err", err)
		}
	}
}
