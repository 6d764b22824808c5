package kubelet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-dev/skiff/kubelet/pullrecords"
	"github.com/skiff-dev/skiff/kubelet/runtime"
)

// ImageGCPolicy says when the kubelet removes images no container uses, as upstream's
// imageGCHighThresholdPercent, imageGCLowThresholdPercent, imageMinimumGCAge and
// imageMaximumGCAge do.
type ImageGCPolicy struct {
	// HighThresholdPercent is the image filesystem's usage at or above which unused images
	// are removed, least recently used first; 100 turns that off. Zero: 85.
	HighThresholdPercent int
	// LowThresholdPercent is the usage the removal brings the filesystem down to. Zero: 80.
	LowThresholdPercent int
	// MinAge is how long an image stays after the kubelet first saw it, used or not. Zero: 2m.
	MinAge time.Duration
	// MaxAge, when set, removes images unused for longer, whatever the usage. Zero: never.
	MaxAge time.Duration
}

func (p *ImageGCPolicy) defaults() error {
	if p.HighThresholdPercent == 0 {
		p.HighThresholdPercent = 85
	}
	if p.LowThresholdPercent == 0 {
		p.LowThresholdPercent = 80
	}
	if p.MinAge == 0 {
		p.MinAge = 2 * time.Minute
	}
	if p.HighThresholdPercent < 0 || p.HighThresholdPercent > 100 {
		return fmt.Errorf("invalid HighThresholdPercent %d, must be in range [0-100]", p.HighThresholdPercent)
	}
	if p.LowThresholdPercent < 0 || p.LowThresholdPercent > 100 {
		return fmt.Errorf("invalid LowThresholdPercent %d, must be in range [0-100]", p.LowThresholdPercent)
	}
	if p.LowThresholdPercent > p.HighThresholdPercent {
		return fmt.Errorf("LowThresholdPercent %d can not be higher than HighThresholdPercent %d", p.LowThresholdPercent, p.HighThresholdPercent)
	}
	if p.MaxAge > 0 && p.MaxAge <= p.MinAge {
		return fmt.Errorf("ImageMaximumGCAge %v must be greater than ImageMinimumGCAge %v", p.MaxAge, p.MinAge)
	}
	return nil
}

// FsStats is a filesystem's size and what is left on it, as statfs tells.
type FsStats struct {
	CapacityBytes, AvailableBytes uint64
	Inodes, InodesFree            uint64
}

// FsStatsFunc reads a filesystem's FsStats now.
type FsStatsFunc func(ctx context.Context) (FsStats, error)

// Why an image was removed, the reason label of kubelet_image_garbage_collected_total.
const (
	imageGCReasonAge   = "age"
	imageGCReasonSpace = "space"
)

// imageGC removes images no container uses when the image filesystem fills up or they stay
// unused too long, as upstream's realImageGCManager. It never removes an image a container
// of any sandbox uses (running or not), the runtime's pinned images and the sandbox image,
// nor an image younger than the policy's MinAge. What it remembers (when each image was first
// seen and last seen in use) is lost on restart, as upstream's.
type imageGC struct {
	rt     runtime.Runtime
	policy ImageGCPolicy
	// imageFs reads the filesystem the images are on.
	imageFs FsStatsFunc
	// sandboxImage is the runtime's pause image, never removed; "": the one the runtime
	// names (runtime.SandboxImager), if it does.
	sandboxImage string
	// event records an Event on the Node.
	event func(eventType, reason, message string)
	log   *slog.Logger
	now   func() time.Time
	// collected counts removed images by reason.
	collected *prometheus.CounterVec

	mu      sync.Mutex
	records map[string]*imageRecord
	// pullRecords, when set, forget the images that are gone
	pullRecords *pullrecords.Records
}

// imageRecord is what the collector knows of one image.
type imageRecord struct {
	firstDetected time.Time
	// lastUsed is when a container was last seen using it; zero: not since the kubelet started.
	lastUsed time.Time
	size     int64
	pinned   bool
	// name is a tag of the image, for the log.
	name string
}

func newImageGC(rt runtime.Runtime, policy ImageGCPolicy, imageFs FsStatsFunc, sandboxImage string,
	event func(eventType, reason, message string), log *slog.Logger) *imageGC {
	return &imageGC{
		rt: rt, policy: policy, imageFs: imageFs, sandboxImage: sandboxImage, event: event, log: log, now: time.Now,
		collected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kubelet_image_garbage_collected_total",
			Help: "Total number of images garbage collected by the kubelet, whether through disk usage or image age.",
		}, []string{"reason"}),
		records: map[string]*imageRecord{},
	}
}

