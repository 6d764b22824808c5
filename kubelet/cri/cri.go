// Package cri is the kubelet's runtime.Runtime over a CRI endpoint (containerd's CRI plugin):
// a gRPC client of k8s.io/cri-api v1's RuntimeService and ImageService, and the writer of the
// CNI network config for the node's pod CIDR that containerd's CRI plugin reads.
//
// It must never reach containerd except through CRI.
package cri

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-dev/skiff/kubelet/runtime"
)

// Runtime is a CRI runtime service at one endpoint.
type Runtime struct {
	conn    *grpc.ClientConn
	rt      runtimeapi.RuntimeServiceClient
	images  runtimeapi.ImageServiceClient
	timeout time.Duration
	// cniConfDir, when set, is where SetPodCIDR writes the pod network's config.
	cniConfDir string
	// cniMasquerade: the pod network's config has the bridge masquerade (Options.NoMasquerade).
	cniMasquerade bool
}

var (
	_ runtime.Runtime       = (*Runtime)(nil)
	_ runtime.SandboxImager = (*Runtime)(nil)
	_ runtime.PodCIDRSetter = (*Runtime)(nil)
)

// Options adjust a Runtime.
type Options struct {
	// CNIConfDir is the runtime's CNI config directory; empty: the kubelet leaves the network
	// config to whoever set the runtime up.
	CNIConfDir string
	// NoMasquerade leaves pods' source addresses alone in the pod network's config: the CNI
	// bridge masquerades nothing, because something else on the node masquerades what leaves
	// the cluster's pod network and only that (skiff proxy's node routes, as flannel's rule).
	// Off, the bridge masquerades whatever a pod sends beyond its node's podCIDR, pods of
	// other nodes included, so that pods reach the world with no help.
	NoMasquerade bool
	// Timeout bounds each call but pulls and stops (default 2 minutes, as upstream).
	Timeout time.Duration
}

// Dial connects to endpoint ("unix:///run/containerd/containerd.sock" or a socket path). It
// does not wait for the runtime to answer.
func Dial(endpoint string, o Options) (*Runtime, error) {
	if !strings.Contains(endpoint, "://") {
		endpoint = "unix://" + endpoint
	}
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		return nil, fmt.Errorf("dial CRI %s: %w", endpoint, err)
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
	return &Runtime{conn: conn, rt: runtimeapi.NewRuntimeServiceClient(conn), images: runtimeapi.NewImageServiceClient(conn),
		timeout: o.Timeout, cniConfDir: o.CNIConfDir, cniMasquerade: !o.NoMasquerade}, nil
}

// Close closes the connection.
func (r *Runtime) Close() error { return r.conn.Close() }

func (r *Runtime) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.timeout)
}

// notFound turns CRI's NotFound into runtime.ErrNotFound.
func notFound(err error) error {
	if status.Code(err) == codes.NotFound {
		return fmt.Errorf("%w: %v", runtime.ErrNotFound, err)
	}
	return err
}

func (r *Runtime) Version(ctx context.Context) (*runtimeapi.VersionResponse, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	return r.rt.Version(ctx, &runtimeapi.VersionRequest{Version: "v1"})
}

func (r *Runtime) Status(ctx context.Context) (*runtimeapi.RuntimeStatus, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	resp, err := r.rt.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return nil, err
	}
	return resp.Status, nil
}

func (r *Runtime) RunPodSandbox(ctx context.Context, config *runtimeapi.PodSandboxConfig, runtimeHandler string) (string, error) {
	if dir := config.LogDirectory; dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	resp, err := r.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: config, RuntimeHandler: runtimeHandler})
	if err != nil {
		return "", err
	}
	return resp.PodSandboxId, nil
}

func (r *Runtime) StopPodSandbox(ctx context.Context, id string) error {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	_, err := r.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
	if status.Code(err) == codes.NotFound {
		return nil
	}
	return err
}

func (r *Runtime) RemovePodSandbox(ctx context.Context, id string) error {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	_, err := r.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
	if status.Code(err) == codes.NotFound {
		return nil
	}
	return err
}

