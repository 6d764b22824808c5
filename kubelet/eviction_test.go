package kubelet

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/kubelet/fakeruntime"
)

const mi = int64(1 << 20)

// evictionFixture is an eviction manager of a kubelet on the fake runtime whose signals, pod
// usage and clock the test sets.
type evictionFixture struct {
	t        *testing.T
	k        *Kubelet
	m        *evictionManager
	pods     cache.Indexer
	obs      SignalObservations
	usage    map[types.UID]int64 // memory working set by pod
	now      time.Time
	recorder *record.FakeRecorder
}

func newEvictionFixture(t *testing.T, hard, soft string, softGrace string) *evictionFixture {
	t.Helper()
	rt, err := fakeruntime.New("")
	if err != nil {
		t.Fatal(err)
	}
	f := &evictionFixture{t: t, usage: map[types.UID]int64{}, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		obs: SignalObservations{SignalMemoryAvailable: {Available: 4096 * mi, Capacity: 8192 * mi}}}
	cfg := Config{NodeName: "n", Client: fake.NewClientset(), Runtime: rt, Machine: MachineInfo{CPUs: 2, MemoryBytes: 8192 * mi},
		EvictionSignals: func(context.Context) (SignalObservations, error) { return f.obs, nil },
		PodStats: func(context.Context) ([]statsapi.PodStats, error) {
			var out []statsapi.PodStats
			for uid, ws := range f.usage {
				ws := uint64(ws)
				out = append(out, statsapi.PodStats{PodRef: statsapi.PodReference{UID: string(uid)},
					Containers: []statsapi.ContainerStats{{Name: "main", Memory: &statsapi.MemoryStats{WorkingSetBytes: &ws}}}})
			}
			return out, nil
		},
	}
	if hard != "" {
		if cfg.EvictionHard, err = ParseEvictionThresholds(hard); err != nil {
			t.Fatal(err)
		}
	}
	if soft != "" {
		if cfg.EvictionSoft, err = ParseSoftEvictionThresholds(soft, softGrace); err != nil {
			t.Fatal(err)
		}
	}
	k, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.recorder = record.NewFakeRecorder(100)
	k.recorder = f.recorder
	f.pods = cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	k.podLister = corelisters.NewPodLister(f.pods)
	f.k, f.m = k, k.eviction
	f.m.now = func() time.Time { return f.now }
	return f
}

// addPod puts a pod on the node using usage bytes of memory, requesting request bytes.
func (f *evictionFixture) addPod(name string, usage, request int64, priority int32, annotations map[string]string) *v1.Pod {
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name), Annotations: annotations},
		Spec:       v1.PodSpec{NodeName: "n", Priority: &priority, Containers: []v1.Container{{Name: "main", Image: "busybox"}}},
	}
	if request > 0 {
		pod.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceMemory: *resource.NewQuantity(request, resource.BinarySI)}
	}
	if err := f.pods.Add(pod); err != nil {
		f.t.Fatal(err)
	}
	f.k.workers.update(pod)
	f.usage[pod.UID] = usage
	return pod
}

func (f *evictionFixture) sync() *v1.Pod {
	f.t.Helper()
	pod, err := f.m.synchronize(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return pod
}

func podNames(pods []*v1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}

func TestEvictionRanksPodsOverTheirMemoryRequestFirstThenByPriorityThenByUsageAboveRequest(t *testing.T) {
	pod := func(name string, request int64, priority int32) *v1.Pod {
		p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name)},
			Spec: v1.PodSpec{Priority: &priority, Containers: []v1.Container{{Name: "main"}}}}
		if request > 0 {
			p.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceMemory: *resource.NewQuantity(request, resource.BinarySI)}
		}
		return p
	}
	stats := map[types.UID]statsapi.PodStats{}
	use := func(name string, bytes int64) {
		ws := uint64(bytes)
		stats[types.UID(name)] = statsapi.PodStats{Containers: []statsapi.ContainerStats{{Name: "main", Memory: &statsapi.MemoryStats{WorkingSetBytes: &ws}}}}
	}
	pods := []*v1.Pod{
		pod("within-request", 500*mi, 0), // uses 100Mi of 500Mi: last, whatever its priority
		pod("over-high-priority", 100*mi, 1000),
		pod("over-by-50", 100*mi, 0),
		pod("over-by-300", 100*mi, 0),
		pod("best-effort-small", 0, 0),
		pod("no-stats", 0, 5000),
	}
	use("within-request", 100*mi)
	use("over-high-priority", 900*mi)
	use("over-by-50", 150*mi)
	use("over-by-300", 400*mi)
	use("best-effort-small", 10*mi)
	rankPods(pods, stats, v1.ResourceMemory)
	want := []string{"no-stats", "over-by-300", "over-by-50", "best-effort-small", "over-high-priority", "within-request"}
	if got := podNames(pods); !slices.Equal(got, want) {
		t.Errorf("ranking %v, want %v", got, want)
	}
}

