package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	schedulinglisters "k8s.io/client-go/listers/scheduling/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/skiff-dev/skiff/internal/profiling"
	"github.com/skiff-dev/skiff/internal/trim"
)

// DefaultSchedulerName is the spec.schedulerName of pods that name no scheduler.
const DefaultSchedulerName = corev1.DefaultSchedulerName

// Options configure a Scheduler. The zero value schedules for default-scheduler without leader
// election, serves no health endpoint and logs nothing per pod.
type Options struct {
	// SchedulerName: the scheduler places pods whose spec.schedulerName is this, and reports
	// as this in events. Default "default-scheduler".
	SchedulerName string
	// LeaderElection, when set, makes the scheduler act only while it holds the Lease, so that
	// several can run and exactly one acts.
	LeaderElection *LeaderElection
	// HealthzListener, when set, serves /healthz, /livez, /readyz and /metrics; Run closes it.
	HealthzListener net.Listener
	// Profiling serves the Go runtime's profiles under /debug/pprof/ on HealthzListener too.
	Profiling bool
	// Verbosity 2 or more logs a line per scheduling decision, as kube-scheduler's --v=2.
	Verbosity int
	// Logger receives the scheduler's log lines; default slog.Default().
	Logger *slog.Logger
	// PercentageOfNodesToScore is the share of nodes to find feasible before scoring, as
	// upstream's percentageOfNodesToScore; 0 is upstream's adaptive default.
	PercentageOfNodesToScore int32
}

// ErrLeaderElectionLost is what Run returns when the scheduler lost its Lease while it led
// (it could not renew it in time), as kube-scheduler exits then to be started again.
var ErrLeaderElectionLost = errors.New("leader election lost")

// LeaderElection configures leader election on a coordination.k8s.io/v1 Lease. Zero fields
// take kube-scheduler's defaults.
type LeaderElection struct {
	// Namespace and Name of the Lease; default kube-system/kube-scheduler.
	Namespace, Name string
	// Identity of this scheduler in the Lease; default hostname_<uuid>.
	Identity string
	// LeaseDuration (15s), RenewDeadline (10s) and RetryPeriod (2s), as kube-scheduler's.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// Scheduler places pods on nodes; see the package documentation.
type Scheduler struct {
	opts   Options
	client kubernetes.Interface
	log    *slog.Logger
	now    func() time.Time
	rand   *rand.Rand

	factory         informers.SharedInformerFactory
	podFactory      informers.SharedInformerFactory
	pods            cache.SharedIndexInformer
	namespaces      corelisters.NamespaceLister
	priorityClasses schedulinglisters.PriorityClassLister

	cache   *schedulerCache
	queue   *schedulingQueue
	snap    *snapshot
	metrics *schedulerMetrics

	filters       []filterPlugin
	volumeBinding *volumeBinding
	counters      []podCountingPlugin
	scorers       []weightedScorer

	recorder events.EventRecorder

	// bindings and background track the goroutines the scheduling loop starts.
	bindings, background sync.WaitGroup
	synced               atomic.Bool

	// The scheduling loop's own state: where filtering starts next, and buffers reused from
	// cycle to cycle.
	nextStartNodeIndex int
	lastStart          int
	// cycleFilters are the filters that run this cycle: those whose pre-filter did not skip.
	cycleFilters       []filterPlugin
	feasibleBuf        []*nodeInfo
	statusBuf          []*status
	totalBuf, scoreBuf []int64
}

// weightedScorer is a score plugin with its weight among the others.
type weightedScorer struct {
	plugin scorePlugin
	weight int64
}

// New builds a scheduler that talks to the API server through cfg. Nothing runs until Run.
func New(cfg *rest.Config, opts Options) (*Scheduler, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.ContentType == "" {
		// as kube-scheduler: protobuf is much cheaper to decode for watches of many pods
		cfg.ContentType = runtime.ContentTypeProtobuf
		cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "skiff-scheduler"
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return NewWithClient(client, opts)
}

// NewWithClient builds a scheduler on an existing clientset.
func NewWithClient(client kubernetes.Interface, opts Options) (*Scheduler, error) {
	if opts.SchedulerName == "" {
		opts.SchedulerName = DefaultSchedulerName
	}
	if opts.PercentageOfNodesToScore < 0 || opts.PercentageOfNodesToScore > 100 {
		return nil, fmt.Errorf("percentageOfNodesToScore %d is not between 0 and 100", opts.PercentageOfNodesToScore)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Scheduler{
		opts:   opts,
		client: client,
		log:    opts.Logger.With("component", "scheduler"),
		now:    time.Now,
		rand:   rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		cache:  newSchedulerCache(),
		snap:   newSnapshot(),
	}
	s.queue = newSchedulingQueue(s.now)
	s.metrics = newSchedulerMetrics(opts.SchedulerName, s.queue)

	// As kube-scheduler, the caches hold no managedFields (trim.Informer).
	s.factory = informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(trim.Informer))
	// As kube-scheduler: one informer for every pod that has not finished, split into bound
	// pods (for the cache) and pending ones (for the queue) as they arrive. A binding is then
	// one MODIFIED event rather than a pod leaving one watch and entering another.
	// Its pods are slim: what no plugin reads is dropped on the way in (slimPod).
	s.podFactory = informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(slimPod),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = "status.phase!=" + string(corev1.PodSucceeded) + ",status.phase!=" + string(corev1.PodFailed)
		}))
	s.namespaces = s.factory.Core().V1().Namespaces().Lister()

	affinity := &interPodAffinity{namespaceLabels: s.namespaceLabels, namespaces: s.allNamespaceLabels}
	s.volumeBinding = &volumeBinding{
		claims:  s.factory.Core().V1().PersistentVolumeClaims().Lister(),
		volumes: s.factory.Core().V1().PersistentVolumes().Lister(),
		classes: s.factory.Storage().V1().StorageClasses().Lister(),
	}
	// upstream's default plugins, in its order
	s.filters = []filterPlugin{
		nodeUnschedulable{}, nodeName{}, taintToleration{}, nodeAffinity{}, nodePorts{},
		nodeResourcesFit{}, s.volumeBinding, podTopologySpread{}, affinity,
	}
	for _, f := range s.filters {
		if c, ok := f.(podCountingPlugin); ok {
			s.counters = append(s.counters, c)
		}
	}
	// upstream's default score weights
	s.scorers = []weightedScorer{
		{taintToleration{}, 3},
		{nodeAffinity{}, 2},
		{nodeResourcesFit{}, 1},
		{podTopologySpread{}, 2},
		{affinity, 2},
		{balancedAllocation{}, 1},
	}
	if err := s.addEventHandlers(); err != nil {
		return nil, err
	}
	return s, nil
}

