package kubelet

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// volumeManager puts a pod's volumes on disk under RootDir/pods/<uid>/volumes and names them
// to the runtime as bind mounts. configMap, secret, downwardAPI and projected volumes are
// written as upstream's atomic writer does (a timestamped directory behind a ..data link), so a
// container never sees half an update. Without a RootDir (simulated nodes) it does nothing.
type volumeManager struct {
	k *Kubelet
	// mounted are the volumes setUp has seen for each pod still on the node, by pod UID and
	// volume name, until cleanup: where they are, how their usage is measured, and what they
	// are reported in use as. The node status, /stats/summary and /metrics read it.
	mu      sync.Mutex
	mounted map[types.UID]*podVolumes
}

func newVolumeManager(k *Kubelet) *volumeManager {
	return &volumeManager{k: k, mounted: map[types.UID]*podVolumes{}}
}

func (m *volumeManager) enabled() bool { return m.k.cfg.RootDir != "" }

func (m *volumeManager) podDir(uid types.UID) string {
	return filepath.Join(m.k.cfg.RootDir, "pods", string(uid))
}

func (m *volumeManager) volumeDir(uid types.UID, v *v1.Volume) string {
	plugin := "kubernetes.io~empty-dir"
	switch {
	case v.ConfigMap != nil:
		plugin = "kubernetes.io~configmap"
	case v.Secret != nil:
		plugin = "kubernetes.io~secret"
	case v.DownwardAPI != nil:
		plugin = "kubernetes.io~downward-api"
	case v.Projected != nil:
		plugin = "kubernetes.io~projected"
	case v.Image != nil:
		plugin = "kubernetes.io~image"
	}
	return filepath.Join(m.podDir(uid), "volumes", plugin, v.Name)
}

// setUp makes every volume of the pod ready, refreshing the content of those that come from
// the API. Its error is upstream's FailedMount message.
func (m *volumeManager) setUp(ctx context.Context, pod *v1.Pod) error {
	if !m.enabled() {
		return nil
	}
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		if err := m.setUpVolume(ctx, pod, v); err != nil {
			return fmt.Errorf("MountVolume.SetUp failed for volume %q : %v", v.Name, err)
		}
	}
	return nil
}

func (m *volumeManager) setUpVolume(ctx context.Context, pod *v1.Pod, v *v1.Volume) error {
	dir := m.volumeDir(pod.UID, v)
	switch {
	case v.Image != nil:
		// its image is pulled, and mounted, once the sandbox is ready (setUpImageVolumes)
		return nil
	case v.HostPath != nil:
		// upstream's hostPath plugin measures nothing (MetricsNil)
		m.record(pod, v.Name, mountedVolume{path: v.HostPath.Path})
		return setUpHostPath(v.HostPath)
	case v.PersistentVolumeClaim != nil:
		claim, err := m.setUpClaim(ctx, pod.Namespace, v.PersistentVolumeClaim.ClaimName)
		if claim.inUse != "" || err == nil {
			// an attachable volume is in use from the moment the pod wants it, mounted or not
			m.record(pod, v.Name, claim)
		}
		return err
	case v.EmptyDir != nil:
		m.record(pod, v.Name, mountedVolume{path: dir, usage: usageDu})
		if _, err := os.Stat(dir); err == nil {
			return nil
		}
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return err
		}
		if v.EmptyDir.Medium == v1.StorageMediumMemory {
			opts := ""
			if v.EmptyDir.SizeLimit != nil && !v.EmptyDir.SizeLimit.IsZero() {
				opts = "size=" + strconv.FormatInt(v.EmptyDir.SizeLimit.Value(), 10)
			}
			if err := unix.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
				return fmt.Errorf("mount tmpfs: %w", err)
			}
		}
		if err := os.Chmod(dir, 0o777); err != nil {
			return err
		}
		return setVolumeOwnership(dir, podFSGroup(pod), false)
	case v.ConfigMap != nil, v.Secret != nil, v.DownwardAPI != nil, v.Projected != nil:
		m.record(pod, v.Name, mountedVolume{path: dir, usage: usageDu})
		files, err := m.volumeFiles(ctx, pod, v)
		if err != nil {
			return err
		}
		fsGroup := podFSGroup(pod)
		if fsGroup != nil {
			// what setVolumeOwnership would give the files, so that an unchanged volume
			// compares equal and is not written again
			for name, f := range files {
				f.mode |= readOnlyVolumeMask
				files[name] = f
			}
		}
		if err := writeAtomic(dir, files); err != nil {
			return err
		}
		return setVolumeOwnership(dir, fsGroup, true)
	}
	// other volume types are not supported on skiff nodes: an empty directory stands in
	return os.MkdirAll(dir, 0o755)
}

