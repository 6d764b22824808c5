// Package fakeruntime is an in-memory container runtime for simulated nodes (`skiff sim`) and
// fast tests: sandboxes and containers are records that "run" the moment they start, touch
// nothing on the host, and exit when a script or a test says so.
//
// A pod scripts its containers with one annotation per container,
//
//	fake.skiff.dev/<container-name>: "exit=1 after=2s runs=3 readiness=fail"
//
// whose space-separated words mean:
//
//	exit=N        the container exits with code N (reason Completed for 0, Error otherwise)
//	after=D       ... D (a Go duration) after it starts; default at once
//	runs=K        only its first K runs exit; later ones run until stopped
//	oom           it exits 137 with reason OOMKilled
//	liveness=fail, readiness=fail, startup=fail
//	              that probe fails (every probe succeeds otherwise)
//	ignore-term   a stop waits its whole grace period, as a process ignoring SIGTERM does
//
// Images are all present locally except those under the registry "unreachable.invalid/",
// whose pulls fail as a pull from an unreachable registry does; an image is listed
// (ListImages) once something asked for it or pulled it, or a test added it (AddImage), until
// it is removed. ExecSync runs `true` (0),
// `false` (1) and `sh -c "exit N"` (N); any other command exits 0 with no output. Streaming
// exec, attach and port-forward answer Unimplemented, as a CRI runtime without a streaming
// server would; container and sandbox statistics report no CPU or memory used, since nothing
// runs.
//
// It must never start a process, open a socket or write a file.
package fakeruntime

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-dev/skiff/kubelet/runtime"
)

// AnnotationPrefix starts the annotation that scripts a container: AnnotationPrefix + name.
const AnnotationPrefix = "fake.skiff.dev/"

// UnreachableRegistry is the registry whose images cannot be pulled.
const UnreachableRegistry = "unreachable.invalid/"

// Runtime is the fake runtime. The zero value is not usable; call New.
type Runtime struct {
	mu         sync.Mutex
	now        func() time.Time
	nextID     int
	nextIP     netip.Addr
	sandboxes  map[string]*sandbox
	containers map[string]*container
	// images are the listed images by ID.
	images map[string]*runtimeapi.Image
	// private maps a registry host to the username and password it wants (RequireCredentials).
	private map[string][2]string
	// pulls are the pulls asked for, in order (Pulls).
	pulls []Pull
}

// Pull is one PullImage call: the image and the credentials sent, "" when anonymous.
type Pull struct {
	Image, Username, Password string
}

// RequireCredentials makes the images of registry (a host, such as "private.invalid") a private
// registry's: absent until pulled, and pulled only with username and password, refused as
// containerd words a registry's 401 otherwise.
func (r *Runtime) RequireCredentials(registry, username, password string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.private == nil {
		r.private = map[string][2]string{}
	}
	r.private[registry] = [2]string{username, password}
}

// Pulls is every PullImage call so far.
func (r *Runtime) Pulls() []Pull {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pulls)
}

// privateRegistry is the credentials image's registry wants, if RequireCredentials named it; r.mu
// is held.
func (r *Runtime) privateRegistry(image string) (want [2]string, private bool) {
	host, _, _ := strings.Cut(image, "/")
	want, private = r.private[host]
	return want, private
}

var (
	_ runtime.Runtime       = (*Runtime)(nil)
	_ runtime.ProbeAnswerer = (*Runtime)(nil)
	_ runtime.LogReader     = (*Runtime)(nil)
)

type sandbox struct {
	id        string
	config    *runtimeapi.PodSandboxConfig
	state     runtimeapi.PodSandboxState
	createdAt int64
	ip        string
	handler   string
}

type container struct {
	id        string
	sandboxID string
	config    *runtimeapi.ContainerConfig
	script    script
	state     runtimeapi.ContainerState
	createdAt int64
	startedAt int64
	finished  int64
	exitCode  int32
	reason    string
	exitTimer *time.Timer
	// exited is closed when the container stops running.
	exited chan struct{}
	probes map[runtime.ProbeKind]bool
	log    []byte
	// resources are the container's cgroup limits: its config's, then what resizes set.
	resources *runtimeapi.LinuxContainerResources
}

