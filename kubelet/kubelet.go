// Package kubelet is skiff's node agent: it registers its Node, keeps the node's Lease fresh,
// runs the pods bound to the node through a container runtime (kubelet/runtime: containerd's CRI
// or the in-memory fake) and reports what really happens to them through pods/status and
// Events, as upstream's kubelet does.
//
// It talks to the API server only through client-go and to containers only through
// runtime.Runtime; it holds no state that the API server and the runtime cannot rebuild, so a
// restarted kubelet adopts what runs without restarting it. How its goroutines fit together is
// in FLOW.md beside this file.
package kubelet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/skiff-dev/skiff/kubelet/pullrecords"
	"github.com/skiff-dev/skiff/kubelet/runtime"
)

// Config is what a kubelet needs; New fills the zero fields with upstream's defaults.
type Config struct {
	// NodeName names the Node this kubelet registers and the pods it runs (spec.nodeName).
	NodeName string
	Client   kubernetes.Interface
	Runtime  runtime.Runtime
	// RuntimeEndpoint is shown in logs only.
	RuntimeEndpoint string
	// KubeletVersion is reported in the Node's nodeInfo.
	KubeletVersion string

	// RootDir holds the pods' volumes (RootDir/pods/<uid>/volumes). Empty: volumes are not
	// put on disk at all, as for simulated nodes whose containers are not real.
	RootDir string
	// PodLogsDir is where the runtime writes container logs (PodLogsDir/<ns>_<pod>_<uid>/
	// <container>/<attempt>.log). Empty: RootDir/logs, or none without RootDir.
	PodLogsDir string

	// Machine is the node's hardware and OS. Zero: read from this host.
	Machine MachineInfo
	// NodeIPs are the node's addresses (InternalIP), the pods' hostIP. Empty: the address of
	// the host's default route, or 127.0.0.1.
	NodeIPs []net.IP
	// SystemReserved is kept from the pods (subtracted from capacity for allocatable).
	SystemReserved v1.ResourceList
	// MaxPods is capacity "pods"; 0: 110.
	MaxPods int
	// Port is the kubelet API's port, reported in the Node's daemonEndpoints; 0: 10250.
	Port int
	// NodeLabels are added to the well-known labels on registration.
	NodeLabels map[string]string
	// ClusterDNS are the cluster's DNS servers for ClusterFirst pods, ClusterDomain its
	// domain (default cluster.local); without them pods resolve as the host does.
	ClusterDNS    []string
	ClusterDomain string
	// PodCIDR is used when the Node has no spec.podCIDR (upstream's --pod-cidr): one CIDR, or
	// an IPv4 and an IPv6 one separated by a comma (the primary family first) for dual stack.
	PodCIDR string

	// Prepare, when set, runs once the runtime answers and the Node is registered, before
	// the kubelet runs any pod (skiff imports --image-dir here). Until it returns the Node's
	// Ready condition is False with PrepareMessage, so nothing is scheduled here early. An
	// error it returns is logged and the kubelet goes on.
	Prepare        func(ctx context.Context) error
	PrepareMessage string

	// Timings; zero means upstream's default.
	LeaseDuration             time.Duration // 40 s; renewed every quarter of it
	NodeStatusUpdateFrequency time.Duration // 10 s: how often status is computed
	NodeStatusReportFrequency time.Duration // 5 min: status is posted at least this often
	RelistPeriod              time.Duration // 1 s: how often the runtime is listed for changes
	ResyncPeriod              time.Duration // 1 min: every pod is synced at least this often
	HousekeepingPeriod        time.Duration // 2 s: orphan sandboxes are cleaned this often
	BackOffInitial            time.Duration // 10 s: first crash-loop and image pull back-off
	BackOffMax                time.Duration // 5 min: the back-off's cap

	// Recorder records Events; nil: one that writes v1 Events through Client.
	Recorder record.EventRecorder

	// ImageGC says when unused images are removed (imagegc.go); ImageGCPeriod how often
	// that is checked (zero: upstream's 5 min). SandboxImage, the runtime's pause image, is
	// never removed.
	ImageGC       ImageGCPolicy
	ImageGCPeriod time.Duration
	SandboxImage  string
	// ImageFs reads the filesystem the runtime's images are on; nil: statfs of the mount
	// point the runtime's ImageFsInfo names, on a node with a RootDir.
	ImageFs FsStatsFunc

	// EvictionHard are the hard eviction thresholds (eviction.go); nil: upstream's defaults
	// (DefaultEvictionHard), empty: none. EvictionSoft are soft ones, with grace periods.
	EvictionHard []EvictionThreshold
	EvictionSoft []EvictionThreshold
	// EvictionMaxPodGracePeriod caps the grace period of pods evicted for a soft threshold
	// (seconds; zero: the pod's own).
	EvictionMaxPodGracePeriod int64
	// EvictionPressureTransitionPeriod is how long a pressure condition stays after its
	// thresholds stop being met; zero: upstream's 5 min.
	EvictionPressureTransitionPeriod time.Duration
	// EvictionMonitoringInterval is how often the signals are observed; zero: 10 s.
	EvictionMonitoringInterval time.Duration
	// EvictionSignals reads the node's eviction signals; nil: this host's, on a node with a
	// RootDir. A simulated node (no RootDir) neither evicts nor collects images unless a test
	// gives it signals and an image filesystem.
	EvictionSignals ObserveSignalsFunc
	// PodStats reads the pods' usage for ranking them; nil: the runtime's statistics.
	PodStats PodStatsFunc

	// ImageVolumes mounts the images of image volumes where the runtime's CRI cannot
	// (containerd before 2.1); nil, or a runtime that can: CRI's image mounts.
	ImageVolumes ImageVolumeMounter
}