// Upstream's volume ownership masks: what an fsGroup may do with the files of a volume.
const (
	readWriteVolumeMask = os.FileMode(0o660)
	readOnlyVolumeMask  = os.FileMode(0o440)
	volumeDirExecMask   = os.FileMode(0o110)
)

func podFSGroup(pod *v1.Pod) *int64 {
	if pod.Spec.SecurityContext == nil {
		return nil
	}
	return pod.Spec.SecurityContext.FSGroup
}

// setVolumeOwnership gives the pod's fsGroup a volume, as upstream's SetVolumeOwnership: every
// file and directory under dir gets the group, group read (and write unless the volume is
// read-only) on top of its mode, and directories also group search and the setgid bit, so that
// what the pod creates there belongs to the group too. Symbolic links only change group.
func setVolumeOwnership(dir string, fsGroup *int64, readOnly bool) error {
	if fsGroup == nil {
		return nil
	}
	mask := readWriteVolumeMask
	if readOnly {
		mask = readOnlyVolumeMask
	}
	return filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(path, -1, int(*fsGroup)); err != nil {
			return err
		}
		if info.Mode()&os.ModeSymlink != 0 {
			return nil
		}
		mode := info.Mode() | mask
		if info.IsDir() {
			mode |= os.ModeSetgid | volumeDirExecMask
		}
		if mode == info.Mode() {
			return nil
		}
		return os.Chmod(path, mode)
	})
}