// script is a container's parsed annotation.
type script struct {
	exit       *int32
	after      time.Duration
	runs       int // 0: every run
	oom        bool
	ignoreTerm bool
	failing    map[runtime.ProbeKind]bool
}

// New returns an empty runtime that hands out pod IPs from podCIDR (such as "10.244.3.0/24";
// empty: 10.88.0.0/16).
func New(podCIDR string) (*Runtime, error) {
	if podCIDR == "" {
		podCIDR = "10.88.0.0/16"
	}
	prefix, err := netip.ParsePrefix(podCIDR)
	if err != nil {
		return nil, fmt.Errorf("pod CIDR: %w", err)
	}
	return &Runtime{
		now:        time.Now,
		nextIP:     prefix.Masked().Addr().Next().Next(), // .1 is the bridge's
		sandboxes:  map[string]*sandbox{},
		containers: map[string]*container{},
		images:     map[string]*runtimeapi.Image{},
	}, nil
}

func (r *Runtime) newID(kind string) string {
	r.nextID++
	return fmt.Sprintf("%s%08d", kind, r.nextID)
}

func notFound(kind, id string) error {
	return fmt.Errorf("%s %q: %w", kind, id, runtime.ErrNotFound)
}

func (r *Runtime) Version(context.Context) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: "fake", RuntimeVersion: "0.1.0", RuntimeApiVersion: "v1"}, nil
}

func (r *Runtime) Status(context.Context) (*runtimeapi.RuntimeStatus, error) {
	return &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: true},
		{Type: runtimeapi.NetworkReady, Status: true},
	}}, nil
}

func (r *Runtime) RunPodSandbox(_ context.Context, config *runtimeapi.PodSandboxConfig, runtimeHandler string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &sandbox{id: r.newID("sandbox"), config: config, handler: runtimeHandler, state: runtimeapi.PodSandboxState_SANDBOX_READY, createdAt: r.now().UnixNano()}
	if config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() != runtimeapi.NamespaceMode_NODE {
		s.ip = r.nextIP.String()
		r.nextIP = r.nextIP.Next()
	}
	r.sandboxes[s.id] = s
	return s.id, nil
}

func (r *Runtime) StopPodSandbox(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sandboxes[id]
	if !ok {
		return nil
	}
	for _, c := range r.containers {
		if c.sandboxID == id {
			r.exitLocked(c, 137, "Error")
		}
	}
	s.state = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	return nil
}

func (r *Runtime) RemovePodSandbox(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for cid, c := range r.containers {
		if c.sandboxID == id {
			r.exitLocked(c, 137, "Error")
			delete(r.containers, cid)
		}
	}
	delete(r.sandboxes, id)
	return nil
}

func (r *Runtime) PodSandboxStatus(_ context.Context, id string) (*runtimeapi.PodSandboxStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sandboxes[id]
	if !ok {
		return nil, notFound("sandbox", id)
	}
	st := &runtimeapi.PodSandboxStatus{
		Id: s.id, Metadata: s.config.Metadata, State: s.state, CreatedAt: s.createdAt,
		Labels: s.config.Labels, Annotations: s.config.Annotations,
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{Options: s.config.GetLinux().GetSecurityContext().GetNamespaceOptions()}},
	}
	if s.ip != "" {
		st.Network = &runtimeapi.PodSandboxNetworkStatus{Ip: s.ip}
	}
	return st, nil
}

func (r *Runtime) ListPodSandbox(_ context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*runtimeapi.PodSandbox
	for _, s := range r.sandboxes {
		if filter != nil {
			if filter.Id != "" && filter.Id != s.id {
				continue
			}
			if filter.State != nil && filter.State.State != s.state {
				continue
			}
			if !labelsMatch(s.config.Labels, filter.LabelSelector) {
				continue
			}
		}
		out = append(out, &runtimeapi.PodSandbox{
			Id: s.id, Metadata: s.config.Metadata, State: s.state, CreatedAt: s.createdAt,
			Labels: s.config.Labels, Annotations: s.config.Annotations, RuntimeHandler: s.handler,
		})
	}
	return out, nil
}

