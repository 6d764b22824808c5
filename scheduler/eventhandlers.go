package scheduler

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/tools/cache"
)

// addEventHandlers connects the informers to the cache and the queue:
//
//   - nodes feed the cache, and a node added or changed in a way that matters moves
//     unschedulable pods back to be retried;
//   - pods that have not finished come from one informer, as kube-scheduler's: bound ones
//     (spec.nodeName set) feed the cache, confirming assumed pods, and their deletion frees
//     room and moves pods too; pending ones of this scheduler feed the queue.
func (s *Scheduler) addEventHandlers() error {
	nodes := s.factory.Core().V1().Nodes().Informer()
	if _, err := nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			node, ok := obj.(*corev1.Node)
			if !ok {
				return
			}
			s.cache.addNode(node)
			s.queue.moveUnschedulable(eventNodeAdded)
		},
		UpdateFunc: func(oldObj, newObj any) {
			old, ok1 := oldObj.(*corev1.Node)
			node, ok2 := newObj.(*corev1.Node)
			if !ok1 || !ok2 {
				return
			}
			s.cache.addNode(node)
			if nodeSchedulingChanged(old, node) {
				s.queue.moveUnschedulable(eventNodeChanged)
			}
		},
		DeleteFunc: func(obj any) {
			node, ok := unwrapTombstone(obj).(*corev1.Node)
			if !ok {
				return
			}
			s.cache.removeNode(node.Name)
			s.queue.moveUnschedulable(eventNodeDeleted)
		},
	}); err != nil {
		return err
	}
	// claims, volumes and classes decide volume binding
	for _, informer := range []cache.SharedIndexInformer{
		s.factory.Core().V1().PersistentVolumeClaims().Informer(),
		s.factory.Core().V1().PersistentVolumes().Informer(),
		s.factory.Storage().V1().StorageClasses().Informer(),
	} {
		if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { s.queue.moveUnschedulable(eventStorageChanged) },
			UpdateFunc: func(any, any) { s.queue.moveUnschedulable(eventStorageChanged) },
		}); err != nil {
			return err
		}
	}
	// the namespace lister answers affinity namespace selectors; it needs no handler
	s.factory.Core().V1().Namespaces().Informer()

	s.pods = s.podFactory.Core().V1().Pods().Informer()
	if _, err := s.pods.AddEventHandler(cache.FilteringResourceEventHandler{
		// a pod that gets bound leaves this filter (and enters the queue's one below)
		FilterFunc: func(obj any) bool {
			pod, ok := unwrapTombstone(obj).(*corev1.Pod)
			return ok && pod.Spec.NodeName != ""
		},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) {
				s.cache.addPod(s.newPodInfo(obj.(*corev1.Pod)))
				s.queue.moveUnschedulable(eventAssignedPodAdded)
			},
			UpdateFunc: func(oldObj, newObj any) {
				old, pod := oldObj.(*corev1.Pod), newObj.(*corev1.Pod)
				s.cache.updatePod(s.newPodInfo(pod))
				if !maps.Equal(old.Labels, pod.Labels) {
					s.queue.moveUnschedulable(eventAssignedPodChanged)
				}
			},
			DeleteFunc: func(obj any) {
				s.cache.removePod(unwrapTombstone(obj).(*corev1.Pod).UID)
				s.queue.moveUnschedulable(eventAssignedPodDeleted)
			},
		},
	}); err != nil {
		return err
	}
	_, err := s.pods.AddEventHandler(cache.FilteringResourceEventHandler{
		FilterFunc: func(obj any) bool {
			pod, ok := unwrapTombstone(obj).(*corev1.Pod)
			return ok && pod.Spec.NodeName == "" && pod.Spec.SchedulerName == s.opts.SchedulerName
		},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) {
				pod := obj.(*corev1.Pod)
				if s.cache.isAssumed(pod.UID) {
					return
				}
				s.queue.add(s.newPodInfo(pod))
			},
			UpdateFunc: func(_, newObj any) {
				pod := newObj.(*corev1.Pod)
				if s.cache.isAssumed(pod.UID) {
					// its binding is under way; the update is most likely our own
					return
				}
				s.queue.update(s.newPodInfo(pod))
			},
			DeleteFunc: func(obj any) {
				pod := unwrapTombstone(obj).(*corev1.Pod)
				s.queue.delete(pod.Namespace + "/" + pod.Name)
			},
		},
	})
	return err
}

// stillPending says whether the informer still shows the queued pod waiting to be scheduled.
func (s *Scheduler) stillPending(qp *queuedPod) bool {
	obj, ok, err := s.pods.GetIndexer().GetByKey(qp.key())
	if err != nil || !ok {
		return false
	}
	pod, ok := obj.(*corev1.Pod)
	return ok && pod.UID == qp.info.pod.UID && pod.Spec.NodeName == ""
}

func unwrapTombstone(obj any) any {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return obj
}

// nodeSchedulingChanged says whether a node changed in a way that can change where pods fit:
// its allocatable, labels, taints or spec.unschedulable. Status heartbeats do not count.
func nodeSchedulingChanged(old, cur *corev1.Node) bool {
	return old.Spec.Unschedulable != cur.Spec.Unschedulable ||
		!maps.Equal(old.Labels, cur.Labels) ||
		!equality.Semantic.DeepEqual(old.Spec.Taints, cur.Spec.Taints) ||
		!equality.Semantic.DeepEqual(old.Status.Allocatable, cur.Status.Allocatable)
}