func setUpHostPath(h *v1.HostPathVolumeSource) error {
	t := v1.HostPathUnset
	if h.Type != nil {
		t = *h.Type
	}
	st, err := os.Stat(h.Path)
	switch t {
	case v1.HostPathDirectoryOrCreate:
		if os.IsNotExist(err) {
			return os.MkdirAll(h.Path, 0o755)
		}
	case v1.HostPathFileOrCreate:
		if os.IsNotExist(err) {
			if err := os.MkdirAll(filepath.Dir(h.Path), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(h.Path, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			return f.Close()
		}
	case v1.HostPathDirectory:
		if err != nil || !st.IsDir() {
			return fmt.Errorf("hostPath type check failed: %s is not a directory", h.Path)
		}
	case v1.HostPathFile:
		if err != nil || !st.Mode().IsRegular() {
			return fmt.Errorf("hostPath type check failed: %s is not a file", h.Path)
		}
	case v1.HostPathSocket:
		if err != nil || st.Mode()&os.ModeSocket == 0 {
			return fmt.Errorf("hostPath type check failed: %s is not a socket file", h.Path)
		}
	case v1.HostPathCharDev:
		if err != nil || st.Mode()&os.ModeCharDevice == 0 {
			return fmt.Errorf("hostPath type check failed: %s is not a character device", h.Path)
		}
	case v1.HostPathBlockDev:
		if err != nil || st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0 {
			return fmt.Errorf("hostPath type check failed: %s is not a block device", h.Path)
		}
	}
	return nil
}

// volumeFile is one file of an API-backed volume.
type volumeFile struct {
	data []byte
	mode os.FileMode
}

func modeOr(m *int32, def int32) os.FileMode {
	if m != nil {
		return os.FileMode(*m)
	}
	return os.FileMode(def)
}

// volumeFiles computes the files of a configMap, secret, downwardAPI or projected volume.
func (m *volumeManager) volumeFiles(ctx context.Context, pod *v1.Pod, v *v1.Volume) (map[string]volumeFile, error) {
	files := map[string]volumeFile{}
	switch {
	case v.ConfigMap != nil:
		return files, m.configMapFiles(ctx, pod, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional, modeOr(v.ConfigMap.DefaultMode, 0o644), files)
	case v.Secret != nil:
		return files, m.secretFiles(ctx, pod, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional, modeOr(v.Secret.DefaultMode, 0o644), files)
	case v.DownwardAPI != nil:
		return files, m.downwardFiles(pod, v.DownwardAPI.Items, modeOr(v.DownwardAPI.DefaultMode, 0o644), files)
	case v.Projected != nil:
		def := modeOr(v.Projected.DefaultMode, 0o644)
		for i, src := range v.Projected.Sources {
			var err error
			switch {
			case src.ConfigMap != nil:
				err = m.configMapFiles(ctx, pod, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional, def, files)
			case src.Secret != nil:
				err = m.secretFiles(ctx, pod, src.Secret.Name, src.Secret.Items, src.Secret.Optional, def, files)
			case src.DownwardAPI != nil:
				err = m.downwardFiles(pod, src.DownwardAPI.Items, def, files)
			case src.ServiceAccountToken != nil:
				mode := def
				if podFSGroup(pod) != nil {
					// upstream: the token is the owner's alone, and the fsGroup's to read
					mode = 0o600
				}
				err = m.tokenFile(ctx, pod, src.ServiceAccountToken, mode, files)
			case src.ClusterTrustBundle != nil:
				err = m.trustBundleFile(ctx, src.ClusterTrustBundle, def, files)
			case src.PodCertificate != nil:
				err = m.podCertificateFiles(ctx, pod, v.Name, i, src.PodCertificate, def, files)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	return files, nil
}

func (m *volumeManager) configMapFiles(ctx context.Context, pod *v1.Pod, name string, items []v1.KeyToPath, optional *bool, def os.FileMode, files map[string]volumeFile) error {
	cm, err := m.k.client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) && optional != nil && *optional {
			return nil
		}
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("configmap %q not found", name)
		}
		return err
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return keyFiles(data, items, optional, def, files, "configmap", name)
}

func (m *volumeManager) secretFiles(ctx context.Context, pod *v1.Pod, name string, items []v1.KeyToPath, optional *bool, def os.FileMode, files map[string]volumeFile) error {
	s, err := m.k.client.CoreV1().Secrets(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) && optional != nil && *optional {
			return nil
		}
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("secret %q not found", name)
		}
		return err
	}
	return keyFiles(s.Data, items, optional, def, files, "secret", name)
}

func keyFiles(data map[string][]byte, items []v1.KeyToPath, optional *bool, def os.FileMode, files map[string]volumeFile, kind, name string) error {
	if len(items) == 0 {
		for k, v := range data {
			files[k] = volumeFile{v, def}
		}
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional != nil && *optional {
				continue
			}
			return fmt.Errorf("configmap references non-existent config key: %s", it.Key)
		}
		files[it.Path] = volumeFile{v, modeOr(it.Mode, int32(def))}
	}
	return nil
}

func (m *volumeManager) downwardFiles(pod *v1.Pod, items []v1.DownwardAPIVolumeFile, def os.FileMode, files map[string]volumeFile) error {
	for _, it := range items {
		var value string
		var err error
		switch {
		case it.FieldRef != nil:
			value, err = m.k.podFieldValue(pod, it.FieldRef.FieldPath, nil)
		case it.ResourceFieldRef != nil:
			var spec *v1.Container
			spec, _ = containerSpec(pod, it.ResourceFieldRef.ContainerName)
			if spec == nil {
				return fmt.Errorf("container %q not found", it.ResourceFieldRef.ContainerName)
			}
			value, err = m.k.resourceFieldValue(pod, spec, it.ResourceFieldRef)
		}
		if err != nil {
			return err
		}
		files[it.Path] = volumeFile{[]byte(value), modeOr(it.Mode, int32(def))}
	}
	return nil
}

// tokenFile asks the API for the pod's service account token; an API without the
// serviceaccounts/token subresource leaves the file out.
func (m *volumeManager) tokenFile(ctx context.Context, pod *v1.Pod, src *v1.ServiceAccountTokenProjection, def os.FileMode, files map[string]volumeFile) error {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	expiry := int64(3600)
	if src.ExpirationSeconds != nil {
		expiry = *src.ExpirationSeconds
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &expiry,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	tr, err := m.k.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) {
			return nil
		}
		return err
	}
	files[src.Path] = volumeFile{[]byte(tr.Status.Token), def}
	return nil
}

