package kubelet

import (
	"context"
	"encoding/json"
	"slices"
	"sync"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// statusManager writes pods' statuses through pods/status, only when they change: it
// remembers the last status it wrote for each pod and skips writing the same one again.
type statusManager struct {
	client kubernetes.Interface

	mu   sync.Mutex
	last map[types.UID]v1.PodStatus
}

func newStatusManager(client kubernetes.Interface) *statusManager {
	return &statusManager{client: client, last: map[types.UID]v1.PodStatus{}}
}

// set writes status for pod unless it is what was last written, or what the API already has.
func (m *statusManager) set(ctx context.Context, pod *v1.Pod, status v1.PodStatus) error {
	m.mu.Lock()
	last, ok := m.last[pod.UID]
	m.mu.Unlock()
	if ok && apiequality.Semantic.DeepEqual(last, status) && !conditionsOverwritten(pod.Status, last) {
		return nil
	}
	if !ok && apiequality.Semantic.DeepEqual(pod.Status, status) {
		m.remember(pod.UID, status)
		return nil
	}
	// A merge patch of the whole status: the kubelet owns every field it sends, and the
	// conditions of others were copied into status from the pod it read. The UID guards
	// against writing to a new pod of the same name.
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"uid": pod.UID},
		"status":   status,
	})
	if err != nil {
		return err
	}
	_, err = m.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		return err
	}
	m.remember(pod.UID, status)
	return nil
}

// conditionsOverwritten reports whether the API holds one of the kubelet's conditions with another
// status than the kubelet last wrote: someone else wrote it (the node lifecycle controller marks
// the pods of a node it stopped hearing from not ready), and the kubelet, heard again, writes its
// own back, as upstream's status manager reconciles the API's status with its own.
func conditionsOverwritten(api, last v1.PodStatus) bool {
	for _, c := range last.Conditions {
		if !kubeletOwnsCondition(c.Type) {
			continue
		}
		i := slices.IndexFunc(api.Conditions, func(a v1.PodCondition) bool { return a.Type == c.Type })
		if i < 0 || api.Conditions[i].Status != c.Status {
			return true
		}
	}
	return false
}

func (m *statusManager) remember(uid types.UID, status v1.PodStatus) {
	m.mu.Lock()
	m.last[uid] = status
	m.mu.Unlock()
}

// get is the status last written for the pod.
func (m *statusManager) get(uid types.UID) (v1.PodStatus, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.last[uid]
	return s, ok
}

func (m *statusManager) forget(uid types.UID) {
	m.mu.Lock()
	delete(m.last, uid)
	m.mu.Unlock()
}