func (c *Config) defaults() error {
	if c.NodeName == "" {
		return errors.New("kubelet: no node name")
	}
	if c.Client == nil || c.Runtime == nil {
		return errors.New("kubelet: a client and a runtime are required")
	}
	if c.MaxPods == 0 {
		c.MaxPods = 110
	}
	if c.Port == 0 {
		c.Port = 10250
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.LeaseDuration, 40*time.Second)
	def(&c.NodeStatusUpdateFrequency, 10*time.Second)
	def(&c.NodeStatusReportFrequency, 5*time.Minute)
	def(&c.RelistPeriod, time.Second)
	def(&c.ResyncPeriod, time.Minute)
	def(&c.HousekeepingPeriod, 2*time.Second)
	def(&c.BackOffInitial, 10*time.Second)
	def(&c.BackOffMax, 5*time.Minute)
	def(&c.ImageGCPeriod, 5*time.Minute)
	def(&c.EvictionPressureTransitionPeriod, 5*time.Minute)
	def(&c.EvictionMonitoringInterval, 10*time.Second)
	if err := c.ImageGC.defaults(); err != nil {
		return fmt.Errorf("kubelet: image garbage collection: %w", err)
	}
	if c.EvictionHard == nil {
		hard, err := ParseEvictionThresholds(DefaultEvictionHard)
		if err != nil {
			return err
		}
		c.EvictionHard = hard
	}
	if c.PodLogsDir == "" && c.RootDir != "" {
		c.PodLogsDir = c.RootDir + "/logs"
	}
	if c.Machine.CPUs == 0 {
		m, err := ReadMachineInfo(c.RootDir)
		if err != nil {
			return fmt.Errorf("kubelet: machine info: %w", err)
		}
		c.Machine = m
	}
	if len(c.NodeIPs) == 0 {
		c.NodeIPs = []net.IP{defaultNodeIP()}
	}
	if c.KubeletVersion == "" {
		c.KubeletVersion = "v0.0.0-skiff"
	}
	return nil
}

// Kubelet is one node's agent. Make it with New and run it with Run.
type Kubelet struct {
	cfg Config
	// podCerts are the keys and requests of podCertificate volume sources
	podCerts podCertificates
	client   kubernetes.Interface
	rt       runtime.Runtime
	recorder record.EventRecorder
	log      *slog.Logger

	podLister corelisters.PodLister
	// serviceLister sees every Service, for the containers' service environment.
	serviceLister corelisters.ServiceLister
	workers       *podWorkers
	statuses      *statusManager
	probes        *probeManager
	crashLoop     *backOff
	imagePull     *backOff
	// pullRecords remember which credentials pulled each image, for pods that find it present
	pullRecords *pullrecords.Records
	volumes     *volumeManager
	pleg        *relister
	// admission holds the pods admitted to the node that still hold its ports and resources.
	admission *podAdmission
	// images removes unused images; nil on a node with no image filesystem to watch.
	images *imageGC
	// eviction evicts pods under node pressure; nil on a node with no signals to watch.
	eviction *evictionManager

	// runtimeName prefixes container IDs in pod status ("containerd://<id>").
	runtimeName string
	// imageViews mounts image volumes when the runtime's CRI does not (set by Run, then
	// only read); nil when CRI does.
	imageViews ImageVolumeMounter

	mu sync.Mutex
	// podCIDR is the Node's spec.podCIDRs as last seen, joined by commas.
	podCIDR string
	// appliedPodCIDR is the pod CIDR the runtime was last configured with.
	appliedPodCIDR string
	// lease is the node's Lease as last written; only renewLease touches it.
	lease *coordinationv1.Lease
	// ready is closed once the Node is registered and pods are watched.
	ready chan struct{}
	// preparing is why the Node is not ready while Config.Prepare runs, "" after.
	preparing string
}