// run collects every period until ctx is done. As upstream, a failure is an ImageGCFailed
// event only when the one before failed too: the first may be stats not yet ready.
func (g *imageGC) run(ctx context.Context, period time.Duration) {
	began := g.now()
	failedBefore := false
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := g.garbageCollect(ctx, began)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && failedBefore:
			g.log.Error("image garbage collection failed multiple times in a row", "err", err)
			g.event(v1.EventTypeWarning, "ImageGCFailed", err.Error())
		case err != nil:
			g.log.Error("image garbage collection failed once; stats initialization may not have completed yet", "err", err)
		}
		failedBefore = err != nil
	}
}

// detectImages lists the images and the containers, notes new images and the ones in use at
// now, forgets the ones gone, and returns the IDs of the images in use.
func (g *imageGC) detectImages(ctx context.Context, now time.Time) (map[string]bool, error) {
	listed := time.Now()
	images, err := g.rt.ListImages(ctx)
	if err != nil {
		return nil, err
	}
	containers, err := g.rt.ListContainers(ctx, nil)
	if err != nil {
		return nil, err
	}
	// a container names its image by ID (what the kubelet creates it with) or by a tag
	names := map[string]bool{}
	for _, c := range containers {
		names[c.GetImage().GetImage()] = true
		names[c.GetImageRef()] = true
	}
	sandboxImage := g.sandboxImage
	if s, ok := g.rt.(runtime.SandboxImager); ok && sandboxImage == "" {
		// a runtime whose status does not name it (not containerd) pins it instead, as CRI
		// runtimes now do
		if sandboxImage, err = s.SandboxImage(ctx); err != nil {
			g.log.Debug("the runtime names no sandbox image", "err", err)
		}
	}
	if sandboxImage != "" {
		names[sandboxImage] = true
	}
	inUse := map[string]bool{}
	g.mu.Lock()
	defer g.mu.Unlock()
	present := map[string]bool{}
	for _, img := range images {
		present[img.Id] = true
		r, ok := g.records[img.Id]
		if !ok {
			r = &imageRecord{firstDetected: now}
			g.records[img.Id] = r
		}
		r.size, r.pinned, r.name = int64(img.Size), img.Pinned, imageName(img)
		if imageNamed(img, names) {
			inUse[img.Id] = true
			r.lastUsed = now
		}
	}
	for id := range g.records {
		if !present[id] {
			delete(g.records, id)
		}
	}
	if g.pullRecords != nil {
		if err := g.pullRecords.Forget(present, listed); err != nil {
			g.log.Warn("forgetting the pulls of removed images", "err", err)
		}
	}
	return inUse, nil
}

func imageNamed(img *runtimeapi.Image, names map[string]bool) bool {
	if names[img.Id] {
		return true
	}
	for _, n := range append(slices.Clone(img.RepoTags), img.RepoDigests...) {
		if names[n] {
			return true
		}
	}
	return false
}

func imageName(img *runtimeapi.Image) string {
	if len(img.RepoTags) > 0 {
		return img.RepoTags[0]
	}
	if len(img.RepoDigests) > 0 {
		return img.RepoDigests[0]
	}
	return img.Id
}

// candidate is an image that may be removed.
type candidate struct {
	id string
	imageRecord
}

// unusedImages are the images no container uses and the runtime does not pin, least recently
// used first (ties: first detected first), as of now.
func (g *imageGC) unusedImages(ctx context.Context, now time.Time) ([]candidate, error) {
	inUse, err := g.detectImages(ctx, now)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []candidate
	for id, r := range g.records {
		if inUse[id] || r.pinned {
			continue
		}
		out = append(out, candidate{id, *r})
	}
	slices.SortFunc(out, func(a, b candidate) int {
		if !a.lastUsed.Equal(b.lastUsed) {
			return a.lastUsed.Compare(b.lastUsed)
		}
		return a.firstDetected.Compare(b.firstDetected)
	})
	return out, nil
}

