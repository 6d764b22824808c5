package apis

import (
	"reflect"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
)

func TestEveryServedKindHasTableColumns(t *testing.T) {
	for _, r := range Builtin.All() {
		if !slices.Contains(r.Verbs, "list") {
			continue // create-only reviews: upstream offers no table for them either
		}
		obj := r.New()
		p := r.Table
		if p == nil && r.GroupVersion.Group == "rbac.authorization.k8s.io" && (r.Name == "roles" || r.Name == "clusterroles") {
			continue // upstream has no printer for them: Name and Created At, as kubectl shows
		}
		if p == nil {
			t.Errorf("%s: no table columns", r.GroupVersionResource())
			continue
		}
		// every column has a description and a cell, wide ones included
		for _, c := range p.columns {
			if c.Description == "" {
				t.Errorf("%s: column %q has no description", r.GroupVersionResource(), c.Name)
			}
		}
		if row := p.row(obj); len(row.Cells) != len(p.columns) {
			t.Errorf("%s: %d cells for %d columns", r.GroupVersionResource(), len(row.Cells), len(p.columns))
		}
	}
}

// columnNames renders columns the way kubectl heads them, with (wide) after priority-1 ones.
func columnNames(cols []metav1.TableColumnDefinition) []string {
	var out []string
	for _, c := range cols {
		n := c.Name + ":" + c.Type
		if c.Format != "" {
			n += ":" + c.Format
		}
		if c.Priority == 1 {
			n += " (wide)"
		}
		out = append(out, n)
	}
	return out
}

func TestTableColumnsAreUpstreams(t *testing.T) {
	tests := []struct {
		obj  runtime.Object
		want []string
	}{
		{&corev1.Pod{}, []string{"Name:string:name", "Ready:string", "Status:string", "Restarts:string", "Age:string",
			"IP:string (wide)", "Node:string (wide)", "Nominated Node:string (wide)", "Readiness Gates:string (wide)"}},
		{&corev1.Node{}, []string{"Name:string:name", "Status:string", "Roles:string", "Age:string", "Version:string",
			"Internal-IP:string (wide)", "External-IP:string (wide)", "OS-Image:string (wide)", "Kernel-Version:string (wide)", "Container-Runtime:string (wide)"}},
		{&corev1.Namespace{}, []string{"Name:string:name", "Status:string", "Age:string"}},
		{&corev1.Event{}, []string{"Last Seen:string", "Type:string", "Reason:string", "Object:string", "Subobject:string (wide)",
			"Source:string (wide)", "Message:string", "First Seen:string (wide)", "Count:string (wide)", "Name:string:name (wide)"}},
		{&eventsv1.Event{}, []string{"Last Seen:string", "Type:string", "Reason:string", "Object:string", "Subobject:string (wide)",
			"Source:string (wide)", "Message:string", "First Seen:string (wide)", "Count:string (wide)", "Name:string:name (wide)"}},
		{&corev1.ConfigMap{}, []string{"Name:string:name", "Data:string", "Age:string"}},
		{&corev1.Secret{}, []string{"Name:string:name", "Type:string", "Data:string", "Age:string"}},
		{&corev1.ServiceAccount{}, []string{"Name:string:name", "Secrets:string", "Age:string"}},
		{&appsv1.ReplicaSet{}, []string{"Name:string:name", "Desired:integer", "Current:integer", "Ready:integer", "Age:string",
			"Containers:string (wide)", "Images:string (wide)", "Selector:string (wide)"}},
		{&autoscalingv1.Scale{}, []string{"Name:string", "Desired:integer", "Available:integer", "Age:string"}},
		{&coordinationv1.Lease{}, []string{"Name:string:name", "Holder:string", "Age:string"}},
		{&appsv1.Deployment{}, []string{"Name:string:name", "Ready:string", "Up-to-date:string", "Available:string", "Age:string",
			"Containers:string (wide)", "Images:string (wide)", "Selector:string (wide)"}},
		{&schedulingv1.PriorityClass{}, []string{"Name:string:name", "Value:integer", "Global-Default:boolean", "Age:string", "PreemptionPolicy:string"}},
		{&corev1.Service{}, []string{"Name:string:name", "Type:string", "Cluster-IP:string", "External-IP:string", "Port(s):string", "Age:string", "Selector:string (wide)"}},
		{&corev1.Endpoints{}, []string{"Name:string:name", "Endpoints:string", "Age:string"}},
		{&discoveryv1.EndpointSlice{}, []string{"Name:string:name", "AddressType:string", "Ports:string", "Endpoints:string", "Age:string"}},
	}
	for _, tc := range tests {
		table, err := convertToTable(tc.obj, false)
		if err != nil {
			t.Fatal(err)
		}
		if got := columnNames(table.ColumnDefinitions); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%T columns:\n got %q\nwant %q", tc.obj, got, tc.want)
		}
	}
	// descriptions come from the API's field docs, as upstream's
	table, _ := convertToTable(&corev1.Pod{}, false)
	if d := table.ColumnDefinitions[0].Description; d != (metav1.ObjectMeta{}).SwaggerDoc()["name"] {
		t.Errorf("pod Name description %q", d)
	}
	if d := table.ColumnDefinitions[5].Description; d != (corev1.PodStatus{}).SwaggerDoc()["podIP"] {
		t.Errorf("pod IP description %q", d)
	}
}

