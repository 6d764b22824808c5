package apis

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

// The resource metrics API (metrics.k8s.io/v1beta1), which upstream clusters get from
// metrics-server: each node's and each pod's CPU and memory use, as `kubectl top` and the
// horizontal pod autoscaler read them. skiff answers it itself from the kubelets'
// /metrics/resource; nothing of it is stored.

var metricsV1beta1 = metricsv1beta1.SchemeGroupVersion

// verbsGetList are the verbs of read-only resources.
var verbsGetList = []string{"get", "list"}

// metricsColumns are metrics-server's columns: usage and the window it was measured over.
var metricsColumns = []metav1.TableColumnDefinition{
	{Name: "Name", Type: "string", Format: "name", Description: "Name of the resource"},
	{Name: "CPU", Type: "string", Description: "CPU usage"},
	{Name: "Memory", Type: "string", Description: "Memory usage"},
	{Name: "Window", Type: "string", Description: "Interval from which metrics were collected"},
}

func usageRow(name string, usage corev1.ResourceList, window metav1.Duration) metav1.TableRow {
	cpu, memory := usage[corev1.ResourceCPU], usage[corev1.ResourceMemory]
	return cells(name, cpu.String(), memory.String(), window.Duration.String())
}

func nodeMetricsTable() *TablePrinter {
	return Columns(metricsColumns, func(m *metricsv1beta1.NodeMetrics) metav1.TableRow {
		return usageRow(m.Name, m.Usage, m.Window)
	})
}

// podMetricsTable prints a pod's usage as the sum of its containers'.
func podMetricsTable() *TablePrinter {
	return Columns(metricsColumns, func(m *metricsv1beta1.PodMetrics) metav1.TableRow {
		sum := corev1.ResourceList{}
		for _, c := range m.Containers {
			for name, q := range c.Usage {
				total := sum[name]
				total.Add(q)
				sum[name] = total
			}
		}
		return usageRow(m.Name, sum, m.Window)
	})
}