func TestEvictionEvictsOnePodARoundWithUpstreamsMessageAndNeverACriticalPod(t *testing.T) {
	f := newEvictionFixture(t, "memory.available<100Mi", "", "")
	f.addPod("critical", 2000*mi, 0, systemCriticalPriority, nil)
	f.addPod("static", 1900*mi, 0, 0, map[string]string{"kubernetes.io/config.source": "file"})
	f.addPod("hog", 300*mi, 100*mi, 0, nil)
	f.addPod("modest", 50*mi, 100*mi, 0, nil)
	if got := f.sync(); got != nil {
		t.Fatalf("evicted %s without pressure", got.Name)
	}
	if f.m.pressure(v1.NodeMemoryPressure) {
		t.Fatal("memory pressure without pressure")
	}

	f.obs[SignalMemoryAvailable] = SignalObservation{Available: 60 * mi, Capacity: 8192 * mi}
	got := f.sync()
	if got == nil || got.Name != "hog" {
		t.Fatalf("evicted %v, want hog", got)
	}
	if !f.m.pressure(v1.NodeMemoryPressure) || f.m.pressure(v1.NodeDiskPressure) {
		t.Errorf("conditions %v, want MemoryPressure only", f.m.pressureConditions())
	}
	wantMsg := "The node was low on resource: memory. Threshold quantity: 100Mi, available: 60Mi. " +
		"Container main was using 300Mi, request is 100Mi, has larger consumption of memory. "
	wantEvent := "Warning Evicted " + wantMsg + " map[offending_containers:main starved_resource:memory]"
	if e := <-f.recorder.Events; e != "Normal NodeHasInsufficientMemory Node n status is now: NodeHasInsufficientMemory" {
		t.Errorf("first event %q, want the Node's NodeHasInsufficientMemory", e)
	}
	if e := <-f.recorder.Events; e != wantEvent {
		t.Errorf("event %q, want %q", e, wantEvent)
	}
	if w := f.k.workers.workers["hog"]; w.evictionOf() == nil || w.evictionOf().message != wantMsg || w.evictionOf().gracePeriod != 1 {
		t.Errorf("hog's eviction %+v", w.evictionOf())
	}

	// still under pressure: the next round takes the next pod, the one being evicted skipped
	if got := f.sync(); got == nil || got.Name != "modest" {
		t.Fatalf("second round evicted %v, want modest", got)
	}
	// only critical pods left: none is evicted
	if got := f.sync(); got != nil {
		t.Fatalf("evicted %s, a critical pod", got.Name)
	}
}

func TestPressureConditionStaysForTheTransitionPeriodAfterPressureEnds(t *testing.T) {
	f := newEvictionFixture(t, "memory.available<100Mi", "", "")
	f.obs[SignalMemoryAvailable] = SignalObservation{Available: 10 * mi, Capacity: 8192 * mi}
	f.sync()
	if !f.m.pressure(v1.NodeMemoryPressure) {
		t.Fatal("no memory pressure")
	}
	f.obs[SignalMemoryAvailable] = SignalObservation{Available: 4096 * mi, Capacity: 8192 * mi}
	f.now = f.now.Add(4 * time.Minute)
	f.sync()
	if !f.m.pressure(v1.NodeMemoryPressure) {
		t.Fatal("memory pressure gone before the 5 minute transition period")
	}
	f.now = f.now.Add(time.Minute)
	f.sync()
	if f.m.pressure(v1.NodeMemoryPressure) {
		t.Fatal("memory pressure stays after the transition period")
	}
}