func labelsMatch(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func (r *Runtime) CreateContainer(_ context.Context, sandboxID string, config *runtimeapi.ContainerConfig, sandboxConfig *runtimeapi.PodSandboxConfig) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sandboxes[sandboxID]
	if !ok {
		return "", notFound("sandbox", sandboxID)
	}
	if s.state != runtimeapi.PodSandboxState_SANDBOX_READY {
		return "", fmt.Errorf("sandbox %q is not ready", sandboxID)
	}
	sc, err := parseScript(s.config.Annotations[AnnotationPrefix+config.GetMetadata().GetName()])
	if err != nil {
		return "", err
	}
	c := &container{
		id: r.newID("container"), sandboxID: sandboxID, config: config, script: sc,
		state: runtimeapi.ContainerState_CONTAINER_CREATED, createdAt: r.now().UnixNano(),
		exited: make(chan struct{}), probes: map[runtime.ProbeKind]bool{},
		resources: config.GetLinux().GetResources(),
	}
	r.containers[c.id] = c
	return c.id, nil
}

func parseScript(s string) (script, error) {
	sc := script{failing: map[runtime.ProbeKind]bool{}}
	for _, word := range strings.Fields(s) {
		key, value, _ := strings.Cut(word, "=")
		switch key {
		case "exit":
			n, err := strconv.ParseInt(value, 10, 32)
			if err != nil {
				return sc, fmt.Errorf("fake script %q: exit: %w", s, err)
			}
			code := int32(n)
			sc.exit = &code
		case "after":
			d, err := time.ParseDuration(value)
			if err != nil {
				return sc, fmt.Errorf("fake script %q: after: %w", s, err)
			}
			sc.after = d
		case "runs":
			n, err := strconv.Atoi(value)
			if err != nil {
				return sc, fmt.Errorf("fake script %q: runs: %w", s, err)
			}
			sc.runs = n
		case "oom":
			sc.oom = true
		case "ignore-term":
			sc.ignoreTerm = true
		case "liveness", "readiness", "startup":
			kind := map[string]runtime.ProbeKind{"liveness": runtime.Liveness, "readiness": runtime.Readiness, "startup": runtime.Startup}[key]
			sc.failing[kind] = value == "fail"
		default:
			return sc, fmt.Errorf("fake script %q: unknown word %q", s, word)
		}
	}
	return sc, nil
}

func (r *Runtime) StartContainer(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return notFound("container", id)
	}
	if c.state != runtimeapi.ContainerState_CONTAINER_CREATED {
		return fmt.Errorf("container %q is not created", id)
	}
	c.state = runtimeapi.ContainerState_CONTAINER_RUNNING
	c.startedAt = r.now().UnixNano()
	c.log = fmt.Appendf(c.log, "%s fake container %s started\n", r.now().UTC().Format(time.RFC3339Nano), c.config.GetMetadata().GetName())
	sc := c.script
	attempt := int(c.config.GetMetadata().GetAttempt())
	if (sc.exit != nil || sc.oom) && (sc.runs == 0 || attempt < sc.runs) {
		code, reason := int32(0), "Completed"
		if sc.exit != nil {
			code = *sc.exit
		}
		if code != 0 {
			reason = "Error"
		}
		if sc.oom {
			code, reason = 137, "OOMKilled"
		}
		if sc.after <= 0 {
			r.exitLocked(c, code, reason)
		} else {
			c.exitTimer = time.AfterFunc(sc.after, func() {
				r.mu.Lock()
				defer r.mu.Unlock()
				r.exitLocked(c, code, reason)
			})
		}
	}
	return nil
}

// exitLocked ends a running or created container with code and reason; r.mu is held.
func (r *Runtime) exitLocked(c *container, code int32, reason string) {
	if c.state == runtimeapi.ContainerState_CONTAINER_EXITED {
		return
	}
	if c.exitTimer != nil {
		c.exitTimer.Stop()
	}
	if c.state == runtimeapi.ContainerState_CONTAINER_RUNNING {
		c.log = fmt.Appendf(c.log, "%s fake container %s exited with %d\n", r.now().UTC().Format(time.RFC3339Nano), c.config.GetMetadata().GetName(), code)
	}
	c.state = runtimeapi.ContainerState_CONTAINER_EXITED
	c.finished = r.now().UnixNano()
	c.exitCode = code
	c.reason = reason
	close(c.exited)
}