func TestTableCells(t *testing.T) {
	created := metav1.NewTime(time.Now().Add(-(49*time.Hour + 10*time.Minute)))
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, CreationTimestamp: created} }
	eventTime := metav1.NewMicroTime(time.Now().Add(-3 * time.Minute))
	tests := []struct {
		obj  runtime.Object
		want []interface{}
	}{
		{&corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "n1", CreationTimestamp: created, Labels: map[string]string{
				"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/worker": "", "kubernetes.io/role": "edge"}},
			Spec: corev1.NodeSpec{Unschedulable: true},
			Status: corev1.NodeStatus{
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse}, {Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
				Addresses:  []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "n1"}, {Type: corev1.NodeInternalIP, Address: "10.0.0.1"}},
				NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.37.0", OSImage: "Debian GNU/Linux 13", KernelVersion: "6.12.0", ContainerRuntimeVersion: "containerd://2.1.0"},
			},
		}, []interface{}{"n1", "Ready,SchedulingDisabled", "control-plane,edge,worker", "2d1h", "v1.37.0", "10.0.0.1", "<none>", "Debian GNU/Linux 13", "6.12.0", "containerd://2.1.0"}},
		{&corev1.Node{ObjectMeta: meta("n2"), Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionUnknown}}}},
			[]interface{}{"n2", "NotReady", "<none>", "2d1h", "", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"}},
		{&corev1.Node{ObjectMeta: meta("n3")},
			[]interface{}{"n3", "Unknown", "<none>", "2d1h", "", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"}},
		{&corev1.Namespace{ObjectMeta: meta("ns"), Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating}},
			[]interface{}{"ns", "Terminating", "2d1h"}},
		{&corev1.ConfigMap{ObjectMeta: meta("cm"), Data: map[string]string{"a": "b"}, BinaryData: map[string][]byte{"c": nil}},
			[]interface{}{"cm", int64(2), "2d1h"}},
		{&corev1.Secret{ObjectMeta: meta("s"), Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"a": nil}},
			[]interface{}{"s", "Opaque", int64(1), "2d1h"}},
		{&corev1.ServiceAccount{ObjectMeta: meta("default")}, []interface{}{"default", int64(0), "2d1h"}},
		{&appsv1.ReplicaSet{ObjectMeta: meta("rs"),
			Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](3), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}, {Name: "log", Image: "busybox"}}}}},
			Status: appsv1.ReplicaSetStatus{Replicas: 3, ReadyReplicas: 2}},
			[]interface{}{"rs", int64(3), int64(3), int64(2), "2d1h", "web,log", "nginx:1.27,busybox", "app=web"}},
		{&autoscalingv1.Scale{ObjectMeta: meta("rs"), Spec: autoscalingv1.ScaleSpec{Replicas: 4}, Status: autoscalingv1.ScaleStatus{Replicas: 2}},
			[]interface{}{"rs", int64(4), int64(2), "2d1h"}},
		{&coordinationv1.Lease{ObjectMeta: meta("l"), Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("node-1")}},
			[]interface{}{"l", "node-1", "2d1h"}},
		{&coordinationv1.Lease{ObjectMeta: meta("free")}, []interface{}{"free", "", "2d1h"}},
		{&appsv1.Deployment{ObjectMeta: meta("web"),
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}}}},
			Status: appsv1.DeploymentStatus{ReadyReplicas: 2, UpdatedReplicas: 3, AvailableReplicas: 2}},
			[]interface{}{"web", "2/3", int64(3), int64(2), "2d1h", "web", "nginx:1.27", "app=web"}},
		{&corev1.Service{ObjectMeta: meta("web"), Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"},
			Ports:    []corev1.ServicePort{{Port: 80, NodePort: 30080, Protocol: corev1.ProtocolTCP}, {Port: 53, Protocol: corev1.ProtocolUDP}},
			Selector: map[string]string{"app": "web", "tier": "front"}}},
			[]interface{}{"web", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP,53/UDP", "2d1h", "app=web,tier=front"}},
		{&corev1.Service{ObjectMeta: meta("lb"), Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalIPs: []string{"192.0.2.9"}},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{Hostname: "lb.example.com"}, {IP: "192.0.2.1"}}}}},
			[]interface{}{"lb", "LoadBalancer", "<none>", "192.0.2.1,lb.example.com,192.0.2.9", "<none>", "2d1h", "<none>"}},
		{&corev1.Service{ObjectMeta: meta("pending"), Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIPs: []string{"10.96.0.11"}}},
			[]interface{}{"pending", "LoadBalancer", "10.96.0.11", "<pending>", "<none>", "2d1h", "<none>"}},
		{&corev1.Service{ObjectMeta: meta("ext"), Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com"}},
			[]interface{}{"ext", "ExternalName", "<none>", "db.example.com", "<none>", "2d1h", "<none>"}},
		{&corev1.Endpoints{ObjectMeta: meta("web"), Subsets: []corev1.EndpointSubset{
			{Addresses: []corev1.EndpointAddress{{IP: "10.1.0.1"}, {IP: "10.1.0.2"}}, Ports: []corev1.EndpointPort{{Port: 8080}, {Port: 9090}}}}},
			[]interface{}{"web", "10.1.0.1:8080,10.1.0.2:8080,10.1.0.1:9090 + 1 more...", "2d1h"}},
		{&corev1.Endpoints{ObjectMeta: meta("empty")}, []interface{}{"empty", "<none>", "2d1h"}},
		{&discoveryv1.EndpointSlice{ObjectMeta: meta("web-abc"), AddressType: discoveryv1.AddressTypeIPv4,
			Ports:     []discoveryv1.EndpointPort{{Port: ptr.To[int32](8080)}, {Name: ptr.To("metrics")}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.1.0.1"}}, {Addresses: []string{"10.1.0.2"}}, {Addresses: []string{"10.1.0.3"}}, {Addresses: []string{"10.1.0.4"}}}},
			[]interface{}{"web-abc", "IPv4", "8080,metrics", "10.1.0.1,10.1.0.2,10.1.0.3 + 1 more...", "2d1h"}},
		{&discoveryv1.EndpointSlice{ObjectMeta: meta("none"), AddressType: discoveryv1.AddressTypeIPv6},
			[]interface{}{"none", "IPv6", "<unset>", "<unset>", "2d1h"}},
		{&schedulingv1.PriorityClass{ObjectMeta: meta("high"), Value: 1000, GlobalDefault: true, PreemptionPolicy: ptr.To(corev1.PreemptNever)},
			[]interface{}{"high", int64(1000), true, "2d1h", "Never"}},
		{&corev1.Event{ObjectMeta: meta("web.17"), Type: "Warning", Reason: "BackOff", Message: " Back-off restarting failed container \n",
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web", FieldPath: "spec.containers{web}"},
			Source:         corev1.EventSource{Component: "kubelet", Host: "node-1"}, Count: 7,
			FirstTimestamp: metav1.NewTime(time.Now().Add(-time.Hour)), LastTimestamp: metav1.NewTime(time.Now().Add(-2 * time.Minute))},
			[]interface{}{"2m", "Warning", "BackOff", "pod/web", "spec.containers{web}", "kubelet, node-1", "Back-off restarting failed container", "60m", int64(7), "web.17"}},
		// new-API event: times from eventTime and series, source from the reporting fields
		{&corev1.Event{ObjectMeta: meta("e2"), Type: "Normal", Reason: "Scheduled", InvolvedObject: corev1.ObjectReference{Kind: "Node"},
			EventTime: eventTime, ReportingController: "default-scheduler"},
			[]interface{}{"3m", "Normal", "Scheduled", "node", "", "default-scheduler", "", "3m", int64(1), "e2"}},
		{&eventsv1.Event{ObjectMeta: meta("e3"), Type: "Normal", Reason: "Pulled", Note: "pulled", Regarding: corev1.ObjectReference{Kind: "Pod", Name: "p"},
			EventTime: eventTime, ReportingController: "kubelet", ReportingInstance: "node-9",
			Series: &eventsv1.EventSeries{Count: 4, LastObservedTime: metav1.NewMicroTime(time.Now().Add(-30 * time.Second))}},
			[]interface{}{"30s", "Normal", "Pulled", "pod/p", "", "kubelet, node-9", "pulled", "3m", int64(4), "e3"}},
	}
	for _, tc := range tests {
		table, err := convertToTable(tc.obj, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(table.Rows) != 1 {
			t.Fatalf("%T: %d rows", tc.obj, len(table.Rows))
		}
		if got := table.Rows[0].Cells; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%T cells:\n got %#v\nwant %#v", tc.obj, got, tc.want)
		}
		if table.Rows[0].Object.Object != tc.obj {
			t.Errorf("%T: the row does not hold the object", tc.obj)
		}
	}
}

func TestTableOfAListKeepsItsListMeta(t *testing.T) {
	remaining := int64(5)
	list := &corev1.ConfigMapList{
		ListMeta: metav1.ListMeta{ResourceVersion: "42", Continue: "next", RemainingItemCount: &remaining},
		Items:    []corev1.ConfigMap{{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, {ObjectMeta: metav1.ObjectMeta{Name: "b"}}},
	}
	table, err := convertToTable(list, false)
	if err != nil {
		t.Fatal(err)
	}
	if table.ResourceVersion != "42" || table.Continue != "next" || table.RemainingItemCount == nil || *table.RemainingItemCount != 5 {
		t.Errorf("list meta %+v", table.ListMeta)
	}
	if len(table.Rows) != 2 || table.Rows[1].Cells[0] != "b" || table.Rows[1].Object.Object != &list.Items[1] {
		t.Errorf("rows %+v", table.Rows)
	}

	empty, err := convertToTable(&corev1.PodList{}, true)
	if err != nil {
		t.Fatal(err)
	}
	if empty.Rows == nil || len(empty.Rows) != 0 || empty.ColumnDefinitions != nil {
		t.Errorf("empty pod list without headers: rows %#v, columns %#v", empty.Rows, empty.ColumnDefinitions)
	}

	one, _ := convertToTable(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a", ResourceVersion: "7"}}, false)
	if one.ResourceVersion != "7" || one.Continue != "" {
		t.Errorf("single object list meta %+v", one.ListMeta)
	}
}

func TestTableOfAKindWithoutColumnsIsUpstreamsDefault(t *testing.T) {
	created := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("x", 3600))
	table, err := convertToTable(&corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "ep", CreationTimestamp: metav1.NewTime(created)}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := columnNames(table.ColumnDefinitions); !reflect.DeepEqual(got, []string{"Name:string:name", "Created At:date"}) {
		t.Errorf("columns %q", got)
	}
	if got := table.Rows[0].Cells; !reflect.DeepEqual(got, []interface{}{"ep", "2026-03-04T04:06:07Z"}) {
		t.Errorf("cells %q", got)
	}
	if _, err := convertToTable(&metav1.Status{}, false); err != ErrNotTabular {
		t.Errorf("Status: %v", err)
	}
}

// convertToTable prints obj with the printer its built-in kind declares, as the server does.
func convertToTable(obj runtime.Object, noHeaders bool) (*metav1.Table, error) {
	return ConvertToTable(printerOf(obj), obj, noHeaders)
}

// printerOf is the declared printer of a built-in kind's objects or lists (nil for others).
func printerOf(obj runtime.Object) *TablePrinter {
	if _, ok := obj.(*autoscalingv1.Scale); ok {
		return ScaleTable
	}
	t := reflect.TypeOf(obj)
	for _, r := range Builtin.All() {
		if r.Review {
			continue
		}
		if reflect.TypeOf(r.New()) == t || reflect.TypeOf(r.NewList()) == t {
			return r.Table
		}
	}
	return nil
}
