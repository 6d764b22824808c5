// Package scheduler assigns pending pods to nodes the way kube-scheduler does: it watches
// unscheduled pods, scheduled pods and nodes through client-go informers, keeps a cache of
// what every node has committed (counting a pod the moment its binding is sent), filters the
// nodes a pod may run on with one plugin per rule, scores the rest with upstream's default
// weights, and POSTs pods/binding for the best one.
//
// A pod that fits nowhere gets upstream's PodScheduled=False condition and FailedScheduling
// event, may preempt lower-priority pods, and is retried when the cluster changes in a way
// that could let it fit. Several schedulers may run at once; leader election on the Lease
// kube-system/kube-scheduler makes exactly one act.
//
// It is judged through the API alone. It must never write anything but pods/binding, the
// PodScheduled condition and nominatedNodeName of pods/status, the DisruptionTarget condition
// and graceful deletion of preemption victims, Events, and its Lease; and it must never keep
// state that the API cannot rebuild: restarted, it converges from what the informers list.
//
// The goroutines and how they meet are described in flow.md beside this file.
package scheduler