func (r *Runtime) StopContainer(ctx context.Context, id string, timeout int64) error {
	r.mu.Lock()
	c, ok := r.containers[id]
	if !ok || c.state == runtimeapi.ContainerState_CONTAINER_EXITED {
		r.mu.Unlock()
		return nil
	}
	if !c.script.ignoreTerm || c.state != runtimeapi.ContainerState_CONTAINER_RUNNING {
		// a process that honours SIGTERM ends as sh does on it
		r.exitLocked(c, 143, "Error")
		r.mu.Unlock()
		return nil
	}
	exited := c.exited
	r.mu.Unlock()
	select {
	case <-exited:
		return nil
	case <-time.After(time.Duration(timeout) * time.Second):
	case <-ctx.Done():
	}
	r.mu.Lock()
	r.exitLocked(c, 137, "Error")
	r.mu.Unlock()
	return nil
}

func (r *Runtime) RemoveContainer(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.containers[id]; ok {
		r.exitLocked(c, 137, "Error")
		delete(r.containers, id)
	}
	return nil
}

func (r *Runtime) ListContainers(_ context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*runtimeapi.Container
	for _, c := range r.containers {
		if filter != nil {
			if filter.Id != "" && filter.Id != c.id {
				continue
			}
			if filter.PodSandboxId != "" && filter.PodSandboxId != c.sandboxID {
				continue
			}
			if filter.State != nil && filter.State.State != c.state {
				continue
			}
			if !labelsMatch(c.config.Labels, filter.LabelSelector) {
				continue
			}
		}
		out = append(out, &runtimeapi.Container{
			Id: c.id, PodSandboxId: c.sandboxID, Metadata: c.config.Metadata, Image: c.config.Image,
			ImageRef: imageRef(c.config.GetImage().GetImage()), State: c.state, CreatedAt: c.createdAt,
			Labels: c.config.Labels, Annotations: c.config.Annotations,
		})
	}
	return out, nil
}

func (r *Runtime) ContainerStatus(_ context.Context, id string) (*runtimeapi.ContainerStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return nil, notFound("container", id)
	}
	return &runtimeapi.ContainerStatus{
		Id: c.id, Metadata: c.config.Metadata, State: c.state, CreatedAt: c.createdAt,
		StartedAt: c.startedAt, FinishedAt: c.finished, ExitCode: c.exitCode, Reason: c.reason,
		Image: c.config.Image, ImageRef: imageRef(c.config.GetImage().GetImage()),
		Labels: c.config.Labels, Annotations: c.config.Annotations, LogPath: c.config.LogPath,
		Resources: &runtimeapi.ContainerResources{Linux: c.resources},
	}, nil
}

// UpdateContainerResources records a running container's new limits, as a resize sets them.
func (r *Runtime) UpdateContainerResources(_ context.Context, id string, resources *runtimeapi.LinuxContainerResources) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return notFound("container", id)
	}
	if c.state != runtimeapi.ContainerState_CONTAINER_RUNNING && c.state != runtimeapi.ContainerState_CONTAINER_CREATED {
		return fmt.Errorf("container %q is not running", id)
	}
	c.resources = resources
	return nil
}

func (r *Runtime) ExecSync(_ context.Context, id string, cmd []string, _ time.Duration) ([]byte, []byte, int32, error) {
	r.mu.Lock()
	c, ok := r.containers[id]
	running := ok && c.state == runtimeapi.ContainerState_CONTAINER_RUNNING
	r.mu.Unlock()
	if !ok {
		return nil, nil, 0, notFound("container", id)
	}
	if !running {
		return nil, nil, 0, fmt.Errorf("container %q is not running", id)
	}
	switch {
	case len(cmd) == 1 && cmd[0] == "false":
		return nil, nil, 1, nil
	case len(cmd) == 3 && cmd[0] == "sh" && cmd[1] == "-c" && strings.HasPrefix(cmd[2], "exit "):
		n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(cmd[2], "exit ")))
		if err == nil {
			return nil, nil, int32(n), nil
		}
	}
	return nil, nil, 0, nil
}

func (r *Runtime) Exec(context.Context, *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	return nil, status.Error(codes.Unimplemented, "the fake runtime has no streaming exec")
}

func (r *Runtime) Attach(context.Context, *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	return nil, status.Error(codes.Unimplemented, "the fake runtime has no streaming attach")
}