// New checks the configuration and makes a kubelet; nothing runs until Run.
func New(cfg Config) (*Kubelet, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	k := &Kubelet{
		cfg: cfg, client: cfg.Client, rt: cfg.Runtime, recorder: cfg.Recorder,
		log:       slog.With("node", cfg.NodeName),
		crashLoop: newBackOff(cfg.BackOffInitial, cfg.BackOffMax),
		imagePull: newBackOff(cfg.BackOffInitial, cfg.BackOffMax),
		podCIDR:   cfg.PodCIDR,
		ready:     make(chan struct{}),
	}
	if cfg.Prepare != nil {
		k.preparing = cfg.PrepareMessage
		if k.preparing == "" {
			k.preparing = "kubelet is preparing the node"
		}
	}
	records, err := pullrecords.Open(cfg.RootDir)
	if err != nil {
		return nil, err
	}
	k.pullRecords = records
	k.statuses = newStatusManager(cfg.Client)
	k.workers = newPodWorkers(k.syncPod)
	k.admission = newPodAdmission()
	k.probes = newProbeManager(k)
	k.volumes = newVolumeManager(k)
	k.pleg = newRelister(cfg.Runtime, cfg.RelistPeriod, k.workers.wake)
	imageFs := cfg.ImageFs
	if imageFs == nil && cfg.RootDir != "" {
		imageFs = runtimeImageFs(cfg.Runtime)
	}
	if imageFs != nil {
		k.images = newImageGC(cfg.Runtime, cfg.ImageGC, imageFs, cfg.SandboxImage, k.nodeEvent, k.log)
		k.images.pullRecords = k.pullRecords
	}
	signals := cfg.EvictionSignals
	if signals == nil && cfg.RootDir != "" && imageFs != nil {
		signals = hostSignals(cfg.RootDir, imageFs)
	}
	if signals != nil {
		podStats := cfg.PodStats
		if podStats == nil {
			podStats = func(ctx context.Context) ([]statsapi.PodStats, error) {
				s, err := k.statsSummary(ctx, false)
				if err != nil {
					return nil, err
				}
				return s.Pods, nil
			}
		}
		thresholds := append(slices.Clone(cfg.EvictionHard), cfg.EvictionSoft...)
		k.eviction = newEvictionManager(k, thresholds, signals, podStats, cfg.EvictionPressureTransitionPeriod, cfg.EvictionMaxPodGracePeriod)
	}
	return k, nil
}

// Ready is closed once the kubelet has registered its Node and started watching its pods.
func (k *Kubelet) Ready() <-chan struct{} { return k.ready }

// NodeName is the name of the kubelet's Node.
func (k *Kubelet) NodeName() string { return k.cfg.NodeName }

// Run registers the Node and runs the node's pods until ctx is done, then returns nil. On
// return every goroutine it started has stopped; the containers keep running, for the next
// kubelet to adopt.
func (k *Kubelet) Run(ctx context.Context) error {
	var broadcaster record.EventBroadcaster
	if k.recorder == nil {
		broadcaster = record.NewBroadcaster(record.WithContext(ctx))
		broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: k.client.CoreV1().Events("")})
		k.recorder = broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: "kubelet", Host: k.cfg.NodeName})
		defer broadcaster.Shutdown()
	}

	version, err := k.waitForRuntime(ctx)
	if err != nil {
		return nil // only ctx ends the wait: asked to stop
	}
	k.runtimeName = version.RuntimeName
	if k.cfg.ImageVolumes != nil && !criMountsImages(version) {
		k.imageViews = k.cfg.ImageVolumes
	}
	if err := k.registerNode(ctx, version); err != nil {
		return nil // likewise
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { k.renewLease(ctx) })
	if err := k.prepareNode(ctx, version); err != nil {
		return nil // asked to stop while preparing
	}

	factory := informers.NewSharedInformerFactoryWithOptions(k.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", k.cfg.NodeName).String()
		}))
	podInformer := factory.Core().V1().Pods()
	k.podLister = podInformer.Lister()
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { k.podChanged(obj) },
		UpdateFunc: func(_, obj any) { k.podChanged(obj) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if pod, ok := obj.(*v1.Pod); ok {
				k.workers.removed(pod.UID)
			}
		},
	}); err != nil {
		return err
	}
	// every Service, as upstream's kubelet watches them: a container's environment names
	// the Services of its namespace, and pods start only once they are known
	serviceFactory := informers.NewSharedInformerFactory(k.client, 0)
	serviceInformer := serviceFactory.Core().V1().Services()
	k.serviceLister = serviceInformer.Lister()
	serviceInformer.Informer()
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	serviceFactory.Start(ctx.Done())
	defer serviceFactory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.Informer().HasSynced, serviceInformer.Informer().HasSynced) {
		return nil // asked to stop before the pods were listed
	}

	k.workers.start(ctx)
	wg.Go(func() { k.syncNodeStatus(ctx, version) })
	wg.Go(func() { k.pleg.run(ctx) })
	wg.Go(func() { k.housekeeping(ctx, podInformer.Informer().HasSynced) })
	if k.images != nil {
		wg.Go(func() { k.images.run(ctx, k.cfg.ImageGCPeriod) })
	}
	if k.eviction != nil {
		wg.Go(func() { k.eviction.run(ctx, k.cfg.EvictionMonitoringInterval) })
	}
	close(k.ready)
	k.log.Info("kubelet running", "runtime", version.RuntimeName+" "+version.RuntimeVersion)

	<-ctx.Done()
	cancel()
	k.workers.wait()
	k.probes.stopAll()
	return nil
}