// writeAtomic makes dir hold exactly files: it writes them into a new timestamped directory,
// swaps the ..data link to it, and links each top-level name through ..data, as upstream's
// atomic writer.
func writeAtomic(dir string, files map[string]volumeFile) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	dataLink := filepath.Join(dir, "..data")
	if current, err := os.Readlink(dataLink); err == nil && sameFiles(filepath.Join(dir, current), files) {
		return nil
	}
	tsDir, err := os.MkdirTemp(dir, ".."+time.Now().Format("2006_01_02_15_04_05."))
	if err != nil {
		return err
	}
	if err := os.Chmod(tsDir, 0o755); err != nil {
		return err
	}
	for name, f := range files {
		p := filepath.Join(tsDir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			return err
		}
		if err := os.Chmod(p, f.mode); err != nil {
			return err
		}
	}
	old, _ := os.Readlink(dataLink)
	tmpLink := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmpLink)
	if err := os.Symlink(filepath.Base(tsDir), tmpLink); err != nil {
		return err
	}
	if err := os.Rename(tmpLink, dataLink); err != nil {
		return err
	}
	top := map[string]bool{}
	for name := range files {
		top[strings.SplitN(name, "/", 2)[0]] = true
	}
	for name := range top {
		link := filepath.Join(dir, name)
		if target, err := os.Readlink(link); err == nil && target == filepath.Join("..data", name) {
			continue
		}
		_ = os.RemoveAll(link)
		if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
			return err
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		n := e.Name()
		if n == "..data" || top[n] || filepath.Join(dir, n) == tsDir {
			continue
		}
		if strings.HasPrefix(n, "..") && n != filepath.Base(old) {
			continue
		}
		_ = os.RemoveAll(filepath.Join(dir, n))
	}
	return nil
}

func sameFiles(dir string, files map[string]volumeFile) bool {
	count := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		f, ok := files[rel]
		if !ok {
			return fmt.Errorf("extra")
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != string(f.data) {
			return fmt.Errorf("differs")
		}
		if info, err := d.Info(); err != nil || info.Mode().Perm() != f.mode.Perm() {
			return fmt.Errorf("mode")
		}
		count++
		return nil
	})
	return err == nil && count == len(files)
}

// mounts are the container's bind mounts: its volumeMounts, /etc/hosts, and its termination
// message file. env is the container's environment, which subPathExpr refers to.
func (m *volumeManager) mounts(pod *v1.Pod, spec *v1.Container, rs *podRuntime, env map[string]string) ([]*runtimeapi.Mount, error) {
	if !m.enabled() {
		return nil, nil
	}
	var out []*runtimeapi.Mount
	hasEtcHosts := false
	for _, vm := range spec.VolumeMounts {
		var vol *v1.Volume
		for i := range pod.Spec.Volumes {
			if pod.Spec.Volumes[i].Name == vm.Name {
				vol = &pod.Spec.Volumes[i]
			}
		}
		if vol == nil {
			return nil, fmt.Errorf("cannot find volume %q to mount into container %q", vm.Name, spec.Name)
		}
		host := m.volumeDir(pod.UID, vol)
		if vol.HostPath != nil {
			host = vol.HostPath.Path
		}
		if vol.PersistentVolumeClaim != nil {
			host = m.mountedPath(pod.UID, vol.Name)
			if host == "" {
				return nil, fmt.Errorf("volume %q of container %q is not set up", vm.Name, spec.Name)
			}
		}
		subPath := vm.SubPath
		if vm.SubPathExpr != "" {
			var err error
			if subPath, err = expandSubPathExpr(vm.SubPathExpr, env); err != nil {
				return nil, err
			}
		}
		if vol.Image != nil {
			mount, err := m.imageMount(pod, vol, &vm, subPath)
			if err != nil {
				return nil, err
			}
			out = append(out, mount)
			continue
		}
		if subPath != "" {
			var err error
			if host, err = prepareSubPath(host, subPath); err != nil {
				return nil, err
			}
		}
		readOnly := vm.ReadOnly || (vol.PersistentVolumeClaim != nil && vol.PersistentVolumeClaim.ReadOnly) || vol.ConfigMap != nil || vol.Secret != nil || vol.DownwardAPI != nil || vol.Projected != nil
		mount := &runtimeapi.Mount{ContainerPath: vm.MountPath, HostPath: host, Readonly: readOnly}
		if vm.MountPropagation != nil {
			switch *vm.MountPropagation {
			case v1.MountPropagationHostToContainer:
				mount.Propagation = runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
			case v1.MountPropagationBidirectional:
				mount.Propagation = runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
			}
		}
		if vm.MountPath == "/etc/hosts" {
			hasEtcHosts = true
		}
		out = append(out, mount)
	}
	if !pod.Spec.HostNetwork && !hasEtcHosts {
		path, err := m.writeEtcHosts(pod, rs)
		if err != nil {
			return nil, err
		}
		out = append(out, &runtimeapi.Mount{ContainerPath: "/etc/hosts", HostPath: path})
	}
	return out, nil
}

