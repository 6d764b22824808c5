package kubelet

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-dev/skiff/kubelet/fakeruntime"
)

// gcFixture is an image collector on the fake runtime with a clock and an image filesystem
// the test sets.
type gcFixture struct {
	t      *testing.T
	rt     *fakeruntime.Runtime
	gc     *imageGC
	now    time.Time
	fs     FsStats
	events []string
}

func newGCFixture(t *testing.T, policy ImageGCPolicy) *gcFixture {
	t.Helper()
	rt, err := fakeruntime.New("")
	if err != nil {
		t.Fatal(err)
	}
	if err := policy.defaults(); err != nil {
		t.Fatal(err)
	}
	f := &gcFixture{t: t, rt: rt, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), fs: FsStats{CapacityBytes: 1000, AvailableBytes: 1000}}
	f.gc = newImageGC(rt, policy, func(context.Context) (FsStats, error) { return f.fs, nil }, "registry.k8s.io/pause:3.10",
		func(eventType, reason, message string) { f.events = append(f.events, eventType+" "+reason+" "+message) }, slog.Default())
	f.gc.now = func() time.Time { return f.now }
	return f
}

// images are the names of the images the runtime lists, sorted.
func (f *gcFixture) images() []string {
	f.t.Helper()
	list, err := f.rt.ListImages(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	var names []string
	for _, img := range list {
		names = append(names, img.RepoTags[0])
	}
	slices.Sort(names)
	return names
}

// runContainer starts a container of image in a sandbox of its own and returns its ID.
func (f *gcFixture) runContainer(name, image string, start bool) string {
	f.t.Helper()
	ctx := context.Background()
	ref, err := f.rt.PullImage(ctx, image, nil, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	sandbox := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: name}}
	sid, err := f.rt.RunPodSandbox(ctx, sandbox, "")
	if err != nil {
		f.t.Fatal(err)
	}
	id, err := f.rt.CreateContainer(ctx, sid, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "main"}, Image: &runtimeapi.ImageSpec{Image: ref},
	}, sandbox)
	if err != nil {
		f.t.Fatal(err)
	}
	if start {
		if err := f.rt.StartContainer(ctx, id); err != nil {
			f.t.Fatal(err)
		}
	}
	return id
}

func (f *gcFixture) collect(began time.Time) error {
	return f.gc.garbageCollect(context.Background(), began)
}

func TestImageGCRemovesLeastRecentlyUsedImagesDownToTheLowThresholdAndSparesWhatIsUsedPinnedOrYoung(t *testing.T) {
	f := newGCFixture(t, ImageGCPolicy{MinAge: 2 * time.Minute})
	began := f.now
	f.rt.AddImage("example.com/oldest:1", 30, false)
	f.rt.AddImage("example.com/recent:1", 100, false)
	f.rt.AddImage("registry.k8s.io/pause:3.10", 5, false) // the sandbox image, by name
	f.rt.AddImage("example.com/pinned:1", 5, true)
	f.runContainer("running", "example.com/running:1", true)
	f.runContainer("created", "example.com/created:1", false) // a container that never ran
	recent := f.runContainer("recent-user", "example.com/recent:1", true)
	if err := f.collect(began); err != nil { // below the threshold: only notes what it sees
		t.Fatal(err)
	}

	// recent stops being used; a later image arrives
	f.now = f.now.Add(time.Minute)
	if err := f.rt.RemoveContainer(context.Background(), recent); err != nil {
		t.Fatal(err)
	}
	if err := f.collect(began); err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(time.Minute)
	f.rt.AddImage("example.com/later:1", 30, false)
	if err := f.collect(began); err != nil {
		t.Fatal(err)
	}
	f.rt.AddImage("example.com/young:1", 30, false)
	f.now = f.now.Add(time.Minute)
	if err := f.collect(began); err != nil {
		t.Fatal(err)
	}

	// 85% used: 50 bytes to free to reach 80%. Never used before recent's last use, oldest
	// (first seen first) and later go; young is too young, recent used last
	f.now = f.now.Add(time.Minute)
	f.fs.AvailableBytes = 150
	if err := f.collect(began); err != nil {
		t.Fatal(err)
	}
	want := []string{"example.com/created:1", "example.com/pinned:1", "example.com/recent:1", "example.com/running:1", "example.com/young:1", "registry.k8s.io/pause:3.10"}
	if got := f.images(); !slices.Equal(got, want) {
		t.Errorf("after collecting 50 bytes: images %v, want %v", got, want)
	}

	// 90% used: 100 bytes to free; only recent may go, and young is still too young
	f.fs.AvailableBytes = 100
	if err := f.collect(began); err != nil {
		t.Fatal(err)
	}
	want = slices.DeleteFunc(want, func(s string) bool { return s == "example.com/recent:1" })
	if got := f.images(); !slices.Equal(got, want) {
		t.Errorf("after collecting 100 bytes: images %v, want %v", got, want)
	}
	if got := testutil.ToFloat64(f.gc.collected.WithLabelValues(imageGCReasonSpace)); got != 3 {
		t.Errorf("kubelet_image_garbage_collected_total{reason=space} = %v, want 3", got)
	}

	// nothing left to free: FreeDiskSpaceFailed, in upstream's words
	f.fs.AvailableBytes = 0
	err := f.collect(began)
	wantErr := "Failed to garbage collect required amount of images. Attempted to free 200 bytes, but only found 0 bytes eligible to free."
	if err == nil || err.Error() != wantErr {
		t.Fatalf("collecting with nothing to free: %v, want %q", err, wantErr)
	}
	if len(f.events) != 1 || f.events[0] != "Warning FreeDiskSpaceFailed "+wantErr {
		t.Errorf("events %q", f.events)
	}
	if got := f.images(); !slices.Equal(got, want) {
		t.Errorf("images %v, want %v", got, want)
	}
}

