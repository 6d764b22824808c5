// Package intern makes equal parts of cached objects share one copy.
package intern

import (
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
)

// Resources shares equal resource lists (containers' requests and limits, a pod's overhead)
// between pods. The pods of one template (a ReplicaSet's thousand, a DaemonSet's) carry the
// same lists, and a decoded list is a map of Quantities: over a kilobyte per pod with requests
// and limits, the largest single part of a simple pod's spec in memory. Sharing is safe only
// among objects nobody changes in place: a watch cache's, an informer's (whose users copy an
// object before changing it).
//
// It forgets everything when it holds maxLists, so that lists unique to their pods cannot grow
// it without bound; pods interned before then keep what they share. Safe for concurrent use.
type Resources struct {
	mu    sync.Mutex
	lists map[string]corev1.ResourceList
	key   strings.Builder // under mu
}

const maxLists = 4096

// NewResources returns an empty interner.
func NewResources() *Resources {
	return &Resources{lists: map[string]corev1.ResourceList{}}
}

// Pod makes pod's resource lists the interner's equal ones, and the interner's its own where
// it has none equal yet. pod must be one no one else has seen yet.
func (in *Resources) Pod(pod *corev1.Pod) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.lists) >= maxLists {
		in.lists = map[string]corev1.ResourceList{}
	}
	for _, containers := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range containers {
			r := &containers[i].Resources
			r.Requests = in.list(r.Requests)
			r.Limits = in.list(r.Limits)
		}
	}
	pod.Spec.Overhead = in.list(pod.Spec.Overhead)
}

func (in *Resources) list(l corev1.ResourceList) corev1.ResourceList {
	if len(l) == 0 {
		return l
	}
	names := make([]corev1.ResourceName, 0, len(l))
	for name := range l {
		names = append(names, name)
	}
	slices.Sort(names)
	in.key.Reset()
	for _, name := range names {
		q := l[name]
		in.key.WriteString(string(name))
		in.key.WriteByte('=')
		in.key.WriteString(q.String())
		in.key.WriteByte(',')
	}
	if shared, ok := in.lists[in.key.String()]; ok {
		return shared
	}
	in.lists[in.key.String()] = l
	return l
}
