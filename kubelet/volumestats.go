package kubelet

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/skiff-dev/skiff/kubelet/runtime"
)

// volumeUsage is how a volume's usage is measured, as upstream's volume plugins measure it.
type volumeUsage int

const (
	// usageNone: the plugin measures nothing (hostPath's MetricsNil); the volume is in no stats.
	usageNone volumeUsage = iota
	// usageDu: the bytes and inodes under the volume's directory, on the filesystem's capacity
	// (emptyDir, configMap, secret, downwardAPI, projected: MetricsDu).
	usageDu
	// usageStatFS: the whole filesystem the volume is on (local volumes: MetricsStatFS).
	usageStatFS
)

// mountedVolume is one volume of a pod as setUp left it.
type mountedVolume struct {
	// path is the volume's directory on the node.
	path  string
	usage volumeUsage
	// claim names the PersistentVolumeClaim a persistentVolumeClaim volume comes from.
	claim string
	// inUse is the name the node reports the volume in use by (status.volumesInUse), "" for
	// a volume that is not attachable.
	inUse v1.UniqueVolumeName
	// image is the image ID of an image volume.
	image string
}

// podVolumes are the volumes of one pod on the node.
type podVolumes struct {
	namespace, name string
	volumes         map[string]mountedVolume
}

// record notes a volume of pod as set up (or, for an attachable one, wanted).
func (m *volumeManager) record(pod *v1.Pod, name string, vol mountedVolume) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.mounted[pod.UID]
	if p == nil {
		p = &podVolumes{namespace: pod.Namespace, name: pod.Name, volumes: map[string]mountedVolume{}}
		m.mounted[pod.UID] = p
	}
	p.volumes[name] = vol
}

// mountedPath is where a pod's volume is on the node, "" when it is not set up.
func (m *volumeManager) mountedPath(uid types.UID, name string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.mounted[uid]; p != nil {
		return p.volumes[name].path
	}
	return ""
}

// attachableName is the name upstream's kubelet reports an attachable volume in use by
// (v1.UniqueVolumeName), "" for a volume that no attach/detach controller attaches. Of the
// persistent volume types, local and hostPath are never attachable; a CSI volume is,
// "kubernetes.io/csi/<driver>^<volumeHandle>", unless its CSIDriver says attachRequired: false
// (a driver without a CSIDriver object needs attaching).
func (m *volumeManager) attachableName(ctx context.Context, pv *v1.PersistentVolume) (v1.UniqueVolumeName, error) {
	csi := pv.Spec.CSI
	if csi == nil {
		return "", nil
	}
	driver, err := m.k.client.StorageV1().CSIDrivers().Get(ctx, csi.Driver, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return "", err
	case driver.Spec.AttachRequired != nil && !*driver.Spec.AttachRequired:
		return "", nil
	}
	return v1.UniqueVolumeName("kubernetes.io/csi/" + csi.Driver + "^" + csi.VolumeHandle), nil
}

