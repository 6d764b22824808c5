package main

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/skiff-dev/skiff/kubelet"
)

// nodePressureOptions are the kubelet's image garbage collection and node-pressure eviction
// flags, named as upstream's kubelet's, shared by `skiff kubelet`, `skiff up` and
// `skiff agent`. The zero value is upstream's defaults.
type nodePressureOptions struct {
	imageGCHighThreshold int
	imageGCLowThreshold  int
	imageMinimumGCAge    time.Duration
	imageMaximumGCAge    time.Duration
	// evictionHard "" is upstream's defaults (kubelet.DefaultEvictionHard); "none" is none.
	evictionHard                     string
	evictionSoft                     string
	evictionSoftGracePeriod          string
	evictionMaxPodGracePeriod        int
	evictionPressureTransitionPeriod time.Duration
}

func (o *nodePressureOptions) addFlags(f *pflag.FlagSet) {
	f.IntVar(&o.imageGCHighThreshold, "image-gc-high-threshold", 85,
		"percent of the image filesystem's disk at or above which unused images are removed, least recently used first; 100 turns that off")
	f.IntVar(&o.imageGCLowThreshold, "image-gc-low-threshold", 80, "percent of the image filesystem's disk the removal brings it down to")
	f.DurationVar(&o.imageMinimumGCAge, "minimum-image-ttl-duration", 2*time.Minute, "how long an image is kept after the kubelet first saw it, used or not")
	f.DurationVar(&o.imageMaximumGCAge, "image-maximum-gc-age", 0, "remove images unused for longer than this, whatever the disk usage; 0 never does")
	f.StringVar(&o.evictionHard, "eviction-hard", kubelet.DefaultEvictionHard,
		`hard eviction thresholds, SIGNAL<QUANTITY or SIGNAL<PERCENT%, comma-separated (memory.available, nodefs.available, nodefs.inodesFree, imagefs.available, imagefs.inodesFree, pid.available); "none" for none. Given, it replaces the defaults whole, as upstream's`)
	f.StringVar(&o.evictionSoft, "eviction-soft", "", "soft eviction thresholds, as --eviction-hard, each evicting only after its --eviction-soft-grace-period")
	f.StringVar(&o.evictionSoftGracePeriod, "eviction-soft-grace-period", "", "how long each soft threshold must hold before pods are evicted: SIGNAL=DURATION, comma-separated")
	f.IntVar(&o.evictionMaxPodGracePeriod, "eviction-max-pod-grace-period", 0, "most seconds a pod evicted for a soft threshold gets to stop; 0: its own grace period")
	f.DurationVar(&o.evictionPressureTransitionPeriod, "eviction-pressure-transition-period", 5*time.Minute,
		"how long a pressure condition stays after its thresholds stop being met")
}

// apply puts the options into the kubelet's configuration.
func (o *nodePressureOptions) apply(c *kubelet.Config) error {
	c.ImageGC = kubelet.ImageGCPolicy{
		HighThresholdPercent: o.imageGCHighThreshold, LowThresholdPercent: o.imageGCLowThreshold,
		MinAge: o.imageMinimumGCAge, MaxAge: o.imageMaximumGCAge,
	}
	switch o.evictionHard {
	case "":
	case "none":
		c.EvictionHard = []kubelet.EvictionThreshold{}
	default:
		hard, err := kubelet.ParseEvictionThresholds(o.evictionHard)
		if err != nil {
			return fmt.Errorf("--eviction-hard: %w", err)
		}
		c.EvictionHard = hard
	}
	if o.evictionSoft != "" {
		soft, err := kubelet.ParseSoftEvictionThresholds(o.evictionSoft, o.evictionSoftGracePeriod)
		if err != nil {
			return fmt.Errorf("--eviction-soft: %w", err)
		}
		c.EvictionSoft = soft
	}
	c.EvictionMaxPodGracePeriod = int64(o.evictionMaxPodGracePeriod)
	c.EvictionPressureTransitionPeriod = o.evictionPressureTransitionPeriod
	return nil
}