// expandSubPathExpr is upstream's ExpandContainerVolumeMounts: $(VAR) references to the
// container's environment; a variable that is unset or empty is an error naming every such one.
func expandSubPathExpr(expr string, env map[string]string) (string, error) {
	missing := map[string]bool{}
	expanded := expand(expr, func(name string) string {
		value := env[name]
		if value == "" {
			missing[name] = true
		}
		return value
	})
	if len(missing) > 0 {
		names := make([]string, 0, len(missing))
		for name := range missing {
			names = append(names, name)
		}
		sort.Strings(names)
		return "", fmt.Errorf("missing value for %s", strings.Join(names, ", "))
	}
	return expanded, nil
}

// prepareSubPath is the host path of subPath inside the volume at volumePath, with upstream's
// checks and words: no absolute path, no ".." element. A missing subPath is made as a directory
// with the volume's own mode (so an emptyDir's 0777 holds for it too, whatever the umask).
func prepareSubPath(volumePath, subPath string) (string, error) {
	if filepath.IsAbs(subPath) {
		return "", fmt.Errorf("error SubPath `%s` must not be an absolute path", subPath)
	}
	for _, part := range strings.Split(filepath.ToSlash(subPath), "/") {
		if part == ".." {
			return "", fmt.Errorf("unable to provision SubPath `%s`: must not contain '..'", subPath)
		}
	}
	volumePath = filepath.Clean(volumePath)
	host := filepath.Join(volumePath, subPath)
	if _, err := os.Lstat(host); os.IsNotExist(err) {
		info, err := os.Stat(volumePath)
		if err != nil {
			return "", err
		}
		perm := info.Mode().Perm()
		// each missing directory on the way, outermost first, gets the volume's mode
		var missing []string
		for p := host; p != volumePath && p != "/"; p = filepath.Dir(p) {
			if _, err := os.Lstat(p); os.IsNotExist(err) {
				missing = append(missing, p)
			}
		}
		for i := len(missing) - 1; i >= 0; i-- {
			if err := os.Mkdir(missing[i], perm); err != nil && !os.IsExist(err) {
				return "", err
			}
			if err := os.Chmod(missing[i], perm); err != nil {
				return "", err
			}
		}
		return host, nil
	}
	// a subPath may name a file of an atomically written volume: mount what its link points to
	if target, err := filepath.EvalSymlinks(host); err == nil {
		host = target
	}
	return host, nil
}

// writeEtcHosts writes the pod's kubelet-managed hosts file.
func (m *volumeManager) writeEtcHosts(pod *v1.Pod, rs *podRuntime) (string, error) {
	var b strings.Builder
	b.WriteString("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
	hostname := pod.Name
	if pod.Spec.Hostname != "" {
		hostname = pod.Spec.Hostname
	}
	if rs != nil {
		for _, ip := range rs.podIPs() {
			if pod.Spec.Subdomain != "" {
				fmt.Fprintf(&b, "%s\t%s.%s.%s.svc.cluster.local\t%s\n", ip, hostname, pod.Spec.Subdomain, pod.Namespace, hostname)
			} else {
				fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
			}
		}
	}
	if len(pod.Spec.HostAliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, a := range pod.Spec.HostAliases {
			fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
		}
	}
	path := filepath.Join(m.podDir(pod.UID), "etc-hosts")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}

// terminationLog makes the file a container's termination message goes to, and mounts it at
// its terminationMessagePath.
func (m *volumeManager) terminationLog(pod *v1.Pod, spec *v1.Container, attempt uint32) (string, bool) {
	if !m.enabled() {
		return "", false
	}
	path := filepath.Join(m.podDir(pod.UID), "containers", spec.Name, strconv.Itoa(int(attempt))+"-termination-log")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", false
	}
	if err := os.WriteFile(path, nil, 0o666); err != nil {
		return "", false
	}
	_ = os.Chmod(path, 0o666)
	return path, true
}