func (r *Runtime) PodSandboxStatus(ctx context.Context, id string) (*runtimeapi.PodSandboxStatus, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	resp, err := r.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		return nil, notFound(err)
	}
	return resp.Status, nil
}

func (r *Runtime) ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	resp, err := r.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: filter})
	if err != nil {
		return nil, err
	}
	return resp.Items, nil
}

func (r *Runtime) CreateContainer(ctx context.Context, sandboxID string, config *runtimeapi.ContainerConfig, sandboxConfig *runtimeapi.PodSandboxConfig) (string, error) {
	if sandboxConfig.GetLogDirectory() != "" && config.GetLogPath() != "" {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(sandboxConfig.LogDirectory, config.LogPath)), 0o755); err != nil {
			return "", err
		}
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	resp, err := r.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sandboxID, Config: config, SandboxConfig: sandboxConfig})
	if err != nil {
		return "", err
	}
	return resp.ContainerId, nil
}

func (r *Runtime) StartContainer(ctx context.Context, id string) error {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	_, err := r.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id})
	return err
}

func (r *Runtime) StopContainer(ctx context.Context, id string, timeout int64) error {
	// the call lasts as long as the grace period, and some more
	ctx, cancel := context.WithTimeout(ctx, r.timeout+time.Duration(timeout)*time.Second)
	defer cancel()
	_, err := r.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: timeout})
	if status.Code(err) == codes.NotFound {
		return nil
	}
	return err
}

func (r *Runtime) RemoveContainer(ctx context.Context, id string) error {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	_, err := r.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id})
	if status.Code(err) == codes.NotFound {
		return nil
	}
	return err
}

func (r *Runtime) ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	resp, err := r.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: filter})
	if err != nil {
		return nil, err
	}
	return resp.Containers, nil
}

func (r *Runtime) ContainerStatus(ctx context.Context, id string) (*runtimeapi.ContainerStatus, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	resp, err := r.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		return nil, notFound(err)
	}
	return resp.Status, nil
}

func (r *Runtime) UpdateContainerResources(ctx context.Context, id string, resources *runtimeapi.LinuxContainerResources) error {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	_, err := r.rt.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{ContainerId: id, Linux: resources})
	return notFound(err)
}

func (r *Runtime) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, int32, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout+timeout)
	defer cancel()
	resp, err := r.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: int64(timeout.Seconds())})
	if err != nil {
		return nil, nil, 0, notFound(err)
	}
	return resp.Stdout, resp.Stderr, resp.ExitCode, nil
}

func (r *Runtime) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	return r.rt.Exec(ctx, req)
}

func (r *Runtime) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	resp, err := r.rt.Attach(ctx, req)
	return resp, notFound(err)
}

func (r *Runtime) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	resp, err := r.rt.PortForward(ctx, req)
	return resp, notFound(err)
}

func (r *Runtime) ListContainerStats(ctx context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	resp, err := r.rt.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{Filter: filter})
	if err != nil {
		return nil, err
	}
	return resp.Stats, nil
}

func (r *Runtime) ListPodSandboxStats(ctx context.Context, filter *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	resp, err := r.rt.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{Filter: filter})
	if err != nil {
		return nil, err
	}
	return resp.Stats, nil
}

func (r *Runtime) ImageStatus(ctx context.Context, image string) (*runtimeapi.Image, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	resp, err := r.images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: image}})
	if err != nil {
		return nil, err
	}
	return resp.Image, nil
}

func (r *Runtime) PullImage(ctx context.Context, image string, auth *runtimeapi.AuthConfig, sandboxConfig *runtimeapi.PodSandboxConfig) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	resp, err := r.images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: image}, Auth: auth, SandboxConfig: sandboxConfig})
	if err != nil {
		return "", err
	}
	return resp.ImageRef, nil
}

func (r *Runtime) ListImages(ctx context.Context) ([]*runtimeapi.Image, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	resp, err := r.images.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		return nil, err
	}
	return resp.Images, nil
}

func (r *Runtime) RemoveImage(ctx context.Context, image string) error {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	_, err := r.images.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: image}})
	if status.Code(err) == codes.NotFound {
		return nil
	}
	return err
}

func (r *Runtime) ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	return r.images.ImageFsInfo(ctx, &runtimeapi.ImageFsInfoRequest{})
}

