// Package localcontainerd runs a containerd of the kubelet's own on this machine (these
// machines have no systemd to run one): a config whose root, state, socket, CNI config and
// pause image all live under one directory it is given, a process it starts and stops (on
// Shutdown with its pods' sandboxes, bridge and mounts). It also imports OCI image tarballs
// into that containerd's k8s.io namespace, the one CRI sees, through the containerd Go client
// (CRI has no import verb).
//
// It must never touch a containerd it did not start, beyond importing images into one.
package localcontainerd

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-dev/skiff/kubelet/ociimage"
	"github.com/skiff-dev/skiff/kubelet/podcgroups"
)

// PauseImage is the sandbox image the daemon is configured with; Start builds it from
// busybox-static and imports it.
const PauseImage = "skiff.local/pause:1"

// CNIBinDir is where Debian's containernetworking-plugins installs the plugins.
const CNIBinDir = "/usr/lib/cni"

// Daemon is a running containerd.
type Daemon struct {
	Dir string
	// Socket is the containerd (and CRI) gRPC socket's path.
	Socket string
	// CNIConfDir is where the CNI network config goes (containerd watches it).
	CNIConfDir string
	cmd        *exec.Cmd
	exited     chan error
}

// Endpoint is the socket as a CRI endpoint ("unix:///...").
func (d *Daemon) Endpoint() string { return "unix://" + d.Socket }

// Missing says what is not installed for a local containerd ("" when all is), in words a
// person can act on.
func Missing() string {
	var missing []string
	for _, bin := range []string{"containerd", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if _, err := os.Stat(filepath.Join(CNIBinDir, "bridge")); err != nil {
		missing = append(missing, "containernetworking-plugins")
	}
	if _, err := os.Stat(ociimage.BusyboxPath); err != nil {
		missing = append(missing, "busybox-static")
	}
	if len(missing) == 0 {
		return ""
	}
	return "install " + strings.Join(missing, " ") + " (apt-get install " + strings.Join(missing, " ") + ")"
}

// RegistryMirror sends the pulls of images from Registry (a host as in image names, such as
// "registry.k8s.io" or "docker.io"; "*" for every registry) to Endpoint (a URL such as
// "http://127.0.0.1:5000") first, then to the registry itself, as k3s's registries.yaml
// mirrors do. With no registry reachable, a mirror is how pulls (imagePullPolicy Always)
// succeed at all.
type RegistryMirror struct {
	Registry string
	Endpoint string
}

// ParseRegistryMirror reads REGISTRY=URL, the form of skiff's --registry-mirror flag.
func ParseRegistryMirror(s string) (RegistryMirror, error) {
	registry, endpoint, ok := strings.Cut(s, "=")
	if !ok || registry == "" || strings.ContainsAny(registry, "/ ") {
		return RegistryMirror{}, fmt.Errorf("registry mirror %q: want REGISTRY=URL, REGISTRY a host such as docker.io or *", s)
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return RegistryMirror{}, fmt.Errorf("registry mirror %q: the mirror must be an http or https URL", s)
	}
	return RegistryMirror{Registry: registry, Endpoint: endpoint}, nil
}

// writeRegistryHosts writes one hosts.toml per mirrored registry into dir, the CRI plugin's
// registry config_path ("*" is containerd's _default host directory, which applies to every
// registry without one of its own).
func writeRegistryHosts(dir string, mirrors []RegistryMirror) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	byRegistry := map[string][]string{}
	var order []string
	for _, m := range mirrors {
		if _, seen := byRegistry[m.Registry]; !seen {
			order = append(order, m.Registry)
		}
		byRegistry[m.Registry] = append(byRegistry[m.Registry], m.Endpoint)
	}
	for _, registry := range order {
		hostDir := registry
		if registry == "*" {
			hostDir = "_default"
		}
		var b strings.Builder
		for _, endpoint := range byRegistry[registry] {
			fmt.Fprintf(&b, "[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", endpoint)
		}
		if err := os.MkdirAll(filepath.Join(dir, hostDir), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, hostDir, "hosts.toml"), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// config is containerd 1.6's config (version 2) with everything under dir, the CRI plugin as
// MACHINE.md says these machines need it: runc with cgroupfs, overlayfs, a local pause image,
// no negative oom_score_adj, CNI from Debian's plugins; registry mirrors come from the
// hosts.toml files in dir/certs.d.
func config(dir string) string {
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
oom_score = 0

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[plugins."io.containerd.internal.v1.opt"]
  path = %[5]q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[6]q
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_cdi = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[7]q
    conf_dir = %[8]q
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %[9]q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), SocketIn(dir),
		filepath.Join(dir, "containerd.sock.ttrpc"), filepath.Join(dir, "opt"), PauseImage, CNIBinDir,
		filepath.Join(dir, "cni", "net.d"), filepath.Join(dir, "certs.d"))
}

