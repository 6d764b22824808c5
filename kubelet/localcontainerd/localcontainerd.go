// Package localcontainerd runs a containerd of the kubelet's own on this machine (these
// machines have no systemd to run one): a config whose root, state, socket, CNI config and
// pause image all live under one directory it is given, a process it starts and stops. It
// also imports OCI image tarballs into that containerd's k8s.io namespace, the one CRI sees,
// through the containerd Go client (CRI has no import verb).
//
// It must never touch a containerd it did not start, beyond importing images into one.
package localcontainerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-dev/skiff/kubelet/ociimage"
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

// config is containerd 1.6's config (version 2) with everything under dir, the CRI plugin as
// MACHINE.md says these machines need it: runc with cgroupfs, overlayfs, a local pause image,
// no negative oom_score_adj, CNI from Debian's plugins.
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
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), filepath.Join(dir, "containerd.sock"),
		filepath.Join(dir, "containerd.sock.ttrpc"), filepath.Join(dir, "opt"), PauseImage, CNIBinDir,
		filepath.Join(dir, "cni", "net.d"))
}

// Start writes a config under dir, starts containerd with it (its log in dir/containerd.log),
// waits until its CRI answers, and imports the pause image. Stop ends it.
func Start(ctx context.Context, dir string) (*Daemon, error) {
	if m := Missing(); m != "" {
		return nil, errors.New("containerd cannot run here: " + m)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	d := &Daemon{Dir: dir, Socket: filepath.Join(dir, "containerd.sock"), CNIConfDir: filepath.Join(dir, "cni", "net.d"), exited: make(chan error, 1)}
	// a unix socket path is at most 107 bytes
	if len(d.Socket) > 100 {
		return nil, fmt.Errorf("containerd directory %s is too long for a socket path", dir)
	}
	if err := os.MkdirAll(d.CNIConfDir, 0o755); err != nil {
		return nil, err
	}
	configPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(configPath, []byte(config(dir)), 0o644); err != nil {
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
	}()
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
// ran keep running in their shims, as with any containerd restart; callers that want them
// gone remove them through CRI first.
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

// Import loads the image tarball r (OCI layout or Docker archive) into the k8s.io namespace
// of the containerd at socket, unpacks it for overlayfs, and returns the names imported.
func Import(ctx context.Context, socket string, r io.Reader) ([]string, error) {
	client, err := containerd.New(socket, containerd.WithDefaultNamespace("k8s.io"))
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

// ImportFile imports one tarball file.
func ImportFile(ctx context.Context, socket, path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Import(ctx, socket, f)
}

// ImportDir imports every *.tar in dir.
func ImportDir(ctx context.Context, socket, dir string) ([]string, error) {
	matches, err := filepath.Glob(filepath.Join(dir, "*.tar"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, m := range matches {
		n, err := ImportFile(ctx, socket, m)
		if err != nil {
			return names, fmt.Errorf("%s: %w", m, err)
		}
		names = append(names, n...)
	}
	return names, nil
}
