package kubelet

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// EvictionSignal is what the kubelet watches to evict pods before the node runs out of a
// resource, as upstream's node-pressure eviction signals.
type EvictionSignal string

// The eviction signals, in upstream's names and in the order thresholds are reclaimed when
// several are met (memory first).
const (
	SignalMemoryAvailable   EvictionSignal = "memory.available"
	SignalNodeFsAvailable   EvictionSignal = "nodefs.available"
	SignalNodeFsInodesFree  EvictionSignal = "nodefs.inodesFree"
	SignalImageFsAvailable  EvictionSignal = "imagefs.available"
	SignalImageFsInodesFree EvictionSignal = "imagefs.inodesFree"
	SignalPIDAvailable      EvictionSignal = "pid.available"
)

var evictionSignals = []EvictionSignal{SignalMemoryAvailable, SignalNodeFsAvailable, SignalNodeFsInodesFree,
	SignalImageFsAvailable, SignalImageFsInodesFree, SignalPIDAvailable}

// resourceInodes and resourcePIDs are upstream's names of the starved resource for inodes and
// process IDs, which have no v1.ResourceName of their own.
const (
	resourceInodes v1.ResourceName = "inodes"
	resourcePIDs   v1.ResourceName = "pids"
)

// signalResource is the resource a signal measures (upstream's signalToResource).
func signalResource(s EvictionSignal) v1.ResourceName {
	switch s {
	case SignalMemoryAvailable:
		return v1.ResourceMemory
	case SignalNodeFsAvailable, SignalImageFsAvailable:
		return v1.ResourceEphemeralStorage
	case SignalNodeFsInodesFree, SignalImageFsInodesFree:
		return resourceInodes
	}
	return resourcePIDs
}

// signalCondition is the Node condition a signal's pressure sets (upstream's
// signalToNodeCondition).
func signalCondition(s EvictionSignal) v1.NodeConditionType {
	switch s {
	case SignalMemoryAvailable:
		return v1.NodeMemoryPressure
	case SignalPIDAvailable:
		return v1.NodePIDPressure
	}
	return v1.NodeDiskPressure
}

// signalFormat is how a signal's quantities are written: bytes in binary units, counts in
// decimal ones.
func signalFormat(s EvictionSignal) resource.Format {
	switch signalResource(s) {
	case resourceInodes, resourcePIDs:
		return resource.DecimalSI
	}
	return resource.BinarySI
}

// EvictionThreshold is one signal's threshold: pressure when the signal's available amount is
// below Quantity, or below Percentage of its capacity when Quantity is nil.
type EvictionThreshold struct {
	Signal     EvictionSignal
	Quantity   *resource.Quantity
	Percentage float64 // 0.1 for 10%
	// GracePeriod is how long a soft threshold must be met before pods are evicted; zero for
	// a hard threshold, whose pods are evicted at once.
	GracePeriod time.Duration
}

// hard says the threshold evicts at once.
func (t EvictionThreshold) hard() bool { return t.GracePeriod == 0 }

// quantity is the threshold's amount given the signal's capacity.
func (t EvictionThreshold) quantity(capacity int64) *resource.Quantity {
	if t.Quantity != nil {
		return t.Quantity
	}
	return resource.NewQuantity(int64(float64(capacity)*t.Percentage), signalFormat(t.Signal))
}

func (t EvictionThreshold) String() string {
	v := strconv.FormatFloat(t.Percentage*100, 'f', -1, 64) + "%"
	if t.Quantity != nil {
		v = t.Quantity.String()
	}
	return string(t.Signal) + "<" + v
}

// DefaultEvictionHard is upstream's --eviction-hard on Linux.
const DefaultEvictionHard = "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%,imagefs.inodesFree<5%"

// ParseEvictionThresholds parses upstream's --eviction-hard syntax,
// "memory.available<100Mi,nodefs.available<10%".
func ParseEvictionThresholds(spec string) ([]EvictionThreshold, error) {
	return parseEvictionThresholds(spec, "", false)
}

// ParseSoftEvictionThresholds parses --eviction-soft, in --eviction-hard's syntax, with the
// grace periods in --eviction-soft-grace-period's, "memory.available=1m30s". A soft threshold
// without a grace period is an error, as upstream.
func ParseSoftEvictionThresholds(spec, gracePeriods string) ([]EvictionThreshold, error) {
	return parseEvictionThresholds(spec, gracePeriods, true)
}

func parseEvictionThresholds(spec, gracePeriods string, soft bool) ([]EvictionThreshold, error) {
	graces := map[EvictionSignal]time.Duration{}
	for _, item := range splitList(gracePeriods) {
		name, value, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("invalid eviction grace period %q", item)
		}
		d, err := time.ParseDuration(value)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("invalid eviction grace period %q: must be a positive duration", item)
		}
		graces[EvictionSignal(name)] = d
	}
	var out []EvictionThreshold
	for _, item := range splitList(spec) {
		name, value, ok := strings.Cut(item, "<")
		if !ok {
			return nil, fmt.Errorf("invalid eviction threshold %q: want SIGNAL<QUANTITY", item)
		}
		t := EvictionThreshold{Signal: EvictionSignal(name)}
		if !slices.Contains(evictionSignals, t.Signal) {
			return nil, fmt.Errorf("unsupported eviction signal %v", name)
		}
		if slices.ContainsFunc(out, func(o EvictionThreshold) bool { return o.Signal == t.Signal }) {
			return nil, fmt.Errorf("found duplicate eviction threshold for signal %v", name)
		}
		if pct, ok := strings.CutSuffix(value, "%"); ok {
			p, err := strconv.ParseFloat(pct, 64)
			if err != nil || p < 0 || p > 100 {
				return nil, fmt.Errorf("invalid eviction threshold %q: percentage must be in 0-100", item)
			}
			t.Percentage = p / 100
		} else {
			q, err := resource.ParseQuantity(value)
			if err != nil {
				return nil, fmt.Errorf("invalid eviction threshold %q: %w", item, err)
			}
			if q.Sign() < 0 {
				return nil, fmt.Errorf("eviction threshold %v cannot be negative: %s", name, q.String())
			}
			t.Quantity = &q
		}
		if soft {
			g, ok := graces[t.Signal]
			if !ok {
				return nil, fmt.Errorf("no grace period specified for soft eviction threshold %v", name)
			}
			t.GracePeriod = g
		}
		out = append(out, t)
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// hardThreshold is the hard threshold of signal among thresholds.
func hardThreshold(thresholds []EvictionThreshold, signal EvictionSignal) (EvictionThreshold, bool) {
	for _, t := range thresholds {
		if t.Signal == signal && t.hard() {
			return t, true
		}
	}
	return EvictionThreshold{}, false
}
