package apis

import (
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	extensionsv1beta1 "k8s.io/api/extensions/v1beta1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
)

// Table columns: how each served kind prints as a row of a meta.k8s.io Table, the
// representation kubectl get asks for. The columns, their types, formats, descriptions and
// priorities (1 = shown by -o wide) and the text of every cell are upstream's
// (k8s.io/kubernetes pkg/printers/internalversion); the server always fills every column, wide
// ones included, and kubectl picks what to show.

// TablePrinter is one kind's columns and how one object of that kind fills a row of them. A
// resource declares its own; lists print with their items'.
type TablePrinter struct {
	columns []metav1.TableColumnDefinition
	// row returns the cells (and conditions) of obj's row; the caller sets the row's object.
	row func(obj runtime.Object) metav1.TableRow
}

// Columns is the printer of objects of type T: its columns and the function filling one row.
func Columns[T runtime.Object](columns []metav1.TableColumnDefinition, row func(T) metav1.TableRow) *TablePrinter {
	return &TablePrinter{columns: columns, row: func(obj runtime.Object) metav1.TableRow { return row(obj.(T)) }}
}

// cells makes a row of the given cells.
func cells(c ...interface{}) metav1.TableRow { return metav1.TableRow{Cells: c} }

// ErrNotTabular is returned for objects that have no columns and no object metadata to fall
// back on (upstream answers 406 for them).
var ErrNotTabular = errors.New("the object cannot be converted to a Table")

// ConvertToTable returns obj, one object or a list of them, as a Table the way upstream's
// server prints it: the columns of obj's kind (all of them: wide ones carry priority 1), one row
// per object holding the object itself, and the list's resourceVersion, continue and
// remainingItemCount (a single object's resourceVersion). With noHeaders the table has no column
// definitions, as on every watch event after the first. Kinds without a printer get upstream's
// default columns, Name and Created At: p is nil for them.
func ConvertToTable(p *TablePrinter, obj runtime.Object, noHeaders bool) (*metav1.Table, error) {
	var items []runtime.Object
	isList := meta.IsListType(obj)
	if isList {
		var err error
		if items, err = meta.ExtractList(obj); err != nil {
			return nil, err
		}
	} else {
		items = []runtime.Object{obj}
	}
	if p == nil {
		p = defaultTablePrinter
	}
	table := &metav1.Table{Rows: make([]metav1.TableRow, 0, len(items))}
	for _, it := range items {
		if p == defaultTablePrinter {
			if _, err := meta.Accessor(it); err != nil {
				return nil, ErrNotTabular
			}
		}
		row := p.row(it)
		row.Object = runtime.RawExtension{Object: it}
		table.Rows = append(table.Rows, row)
	}
	if p == defaultTablePrinter && len(table.Rows) == 0 {
		table.Rows = nil // upstream's default convertor only appends
	}
	if !noHeaders {
		table.ColumnDefinitions = p.columns
	}
	if l, err := meta.ListAccessor(obj); isList && err == nil {
		table.ResourceVersion = l.GetResourceVersion()
		table.Continue = l.GetContinue()
		table.RemainingItemCount = l.GetRemainingItemCount()
	} else if m, err := meta.CommonAccessor(obj); err == nil {
		table.ResourceVersion = m.GetResourceVersion()
	}
	return table, nil
}

var (
	objectMetaDoc = metav1.ObjectMeta{}.SwaggerDoc()
	nameColumn    = metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: objectMetaDoc["name"]}
	ageColumn     = metav1.TableColumnDefinition{Name: "Age", Type: "string", Description: objectMetaDoc["creationTimestamp"]}
	// the columns of the workload kinds' -o wide
	containersColumn = metav1.TableColumnDefinition{Name: "Containers", Type: "string", Priority: 1, Description: "Names of each container in the template."}
	imagesColumn     = metav1.TableColumnDefinition{Name: "Images", Type: "string", Priority: 1, Description: "Images referenced by each container in the template."}
)