// volumesInUse is the node's status.volumesInUse: the attachable volumes of the pods on the
// node, from when a pod wants one until its volumes are cleaned up, sorted, each once. The
// attach/detach controller reads it before it detaches a volume.
func (m *volumeManager) volumesInUse() []v1.UniqueVolumeName {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []v1.UniqueVolumeName
	for _, p := range m.mounted {
		for _, v := range p.volumes {
			if v.inUse != "" {
				names = append(names, v.inUse)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// podVolumeStats measures the pod's volumes that have a measure, as upstream's volume stat
// calculator: the local ephemeral ones (emptyDir on disk, configMap) first, then the others;
// a volume from a claim names it (pvcRef). Measured when asked, never cached.
func (m *volumeManager) podVolumeStats(uid types.UID) []statsapi.VolumeStats {
	m.mu.Lock()
	var vols map[string]mountedVolume
	if p := m.mounted[uid]; p != nil {
		vols = make(map[string]mountedVolume, len(p.volumes))
		for name, v := range p.volumes {
			vols[name] = v
		}
	}
	m.mu.Unlock()
	if len(vols) == 0 {
		return nil
	}
	pod, _ := m.k.podByUID(uid)
	var ephemeral, persistent []statsapi.VolumeStats
	for name, v := range vols {
		if v.usage == usageNone || v.path == "" {
			continue
		}
		fs, err := measureVolume(v)
		if err != nil {
			m.k.log.Debug("measure volume", "volume", name, "uid", uid, "err", err)
			continue
		}
		s := statsapi.VolumeStats{Name: name, FsStats: fs}
		if v.claim != "" && pod != nil {
			s.PVCRef = &statsapi.PVCReference{Name: v.claim, Namespace: pod.Namespace}
		}
		if pod != nil && isLocalEphemeralVolume(pod, name) {
			ephemeral = append(ephemeral, s)
		} else {
			persistent = append(persistent, s)
		}
	}
	byName := func(a, b statsapi.VolumeStats) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	}
	slices.SortFunc(ephemeral, byName)
	slices.SortFunc(persistent, byName)
	return append(ephemeral, persistent...)
}

// isLocalEphemeralVolume is upstream's IsLocalEphemeralVolume: an emptyDir on disk, a
// configMap or a gitRepo volume.
func isLocalEphemeralVolume(pod *v1.Pod, name string) bool {
	for _, v := range pod.Spec.Volumes {
		if v.Name == name {
			return v.GitRepo != nil || v.ConfigMap != nil || (v.EmptyDir != nil && v.EmptyDir.Medium == v1.StorageMediumDefault)
		}
	}
	return false
}

// measureVolume is a volume's usage. Capacity, availability and inodes are the filesystem's
// (statfs); what is used is the filesystem's for usageStatFS, and the blocks and inodes
// under the directory (hard links once, not crossing into other filesystems) for usageDu.
func measureVolume(v mountedVolume) (statsapi.FsStats, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(v.path, &st); err != nil {
		return statsapi.FsStats{}, err
	}
	bsize := uint64(st.Bsize)
	available, capacity := st.Bavail*bsize, st.Blocks*bsize
	used, inodes, inodesFree := (st.Blocks-st.Bfree)*bsize, st.Files, st.Ffree
	inodesUsed := inodes - inodesFree
	if v.usage == usageDu {
		var err error
		if used, inodesUsed, err = diskUsage(v.path); err != nil {
			return statsapi.FsStats{}, err
		}
	}
	return statsapi.FsStats{
		Time: metav1.Now(), AvailableBytes: &available, CapacityBytes: &capacity, UsedBytes: &used,
		Inodes: &inodes, InodesFree: &inodesFree, InodesUsed: &inodesUsed,
	}, nil
}

// diskUsage is the bytes of the blocks and the number of inodes under dir, as `du` counts
// them: each hard-linked inode once, and nothing on another filesystem mounted below.
func diskUsage(dir string) (bytes, inodes uint64, err error) {
	var top unix.Stat_t
	if err := unix.Stat(dir, &top); err != nil {
		return 0, 0, err
	}
	seen := map[uint64]bool{}
	err = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if os.IsNotExist(err) {
			return nil // gone since its directory was read
		}
		if err != nil {
			return fmt.Errorf("unable to count inodes for %s: %s", path, err)
		}
		s, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("unsupported fileinfo; could not convert to stat_t")
		}
		if s.Dev != top.Dev {
			return filepath.SkipDir
		}
		if s.Nlink > 1 {
			if seen[s.Ino] {
				return nil
			}
			seen[s.Ino] = true
		}
		bytes += uint64(s.Blocks) * 512
		inodes++
		return nil
	})
	return bytes, inodes, err
}