func TestImageGCRemovesImagesUnusedLongerThanMaxAgeWhateverTheUsage(t *testing.T) {
	f := newGCFixture(t, ImageGCPolicy{MinAge: time.Minute, MaxAge: 10 * time.Minute})
	began := f.now
	f.rt.AddImage("example.com/idle:1", 10, false)
	f.rt.AddImage("example.com/was-used:1", 10, false)
	user := f.runContainer("user", "example.com/was-used:1", true)
	if err := f.collect(began); err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(5 * time.Minute)
	if err := f.collect(began); err != nil { // was-used last seen in use now
		t.Fatal(err)
	}
	if err := f.rt.RemoveContainer(context.Background(), user); err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(6 * time.Minute) // idle unused for 11 minutes, was-used for 6
	if err := f.collect(began); err != nil {
		t.Fatal(err)
	}
	if got, want := f.images(), []string{"example.com/was-used:1"}; !slices.Equal(got, want) {
		t.Errorf("images %v, want %v", got, want)
	}
	if got := testutil.ToFloat64(f.gc.collected.WithLabelValues(imageGCReasonAge)); got != 1 {
		t.Errorf("kubelet_image_garbage_collected_total{reason=age} = %v, want 1", got)
	}
	f.now = f.now.Add(5 * time.Minute)
	if err := f.collect(began); err != nil {
		t.Fatal(err)
	}
	if got := f.images(); len(got) != 0 {
		t.Errorf("images %v, want none once was-used is unused for 11 minutes too", got)
	}
}

func TestImageGCWaitsMaxAgeAfterItStartedBeforeRemovingByAge(t *testing.T) {
	f := newGCFixture(t, ImageGCPolicy{MinAge: time.Minute, MaxAge: 10 * time.Minute})
	f.rt.AddImage("example.com/idle:1", 10, false)
	if err := f.collect(f.now); err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(20 * time.Minute)
	if err := f.collect(f.now.Add(-5 * time.Minute)); err != nil { // a kubelet 5 minutes old
		t.Fatal(err)
	}
	if got := f.images(); len(got) != 1 {
		t.Errorf("images %v: removed by age before MaxAge passed since collection began", got)
	}
}

func TestImageGCPolicyIsCheckedAsUpstream(t *testing.T) {
	for _, p := range []ImageGCPolicy{
		{HighThresholdPercent: 101},
		{HighThresholdPercent: 70, LowThresholdPercent: 80},
		{MinAge: 5 * time.Minute, MaxAge: time.Minute},
	} {
		if err := p.defaults(); err == nil {
			t.Errorf("policy %+v accepted", p)
		}
	}
	p := ImageGCPolicy{}
	if err := p.defaults(); err != nil || p.HighThresholdPercent != 85 || p.LowThresholdPercent != 80 || p.MinAge != 2*time.Minute || p.MaxAge != 0 {
		t.Errorf("defaults %+v, %v", p, err)
	}
}

func TestImageGCReportsAnImageFilesystemWithoutCapacity(t *testing.T) {
	f := newGCFixture(t, ImageGCPolicy{})
	f.fs = FsStats{}
	err := f.collect(f.now)
	if err == nil || !strings.Contains(err.Error(), "invalid capacity 0 on image filesystem") {
		t.Fatalf("err %v", err)
	}
	if len(f.events) != 1 || !strings.HasPrefix(f.events[0], "Warning InvalidDiskCapacity ") {
		t.Errorf("events %q", f.events)
	}
}
