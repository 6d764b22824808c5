package kubelet

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/kubelet/runtime"
)

// relister is upstream's PLEG in its simplest form: it lists the runtime's containers and
// sandboxes every period and wakes the worker of every pod whose containers changed state
// (started, exited, appeared, vanished), so that an exit is seen within a period.
type relister struct {
	rt     runtime.Runtime
	period time.Duration
	notify func(types.UID)
	// last is each container's and sandbox's state at the previous listing.
	last map[string]relistRecord
}

type relistRecord struct {
	uid   types.UID
	state int32
}

func newRelister(rt runtime.Runtime, period time.Duration, notify func(types.UID)) *relister {
	return &relister{rt: rt, period: period, notify: notify, last: map[string]relistRecord{}}
}

func (r *relister) run(ctx context.Context) {
	t := time.NewTicker(r.period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.relist(ctx)
	}
}

func (r *relister) relist(ctx context.Context) {
	containers, err := r.rt.ListContainers(ctx, nil)
	if err != nil {
		return
	}
	sandboxes, err := r.rt.ListPodSandbox(ctx, nil)
	if err != nil {
		return
	}
	now := make(map[string]relistRecord, len(containers)+len(sandboxes))
	for _, c := range containers {
		now[c.Id] = relistRecord{uid: types.UID(c.Labels[runtime.LabelPodUID]), state: int32(c.State)}
	}
	for _, s := range sandboxes {
		// sandbox states live apart from container states
		now["sandbox/"+s.Id] = relistRecord{uid: types.UID(s.Labels[runtime.LabelPodUID]), state: 100 + int32(s.State)}
	}
	changed := map[types.UID]bool{}
	for id, rec := range now {
		if old, ok := r.last[id]; !ok || old.state != rec.state {
			changed[rec.uid] = true
		}
	}
	for id, rec := range r.last {
		if _, ok := now[id]; !ok {
			changed[rec.uid] = true
		}
	}
	r.last = now
	for uid := range changed {
		if uid != "" {
			r.notify(uid)
		}
	}
}