func TestSoftThresholdEvictsOnlyAfterItsGracePeriodWithTheCappedPodGracePeriod(t *testing.T) {
	f := newEvictionFixture(t, "memory.available<100Mi", "memory.available<1Gi", "memory.available=1m")
	f.m.maxPodGracePeriod = 20
	pod := f.addPod("slow", 500*mi, 0, 0, nil)
	pod.Spec.TerminationGracePeriodSeconds = ptr.To(int64(60))
	f.obs[SignalMemoryAvailable] = SignalObservation{Available: 500 * mi, Capacity: 8192 * mi}
	if got := f.sync(); got != nil {
		t.Fatalf("evicted %s before the soft threshold's grace period", got.Name)
	}
	if !f.m.pressure(v1.NodeMemoryPressure) {
		t.Error("a met soft threshold sets no MemoryPressure")
	}
	f.now = f.now.Add(time.Minute)
	if got := f.sync(); got == nil || got.Name != "slow" {
		t.Fatalf("evicted %v after the grace period, want slow", got)
	}
	if e := f.k.workers.workers["slow"].evictionOf(); e.gracePeriod != 20 ||
		!strings.HasPrefix(e.message, "The node was low on resource: memory. Threshold quantity: 1Gi, available: 500Mi. ") {
		t.Errorf("eviction %+v", e)
	}
}

func TestDiskPressureRemovesUnusedImagesBeforeEvictingPods(t *testing.T) {
	f := newEvictionFixture(t, "imagefs.available<15%", "", "")
	rt := f.k.rt.(*fakeruntime.Runtime)
	f.k.images = newImageGC(rt, ImageGCPolicy{HighThresholdPercent: 85, LowThresholdPercent: 80, MinAge: time.Nanosecond},
		func(context.Context) (FsStats, error) { return FsStats{CapacityBytes: 1000, AvailableBytes: 1000}, nil }, "", func(string, string, string) {}, f.k.log)
	rt.AddImage("example.com/big:1", 100, false)
	if _, err := f.k.images.detectImages(context.Background(), time.Now().Add(-time.Minute)); err != nil { // seen a minute ago
		t.Fatal(err)
	}
	f.addPod("victim", 0, 0, 0, nil)
	// the image filesystem has 10% left while the big image is there, 20% once it is gone
	f.m.observe = func(ctx context.Context) (SignalObservations, error) {
		images, _ := rt.ListImages(ctx)
		return SignalObservations{SignalImageFsAvailable: {Available: 200 - int64(len(images))*100, Capacity: 1000}}, nil
	}
	if got := f.sync(); got != nil {
		t.Fatalf("evicted %s although removing an image was enough", got.Name)
	}
	if images, _ := rt.ListImages(context.Background()); len(images) != 0 {
		t.Errorf("images %v left", images)
	}
	if !f.m.pressure(v1.NodeDiskPressure) {
		t.Error("no DiskPressure while the threshold was met")
	}

	// nothing left to remove: the pod goes, with ephemeral-storage as the starved resource
	f.m.observe = func(context.Context) (SignalObservations, error) {
		return SignalObservations{SignalImageFsAvailable: {Available: 50, Capacity: 1000}}, nil
	}
	if got := f.sync(); got == nil || got.Name != "victim" {
		t.Fatalf("evicted %v, want victim", got)
	}
	if e := f.k.workers.workers["victim"].evictionOf(); e.message != "The node was low on resource: ephemeral-storage. Threshold quantity: 150, available: 50. " {
		t.Errorf("message %q", e.message)
	}
}

