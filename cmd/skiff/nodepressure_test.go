package main

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/skiff-dev/skiff/kubelet"
)

func parseKubeletFlags(t *testing.T, args ...string) *kubeletOptions {
	t.Helper()
	o := &kubeletOptions{}
	f := pflag.NewFlagSet("kubelet", pflag.ContinueOnError)
	o.addFlags(f)
	if err := f.Parse(args); err != nil {
		t.Fatal(err)
	}
	return o
}

func TestKubeletNodePressureFlagDefaultsAreUpstreams(t *testing.T) {
	var c kubelet.Config
	if err := parseKubeletFlags(t).nodePressureOptions.apply(&c); err != nil {
		t.Fatal(err)
	}
	want := kubelet.ImageGCPolicy{HighThresholdPercent: 85, LowThresholdPercent: 80, MinAge: 2 * time.Minute}
	if c.ImageGC != want || c.EvictionPressureTransitionPeriod != 5*time.Minute || len(c.EvictionSoft) != 0 {
		t.Errorf("config %+v", c)
	}
	var got []string
	for _, h := range c.EvictionHard {
		got = append(got, h.String())
	}
	if strings.Join(got, ",") != kubelet.DefaultEvictionHard {
		t.Errorf("--eviction-hard default %v", got)
	}
}

func TestKubeletNodePressureFlagsReachConfig(t *testing.T) {
	o := parseKubeletFlags(t, "--image-gc-high-threshold=90", "--image-gc-low-threshold=70", "--minimum-image-ttl-duration=1m",
		"--image-maximum-gc-age=24h", "--eviction-hard=memory.available<1Gi", "--eviction-soft=nodefs.available<20%",
		"--eviction-soft-grace-period=nodefs.available=30s", "--eviction-max-pod-grace-period=60", "--eviction-pressure-transition-period=1m")
	var c kubelet.Config
	if err := o.nodePressureOptions.apply(&c); err != nil {
		t.Fatal(err)
	}
	if want := (kubelet.ImageGCPolicy{HighThresholdPercent: 90, LowThresholdPercent: 70, MinAge: time.Minute, MaxAge: 24 * time.Hour}); c.ImageGC != want {
		t.Errorf("image GC %+v", c.ImageGC)
	}
	if len(c.EvictionHard) != 1 || c.EvictionHard[0].String() != "memory.available<1Gi" {
		t.Errorf("hard %v", c.EvictionHard)
	}
	if len(c.EvictionSoft) != 1 || c.EvictionSoft[0].String() != "nodefs.available<20%" || c.EvictionSoft[0].GracePeriod != 30*time.Second {
		t.Errorf("soft %v", c.EvictionSoft)
	}
	if c.EvictionMaxPodGracePeriod != 60 || c.EvictionPressureTransitionPeriod != time.Minute {
		t.Errorf("config %+v", c)
	}
	c = kubelet.Config{}
	if err := parseKubeletFlags(t, "--eviction-hard=none").nodePressureOptions.apply(&c); err != nil || c.EvictionHard == nil || len(c.EvictionHard) != 0 {
		t.Errorf("--eviction-hard=none: %v %v", c.EvictionHard, err)
	}
	for _, bad := range []string{"--eviction-hard=memory.available>1Gi", "--eviction-soft=memory.available<1Gi"} {
		if err := parseKubeletFlags(t, bad).nodePressureOptions.apply(&kubelet.Config{}); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
