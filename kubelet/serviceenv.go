package kubelet

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	// the namespace's Services, then the kubernetes Service unless one of the namespace's
	// takes its name, as upstream resolves the clash
	byName := map[string]*v1.Service{}
	if pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks {
		services, err := k.serviceLister.Services(pod.Namespace).List(labels.Everything())
		if err != nil {
			return nil, err
		}
		for _, svc := range services {
			if serviceIPSet(svc) {
				byName[svc.Name] = svc
			}
		}
	}
	if _, taken := byName[masterServiceName]; !taken {
		master, err := k.serviceLister.Services(masterServiceNamespace).Get(masterServiceName)
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, err
		}
		if err == nil && serviceIPSet(master) {
			byName[masterServiceName] = master
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