func (r *Runtime) PortForward(context.Context, *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	return nil, status.Error(codes.Unimplemented, "the fake runtime has no streaming port-forward")
}

// ListContainerStats reports every running container (matching filter) as using nothing.
func (r *Runtime) ListContainerStats(_ context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now().UnixNano()
	var out []*runtimeapi.ContainerStats
	for _, c := range r.containers {
		if c.state != runtimeapi.ContainerState_CONTAINER_RUNNING ||
			filter != nil && (filter.Id != "" && filter.Id != c.id || filter.PodSandboxId != "" && filter.PodSandboxId != c.sandboxID) {
			continue
		}
		out = append(out, &runtimeapi.ContainerStats{
			Attributes: &runtimeapi.ContainerAttributes{Id: c.id, Metadata: c.config.Metadata, Labels: c.config.Labels, Annotations: c.config.Annotations},
			Cpu:        &runtimeapi.CpuUsage{Timestamp: now, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{}},
			Memory:     &runtimeapi.MemoryUsage{Timestamp: now, WorkingSetBytes: &runtimeapi.UInt64Value{}},
		})
	}
	return out, nil
}

// ListPodSandboxStats reports every ready sandbox (matching filter) as using nothing.
func (r *Runtime) ListPodSandboxStats(_ context.Context, filter *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now().UnixNano()
	var out []*runtimeapi.PodSandboxStats
	for _, s := range r.sandboxes {
		if s.state != runtimeapi.PodSandboxState_SANDBOX_READY || filter != nil && filter.Id != "" && filter.Id != s.id {
			continue
		}
		out = append(out, &runtimeapi.PodSandboxStats{
			Attributes: &runtimeapi.PodSandboxAttributes{Id: s.id, Metadata: s.config.Metadata, Labels: s.config.Labels, Annotations: s.config.Annotations},
			Linux: &runtimeapi.LinuxPodSandboxStats{
				Cpu:    &runtimeapi.CpuUsage{Timestamp: now, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{}},
				Memory: &runtimeapi.MemoryUsage{Timestamp: now, WorkingSetBytes: &runtimeapi.UInt64Value{}},
			},
		})
	}
	return out, nil
}

func (r *Runtime) ImageStatus(_ context.Context, image string) (*runtimeapi.Image, error) {
	if strings.HasPrefix(image, UnreachableRegistry) {
		return nil, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, private := r.privateRegistry(image); private {
		if img, ok := r.images[imageRef(image)]; ok {
			return img, nil
		}
		return nil, nil
	}
	return r.image(image), nil
}

// image is the listed image named (by tag or ID) image, listing it first if it is not; r.mu
// is held.
func (r *Runtime) image(image string) *runtimeapi.Image {
	if img, ok := r.images[image]; ok {
		return img
	}
	id := imageRef(image)
	img, ok := r.images[id]
	if !ok {
		img = &runtimeapi.Image{Id: id, RepoTags: []string{image}, Size: 1 << 20}
		r.images[id] = img
	}
	return img
}

func (r *Runtime) PullImage(_ context.Context, image string, auth *runtimeapi.AuthConfig, _ *runtimeapi.PodSandboxConfig) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pulls = append(r.pulls, Pull{Image: image, Username: auth.GetUsername(), Password: auth.GetPassword()})
	if strings.HasPrefix(image, UnreachableRegistry) {
		return "", status.Errorf(codes.Unknown, "failed to pull and unpack image %q: failed to resolve reference %q: dial tcp: lookup unreachable.invalid: no such host", image, image)
	}
	if want, private := r.privateRegistry(image); private && (auth.GetUsername() != want[0] || auth.GetPassword() != want[1]) {
		host, _, _ := strings.Cut(image, "/")
		return "", status.Errorf(codes.Unknown, "failed to pull and unpack image %q: failed to resolve reference %q: pulling from host %s failed with status code [manifests 1]: 401 Unauthorized", image, image, host)
	}
	return r.image(image).Id, nil
}

// AddImage lists an image of size bytes under name; pinned marks it as a runtime's sandbox
// image is. It returns the image's ID.
func (r *Runtime) AddImage(name string, size uint64, pinned bool) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	img := r.image(name)
	img.Size, img.Pinned = size, pinned
	return img.Id
}

