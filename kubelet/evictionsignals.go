package kubelet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/skiff-dev/skiff/kubelet/runtime"
)

// SignalObservation is how much of a signal's resource is available now, out of its capacity
// (bytes, inodes or process IDs).
type SignalObservation struct {
	Available, Capacity int64
}

// SignalObservations are the signals observed at one moment; a signal not observed is absent.
type SignalObservations map[EvictionSignal]SignalObservation

// ObserveSignalsFunc reads the node's eviction signals now.
type ObserveSignalsFunc func(ctx context.Context) (SignalObservations, error)

// hostSignals reads this host's signals as upstream's kubelet computes them: memory.available
// is the host's memory less the root cgroup's working set (usage less inactive file pages),
// nodefs the filesystem of rootDir, imagefs the runtime's image filesystem, pid.available the
// kernel's process ID limit less the processes there are. A signal that cannot be read is left
// out (and so never met), as upstream leaves out what its stats lack.
// The host's memory is read here rather than taken from the node's MachineInfo, which a test
// may make up.
func hostSignals(rootDir string, imageFs FsStatsFunc) ObserveSignalsFunc {
	return func(ctx context.Context) (SignalObservations, error) {
		obs := SignalObservations{}
		var errs []error
		memory, err := memTotal()
		if err == nil {
			var ws float64
			if _, ws, err = readNodeUsage(); err == nil {
				obs[SignalMemoryAvailable] = SignalObservation{Available: max(memory-int64(ws), 0), Capacity: memory}
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("memory: %w", err))
		}
		if fs, err := statFs(rootDir); err == nil {
			obs[SignalNodeFsAvailable] = SignalObservation{Available: int64(fs.AvailableBytes), Capacity: int64(fs.CapacityBytes)}
			obs[SignalNodeFsInodesFree] = SignalObservation{Available: int64(fs.InodesFree), Capacity: int64(fs.Inodes)}
		} else {
			errs = append(errs, fmt.Errorf("nodefs: %w", err))
		}
		if fs, err := imageFs(ctx); err == nil {
			obs[SignalImageFsAvailable] = SignalObservation{Available: int64(fs.AvailableBytes), Capacity: int64(fs.CapacityBytes)}
			obs[SignalImageFsInodesFree] = SignalObservation{Available: int64(fs.InodesFree), Capacity: int64(fs.Inodes)}
		} else {
			errs = append(errs, fmt.Errorf("imagefs: %w", err))
		}
		if maxPID, procs, err := pidUsage(); err == nil {
			obs[SignalPIDAvailable] = SignalObservation{Available: max(maxPID-procs, 0), Capacity: maxPID}
		} else {
			errs = append(errs, fmt.Errorf("pids: %w", err))
		}
		if len(obs) == 0 {
			return nil, errors.Join(errs...)
		}
		return obs, nil
	}
}

// statFs is the filesystem holding path, as statfs tells.
func statFs(path string) (FsStats, error) {
	fs, err := measureVolume(mountedVolume{path: path, usage: usageStatFS})
	if err != nil {
		return FsStats{}, err
	}
	return FsStats{CapacityBytes: *fs.CapacityBytes, AvailableBytes: *fs.AvailableBytes, Inodes: *fs.Inodes, InodesFree: *fs.InodesFree}, nil
}

// runtimeImageFs reads the filesystem the runtime keeps its images on: the mount point CRI's
// ImageFsInfo names, measured with statfs.
func runtimeImageFs(rt runtime.Runtime) FsStatsFunc {
	return func(ctx context.Context) (FsStats, error) {
		info, err := rt.ImageFsInfo(ctx)
		if err != nil {
			return FsStats{}, err
		}
		for _, fs := range info.GetImageFilesystems() {
			if mp := fs.GetFsId().GetMountpoint(); mp != "" {
				return statFs(mp)
			}
		}
		return FsStats{}, errors.New("the runtime names no image filesystem")
	}
}

// pidUsage is the kernel's limit of process IDs (the smaller of pid_max and threads-max, as
// upstream's) and how many processes there are.
func pidUsage() (limit, procs int64, err error) {
	limit = -1
	for _, f := range []string{"/proc/sys/kernel/pid_max", "/proc/sys/kernel/threads-max"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return 0, 0, err
		}
		v, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", f, err)
		}
		if limit < 0 || v < limit {
			limit = v
		}
	}
	var info unix.Sysinfo_t
	if err := unix.Sysinfo(&info); err != nil {
		return 0, 0, err
	}
	return limit, int64(info.Procs), nil
}
