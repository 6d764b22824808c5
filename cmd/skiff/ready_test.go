package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/skiff-dev/skiff/controllers"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func TestUpSaysReadyOnlyOnceTheDefaultServiceAccountExistsAndItsNodeIsReady(t *testing.T) {
	dataDir := t.TempDir()
	up := startUp(t, dataDir, freePort(t))
	up.waitForLine(t, "ready")

	// Read at once, with no waiting: what `ready` promises holds when it is printed.
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dataDir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	if _, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
		t.Errorf("the default ServiceAccount when up said ready: %v", err)
	}
	name, err := hostNodeName("")
	if err != nil {
		t.Fatal(err)
	}
	node, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("node %s when up said ready: %v", name, err)
	}
	if !controllers.IsNodeReady(node) {
		t.Errorf("node %s is not Ready when up said ready: %+v", name, node.Status.Conditions)
	}
	if err := up.stop(t); err != nil {
		t.Errorf("stop: %v", err)
	}
}