// Registry returns the registry of the scheduler's metrics, for callers that serve them
// themselves.
func (s *Scheduler) Registry() *prometheus.Registry {
	return s.metrics.registry
}

// Run runs the scheduler until ctx is done, then stops everything it started and returns nil.
// With leader election it returns an error if it loses the Lease, as kube-scheduler exits.
func (s *Scheduler) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var healthz *leaderelection.HealthzAdaptor
	if s.opts.LeaderElection != nil {
		healthz = leaderelection.NewLeaderHealthzAdaptor(20 * time.Second)
	}
	serverDone := make(chan struct{})
	if l := s.opts.HealthzListener; l != nil {
		srv := &http.Server{Handler: s.healthHandler(healthz), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			defer close(serverDone)
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("Health and metrics server stopped", "err", err)
			}
		}()
		defer func() {
			shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(shutdown)
			<-serverDone
		}()
		s.log.Info("Serving healthz and metrics", "address", l.Addr().String())
	}

	served, err := s.priorityClassesServed(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if served {
		s.priorityClasses = s.factory.Scheduling().V1().PriorityClasses().Lister()
	}
	s.factory.Start(ctx.Done())
	s.podFactory.Start(ctx.Done())
	defer func() {
		cancel()
		s.factory.Shutdown()
		s.podFactory.Shutdown()
	}()
	for _, synced := range []map[reflect.Type]bool{
		s.factory.WaitForCacheSync(ctx.Done()),
		s.podFactory.WaitForCacheSync(ctx.Done()),
	} {
		for typ, ok := range synced {
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("informer for %v did not sync", typ)
			}
		}
	}
	s.synced.Store(true)
	nodes, pods := s.cache.counts()
	s.log.Info("Scheduler caches synced", "nodes", nodes, "scheduledPods", pods, "schedulerName", s.opts.SchedulerName)

	var stopEvents func()
	s.recorder, stopEvents = eventRecorder(ctx, s.client, s.opts.SchedulerName)
	defer stopEvents()

	if s.opts.LeaderElection == nil {
		s.runScheduling(ctx)
		return nil
	}
	le := *s.opts.LeaderElection
	if le.Namespace == "" {
		le.Namespace = "kube-system"
	}
	if le.Name == "" {
		le.Name = "kube-scheduler"
	}
	if le.Identity == "" {
		host, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("leader election identity: %w", err)
		}
		le.Identity = host + "_" + string(uuid.NewUUID())
	}
	le.LeaseDuration = cmpOr(le.LeaseDuration, 15*time.Second)
	le.RenewDeadline = cmpOr(le.RenewDeadline, 10*time.Second)
	le.RetryPeriod = cmpOr(le.RetryPeriod, 2*time.Second)
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, le.Namespace, le.Name,
		s.client.CoreV1(), s.client.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: le.Identity})
	if err != nil {
		return err
	}
	// OnStartedLeading runs on the elector's goroutine, which may start after Run has
	// returned: once stopped is set, a late start does nothing.
	var (
		leadingMu sync.Mutex
		stopped   bool
		leading   sync.WaitGroup
		lost      atomic.Bool
	)
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   le.LeaseDuration,
		RenewDeadline:   le.RenewDeadline,
		RetryPeriod:     le.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            le.Name,
		WatchDog:        healthz,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				leadingMu.Lock()
				if stopped {
					leadingMu.Unlock()
					return
				}
				leading.Add(1)
				leadingMu.Unlock()
				defer leading.Done()
				s.log.Info("Became leader, scheduling", "lease", le.Namespace+"/"+le.Name, "identity", le.Identity)
				s.runScheduling(ctx)
			},
			OnStoppedLeading: func() {
				if ctx.Err() == nil {
					lost.Store(true)
				}
			},
		},
	})
	if err != nil {
		return err
	}
	if healthz != nil {
		healthz.SetLeaderElection(elector)
	}
	s.log.Info("Waiting to become leader", "lease", le.Namespace+"/"+le.Name, "identity", le.Identity)
	elector.Run(ctx)
	cancel()
	leadingMu.Lock()
	stopped = true
	leadingMu.Unlock()
	leading.Wait()
	if lost.Load() {
		return ErrLeaderElectionLost
	}
	return nil
}

