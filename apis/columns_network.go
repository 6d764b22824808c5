package apis

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	discoveryv1beta1 "k8s.io/api/discovery/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func serviceTable() *TablePrinter {
	specDoc := corev1.ServiceSpec{}.SwaggerDoc()
	return Columns(
		[]metav1.TableColumnDefinition{
			nameColumn,
			{Name: "Type", Type: "string", Description: specDoc["type"]},
			{Name: "Cluster-IP", Type: "string", Description: specDoc["clusterIP"]},
			{Name: "External-IP", Type: "string", Description: specDoc["externalIPs"]},
			{Name: "Port(s)", Type: "string", Description: specDoc["ports"]},
			ageColumn,
			{Name: "Selector", Type: "string", Priority: 1, Description: specDoc["selector"]},
		},
		serviceRow)
}

func endpointsTable() *TablePrinter {
	return Columns(
		[]metav1.TableColumnDefinition{
			nameColumn,
			{Name: "Endpoints", Type: "string", Description: corev1.Endpoints{}.SwaggerDoc()["subsets"]},
			ageColumn,
		},
		func(ep *corev1.Endpoints) metav1.TableRow {
			return cells(ep.Name, formatEndpoints(ep), translateTimestampSince(ep.CreationTimestamp))
		})
}

// upstream describes these columns with the v1beta1 field docs
func endpointSliceTable() *TablePrinter {
	sliceDoc := discoveryv1beta1.EndpointSlice{}.SwaggerDoc()
	return Columns(
		[]metav1.TableColumnDefinition{
			nameColumn,
			{Name: "AddressType", Type: "string", Description: sliceDoc["addressType"]},
			{Name: "Ports", Type: "string", Description: sliceDoc["ports"]},
			{Name: "Endpoints", Type: "string", Description: sliceDoc["endpoints"]},
			ageColumn,
		},
		func(s *discoveryv1.EndpointSlice) metav1.TableRow {
			return cells(s.Name, string(s.AddressType), formatSlicePorts(s.Ports), formatSliceEndpoints(s.Endpoints),
				translateTimestampSince(s.CreationTimestamp))
		})
}

// serviceRow prints a service; the server prints wide, so load balancer addresses are not
// shortened.
func serviceRow(svc *corev1.Service) metav1.TableRow {
	clusterIP := "<none>"
	switch {
	case len(svc.Spec.ClusterIPs) > 0:
		clusterIP = svc.Spec.ClusterIPs[0]
	case svc.Spec.ClusterIP != "":
		clusterIP = svc.Spec.ClusterIP
	}
	ports := make([]string, len(svc.Spec.Ports))
	for i, p := range svc.Spec.Ports {
		if p.NodePort > 0 {
			ports[i] = fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol)
		} else {
			ports[i] = fmt.Sprintf("%d/%s", p.Port, p.Protocol)
		}
	}
	portsCell := strings.Join(ports, ",")
	if portsCell == "" {
		portsCell = "<none>"
	}
	return cells(svc.Name, string(svc.Spec.Type), clusterIP, serviceExternalIP(svc), portsCell,
		translateTimestampSince(svc.CreationTimestamp), labels.FormatLabels(svc.Spec.Selector))
}

func serviceExternalIP(svc *corev1.Service) string {
	switch svc.Spec.Type {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort:
		if len(svc.Spec.ExternalIPs) > 0 {
			return strings.Join(svc.Spec.ExternalIPs, ",")
		}
		return "<none>"
	case corev1.ServiceTypeLoadBalancer:
		set := map[string]bool{}
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if in.IP != "" {
				set[in.IP] = true
			} else if in.Hostname != "" {
				set[in.Hostname] = true
			}
		}
		var addrs []string
		for a := range set {
			addrs = append(addrs, a)
		}
		sort.Strings(addrs)
		addrs = append(addrs, svc.Spec.ExternalIPs...)
		if len(addrs) == 0 {
			return "<pending>"
		}
		return strings.Join(addrs, ",")
	case corev1.ServiceTypeExternalName:
		return svc.Spec.ExternalName
	}
	return "<unknown>"
}

// formatEndpoints lists up to three addresses (host:port for each port of a subset), then
// how many more there are.
func formatEndpoints(ep *corev1.Endpoints) string {
	if len(ep.Subsets) == 0 {
		return "<none>"
	}
	const max = 3
	var list []string
	count := 0
	for _, ss := range ep.Subsets {
		if len(ss.Ports) == 0 {
			// headless services without ports
			count += len(ss.Addresses)
			for _, a := range ss.Addresses {
				if len(list) == max {
					break
				}
				list = append(list, a.IP)
			}
			continue
		}
		for _, p := range ss.Ports {
			count += len(ss.Addresses)
			for _, a := range ss.Addresses {
				if len(list) == max {
					break
				}
				list = append(list, net.JoinHostPort(a.IP, strconv.Itoa(int(p.Port))))
			}
		}
	}
	out := strings.Join(list, ",")
	if count > len(list) {
		return fmt.Sprintf("%s + %d more...", out, count-max)
	}
	return out
}

func formatSlicePorts(ports []discoveryv1.EndpointPort) string {
	var list []string
	for _, p := range ports {
		port := "*"
		if p.Port != nil {
			port = strconv.Itoa(int(*p.Port))
		} else if p.Name != nil {
			port = *p.Name
		}
		list = append(list, port)
	}
	return listWithMore(list, 3)
}

func formatSliceEndpoints(endpoints []discoveryv1.Endpoint) string {
	var list []string
	for _, e := range endpoints {
		list = append(list, e.Addresses...)
	}
	return listWithMore(list, 3)
}

// listWithMore joins the first max entries and says how many more there are, "<unset>" for
// none.
func listWithMore(list []string, max int) string {
	if len(list) > max {
		return fmt.Sprintf("%s + %d more...", strings.Join(list[:max], ","), len(list)-max)
	}
	if len(list) == 0 {
		return "<unset>"
	}
	return strings.Join(list, ",")
}