// garbageCollect is one round: images unused beyond MaxAge go, then, when the image
// filesystem's usage is at or above HighThresholdPercent, unused images go until it would be
// at LowThresholdPercent. began is when the kubelet started collecting: MaxAge counts only
// once that long has passed, so that images are not removed for not having been seen used
// before the kubelet ran.
func (g *imageGC) garbageCollect(ctx context.Context, began time.Time) error {
	now := g.now()
	images, err := g.unusedImages(ctx, now)
	if err != nil {
		return err
	}
	if images, err = g.freeOldImages(ctx, images, now, began); err != nil {
		return err
	}
	fs, err := g.imageFs(ctx)
	if err != nil {
		return err
	}
	capacity, available := int64(fs.CapacityBytes), int64(fs.AvailableBytes)
	if available > capacity {
		g.log.Warn("image filesystem: available bytes are larger than capacity", "available", available, "capacity", capacity)
		available = capacity
	}
	if capacity == 0 {
		err := errors.New("invalid capacity 0 on image filesystem")
		g.event(v1.EventTypeWarning, "InvalidDiskCapacity", err.Error())
		return err
	}
	usagePercent := 100 - int(available*100/capacity)
	if usagePercent < g.policy.HighThresholdPercent {
		return nil
	}
	amountToFree := capacity*int64(100-g.policy.LowThresholdPercent)/100 - available
	g.log.Info("disk usage on image filesystem is over the high threshold, trying to free bytes down to the low threshold",
		"usage", usagePercent, "highThreshold", g.policy.HighThresholdPercent, "amountToFree", amountToFree, "lowThreshold", g.policy.LowThresholdPercent)
	freed, err := g.freeSpace(ctx, amountToFree, now, images)
	if err != nil {
		return err
	}
	if freed < amountToFree {
		err := fmt.Errorf("Failed to garbage collect required amount of images. Attempted to free %d bytes, but only found %d bytes eligible to free.", amountToFree, freed) //nolint:staticcheck // upstream's words
		g.event(v1.EventTypeWarning, "FreeDiskSpaceFailed", err.Error())
		return err
	}
	return nil
}

// deleteUnusedImages removes every unused image old enough, as upstream's DeleteUnusedImages
// does for the eviction manager under disk pressure.
func (g *imageGC) deleteUnusedImages(ctx context.Context) (int64, error) {
	now := g.now()
	images, err := g.unusedImages(ctx, now)
	if err != nil {
		return 0, err
	}
	return g.freeSpace(ctx, math.MaxInt64, now, images)
}

// freeOldImages removes the images unused for longer than MaxAge and returns the others.
func (g *imageGC) freeOldImages(ctx context.Context, images []candidate, now, began time.Time) ([]candidate, error) {
	if g.policy.MaxAge == 0 || now.Sub(began) <= g.policy.MaxAge {
		return images, nil
	}
	var errs []error
	var remaining []candidate
	for _, img := range images {
		// an image never seen in use counts from when it was first seen
		unusedSince := img.lastUsed
		if unusedSince.Before(img.firstDetected) {
			unusedSince = img.firstDetected
		}
		if now.Sub(unusedSince) <= g.policy.MaxAge {
			remaining = append(remaining, img)
			continue
		}
		if err := g.removeImage(ctx, img, imageGCReasonAge); err != nil {
			errs = append(errs, err)
			remaining = append(remaining, img)
		}
	}
	return remaining, errors.Join(errs...)
}

// freeSpace removes images in the order given until bytesToFree bytes are freed, skipping
// those used since now or younger than MinAge, and returns the bytes freed.
func (g *imageGC) freeSpace(ctx context.Context, bytesToFree int64, now time.Time, images []candidate) (int64, error) {
	var errs []error
	freed := int64(0)
	for _, img := range images {
		if !img.lastUsed.Before(now) && !img.lastUsed.IsZero() {
			continue // used as of this round
		}
		if now.Sub(img.firstDetected) < g.policy.MinAge {
			continue // may have just been pulled for a container about to start
		}
		if err := g.removeImage(ctx, img, imageGCReasonSpace); err != nil {
			errs = append(errs, err)
			continue
		}
		freed += img.size
		if freed >= bytesToFree {
			break
		}
	}
	if len(errs) > 0 {
		return freed, fmt.Errorf("wanted to free %d bytes, but freed %d bytes space with errors in image deletion: %w", bytesToFree, freed, errors.Join(errs...))
	}
	return freed, nil
}

func (g *imageGC) removeImage(ctx context.Context, img candidate, reason string) error {
	g.log.Info("removing image to free bytes", "image", img.name, "imageID", img.id, "size", img.size, "reason", reason)
	if err := g.rt.RemoveImage(ctx, img.id); err != nil {
		return err
	}
	g.mu.Lock()
	delete(g.records, img.id)
	g.mu.Unlock()
	g.collected.WithLabelValues(reason).Inc()
	return nil
}
