package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// waitClusterUsable waits, after the API server is ready, until the cluster is usable the way a user
// of `skiff up` means it: the default namespace's "default" ServiceAccount exists (without it
// the ServiceAccount admission plugin refuses every pod that names none, 403 "serviceaccount
// default not found"), and this machine's node is Ready (until then nothing schedules), as
// posted by a kubelet of this skiff up: after a restart the Node still says Ready in the
// previous one's words (heartbeat before since) until the new kubelet runs. kind waits for the
// same before it says its cluster is ready.
//
// It waits until ctx is done: the controller manager and the kubelet may take their time
// (images imported before the node reports Ready), and they say themselves what fails.
// Every so often it logs what it still waits for.
func waitClusterUsable(ctx context.Context, cfg *rest.Config, nodeName string, since time.Time) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	lastLog := time.Now()
	return wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		missing := clusterNotUsableBecause(ctx, client, nodeName, since)
		if missing == "" {
			return true, nil
		}
		if time.Since(lastLog) > 15*time.Second {
			slog.Info("waiting for the cluster to be usable", "missing", missing)
			lastLog = time.Now()
		}
		return false, nil
	})
}

// clusterNotUsableBecause says what the cluster still lacks to be usable, or "" when nothing.
func clusterNotUsableBecause(ctx context.Context, client kubernetes.Interface, nodeName string, since time.Time) string {
	if _, err := client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return "the default ServiceAccount in namespace default"
		}
		return fmt.Sprintf("the default ServiceAccount: %v", err)
	}
	node, err := client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Sprintf("node %s registered", nodeName)
		}
		return fmt.Sprintf("node %s: %v", nodeName, err)
	}
	for _, c := range node.Status.Conditions {
		if c.Type != corev1.NodeReady || c.Status != corev1.ConditionTrue {
			continue
		}
		// heartbeats are in whole seconds
		if c.LastHeartbeatTime.Time.Before(since.Truncate(time.Second)) {
			return fmt.Sprintf("node %s Ready from this skiff up's kubelet (its Ready is from %s)", nodeName, c.LastHeartbeatTime.Format(time.RFC3339))
		}
		return ""
	}
	return fmt.Sprintf("node %s Ready", nodeName)
}