// Start writes a config under dir (with the registry mirrors given), starts containerd with it
// (its log in dir/containerd.log), waits until its CRI answers, and imports the pause image.
// Stop ends it.
func Start(ctx context.Context, dir string, mirrors ...RegistryMirror) (*Daemon, error) {
	if m := Missing(); m != "" {
		return nil, errors.New("containerd cannot run here: " + m)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	d := &Daemon{Dir: dir, Socket: SocketIn(dir), CNIConfDir: filepath.Join(dir, "cni", "net.d"), exited: make(chan error, 1)}
	// a unix socket path is at most 107 bytes
	if len(d.Socket) > 100 {
		return nil, fmt.Errorf("containerd directory %s is too long for a socket path", dir)
	}
	if err := os.MkdirAll(d.CNIConfDir, 0o755); err != nil {
		return nil, err
	}
	if err := writeRegistryHosts(filepath.Join(dir, "certs.d"), mirrors); err != nil {
		return nil, err
	}
	configPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(configPath, []byte(config(dir)), 0o644); err != nil {
		return nil, err
	}
	if err := stopLeftover(dir, configPath); err != nil {
		return nil, err
	}
	_ = os.Remove(d.Socket)
	logFile, err := os.OpenFile(filepath.Join(dir, "containerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	d.cmd = exec.Command("containerd", "--config", configPath)
	d.cmd.Stdout, d.cmd.Stderr = logFile, logFile
	// its own process group: a Ctrl-C to us is not a kill to it, Stop decides
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start containerd: %w", err)
	}
	go func() {
		d.exited <- d.cmd.Wait()
		logFile.Close()
		os.Remove(filepath.Join(dir, "containerd.pid"))
	}()
	_ = os.WriteFile(filepath.Join(dir, "containerd.pid"), []byte(strconv.Itoa(d.cmd.Process.Pid)), 0o644)
	if err := d.waitForCRI(ctx, time.Minute); err != nil {
		_ = d.Stop()
		return nil, fmt.Errorf("%w (log: %s)", err, filepath.Join(dir, "containerd.log"))
	}
	pause, err := ociimage.Busybox(PauseImage)
	if err == nil {
		pause.Cmd = []string{"/bin/sleep", "2147483647"}
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(pause.WriteOCI(pw)) }()
		_, err = Import(ctx, d.Socket, pr)
		pr.Close()
	}
	if err != nil {
		_ = d.Stop()
		return nil, fmt.Errorf("import the pause image: %w", err)
	}
	return d, nil
}

// stopLeftover stops a containerd an earlier Start left running on dir (its owner was killed
// before it could Stop it): two daemons on one root would fight over its database. Its
// containers keep running in their shims, for the new daemon and the kubelet to adopt.
func stopLeftover(dir, configPath string) error {
	b, err := os.ReadFile(filepath.Join(dir, "containerd.pid"))
	if err != nil {
		return nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return nil
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), configPath) {
		return nil // gone, or the pid is another process's now
	}
	// gone: no process, or a zombie (empty cmdline) that its new parent has yet to reap
	gone := func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		return err != nil || len(b) == 0
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := range 150 {
		if gone() {
			return nil
		}
		if i == 100 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("a containerd left running on %s (pid %d) does not stop", dir, pid)
}

func (d *Daemon) waitForCRI(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case err := <-d.exited:
			return fmt.Errorf("containerd exited at start: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if _, err := os.Stat(d.Socket); err != nil {
			last = err
			continue
		}
		conn, err := grpc.NewClient("unix://"+d.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			last = err
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := runtimeapi.NewRuntimeServiceClient(conn).Status(cctx, &runtimeapi.StatusRequest{})
		cancel()
		conn.Close()
		if err == nil && st.GetStatus() != nil {
			return nil
		}
		last = err
	}
	return fmt.Errorf("containerd's CRI did not answer within %v: %v", timeout, last)
}

// Stop stops the daemon (SIGTERM, then SIGKILL after 10 s) and waits for it. The containers it
// ran keep running in their shims, as with any containerd restart; Shutdown removes them
// first.
func (d *Daemon) Stop() error {
	if d.cmd == nil || d.cmd.Process == nil {
		return nil
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
	d.cmd = nil
	return nil
}

// RemovePods stops and removes every pod sandbox the daemon holds, with their containers,
// through CRI, and their pods' cgroups: what a node's shutdown does to its pods. After it the
// daemon has no shims and no container mounts left, and Stop leaves nothing behind.
func (d *Daemon) RemovePods(ctx context.Context) error {
	conn, err := grpc.NewClient(d.Endpoint(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	rs := runtimeapi.NewRuntimeServiceClient(conn)
	list, err := rs.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("list pod sandboxes: %w", err)
	}
	var errs []error
	var removed []types.UID
	for _, s := range list.GetItems() {
		if _, err := rs.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: s.Id}); err != nil {
			errs = append(errs, fmt.Errorf("stop sandbox %s: %w", s.Id, err))
			continue
		}
		if _, err := rs.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: s.Id}); err != nil {
			errs = append(errs, fmt.Errorf("remove sandbox %s: %w", s.Id, err))
			continue
		}
		if uid := s.GetMetadata().GetUid(); uid != "" && !slices.Contains(removed, types.UID(uid)) {
			removed = append(removed, types.UID(uid))
		}
	}
	// the pods' cgroups are the kubelet's, which is not there to remove them; only once every
	// sandbox is gone, since a pod whose first sandbox failed has a newer one still running in
	// the same cgroup
	for _, uid := range removed {
		if err := podcgroups.Remove(uid); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Shutdown ends the daemon as a node's shutdown ends its pods, leaving nothing of them on the
// host: every sandbox stopped and removed (RemovePods: no shim outlives the daemon), the pods'
// bridge that the CNI config in CNIConfDir names deleted (the bridge plugin leaves it when the
// last pod goes), the daemon stopped, and whatever is still mounted under dir unmounted. dir
// is Dir, or a directory that holds Dir and the kubelet's root, whose tmpfs volumes go too.
// The files under Dir stay, for the next Start.
func (d *Daemon) Shutdown(ctx context.Context, dir string) error {
	podsErr := d.RemovePods(ctx)
	if podsErr != nil {
		podsErr = fmt.Errorf("remove pods from containerd: %w", podsErr)
	} else {
		// only once no pod is left on it: the bridge is theirs while one is
		podsErr = removePodBridges(d.CNIConfDir)
	}
	return errors.Join(podsErr, d.Stop(), UnmountUnder(dir))
}

// removePodBridges deletes the bridges that the CNI configs (*.conflist) in confDir name.
func removePodBridges(confDir string) error {
	confs, err := filepath.Glob(filepath.Join(confDir, "*.conflist"))
	if err != nil {
		return err
	}
	var errs []error
	for _, path := range confs {
		b, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var conf struct {
			Plugins []struct{ Type, Bridge string }
		}
		if err := json.Unmarshal(b, &conf); err != nil {
			errs = append(errs, fmt.Errorf("read the pod network's config %s: %w", path, err))
			continue
		}
		for _, p := range conf.Plugins {
			// an unnamed bridge is the plugin's default cni0, which may be another runtime's
			if p.Type != "bridge" || p.Bridge == "" {
				continue
			}
			// looked up through netlink, in this process's network namespace (/sys/class/net
			// shows the namespace that mounted /sys)
			if _, err := net.InterfaceByName(p.Bridge); err != nil {
				continue // no pod ever ran
			}
			// ports still on it are another runtime's pods' on the same CIDR (two test runs
			// on one host): the bridge is theirs too
			ports, err := exec.Command("ip", "-o", "link", "show", "master", p.Bridge).Output()
			if err != nil {
				errs = append(errs, fmt.Errorf("list the ports of the pods' bridge %s: %w", p.Bridge, err))
				continue
			}
			if len(bytes.TrimSpace(ports)) > 0 {
				continue
			}
			if out, err := exec.Command("ip", "link", "delete", p.Bridge, "type", "bridge").CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("delete the pods' bridge %s: %v: %s", p.Bridge, err, bytes.TrimSpace(out)))
			}
		}
	}
	return errors.Join(errs...)
}