// SandboxImage is the sandbox image of the runtime's CRI config (sandboxImage in the "config"
// of a verbose Status, as containerd's CRI plugin reports it).
func (r *Runtime) SandboxImage(ctx context.Context) (string, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	resp, err := r.rt.Status(ctx, &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		return "", err
	}
	var config struct {
		SandboxImage string `json:"sandboxImage"`
	}
	if err := json.Unmarshal([]byte(resp.GetInfo()["config"]), &config); err != nil {
		return "", fmt.Errorf("the runtime's config: %w", err)
	}
	return config.SandboxImage, nil
}

// SetPodCIDR writes the pod network's CNI config: a bridge (bridgeName) with host-local
// addresses from cidr, the node as the pods' gateway (masquerading traffic leaving the
// node's podCIDR unless Options.NoMasquerade), and portmap for hostPorts. containerd's CRI plugin picks it up on change.
// cidr is what CRI's UpdateRuntimeConfig carries: one CIDR, or one per IP family separated by
// a comma, and then every pod gets an address of each.
func (r *Runtime) SetPodCIDR(cidr string) error {
	if r.cniConfDir == "" {
		return nil
	}
	return WriteCNIConfig(r.cniConfDir, cidr, r.cniMasquerade)
}

// bridgeName is the pods' bridge for the pod CIDRs, one per set of CIDRs: the bridge plugin
// refuses a bridge that already has another gateway address, so two kubelets on one host
// (skiff up beside a test's, or a test's bridge left behind) must not share one name. A
// single CIDR's name is the hash of that CIDR alone.
func bridgeName(prefixes []netip.Prefix) string {
	names := make([]string, len(prefixes))
	for i, p := range prefixes {
		names[i] = p.Masked().String()
	}
	h := fnv.New32a()
	h.Write([]byte(strings.Join(names, ",")))
	return fmt.Sprintf("skiff%08x", h.Sum32()) // 13 bytes: a link name has at most 15
}

// WriteCNIConfig writes dir/10-skiff.conflist for cidr: one CIDR, or an IPv4 and an IPv6
// one separated by a comma. host-local gives each pod one address from each range (the
// ranges in cidr's order) and a default route of each family through the bridge. With
// masquerade the bridge plugin masquerades what a pod sends outside cidr (its "ipMasq");
// without, pods' source addresses are left to whoever keeps the node's pod network.
func WriteCNIConfig(dir, cidr string, masquerade bool) error {
	var prefixes []netip.Prefix
	for _, part := range strings.Split(cidr, ",") {
		prefix, err := netip.ParsePrefix(strings.TrimSpace(part))
		if err != nil {
			return fmt.Errorf("pod CIDR %q: %w", cidr, err)
		}
		prefixes = append(prefixes, prefix)
	}
	if len(prefixes) > 2 || (len(prefixes) == 2 && prefixes[0].Addr().Is4() == prefixes[1].Addr().Is4()) {
		return fmt.Errorf("pod CIDR %q: want one CIDR, or one IPv4 and one IPv6", cidr)
	}
	var ranges [][]map[string]string
	var routes []map[string]string
	for _, p := range prefixes {
		ranges = append(ranges, []map[string]string{{"subnet": p.Masked().String()}})
		if p.Addr().Is4() {
			routes = append(routes, map[string]string{"dst": "0.0.0.0/0"})
		} else {
			routes = append(routes, map[string]string{"dst": "::/0"})
		}
	}
	conf := map[string]any{
		"cniVersion": "0.4.0",
		"name":       "skiff",
		"plugins": []map[string]any{
			{
				"type": "bridge", "bridge": bridgeName(prefixes), "isGateway": true, "ipMasq": masquerade, "hairpinMode": true,
				"ipam": map[string]any{
					"type":   "host-local",
					"ranges": ranges,
					"routes": routes,
					// addresses handed out are remembered beside the config, not in the
					// host-wide /var/lib/cni, so that two runtimes on one host never collide
					"dataDir": filepath.Join(filepath.Dir(dir), "ipam"),
				},
			},
			{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, "10-skiff.conflist")
	if old, err := os.ReadFile(path); err == nil && string(old) == string(b) {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
