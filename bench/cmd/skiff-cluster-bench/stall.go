package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// describeStalledDaemonSet writes what a stalled rollout is waiting for: the DaemonSet's
// status, its pods grouped by revision and state (with the Ready condition's reason, which
// says who made a pod unready), a few of the pods that are not available, and the nodes that
// are not Ready or carry taints. It is read before the DaemonSet is deleted.
func (b *bench) describeStalledDaemonSet(ctx context.Context, w io.Writer, name string) error {
	ds, err := b.client.AppsV1().DaemonSets(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	s := ds.Status
	fmt.Fprintf(w, "stalled DaemonSet %s: generation %d, observed %d; desired %d, current %d, ready %d, updated %d, available %d, unavailable %d, misscheduled %d\n",
		name, ds.Generation, s.ObservedGeneration, s.DesiredNumberScheduled, s.CurrentNumberScheduled, s.NumberReady,
		s.UpdatedNumberScheduled, s.NumberAvailable, s.NumberUnavailable, s.NumberMisscheduled)
	pods, err := b.client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: "scenario=daemonset"})
	if err != nil {
		return err
	}
	groups := map[string]int{}
	var unready []string
	for i := range pods.Items {
		p := &pods.Items[i]
		state := podState(p)
		groups[fmt.Sprintf("revision %s, %s", p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey], state)]++
		if !strings.HasPrefix(state, "ready") && len(unready) < 10 {
			unready = append(unready, fmt.Sprintf("%s on %q (created %s): %s", p.Name, p.Spec.NodeName,
				p.CreationTimestamp.Format("15:04:05"), state))
		}
	}
	fmt.Fprintf(w, "%d pods:\n", len(pods.Items))
	for _, g := range slices.Sorted(maps.Keys(groups)) {
		fmt.Fprintf(w, "  %5d  %s\n", groups[g], g)
	}
	if len(unready) > 0 {
		fmt.Fprintf(w, "some pods not ready:\n  %s\n", strings.Join(unready, "\n  "))
	}
	nodes, err := b.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	nodeGroups := map[string]int{}
	for _, n := range nodes.Items {
		ready := "no Ready condition"
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				ready = "Ready " + string(c.Status)
			}
		}
		var taints []string
		for _, t := range n.Spec.Taints {
			taints = append(taints, t.Key+":"+string(t.Effect))
		}
		if len(taints) > 0 {
			ready += ", tainted " + strings.Join(taints, ",")
		}
		nodeGroups[ready]++
	}
	fmt.Fprintf(w, "%d nodes:\n", len(nodes.Items))
	for _, g := range slices.Sorted(maps.Keys(nodeGroups)) {
		fmt.Fprintf(w, "  %5d  %s\n", nodeGroups[g], g)
	}
	return nil
}

// podState is a pod's phase, whether it is bound, terminating and ready, and why not ready.
func podState(p *corev1.Pod) string {
	var parts []string
	for _, c := range p.Status.Conditions {
		if c.Type != corev1.PodReady {
			continue
		}
		if c.Status == corev1.ConditionTrue {
			parts = append(parts, "ready")
		} else {
			notReady := "not ready"
			if c.Reason != "" || c.Message != "" {
				notReady += fmt.Sprintf(" (%s: %s)", c.Reason, c.Message)
			}
			parts = append(parts, notReady)
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "no Ready condition")
	}
	parts = append(parts, "phase "+string(p.Status.Phase))
	if p.Spec.NodeName == "" {
		parts = append(parts, "unbound")
	}
	if p.DeletionTimestamp != nil {
		parts = append(parts, "terminating")
	}
	return strings.Join(parts, ", ")
}

// reportPodsMarkedNotReady writes how many pods of the bench's namespace the node lifecycle
// controller marked not ready (it records NodeNotReady on each): a node agent that does not
// make them ready again leaves them unavailable, which a rolling update waits for.
func (b *bench) reportPodsMarkedNotReady(ctx context.Context, w io.Writer) {
	events, err := b.client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: "reason=NodeNotReady"})
	if err != nil {
		fmt.Fprintf(w, "NodeNotReady events: %v\n", err)
		return
	}
	fmt.Fprintf(w, "%d pods of %s marked not ready by the node lifecycle controller (NodeNotReady events)\n", len(events.Items), namespace)
}