// UnmountUnder unmounts every mount below dir, deepest first: what a kubelet or containerd
// left mounted there, so that dir can go.
func UnmountUnder(dir string) error {
	if dir == "" {
		return errors.New("unmount under: no directory")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return err
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		// /proc/self/mounts escapes space, tab, newline and backslash in octal
		p := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(f[1])
		if strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// ErrNotRunning is wrapped by errors about a containerd socket that nothing answers on.
var ErrNotRunning = errors.New("containerd is not running")

// ErrNotImage is wrapped by errors about a file that is no image tarball.
var ErrNotImage = errors.New("not an image tarball")

// SocketIn is where Start puts the socket of a containerd whose directory is dir, so that
// others (`skiff images import`) can find it from the directory alone.
func SocketIn(dir string) string { return filepath.Join(dir, "containerd.sock") }

// connect opens a client on the containerd at socket in the k8s.io namespace and checks that
// it answers; when it does not, the error wraps ErrNotRunning.
func connect(ctx context.Context, socket string) (*containerd.Client, error) {
	if _, err := os.Stat(socket); err != nil {
		return nil, fmt.Errorf("%w at %s (no socket there)", ErrNotRunning, socket)
	}
	// a plain dial tells a refused connection from a refused permission; gRPC's errors do not
	conn, err := net.DialTimeout("unix", socket, 5*time.Second)
	if errors.Is(err, fs.ErrPermission) {
		return nil, fmt.Errorf("cannot reach containerd at %s: permission denied (containerd's socket is root's)", socket)
	}
	if err != nil {
		return nil, fmt.Errorf("%w at %s (%v)", ErrNotRunning, socket, err)
	}
	conn.Close()
	client, err := containerd.New(socket, containerd.WithDefaultNamespace("k8s.io"), containerd.WithTimeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %v", ErrNotRunning, socket, err)
	}
	vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := client.Version(vctx); err != nil {
		client.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w at %s: %v", ErrNotRunning, socket, err)
	}
	return client, nil
}

// Import loads the image tarball r (OCI layout or Docker archive, as `docker save` writes
// it) into the k8s.io namespace of the containerd at socket, unpacks it for overlayfs, and
// returns the names imported.
func Import(ctx context.Context, socket string, r io.Reader) ([]string, error) {
	client, err := connect(ctx, socket)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	imgs, err := client.Import(ctx, r)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, img := range imgs {
		if err := containerd.NewImage(client, img).Unpack(ctx, "overlayfs"); err != nil {
			return names, fmt.Errorf("unpack %s: %w", img.Name, err)
		}
		names = append(names, img.Name)
	}
	return names, nil
}

// ImportFile imports one tarball file, gzip-compressed or not. A file that is no image
// tarball is refused before containerd sees it, with an error wrapping ErrNotImage; one whose
// images have no names (neither an io.containerd.image.name annotation nor RepoTags) is an
// error too, since nothing could run them by name.
func ImportFile(ctx context.Context, socket, path string) ([]string, error) {
	if err := CheckImageTarball(path); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := maybeGunzip(f)
	if err != nil {
		return nil, err
	}
	names, err := Import(ctx, socket, r)
	if err == nil && len(names) == 0 {
		err = fmt.Errorf("%s holds no image with a name (no io.containerd.image.name annotation, no RepoTags)", path)
	}
	return names, err
}

// maybeGunzip is r, decompressed when it starts with gzip's magic number.
func maybeGunzip(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(2)
	if err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		return gzip.NewReader(br)
	}
	return br, nil
}

// CheckImageTarball reads the tar headers of path (gzip-compressed or not) and says, wrapping
// ErrNotImage, when it is no OCI image layout (oci-layout and index.json) or Docker archive
// (manifest.json).
func CheckImageTarball(path string) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: no such file", path)
		}
		return err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return fmt.Errorf("%s is a directory, %w", path, ErrNotImage)
	}
	r, err := maybeGunzip(f)
	if err != nil {
		return fmt.Errorf("%s: %w (bad gzip: %v)", path, ErrNotImage, err)
	}
	tr := tar.NewReader(r)
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w (not a tar archive: %v)", path, ErrNotImage, err)
		}
		seen[strings.TrimPrefix(filepath.Clean(h.Name), "./")] = true
	}
	if seen["oci-layout"] && seen["index.json"] || seen["manifest.json"] {
		return nil
	}
	return fmt.Errorf("%s: %w: it has no oci-layout and index.json (OCI layout) nor manifest.json (docker save) at its root", path, ErrNotImage)
}

// ImportDir imports every *.tar and *.tar.gz in dir, in name order, and tells report what
// became of each: the names it held, or why it failed. A tarball that fails does not stop the
// rest; ImportDir's own error is for a dir that cannot be read, or ctx ending.
func ImportDir(ctx context.Context, socket, dir string, report func(file string, names []string, err error)) error {
	if st, err := os.Stat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: no such directory", dir)
		}
		return err
	} else if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	var files []string
	for _, pattern := range []string{"*.tar", "*.tar.gz"} {
		m, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return err
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	for _, f := range files {
		names, err := ImportFile(ctx, socket, f)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		report(f, names, err)
	}
	return nil
}