// defaultTablePrinter is upstream's default table convertor, for kinds without columns of
// their own: the name and the creation time in RFC 3339.
var defaultTablePrinter = &TablePrinter{
	columns: []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Created At", Type: "date", Description: objectMetaDoc["creationTimestamp"]},
	},
	row: func(obj runtime.Object) metav1.TableRow {
		m, _ := meta.Accessor(obj)
		return cells(m.GetName(), m.GetCreationTimestamp().Time.UTC().Format(time.RFC3339))
	},
}

// translateTimestampSince is an AGE cell: how long ago t was, as kubectl prints durations
// ("5m", "3d4h"), or "<unknown>" for no time.
func translateTimestampSince(t metav1.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(time.Since(t.Time))
}

func translateMicroTimestampSince(t metav1.MicroTime) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(time.Since(t.Time))
}

// layoutContainerCells joins the names and the images of containers with commas.
func layoutContainerCells(containers []corev1.Container) (names, images string) {
	for i, c := range containers {
		if i > 0 {
			names += ","
			images += ","
		}
		names += c.Name
		images += c.Image
	}
	return names, images
}

func namespaceTable() *TablePrinter {
	return Columns(
		[]metav1.TableColumnDefinition{
			nameColumn,
			{Name: "Status", Type: "string", Description: "The status of the namespace"},
			ageColumn,
		},
		func(ns *corev1.Namespace) metav1.TableRow {
			return cells(ns.Name, string(ns.Status.Phase), translateTimestampSince(ns.CreationTimestamp))
		})
}

func configMapTable() *TablePrinter {
	return Columns(
		[]metav1.TableColumnDefinition{
			nameColumn,
			{Name: "Data", Type: "string", Description: corev1.ConfigMap{}.SwaggerDoc()["data"]},
			ageColumn,
		},
		func(cm *corev1.ConfigMap) metav1.TableRow {
			return cells(cm.Name, int64(len(cm.Data)+len(cm.BinaryData)), translateTimestampSince(cm.CreationTimestamp))
		})
}

func secretTable() *TablePrinter {
	return Columns(
		[]metav1.TableColumnDefinition{
			nameColumn,
			{Name: "Type", Type: "string", Description: corev1.Secret{}.SwaggerDoc()["type"]},
			{Name: "Data", Type: "string", Description: corev1.Secret{}.SwaggerDoc()["data"]},
			ageColumn,
		},
		func(s *corev1.Secret) metav1.TableRow {
			return cells(s.Name, string(s.Type), int64(len(s.Data)), translateTimestampSince(s.CreationTimestamp))
		})
}

func serviceAccountTable() *TablePrinter {
	return Columns(
		[]metav1.TableColumnDefinition{
			nameColumn,
			{Name: "Secrets", Type: "string", Description: corev1.ServiceAccount{}.SwaggerDoc()["secrets"]},
			ageColumn,
		},
		func(sa *corev1.ServiceAccount) metav1.TableRow {
			return cells(sa.Name, int64(len(sa.Secrets)), translateTimestampSince(sa.CreationTimestamp))
		})
}

// Upstream describes these columns with the extensions/v1beta1 field docs.
func replicaSetTable() *TablePrinter {
	rsSpecDoc, rsStatusDoc := extensionsv1beta1.ReplicaSetSpec{}.SwaggerDoc(), extensionsv1beta1.ReplicaSetStatus{}.SwaggerDoc()
	return Columns(
		[]metav1.TableColumnDefinition{
			nameColumn,
			{Name: "Desired", Type: "integer", Description: rsSpecDoc["replicas"]},
			{Name: "Current", Type: "integer", Description: rsStatusDoc["replicas"]},
			{Name: "Ready", Type: "integer", Description: rsStatusDoc["readyReplicas"]},
			ageColumn,
			containersColumn,
			imagesColumn,
			{Name: "Selector", Type: "string", Priority: 1, Description: rsSpecDoc["selector"]},
		},
		func(rs *appsv1.ReplicaSet) metav1.TableRow {
			var desired int64
			if rs.Spec.Replicas != nil {
				desired = int64(*rs.Spec.Replicas)
			}
			names, images := layoutContainerCells(rs.Spec.Template.Spec.Containers)
			return cells(rs.Name, desired, int64(rs.Status.Replicas), int64(rs.Status.ReadyReplicas),
				translateTimestampSince(rs.CreationTimestamp), names, images, metav1.FormatLabelSelector(rs.Spec.Selector))
		})
}

