package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/dns"
	"github.com/skiff-dev/skiff/kubelet"
)

// A host with several addresses (one on the link the agents share, one of the default route)
// tells skiff up which is its node's, as k3s's --node-ip: the Node reports it (the agents
// route this node's pods through it), the cluster DNS is published at it, and joining nodes
// are sent to it when no --advertise-address says otherwise.
func TestUpsNodeIPIsItsNodesAddressDNSAndJoinAddress(t *testing.T) {
	const nodeIP = "198.51.100.7" // on no interface: the fake runtime needs none
	if kubelet.DefaultNodeIP().String() == nodeIP {
		t.Skipf("this host's default address is %s itself", nodeIP)
	}
	dataDir := filepath.Join(t.TempDir(), "skiff")
	c := startUp(t, dataDir, freePort(t), func(o *upOptions) {
		o.nodeIPs = []string{nodeIP}
		o.kubeletPort = freePort(t)
	})
	c.waitForLine(t, "ready")
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dataDir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()

	node, err := client.CoreV1().Nodes().Get(ctx, mustHostNodeName(t), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var internal []string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			internal = append(internal, a.Address)
		}
	}
	if len(internal) != 1 || internal[0] != nodeIP {
		t.Errorf("the Node's InternalIPs are %v, want [%s]", internal, nodeIP)
	}

	// the DNS server publishes its endpoint (a slice of its own) shortly after it starts
	var dnsAddrs []string
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		slices, err := client.DiscoveryV1().EndpointSlices(dns.ServiceNamespace).List(ctx, metav1.ListOptions{
			LabelSelector: discoveryv1.LabelServiceName + "=" + dns.ServiceName + "," + discoveryv1.LabelManagedBy + "=" + dns.ManagedBy})
		if err != nil || len(slices.Items) == 0 {
			return false, nil
		}
		dnsAddrs = nil
		for _, s := range slices.Items {
			for _, e := range s.Endpoints {
				dnsAddrs = append(dnsAddrs, e.Addresses...)
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("no kube-dns EndpointSlice: %v", err)
	}
	if len(dnsAddrs) != 1 || dnsAddrs[0] != nodeIP {
		t.Errorf("kube-dns endpoints %v, want [%s]", dnsAddrs, nodeIP)
	}

	info, err := client.CoreV1().ConfigMaps(metav1.NamespacePublic).Get(ctx, "cluster-info", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "server: https://" + nodeIP + ":"; !strings.Contains(info.Data["kubeconfig"], want) {
		t.Errorf("cluster-info's kubeconfig sends joining nodes elsewhere than %q:\n%s", want, info.Data["kubeconfig"])
	}
}

func mustHostNodeName(t *testing.T) string {
	t.Helper()
	name, err := hostNodeName("")
	if err != nil {
		t.Fatal(err)
	}
	return name
}
