package apis

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// labelNodeRolePrefix marks a node's roles: node-role.kubernetes.io/<role>.
	labelNodeRolePrefix = "node-role.kubernetes.io/"
	// labelNodeRole is the older way: kubernetes.io/role=<role>.
	labelNodeRole = "kubernetes.io/role"
)

func nodeTable() *TablePrinter {
	statusDoc, infoDoc := corev1.NodeStatus{}.SwaggerDoc(), corev1.NodeSystemInfo{}.SwaggerDoc()
	return Columns(
		[]metav1.TableColumnDefinition{
			nameColumn,
			{Name: "Status", Type: "string", Description: "The status of the node"},
			{Name: "Roles", Type: "string", Description: "The roles of the node"},
			ageColumn,
			{Name: "Version", Type: "string", Description: infoDoc["kubeletVersion"]},
			{Name: "Internal-IP", Type: "string", Priority: 1, Description: statusDoc["addresses"]},
			{Name: "External-IP", Type: "string", Priority: 1, Description: statusDoc["addresses"]},
			{Name: "OS-Image", Type: "string", Priority: 1, Description: infoDoc["osImage"]},
			{Name: "Kernel-Version", Type: "string", Priority: 1, Description: infoDoc["kernelVersion"]},
			{Name: "Container-Runtime", Type: "string", Priority: 1, Description: infoDoc["containerRuntimeVersion"]},
		},
		nodeRow)
}

// nodeRow prints a node. STATUS is Ready, NotReady or Unknown (no Ready condition), with
// SchedulingDisabled added for a cordoned node.
func nodeRow(node *corev1.Node) metav1.TableRow {
	var status []string
	for i := range node.Status.Conditions {
		// the last Ready condition counts, as upstream's map of conditions by type
		if c := node.Status.Conditions[i]; c.Type == corev1.NodeReady {
			if c.Status == corev1.ConditionTrue {
				status = []string{string(c.Type)}
			} else {
				status = []string{"Not" + string(c.Type)}
			}
		}
	}
	if len(status) == 0 {
		status = append(status, "Unknown")
	}
	if node.Spec.Unschedulable {
		status = append(status, "SchedulingDisabled")
	}
	roles := strings.Join(nodeRoles(node), ",")
	if roles == "" {
		roles = "<none>"
	}
	info := node.Status.NodeInfo
	return cells(node.Name, strings.Join(status, ","), roles, translateTimestampSince(node.CreationTimestamp), info.KubeletVersion,
		nodeAddress(node, corev1.NodeInternalIP), nodeAddress(node, corev1.NodeExternalIP),
		orUnknown(info.OSImage), orUnknown(info.KernelVersion), orUnknown(info.ContainerRuntimeVersion))
}

// nodeRoles returns the sorted roles of a node from its node-role.kubernetes.io/<role> and
// kubernetes.io/role=<role> labels.
func nodeRoles(node *corev1.Node) []string {
	set := map[string]bool{}
	for k, v := range node.Labels {
		switch {
		case strings.HasPrefix(k, labelNodeRolePrefix):
			if role := strings.TrimPrefix(k, labelNodeRolePrefix); role != "" {
				set[role] = true
			}
		case k == labelNodeRole && v != "":
			set[v] = true
		}
	}
	roles := make([]string, 0, len(set))
	for r := range set {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	return roles
}

// nodeAddress returns the node's first address of the type, or "<none>".
func nodeAddress(node *corev1.Node, t corev1.NodeAddressType) string {
	for _, a := range node.Status.Addresses {
		if a.Type == t {
			return a.Address
		}
	}
	return "<none>"
}

func orUnknown(s string) string {
	if s == "" {
		return "<unknown>"
	}
	return s
}