// serveStatsSummary answers /stats/summary as upstream's kubelet does (stats/v1alpha1
// Summary): the node's CPU, memory and filesystem, and each pod with running containers, its
// containers' CPU and memory and its volumes' usage. ?only_cpu_and_memory=true leaves the
// filesystems out, as upstream.
func (k *Kubelet) serveStatsSummary(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	summary, err := k.statsSummary(ctx, r.URL.Query().Get("only_cpu_and_memory") == "true")
	if err != nil {
		http.Error(w, fmt.Sprintf("Internal Error: failed to get summary stats: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(summary)
}

func (k *Kubelet) statsSummary(ctx context.Context, onlyCPUAndMemory bool) (*statsapi.Summary, error) {
	now := metav1.Now()
	summary := &statsapi.Summary{Node: statsapi.NodeStats{NodeName: k.cfg.NodeName, StartTime: now}, Pods: []statsapi.PodStats{}}
	if cpu, mem, err := readNodeUsage(); err == nil {
		nanos, ws := uint64(cpu*1e9), uint64(mem)
		summary.Node.CPU = &statsapi.CPUStats{Time: now, UsageCoreNanoSeconds: &nanos}
		summary.Node.Memory = &statsapi.MemoryStats{Time: now, WorkingSetBytes: &ws}
	}
	if !onlyCPUAndMemory {
		root := k.cfg.RootDir
		if root == "" {
			root = "/"
		}
		if fs, err := measureVolume(mountedVolume{path: root, usage: usageStatFS}); err == nil {
			summary.Node.Fs = &fs
		}
	}

	stats, err := k.rt.ListContainerStats(ctx, nil)
	if err != nil {
		return nil, err
	}
	sandboxes, err := k.rt.ListPodSandbox(ctx, nil)
	if err != nil {
		return nil, err
	}
	started := map[types.UID]int64{}
	for _, s := range sandboxes {
		uid := types.UID(s.Labels[runtime.LabelPodUID])
		if s.State == runtimeapi.PodSandboxState_SANDBOX_READY && s.CreatedAt > started[uid] {
			started[uid] = s.CreatedAt
		}
	}
	pods := map[types.UID]*statsapi.PodStats{}
	for _, s := range stats {
		labels := s.GetAttributes().GetLabels()
		uid, name := types.UID(labels[runtime.LabelPodUID]), labels[runtime.LabelContainerName]
		if uid == "" || name == "" {
			continue // not the kubelet's
		}
		st, err := k.rt.ContainerStatus(ctx, s.GetAttributes().GetId())
		if err != nil || st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		p := pods[uid]
		if p == nil {
			p = &statsapi.PodStats{
				PodRef:     statsapi.PodReference{Name: labels[runtime.LabelPodName], Namespace: labels[runtime.LabelPodNamespace], UID: string(uid)},
				StartTime:  metav1.NewTime(time.Unix(0, started[uid])),
				Containers: []statsapi.ContainerStats{},
			}
			pods[uid] = p
		}
		c := statsapi.ContainerStats{Name: name, StartTime: metav1.NewTime(time.Unix(0, st.StartedAt))}
		if cpu := s.GetCpu(); cpu.GetUsageCoreNanoSeconds() != nil {
			v := cpu.UsageCoreNanoSeconds.Value
			c.CPU = &statsapi.CPUStats{Time: metav1.NewTime(time.Unix(0, cpu.Timestamp)), UsageCoreNanoSeconds: &v}
			if cpu.GetUsageNanoCores() != nil {
				cores := cpu.UsageNanoCores.Value
				c.CPU.UsageNanoCores = &cores
			}
			p.CPU = addCPU(p.CPU, c.CPU)
		}
		if mem := s.GetMemory(); mem.GetWorkingSetBytes() != nil {
			v := mem.WorkingSetBytes.Value
			c.Memory = &statsapi.MemoryStats{Time: metav1.NewTime(time.Unix(0, mem.Timestamp)), WorkingSetBytes: &v}
			p.Memory = addMemory(p.Memory, c.Memory)
		}
		p.Containers = append(p.Containers, c)
	}
	uids := make([]types.UID, 0, len(pods))
	for uid := range pods {
		uids = append(uids, uid)
	}
	sort.Slice(uids, func(i, j int) bool { return uids[i] < uids[j] })
	for _, uid := range uids {
		p := pods[uid]
		sort.Slice(p.Containers, func(i, j int) bool { return p.Containers[i].Name < p.Containers[j].Name })
		if !onlyCPUAndMemory {
			p.VolumeStats = k.volumes.podVolumeStats(uid)
		}
		summary.Pods = append(summary.Pods, *p)
	}
	return summary, nil
}

// addCPU is a pod's CPU so far with one more container's.
func addCPU(sum, c *statsapi.CPUStats) *statsapi.CPUStats {
	if sum == nil {
		v := *c.UsageCoreNanoSeconds
		return &statsapi.CPUStats{Time: c.Time, UsageCoreNanoSeconds: &v}
	}
	*sum.UsageCoreNanoSeconds += *c.UsageCoreNanoSeconds
	if c.Time.After(sum.Time.Time) {
		sum.Time = c.Time
	}
	return sum
}

// addMemory is a pod's memory so far with one more container's.
func addMemory(sum, c *statsapi.MemoryStats) *statsapi.MemoryStats {
	if sum == nil {
		v := *c.WorkingSetBytes
		return &statsapi.MemoryStats{Time: c.Time, WorkingSetBytes: &v}
	}
	*sum.WorkingSetBytes += *c.WorkingSetBytes
	if c.Time.After(sum.Time.Time) {
		sum.Time = c.Time
	}
	return sum
}

// The kubelet's volume stats on /metrics, upstream's names, help and labels.
var (
	volumeStatsCapacityBytesDesc = prometheus.NewDesc("kubelet_volume_stats_capacity_bytes",
		"[ALPHA] Capacity in bytes of the volume", []string{"namespace", "persistentvolumeclaim"}, nil)
	volumeStatsAvailableBytesDesc = prometheus.NewDesc("kubelet_volume_stats_available_bytes",
		"[ALPHA] Number of available bytes in the volume", []string{"namespace", "persistentvolumeclaim"}, nil)
	volumeStatsUsedBytesDesc = prometheus.NewDesc("kubelet_volume_stats_used_bytes",
		"[ALPHA] Number of used bytes in the volume", []string{"namespace", "persistentvolumeclaim"}, nil)
	volumeStatsInodesDesc = prometheus.NewDesc("kubelet_volume_stats_inodes",
		"[ALPHA] Maximum number of inodes in the volume", []string{"namespace", "persistentvolumeclaim"}, nil)
	volumeStatsInodesFreeDesc = prometheus.NewDesc("kubelet_volume_stats_inodes_free",
		"[ALPHA] Number of free inodes in the volume", []string{"namespace", "persistentvolumeclaim"}, nil)
	volumeStatsInodesUsedDesc = prometheus.NewDesc("kubelet_volume_stats_inodes_used",
		"[ALPHA] Number of used inodes in the volume", []string{"namespace", "persistentvolumeclaim"}, nil)
)

// volumeStatsCollector is upstream's volume stats collector: for each claim a pod on the node
// mounts (once, whichever pod), the usage of its volume as /stats/summary has it.
type volumeStatsCollector struct{ k *Kubelet }

var _ prometheus.Collector = volumeStatsCollector{}

func (c volumeStatsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{volumeStatsCapacityBytesDesc, volumeStatsAvailableBytesDesc, volumeStatsUsedBytesDesc,
		volumeStatsInodesDesc, volumeStatsInodesFreeDesc, volumeStatsInodesUsedDesc} {
		ch <- d
	}
}

func (c volumeStatsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	summary, err := c.k.statsSummary(ctx, false)
	if err != nil {
		return
	}
	seen := map[statsapi.PVCReference]bool{}
	for _, p := range summary.Pods {
		for _, v := range p.VolumeStats {
			if v.PVCRef == nil || seen[*v.PVCRef] {
				continue
			}
			seen[*v.PVCRef] = true
			gauge := func(d *prometheus.Desc, value uint64) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(value), v.PVCRef.Namespace, v.PVCRef.Name)
			}
			gauge(volumeStatsCapacityBytesDesc, *v.CapacityBytes)
			gauge(volumeStatsAvailableBytesDesc, *v.AvailableBytes)
			gauge(volumeStatsUsedBytesDesc, *v.UsedBytes)
			gauge(volumeStatsInodesDesc, *v.Inodes)
			gauge(volumeStatsInodesFreeDesc, *v.InodesFree)
			gauge(volumeStatsInodesUsedDesc, *v.InodesUsed)
		}
	}
}