func deploymentTable() *TablePrinter {
	deploySpecDoc, deployStatusDoc := extensionsv1beta1.DeploymentSpec{}.SwaggerDoc(), extensionsv1beta1.DeploymentStatus{}.SwaggerDoc()
	return Columns(
		[]metav1.TableColumnDefinition{
			nameColumn,
			{Name: "Ready", Type: "string", Description: "Number of the pod with ready state"},
			{Name: "Up-to-date", Type: "string", Description: deployStatusDoc["updatedReplicas"]},
			{Name: "Available", Type: "string", Description: deployStatusDoc["availableReplicas"]},
			ageColumn,
			containersColumn,
			imagesColumn,
			{Name: "Selector", Type: "string", Priority: 1, Description: deploySpecDoc["selector"]},
		},
		func(d *appsv1.Deployment) metav1.TableRow {
			var desired int32
			if d.Spec.Replicas != nil {
				desired = *d.Spec.Replicas
			}
			// unlike a ReplicaSet's, an empty selector prints empty
			selector := "<invalid>"
			if s, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err == nil {
				selector = s.String()
			}
			names, images := layoutContainerCells(d.Spec.Template.Spec.Containers)
			return cells(d.Name, fmt.Sprintf("%d/%d", int64(d.Status.ReadyReplicas), int64(desired)),
				int64(d.Status.UpdatedReplicas), int64(d.Status.AvailableReplicas), translateTimestampSince(d.CreationTimestamp),
				names, images, selector)
		})
}

// The scale subresource's table. Its Name column has no "name" format, as upstream's.
func scaleTable() *TablePrinter {
	return Columns(
		[]metav1.TableColumnDefinition{
			{Name: "Name", Type: "string", Description: objectMetaDoc["name"]},
			{Name: "Desired", Type: "integer", Description: autoscalingv1.ScaleSpec{}.SwaggerDoc()["replicas"]},
			{Name: "Available", Type: "integer", Description: autoscalingv1.ScaleStatus{}.SwaggerDoc()["replicas"]},
			ageColumn,
		},
		func(s *autoscalingv1.Scale) metav1.TableRow {
			return cells(s.Name, int64(s.Spec.Replicas), int64(s.Status.Replicas), translateTimestampSince(s.CreationTimestamp))
		})
}

func priorityClassTable() *TablePrinter {
	pcDoc := schedulingv1.PriorityClass{}.SwaggerDoc()
	return Columns(
		[]metav1.TableColumnDefinition{
			nameColumn,
			{Name: "Value", Type: "integer", Description: pcDoc["value"]},
			{Name: "Global-Default", Type: "boolean", Description: pcDoc["globalDefault"]},
			ageColumn,
			{Name: "PreemptionPolicy", Type: "string", Description: pcDoc["preemptionPolicy"]},
		},
		func(pc *schedulingv1.PriorityClass) metav1.TableRow {
			policy := ""
			if pc.PreemptionPolicy != nil {
				policy = string(*pc.PreemptionPolicy)
			}
			return cells(pc.Name, int64(pc.Value), pc.GlobalDefault, translateTimestampSince(pc.CreationTimestamp), policy)
		})
}

func leaseTable() *TablePrinter {
	return Columns(
		[]metav1.TableColumnDefinition{
			nameColumn,
			{Name: "Holder", Type: "string", Description: coordinationv1.LeaseSpec{}.SwaggerDoc()["holderIdentity"]},
			ageColumn,
		},
		func(l *coordinationv1.Lease) metav1.TableRow {
			holder := ""
			if l.Spec.HolderIdentity != nil {
				holder = *l.Spec.HolderIdentity
			}
			return cells(l.Name, holder, translateTimestampSince(l.CreationTimestamp))
		})
}
