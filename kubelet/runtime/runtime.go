// Package runtime is the kubelet's face of a container runtime: the few CRI verbs the kubelet
// uses, in CRI's own message types (k8s.io/cri-api v1), so that a CRI client (kubelet/cri) and
// the in-memory fake (kubelet/fakeruntime) satisfy the same interface and the kubelet above it
// cannot tell them apart.
//
// It must never grow verbs that CRI lacks, except the optional interfaces at the bottom, which a
// runtime may implement and the kubelet then prefers.
package runtime

import (
	"context"
	"errors"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Labels the kubelet puts on every sandbox and container, as upstream's kubelet does, so that a
// restarted kubelet finds what belongs to which pod.
const (
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelPodUID        = "io.kubernetes.pod.uid"
	LabelContainerName = "io.kubernetes.container.name"
	// LabelContainerType marks init containers ("init") apart from app containers ("app").
	LabelContainerType = "io.kubernetes.container.type"
)

// ErrNotFound is what a runtime returns (wrapped) for a sandbox, container or image it does
// not have.
var ErrNotFound = errors.New("not found")

// Runtime is a container runtime as the kubelet drives it. Every method is safe for concurrent
// use; a method that names an ID the runtime does not know returns an error wrapping
// ErrNotFound, except the stop and remove verbs, which succeed on what is already gone.
type Runtime interface {
	// Version names the runtime ("containerd", "1.6.20") and its CRI version.
	Version(ctx context.Context) (*runtimeapi.VersionResponse, error)
	// Status reports whether the runtime and its network are ready (RuntimeReady, NetworkReady).
	Status(ctx context.Context) (*runtimeapi.RuntimeStatus, error)

	// RunPodSandbox creates and starts a sandbox (the pod's namespaces and network) and returns
	// its ID. Sandboxes are ready once this returns. runtimeHandler is the pod's RuntimeClass
	// handler, "" for the runtime's default.
	RunPodSandbox(ctx context.Context, config *runtimeapi.PodSandboxConfig, runtimeHandler string) (string, error)
	// StopPodSandbox stops every container of the sandbox and tears its network down; the
	// sandbox stays listed, NOTREADY, until removed.
	StopPodSandbox(ctx context.Context, sandboxID string) error
	// RemovePodSandbox removes a stopped sandbox and every container in it.
	RemovePodSandbox(ctx context.Context, sandboxID string) error
	// PodSandboxStatus is the sandbox's state and network (its pod IP).
	PodSandboxStatus(ctx context.Context, sandboxID string) (*runtimeapi.PodSandboxStatus, error)
	// ListPodSandbox lists sandboxes matching filter (nil: all), in no particular order.
	ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error)

	// CreateContainer creates a container in a ready sandbox without starting it.
	CreateContainer(ctx context.Context, sandboxID string, config *runtimeapi.ContainerConfig, sandboxConfig *runtimeapi.PodSandboxConfig) (string, error)
	// StartContainer starts a created container.
	StartContainer(ctx context.Context, containerID string) error
	// StopContainer signals the container to stop and kills it after timeout seconds; it
	// returns once the container has exited.
	StopContainer(ctx context.Context, containerID string, timeout int64) error
	// RemoveContainer removes a container, killing it first if it runs.
	RemoveContainer(ctx context.Context, containerID string) error
	// ListContainers lists containers matching filter (nil: all), in no particular order.
	ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error)
	// ContainerStatus is the container's state, exit code, reason and times.
	ContainerStatus(ctx context.Context, containerID string) (*runtimeapi.ContainerStatus, error)
	// UpdateContainerResources changes a running container's cgroup limits in place (an
	// in-place pod resize).
	UpdateContainerResources(ctx context.Context, containerID string, resources *runtimeapi.LinuxContainerResources) error

	// ExecSync runs cmd in the container and waits at most timeout (0: no limit) for it.
	ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (stdout, stderr []byte, exitCode int32, err error)
	// Exec prepares a streaming exec and returns the URL its stream is served on.
	Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error)
	// Attach prepares a streaming attach to a running container's stdio and returns the URL
	// its stream is served on.
	Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error)
	// PortForward prepares a streaming port forward into a sandbox's network namespace and
	// returns the URL its stream is served on.
	PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error)

	// ListContainerStats is the CPU and memory use of the containers matching filter (nil:
	// all); a runtime that keeps no statistics returns codes.Unimplemented.
	ListContainerStats(ctx context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error)
	// ListPodSandboxStats is the CPU and memory use of whole sandboxes matching filter (nil:
	// all), pause container and overhead included; codes.Unimplemented when not kept.
	ListPodSandboxStats(ctx context.Context, filter *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error)

	// ImageStatus describes a local image, or returns nil and no error when it is absent.
	ImageStatus(ctx context.Context, image string) (*runtimeapi.Image, error)
	// PullImage pulls an image, with the registry credentials auth (nil: anonymously), and
	// returns its reference (the image ID).
	PullImage(ctx context.Context, image string, auth *runtimeapi.AuthConfig, sandboxConfig *runtimeapi.PodSandboxConfig) (string, error)
	// ListImages lists the local images (their IDs, tags, sizes and whether the runtime pins
	// them, as it does its sandbox image), in no particular order.
	ListImages(ctx context.Context) ([]*runtimeapi.Image, error)
	// RemoveImage removes a local image by ID or name with all its tags; removing an image
	// that is already gone succeeds.
	RemoveImage(ctx context.Context, image string) error
	// ImageFsInfo is what the images take on the filesystems that hold them (bytes and inodes
	// used, and each filesystem's mount point).
	ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error)
}

// ProbeKind is which probe a result is for.
type ProbeKind string

const (
	Liveness  ProbeKind = "Liveness"
	Readiness ProbeKind = "Readiness"
	Startup   ProbeKind = "Startup"
)

// ProbeAnswerer is implemented by runtimes whose containers are not real (the fake): the
// kubelet asks it for a probe's result instead of running the probe. handled is false when the
// runtime leaves this probe to the kubelet.
type ProbeAnswerer interface {
	AnswerProbe(ctx context.Context, containerID string, kind ProbeKind) (success bool, output string, handled bool)
}

// LogReader is implemented by runtimes whose container logs are not files on this host (the
// fake): the kubelet reads a container's log through it instead of from CRI's log path.
type LogReader interface {
	ContainerLog(ctx context.Context, containerID string) ([]byte, error)
}

// PodCIDRSetter is implemented by runtimes that configure the pod network from the Node's
// spec.podCIDR (CRI's UpdateRuntimeConfig): the kubelet calls it when the CIDR is first known
// and whenever it changes.
type PodCIDRSetter interface {
	SetPodCIDR(cidr string) error
}

// SandboxImager is implemented by runtimes that name the image their sandboxes run (containerd's
// sandbox_image, in CRI's verbose status): the kubelet never garbage-collects it.
type SandboxImager interface {
	SandboxImage(ctx context.Context) (string, error)
}