// readTerminationMessage is what the container wrote to its termination message file: its last
// 4096 bytes at most, as upstream.
func readTerminationMessage(status *runtimeapi.ContainerStatus) string {
	path := status.GetAnnotations()[annotationTerminationLog]
	if path == "" {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if info, err := f.Stat(); err == nil && info.Size() > maxTerminationMessageLength {
		if _, err := f.Seek(-maxTerminationMessageLength, io.SeekEnd); err != nil {
			return ""
		}
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTerminationMessageLength))
	if err != nil {
		return ""
	}
	return string(b)
}

// cleanup unmounts and removes everything of a pod that is gone.
func (m *volumeManager) cleanup(uid types.UID) {
	m.k.podCerts.forget(uid)
	if !m.enabled() {
		return
	}
	m.mu.Lock()
	delete(m.mounted, uid)
	m.mu.Unlock()
	// image views first: the walk below must not go into an image
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	m.removeImageViews(ctx, uid)
	cancel()
	dir := m.podDir(uid)
	var mounts []string
	_ = filepath.WalkDir(filepath.Join(dir, "volumes"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			mounts = append(mounts, p)
		}
		return nil
	})
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	for _, p := range mounts {
		_ = unix.Unmount(p, unix.MNT_DETACH)
	}
	_ = os.RemoveAll(dir)
}

// setUpClaim resolves a claim to the directory of its volume on this node: the claim must be
// bound, and its volume a local or hostPath one bound to it. Until the PV controller has bound
// the claim this fails, and the pod worker tries again: the kubelet waits for the binding.
// What it returns names the claim, and, for an attachable volume it cannot mount, the name the
// volume is in use by.
func (m *volumeManager) setUpClaim(ctx context.Context, namespace, name string) (mountedVolume, error) {
	vol := mountedVolume{claim: name}
	pvc, err := m.k.cfg.Client.CoreV1().PersistentVolumeClaims(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return vol, fmt.Errorf("error processing PVC %s/%s: %v", namespace, name, err)
	}
	if pvc.Status.Phase != v1.ClaimBound || pvc.Spec.VolumeName == "" {
		return vol, fmt.Errorf("PVC %s/%s has non-bound phase (%q) or empty pvc.Spec.VolumeName (%q)", namespace, name, pvc.Status.Phase, pvc.Spec.VolumeName)
	}
	pv, err := m.k.cfg.Client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return vol, fmt.Errorf("error processing PVC %s/%s: %v", namespace, name, err)
	}
	if ref := pv.Spec.ClaimRef; ref == nil || ref.UID != pvc.UID {
		return vol, fmt.Errorf("found PV object %q but its ClaimRef does not name claim %s/%s (UID %v)", pv.Name, namespace, name, pvc.UID)
	}
	switch {
	case pv.Spec.Local != nil:
		st, err := os.Stat(pv.Spec.Local.Path)
		if err != nil {
			return vol, fmt.Errorf("local volume %q: %v", pv.Name, err)
		}
		if !st.IsDir() {
			return vol, fmt.Errorf("local volume %q: %s is not a directory", pv.Name, pv.Spec.Local.Path)
		}
		// upstream's local plugin measures the filesystem the volume is on (statfs)
		vol.path, vol.usage = pv.Spec.Local.Path, usageStatFS
		return vol, nil
	case pv.Spec.HostPath != nil:
		vol.path = pv.Spec.HostPath.Path
		return vol, setUpHostPath(pv.Spec.HostPath)
	}
	if vol.inUse, err = m.attachableName(ctx, pv); err != nil {
		return vol, fmt.Errorf("volume %q: %v", pv.Name, err)
	}
	return vol, fmt.Errorf("volume %q: only local and hostPath volumes can be mounted on skiff nodes", pv.Name)
}
