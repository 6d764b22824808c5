package apis

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func validNode() *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", ResourceVersion: "1"},
		Status: corev1.NodeStatus{Capacity: corev1.ResourceList{
			corev1.ResourceCPU:  resource.MustParse("2"),
			corev1.ResourcePods: resource.MustParse("110"),
		}},
	}
}

func TestValidateNode(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*corev1.Node)
		want   []string
	}{
		{name: "valid", change: func(*corev1.Node) {}},
		{
			name:   "name must be a DNS subdomain",
			change: func(n *corev1.Node) { n.Name = "Node_1" },
			want:   []string{`metadata.name: Invalid value: "Node_1": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
		},
		{
			name:   "nodes are not namespaced",
			change: func(n *corev1.Node) { n.Namespace = "default" },
			want:   []string{`metadata.namespace: Forbidden: not allowed on this type`},
		},
		{
			name: "taints are unique by key and effect, reported under metadata.taints as upstream",
			change: func(n *corev1.Node) {
				n.Spec.Taints = []corev1.Taint{
					{Key: "a", Effect: corev1.TaintEffectNoSchedule},
					{Key: "a", Effect: corev1.TaintEffectNoSchedule},
					{Key: "a", Effect: corev1.TaintEffectNoExecute},
				}
			},
			want: []string{`metadata.taints[1]: Duplicate value: {"key":"a","effect":"NoSchedule"}: taints must be unique by key and effect pair`},
		},
		{
			name:   "taint effect must be known",
			change: func(n *corev1.Node) { n.Spec.Taints = []corev1.Taint{{Key: "a", Effect: "Sometimes"}} },
			want:   []string{`metadata.taints[0].effect: Unsupported value: "Sometimes": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"`},
		},
		{
			name:   "taint effect is required",
			change: func(n *corev1.Node) { n.Spec.Taints = []corev1.Taint{{Key: "a"}} },
			want:   []string{`metadata.taints[0].effect: Required value`},
		},
		{
			name:   "capacity may not be negative",
			change: func(n *corev1.Node) { n.Status.Capacity[corev1.ResourceCPU] = resource.MustParse("-1") },
			want:   []string{`status.capacity.cpu: Invalid value: "-1": must be greater than or equal to 0`},
		},
		{
			name: "pods are counted in whole numbers",
			change: func(n *corev1.Node) {
				n.Status.Allocatable = corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1500m")}
			},
			want: []string{`status.allocatable.pods: Invalid value: "1500m": must be an integer`},
		},
		{
			name:   "extended resources are counted in whole numbers",
			change: func(n *corev1.Node) { n.Status.Capacity["example.com/gpu"] = resource.MustParse("500m") },
			want:   []string{`status.capacity.example.com/gpu: Invalid value: "500m": must be an integer`},
		},
		{
			name:   "pod CIDRs are one per family",
			change: func(n *corev1.Node) { n.Spec.PodCIDRs = []string{"10.0.0.0/24", "10.1.0.0/24"} },
			want:   []string{`spec.podCIDRs: Invalid value: ["10.0.0.0/24","10.1.0.0/24"]: may specify no more than one CIDR for each IP family`},
		},
		{
			name:   "dual-stack pod CIDRs are valid",
			change: func(n *corev1.Node) { n.Spec.PodCIDRs = []string{"10.0.0.0/24", "fd00::/64"} },
		},
		{
			name:   "taints annotation must be JSON",
			change: func(n *corev1.Node) { n.Annotations = map[string]string{corev1.TaintsAnnotationKey: "{"} },
			want:   []string{`metadata.annotations: Invalid value: "scheduler.alpha.kubernetes.io/taints": unexpected end of JSON input`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node := validNode()
			tc.change(node)
			checkFieldErrors(t, ValidateNode(node), tc.want...)
		})
	}
}

func TestValidateNodeUpdate(t *testing.T) {
	for _, tc := range []struct {
		name        string
		old, change func(*corev1.Node)
		want        []string
	}{
		{
			name: "labels, taints, unschedulable and status may change",
			old:  func(*corev1.Node) {},
			change: func(n *corev1.Node) {
				n.Labels = map[string]string{"a": "b"}
				n.Spec.Unschedulable = true
				n.Status.Phase = "Running"
			},
		},
		{
			name:   "podCIDRs may be set once",
			old:    func(*corev1.Node) {},
			change: func(n *corev1.Node) { n.Spec.PodCIDRs = []string{"10.0.0.0/24"} },
		},
		{
			name:   "podCIDRs may not change once set",
			old:    func(n *corev1.Node) { n.Spec.PodCIDRs = []string{"10.0.0.0/24"} },
			change: func(n *corev1.Node) { n.Spec.PodCIDRs = []string{"10.9.0.0/24"} },
			want:   []string{`spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid`},
		},
		{
			name:   "providerID may not change once set",
			old:    func(n *corev1.Node) { n.Spec.ProviderID = "skiff://a" },
			change: func(n *corev1.Node) { n.Spec.ProviderID = "skiff://b" },
			want:   []string{`spec.providerID: Forbidden: node updates may not change providerID except from "" to valid`},
		},
		{
			name:   "externalID never changes",
			old:    func(*corev1.Node) {},
			change: func(n *corev1.Node) { n.Spec.DoNotUseExternalID = "x" },
			want:   []string{`spec.externalID: Forbidden: may not be updated`},
		},
		{
			name: "addresses may not repeat",
			old:  func(*corev1.Node) {},
			change: func(n *corev1.Node) {
				a := corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}
				n.Status.Addresses = []corev1.NodeAddress{a, a}
			},
			want: []string{`status.addresses[1]: Duplicate value: {"type":"InternalIP","address":"10.0.0.1"}`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, node := validNode(), validNode()
			tc.old(old)
			tc.old(node)
			tc.change(node)
			checkFieldErrors(t, ValidateNodeUpdate(node, old), tc.want...)
		})
	}
}