// priorityClassesServed asks the API server, once it answers, whether it serves
// scheduling.k8s.io/v1 priorityclasses.
func (s *Scheduler) priorityClassesServed(ctx context.Context) (bool, error) {
	for {
		list, err := s.client.Discovery().ServerResourcesForGroupVersion(schedulingv1.SchemeGroupVersion.String())
		switch {
		case err == nil:
			for _, r := range list.APIResources {
				if r.Name == "priorityclasses" {
					return true, nil
				}
			}
			return false, nil
		case apierrors.IsNotFound(err):
			return false, nil
		}
		// the API server may not be up yet (skiff up starts everything at once)
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// runScheduling schedules pods one at a time until ctx is done, then waits for the bindings
// and API calls it started.
func (s *Scheduler) runScheduling(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	var loops sync.WaitGroup
	loops.Go(func() { s.queue.run(ctx) })
	loops.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				s.cache.expireAssumed(now)
			}
		}
	})
	for ctx.Err() == nil {
		if err := s.scheduleOne(ctx); err != nil {
			break
		}
	}
	cancel()
	loops.Wait()
	s.bindings.Wait()
	s.background.Wait()
}

// healthHandler serves /healthz and /livez (failing when this leader stopped renewing its
// Lease), /readyz (ok once the informers synced) and /metrics.
func (s *Scheduler) healthHandler(le *leaderelection.HealthzAdaptor) http.Handler {
	mux := http.NewServeMux()
	healthy := func(w http.ResponseWriter, r *http.Request) {
		if le != nil {
			if err := le.Check(r); err != nil {
				http.Error(w, "leaderElection failed: "+err.Error(), http.StatusInternalServerError)
				return
			}
		}
		_, _ = w.Write([]byte("ok"))
	}
	mux.HandleFunc("/healthz", healthy)
	mux.HandleFunc("/livez", healthy)
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.synced.Load() {
			http.Error(w, "informers not synced", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	if s.opts.Profiling {
		mux.Handle(profiling.Prefix, profiling.Handler())
	}
	return mux
}

// namespaceLabels returns a namespace's labels, for pod affinity namespace selectors.
func (s *Scheduler) namespaceLabels(name string) labels.Set {
	ns, err := s.namespaces.Get(name)
	if err != nil {
		return nil
	}
	return ns.Labels
}

func (s *Scheduler) allNamespaceLabels() map[string]labels.Set {
	list, err := s.namespaces.List(labels.Everything())
	if err != nil {
		return nil
	}
	out := make(map[string]labels.Set, len(list))
	for _, ns := range list {
		out[ns.Name] = ns.Labels
	}
	return out
}

// resolvePriority gives a pod whose spec carries no priority the value and preemption policy
// of its PriorityClass, or of the global default class, or 0: what admission would have set.
func (s *Scheduler) resolvePriority(pod *corev1.Pod) (int32, *corev1.PreemptionPolicy) {
	if s.priorityClasses == nil {
		return 0, nil
	}
	if name := pod.Spec.PriorityClassName; name != "" {
		if pc, err := s.priorityClasses.Get(name); err == nil {
			return pc.Value, pc.PreemptionPolicy
		}
		return 0, nil
	}
	list, err := s.priorityClasses.List(labels.Everything())
	if err != nil {
		return 0, nil
	}
	var def *schedulingv1.PriorityClass
	for _, pc := range list {
		if pc.GlobalDefault && (def == nil || pc.CreationTimestamp.Before(&def.CreationTimestamp)) {
			def = pc
		}
	}
	if def == nil {
		return 0, nil
	}
	return def.Value, def.PreemptionPolicy
}

func (s *Scheduler) newPodInfo(pod *corev1.Pod) *podInfo {
	return newPodInfo(pod, s.resolvePriority)
}
