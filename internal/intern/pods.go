// Package intern makes equal parts of cached objects share one copy.
package intern

import (
	"encoding/binary"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Pods shares the parts that the pods of one template hold alike between them: their labels,
// owner references and tolerations, their containers' resource lists and the sources of
// their projected volumes (the service account token volume every pod has). A ReplicaSet's
// thousand pods, a DaemonSet's, carry these equal, and decoded each is its own maps, slices
// and pointers: a resource list alone is over a kilobyte. Sharing is safe only among objects
// nobody changes in place: a watch cache's, an informer's (whose users copy an object before
// changing it).
//
// It forgets everything when it holds maxHeld parts, so that parts unique to their pods
// cannot grow it without bound; pods interned before then keep what they share. Safe for
// concurrent use.
type Pods struct {
	mu          sync.Mutex
	held        int
	lists       map[string]corev1.ResourceList
	labels      map[string]map[string]string
	owners      map[string][]metav1.OwnerReference
	tolerations map[string][]corev1.Toleration
	projected   map[string]*corev1.ProjectedVolumeSource
	key         strings.Builder // under mu
}

const maxHeld = 8192

// NewPods returns an empty interner.
func NewPods() *Pods {
	in := &Pods{}
	in.reset()
	return in
}

func (in *Pods) reset() {
	in.held = 0
	in.lists = map[string]corev1.ResourceList{}
	in.labels = map[string]map[string]string{}
	in.owners = map[string][]metav1.OwnerReference{}
	in.tolerations = map[string][]corev1.Toleration{}
	in.projected = map[string]*corev1.ProjectedVolumeSource{}
}

// Pod makes pod's shareable parts the interner's equal ones, and the interner's its own where
// it has none equal yet. pod must be one no one else has seen yet.
func (in *Pods) Pod(pod *corev1.Pod) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.held >= maxHeld {
		in.reset()
	}
	pod.Labels = in.labelsOf(pod.Labels)
	pod.OwnerReferences = in.ownersOf(pod.OwnerReferences)
	pod.Spec.Tolerations = in.tolerationsOf(pod.Spec.Tolerations)
	for _, containers := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range containers {
			r := &containers[i].Resources
			r.Requests = in.list(r.Requests)
			r.Limits = in.list(r.Limits)
		}
	}
	pod.Spec.Overhead = in.list(pod.Spec.Overhead)
	for i := range pod.Spec.Volumes {
		if p := pod.Spec.Volumes[i].Projected; p != nil {
			pod.Spec.Volumes[i].Projected = in.projectedOf(p)
		}
	}
}

// shared returns the table's value under the key being built, after making v that value
// when the table has none.
func shared[V any](in *Pods, table map[string]V, v V) V {
	if s, ok := table[in.key.String()]; ok {
		return s
	}
	table[in.key.String()] = v
	in.held++
	return v
}

func (in *Pods) list(l corev1.ResourceList) corev1.ResourceList {
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
	return shared(in, in.lists, l)
}

func (in *Pods) labelsOf(labels map[string]string) map[string]string {
	if len(labels) == 0 {
		return labels
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	in.key.Reset()
	for _, k := range keys {
		// neither a label's key nor its value can hold a NUL
		in.key.WriteString(k)
		in.key.WriteByte(0)
		in.key.WriteString(labels[k])
		in.key.WriteByte(0)
	}
	return shared(in, in.labels, labels)
}

// The other parts are keyed by their protobuf encoding, which has every field a later API
// version adds: two parts share only when they are equal in all of them.

type marshaler interface{ Marshal() ([]byte, error) }

// keyOf sets the key being built to the encoding of parts, or reports false.
func keyOf[T any, P interface {
	*T
	marshaler
}](in *Pods, parts []T) bool {
	in.key.Reset()
	var length [binary.MaxVarintLen64]byte
	for i := range parts {
		b, err := P(&parts[i]).Marshal()
		if err != nil {
			return false
		}
		// the length first: no two sequences of parts run together into one key
		in.key.Write(length[:binary.PutUvarint(length[:], uint64(len(b)))])
		in.key.Write(b)
	}
	return true
}

func (in *Pods) ownersOf(refs []metav1.OwnerReference) []metav1.OwnerReference {
	if len(refs) == 0 || !keyOf(in, refs) {
		return refs
	}
	return shared(in, in.owners, refs)
}

func (in *Pods) tolerationsOf(tolerations []corev1.Toleration) []corev1.Toleration {
	if len(tolerations) == 0 || !keyOf(in, tolerations) {
		return tolerations
	}
	return shared(in, in.tolerations, tolerations)
}

func (in *Pods) projectedOf(p *corev1.ProjectedVolumeSource) *corev1.ProjectedVolumeSource {
	if !keyOf(in, []corev1.ProjectedVolumeSource{*p}) {
		return p
	}
	return shared(in, in.projected, p)
}
