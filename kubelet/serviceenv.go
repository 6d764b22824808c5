package kubelet

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// The Service every pod learns of, whatever its enableServiceLinks says: in-cluster clients
// find the API server through KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT.
const (
	masterServiceNamespace = "default"
	masterServiceName      = "kubernetes"
)

// serviceEnv is the environment upstream's kubelet gives a pod's containers for Services: for
// the kubernetes Service in default always, and for every Service of the pod's namespace with a
// cluster IP unless the pod says enableServiceLinks: false, the {NAME}_SERVICE_HOST/_PORT
// variables and Docker's link variables ({NAME}_PORT, {NAME}_PORT_{port}_{PROTO}...).
func (k *Kubelet) serviceEnv(pod *v1.Pod) (map[string]string, error) {
	if k.serviceLister == nil {
		return nil, nil
	}
	services, err := k.serviceLister.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	links := pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks
	byName := map[string]*v1.Service{}
	for _, svc := range services {
		if !serviceIPSet(svc) {
			continue
		}
		switch {
		case svc.Namespace == masterServiceNamespace && svc.Name == masterServiceName:
			if _, taken := byName[svc.Name]; !taken {
				byName[svc.Name] = svc
			}
		case svc.Namespace == pod.Namespace && links:
			byName[svc.Name] = svc
		}
	}
	env := map[string]string{}
	for _, svc := range byName {
		addServiceVariables(env, svc)
	}
	return env, nil
}

func serviceIPSet(svc *v1.Service) bool {
	return svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != v1.ClusterIPNone && len(svc.Spec.Ports) > 0
}

// addServiceVariables adds svc's variables, named as upstream names them.
func addServiceVariables(env map[string]string, svc *v1.Service) {
	prefix := strings.ToUpper(strings.ReplaceAll(svc.Name, "-", "_"))
	ip := svc.Spec.ClusterIP
	env[prefix+"_SERVICE_HOST"] = ip
	env[prefix+"_SERVICE_PORT"] = strconv.Itoa(int(svc.Spec.Ports[0].Port))
	for i, sp := range svc.Spec.Ports {
		port := strconv.Itoa(int(sp.Port))
		if sp.Name != "" {
			env[prefix+"_SERVICE_PORT_"+strings.ToUpper(strings.ReplaceAll(sp.Name, "-", "_"))] = port
		}
		protocol := string(v1.ProtocolTCP)
		if sp.Protocol != "" {
			protocol = string(sp.Protocol)
		}
		url := strings.ToLower(protocol) + "://" + net.JoinHostPort(ip, port)
		if i == 0 {
			env[prefix+"_PORT"] = url // Docker's links name the first port so
		}
		portPrefix := fmt.Sprintf("%s_PORT_%d_%s", prefix, sp.Port, strings.ToUpper(protocol))
		env[portPrefix] = url
		env[portPrefix+"_PROTO"] = strings.ToLower(protocol)
		env[portPrefix+"_PORT"] = port
		env[portPrefix+"_ADDR"] = ip
	}
}

// sortedNames are env's names in order.
func sortedNames(env map[string]string) []string {
	names := make([]string, 0, len(env))
	for name := range env {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