// waitForRuntime asks the runtime its version until it answers.
func (k *Kubelet) waitForRuntime(ctx context.Context) (*runtimeapi.VersionResponse, error) {
	delay := 100 * time.Millisecond
	for {
		v, err := k.rt.Version(ctx)
		if err == nil {
			return v, nil
		}
		k.log.Warn("container runtime not answering", "endpoint", k.cfg.RuntimeEndpoint, "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// prepareNode runs Config.Prepare, then reports the Node's status at once rather than at the
// next status tick, so that a Node that became Ready says so without delay. It returns an
// error only when ctx ended.
func (k *Kubelet) prepareNode(ctx context.Context, version *runtimeapi.VersionResponse) error {
	if k.cfg.Prepare == nil {
		return nil
	}
	err := k.cfg.Prepare(ctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		k.log.Warn("preparing the node failed; going on", "err", err)
	}
	k.mu.Lock()
	k.preparing = ""
	k.mu.Unlock()
	node, err := k.client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
	if err == nil {
		err = k.postNodeStatus(ctx, node, k.mergeHeartbeat(node.Status, k.nodeStatus(ctx, version, &node.Status), true))
	}
	if err != nil && ctx.Err() == nil {
		// the status loop posts it at its next tick
		k.log.Warn("post node status after preparing", "err", err)
	}
	return nil
}

// nodeEvent records an Event about the Node, as upstream's kubelet does with its nodeRef.
func (k *Kubelet) nodeEvent(eventType, reason, message string) {
	if k.recorder == nil {
		return
	}
	ref := &v1.ObjectReference{Kind: "Node", Name: k.cfg.NodeName, UID: types.UID(k.cfg.NodeName)}
	k.recorder.Event(ref, eventType, reason, message)
}

// podChanged hands a pod bound here to its worker.
func (k *Kubelet) podChanged(obj any) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	k.workers.update(pod)
}

// currentPodCIDR is the Node's spec.podCIDRs joined by commas (or --pod-cidr).
func (k *Kubelet) currentPodCIDR() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.podCIDR
}

// housekeeping removes sandboxes and image volume views of pods this node no longer has:
// pods deleted while the kubelet was down, or whose worker is gone.
func (k *Kubelet) housekeeping(ctx context.Context, synced func() bool) {
	t := time.NewTicker(k.cfg.HousekeepingPeriod)
	defer t.Stop()
	for {
		if synced() {
			k.removeOrphans(ctx)
			k.volumes.removeImageViews(ctx, "")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (k *Kubelet) removeOrphans(ctx context.Context) {
	sandboxes, err := k.rt.ListPodSandbox(ctx, nil)
	if err != nil {
		return
	}
	for _, s := range sandboxes {
		uid := types.UID(s.Labels[runtime.LabelPodUID])
		if uid == "" || k.workers.has(uid) {
			continue
		}
		if _, err := k.podByUID(uid); err == nil {
			continue
		}
		k.log.Info("removing the sandbox of a pod that is gone", "pod", s.Labels[runtime.LabelPodNamespace]+"/"+s.Labels[runtime.LabelPodName], "uid", uid)
		k.killSandbox(ctx, s.Id, 1)
		if err := k.rt.RemovePodSandbox(ctx, s.Id); err != nil {
			k.log.Warn("remove orphan sandbox", "sandbox", s.Id, "err", err)
			continue
		}
		k.volumes.cleanup(uid)
		k.removePodCgroups(uid)
	}
}

// podByUID finds a pod of this node in the informer's cache.
func (k *Kubelet) podByUID(uid types.UID) (*v1.Pod, error) {
	pods, err := k.podLister.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	for _, p := range pods {
		if p.UID == uid {
			return p, nil
		}
	}
	return nil, errPodGone
}

var errPodGone = errors.New("pod is gone")

// quantity parses a resource quantity known to be valid.
func quantity(s string) resource.Quantity { return resource.MustParse(s) }