func TestUnderMemoryPressureOnlyBestEffortPodsAreRefusedUnlessTheyTolerateIt(t *testing.T) {
	f := newEvictionFixture(t, "memory.available<100Mi,nodefs.available<10%", "", "")
	bestEffort := &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Name: "main"}}}}
	burstable := &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Name: "main", Resources: v1.ResourceRequirements{
		Requests: v1.ResourceList{v1.ResourceMemory: resource.MustParse("10Mi")}}}}}}
	tolerant := bestEffort.DeepCopy()
	tolerant.Spec.Tolerations = []v1.Toleration{{Key: v1.TaintNodeMemoryPressure, Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoSchedule}}
	critical := bestEffort.DeepCopy()
	critical.Spec.Priority = ptr.To(int32(systemCriticalPriority))
	if msg := f.m.admitUnderPressure(bestEffort); msg != "" {
		t.Errorf("refused without pressure: %q", msg)
	}
	f.obs[SignalMemoryAvailable] = SignalObservation{Available: 10 * mi, Capacity: 8192 * mi}
	f.sync()
	if msg := f.m.admitUnderPressure(bestEffort); msg != "The node had condition: [MemoryPressure]. " {
		t.Errorf("best-effort pod under memory pressure: %q", msg)
	}
	for name, p := range map[string]*v1.Pod{"burstable": burstable, "tolerant": tolerant, "critical": critical} {
		if msg := f.m.admitUnderPressure(p); msg != "" {
			t.Errorf("%s pod refused under memory pressure: %q", name, msg)
		}
	}
	f.obs[SignalNodeFsAvailable] = SignalObservation{Available: 1, Capacity: 1000}
	f.sync()
	if msg := f.m.admitUnderPressure(burstable); msg != "The node had condition: [MemoryPressure DiskPressure]. " {
		t.Errorf("burstable pod under memory and disk pressure: %q", msg)
	}
}

func TestEvictionThresholdsParseAsUpstreamsFlags(t *testing.T) {
	hard, err := ParseEvictionThresholds(DefaultEvictionHard)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range hard {
		if !h.hard() {
			t.Errorf("%s is not hard", h)
		}
		got = append(got, h.String())
	}
	if want := strings.Split(DefaultEvictionHard, ","); !slices.Equal(got, want) {
		t.Errorf("parsed %v, want %v", got, want)
	}
	soft, err := ParseSoftEvictionThresholds("memory.available<1.5Gi", "memory.available=1m30s")
	if err != nil || len(soft) != 1 || soft[0].GracePeriod != 90*time.Second || soft[0].Quantity.String() != "1536Mi" {
		t.Errorf("soft %v, %v", soft, err)
	}
	for _, bad := range []string{"memory.free<1Gi", "memory.available>1Gi", "nodefs.available<120%", "memory.available<1Gi,memory.available<2Gi"} {
		if _, err := ParseEvictionThresholds(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, grace := range []string{"", "nodefs.available=1m", "memory.available=-1m"} {
		if _, err := ParseSoftEvictionThresholds("memory.available<1Gi", grace); err == nil {
			t.Errorf("soft threshold with grace periods %q accepted", grace)
		}
	}
}

func TestAllocatableKeepsTheHardEvictionThresholdsFromPods(t *testing.T) {
	rt, err := fakeruntime.New("")
	if err != nil {
		t.Fatal(err)
	}
	hard, err := ParseEvictionThresholds("memory.available<500Mi,nodefs.available<20%")
	if err != nil {
		t.Fatal(err)
	}
	k, err := New(Config{NodeName: "n", Client: fake.NewClientset(), Runtime: rt, EvictionHard: hard,
		Machine: MachineInfo{CPUs: 2, MemoryBytes: 8192 * mi, EphemeralStorageBytes: 1000 * mi}})
	if err != nil {
		t.Fatal(err)
	}
	s := k.nodeStatus(context.Background(), nil, nil)
	if mem, eph := s.Allocatable[v1.ResourceMemory], s.Allocatable[v1.ResourceEphemeralStorage]; mem.Value() != 7692*mi || eph.Value() != 800*mi {
		t.Errorf("allocatable memory %s, ephemeral-storage %s", mem.String(), eph.String())
	}
}
