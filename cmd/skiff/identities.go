package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/apiserver/certs"
)

// identity is who one of skiff's own parts is to the API server: a user (and groups) that the
// default RBAC policy, or the Node authorizer for kubelets, grants exactly what the part needs,
// as a kubeadm cluster gives each control-plane part its own kubeconfig. Only the admin
// kubeconfig is in system:masters.
type identity struct {
	// file is the kubeconfig's name in the data directory.
	file   string
	user   string
	groups []string
}

var (
	schedulerIdentity         = identity{file: "scheduler.kubeconfig", user: "system:kube-scheduler"}
	controllerManagerIdentity = identity{file: "controller-manager.kubeconfig", user: "system:kube-controller-manager"}
	proxyIdentity             = identity{file: "proxy.kubeconfig", user: "system:kube-proxy"}
	dnsIdentity               = identity{file: "dns.kubeconfig", user: apiserver.DNSUser}
	localPathIdentity         = identity{file: "local-path-provisioner.kubeconfig", user: apiserver.LocalPathProvisionerUser}
	networkPolicyIdentity     = identity{file: "network-policy.kubeconfig", user: apiserver.NetworkPolicyAgentUser}
	ingressIdentity           = identity{file: "ingress-controller.kubeconfig", user: apiserver.IngressControllerUser}
)

// kubeletIdentity is the identity of the kubelet of node: system:node:NAME in system:nodes.
func kubeletIdentity(node string) identity {
	return identity{file: "kubelet.kubeconfig", user: "system:node:" + node, groups: []string{"system:nodes"}}
}

// hostNodeName is the name this host's Node gets: override, or the host name, lower-cased.
func hostNodeName(override string) (string, error) {
	name := override
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return "", err
		}
		name = h
	}
	return strings.ToLower(strings.TrimSpace(name)), nil
}

// writeComponentKubeconfigs writes a kubeconfig per part of the cluster into dataDir, each with
// a fresh client certificate from the cluster CA for the part's own identity, so that parts
// run apart (`skiff scheduler --kubeconfig DATA/scheduler.kubeconfig`) are no more privileged
// than inside skiff up.
func writeComponentKubeconfigs(pki *certs.PKI, dataDir, server string) error {
	node, err := hostNodeName("")
	if err != nil {
		return err
	}
	for _, id := range []identity{schedulerIdentity, controllerManagerIdentity, proxyIdentity, dnsIdentity, localPathIdentity, networkPolicyIdentity, ingressIdentity, kubeletIdentity(node)} {
		path := filepath.Join(dataDir, id.file)
		if err := pki.WriteUserKubeconfig(path, server, id.user, id.groups...); err != nil {
			return fmt.Errorf("kubeconfig of %s: %w", id.user, err)
		}
	}
	slog.Info("component kubeconfigs written", "dir", dataDir)
	return nil
}

// componentConfig reaches the API server as id, through the kubeconfig prepareDataDir wrote.
func componentConfig(dataDir string, id identity) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dataDir, id.file))
	if err != nil {
		return nil, fmt.Errorf("kubeconfig of %s: %w", id.user, err)
	}
	return cfg, nil
}