func (r *Runtime) ListImages(context.Context) ([]*runtimeapi.Image, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*runtimeapi.Image, 0, len(r.images))
	for _, img := range r.images {
		out = append(out, proto.Clone(img).(*runtimeapi.Image))
	}
	return out, nil
}

func (r *Runtime) RemoveImage(_ context.Context, image string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.images, image)
	delete(r.images, imageRef(image))
	return nil
}

// ImageFsInfo reports the listed images' sizes as used on one filesystem with no mount point:
// nothing is on disk.
func (r *Runtime) ImageFsInfo(context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var used uint64
	for _, img := range r.images {
		used += img.Size
	}
	usage := &runtimeapi.FilesystemUsage{
		Timestamp: r.now().UnixNano(), FsId: &runtimeapi.FilesystemIdentifier{},
		UsedBytes: &runtimeapi.UInt64Value{Value: used}, InodesUsed: &runtimeapi.UInt64Value{Value: uint64(len(r.images))},
	}
	return &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{usage}}, nil
}

// imageRef is a stable made-up digest for an image name.
func imageRef(image string) string {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(image); i++ {
		h ^= uint64(image[i])
		h *= 1099511628211
	}
	return fmt.Sprintf("sha256:%016x%016x%016x%016x", h, h^0x5bd1e995, h^0x1b873593, h^0xcc9e2d51)
}

// AnswerProbe fails a probe the container's script or SetProbe says fails; every other probe
// succeeds.
func (r *Runtime) AnswerProbe(_ context.Context, id string, kind runtime.ProbeKind) (bool, string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return false, "container not found", true
	}
	if fail, set := c.probes[kind]; set {
		if fail {
			return false, "fake probe failure", true
		}
		return true, "", true
	}
	if c.script.failing[kind] {
		return false, "fake probe failure", true
	}
	return true, "", true
}

// ContainerLog is the lines the fake wrote for the container: one when it started, one when it
// exited.
func (r *Runtime) ContainerLog(_ context.Context, id string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return nil, notFound("container", id)
	}
	return append([]byte(nil), c.log...), nil
}

// running finds the running (or created) container of a pod by the pod's UID and the
// container's name.
func (r *Runtime) running(podUID, name string) *container {
	for _, c := range r.containers {
		if c.config.Labels[runtime.LabelPodUID] == podUID && c.config.GetMetadata().GetName() == name &&
			c.state != runtimeapi.ContainerState_CONTAINER_EXITED {
			return c
		}
	}
	return nil
}

// ExitContainer makes the running container name of the pod with podUID exit with code, as
// if its process ended; it reports whether there was such a container.
func (r *Runtime) ExitContainer(podUID, name string, code int32) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.running(podUID, name)
	if c == nil {
		return false
	}
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	r.exitLocked(c, code, reason)
	return true
}

// SetProbe makes the kind probe of the running container name of the pod with podUID succeed
// or fail from now on (until the container restarts); it reports whether there was such a
// container.
func (r *Runtime) SetProbe(podUID, name string, kind runtime.ProbeKind, succeed bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.running(podUID, name)
	if c == nil {
		return false
	}
	c.probes[kind] = !succeed
	return true
}

// Counts reports how many sandboxes and containers the runtime holds, and how many of the
// containers run.
func (r *Runtime) Counts() (sandboxes, containers, running int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.containers {
		if c.state == runtimeapi.ContainerState_CONTAINER_RUNNING {
			running++
		}
	}
	return len(r.sandboxes), len(r.containers), running
}

// ContainerConfig is the CRI config the newest container name of the pod with podUID was
// created with (its command, environment, mounts, limits), nil when there is none.
func (r *Runtime) ContainerConfig(podUID, name string) *runtimeapi.ContainerConfig {
	r.mu.Lock()
	defer r.mu.Unlock()
	var newest *container
	for _, c := range r.containers {
		if c.config.Labels[runtime.LabelPodUID] == podUID && c.config.GetMetadata().GetName() == name &&
			(newest == nil || c.config.GetMetadata().GetAttempt() > newest.config.GetMetadata().GetAttempt()) {
			newest = c
		}
	}
	if newest == nil {
		return nil
	}
	return newest.config
}
