package apis

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// The STATUS, READY and RESTARTS cells for pods in many states, with the strings upstream's
// printer gives them (its printers_test cases, in v1 terms, and the states kubectl users meet).
func TestPodStatusCellsAsUpstreamPrintsThem(t *testing.T) {
	ago := func(d time.Duration) metav1.Time { return metav1.NewTime(time.Now().Add(-d)) }
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	waiting := func(reason string) corev1.ContainerState {
		return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}
	}
	terminated := func(reason string, code int32) corev1.ContainerState {
		return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: reason, ExitCode: code}}
	}
	lastTerminated := func(d time.Duration) corev1.ContainerState {
		return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{FinishedAt: ago(d)}}
	}
	containers := func(n int) []corev1.Container { return make([]corev1.Container, n) }
	sidecar := func(name string) corev1.Container {
		return corev1.Container{Name: name, RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}
	}
	deleting := ago(10 * time.Second)

	tests := []struct {
		name                    string
		pod                     corev1.Pod
		ready, status, restarts string
		completed               string // the RowCompleted condition's reason, if any
	}{
		{
			name:  "pending, nothing reported yet",
			pod:   corev1.Pod{Spec: corev1.PodSpec{Containers: containers(1)}, Status: corev1.PodStatus{Phase: corev1.PodPending}},
			ready: "0/1", status: "Pending", restarts: "0",
		},
		{
			name: "container creating",
			pod: corev1.Pod{Spec: corev1.PodSpec{Containers: containers(1)}, Status: corev1.PodStatus{Phase: corev1.PodPending,
				ContainerStatuses: []corev1.ContainerStatus{{State: waiting("ContainerCreating")}}}},
			ready: "0/1", status: "ContainerCreating", restarts: "0",
		},
		{
			name: "running and ready",
			pod: corev1.Pod{Spec: corev1.PodSpec{Containers: containers(2)}, Status: corev1.PodStatus{Phase: corev1.PodRunning,
				ContainerStatuses: []corev1.ContainerStatus{{Ready: true, State: running}, {Ready: true, State: running}}}},
			ready: "2/2", status: "Running", restarts: "0",
		},
		{
			name: "phase with restarts, ready is not enough without running",
			pod: corev1.Pod{Spec: corev1.PodSpec{Containers: containers(2)}, Status: corev1.PodStatus{Phase: "podPhase",
				ContainerStatuses: []corev1.ContainerStatus{{Ready: true, RestartCount: 3, State: running}, {Ready: true, RestartCount: 3}}}},
			ready: "1/2", status: "podPhase", restarts: "6",
		},
		{
			name: "status reason overrides the phase",
			pod: corev1.Pod{Spec: corev1.PodSpec{Containers: containers(2)}, Status: corev1.PodStatus{Phase: "podPhase", Reason: "podReason",
				ContainerStatuses: []corev1.ContainerStatus{{Ready: true, RestartCount: 3, State: running}, {Ready: true, RestartCount: 3}}}},
			ready: "1/2", status: "podReason", restarts: "6",
		},
		{
			name: "the first container's waiting reason wins over a later terminated one",
			pod: corev1.Pod{Spec: corev1.PodSpec{Containers: containers(2)}, Status: corev1.PodStatus{Phase: "podPhase",
				ContainerStatuses: []corev1.ContainerStatus{
					{State: waiting("ContainerWaitingReason"), RestartCount: 3},
					{State: terminated("ContainerTerminatedReason", 0), RestartCount: 3}}}},
			ready: "0/2", status: "ContainerWaitingReason", restarts: "6",
		},
		{
			name: "crash loop with the time of the last restart",
			pod: corev1.Pod{Spec: corev1.PodSpec{Containers: containers(1)}, Status: corev1.PodStatus{Phase: corev1.PodRunning,
				ContainerStatuses: []corev1.ContainerStatus{{State: waiting("CrashLoopBackOff"), RestartCount: 5, LastTerminationState: lastTerminated(5 * time.Minute)}}}},
			ready: "0/1", status: "CrashLoopBackOff", restarts: "5 (5m ago)",
		},
		{
			name: "restarts of two containers: the latest restart is shown",
			pod: corev1.Pod{Spec: corev1.PodSpec{Containers: containers(2)}, Status: corev1.PodStatus{Phase: corev1.PodRunning,
				ContainerStatuses: []corev1.ContainerStatus{
					{Ready: true, RestartCount: 6, State: running, LastTerminationState: lastTerminated(5 * 24 * time.Hour)},
					{Ready: true, RestartCount: 3, State: running, LastTerminationState: lastTerminated(20 * 24 * time.Hour)}}}},
			ready: "2/2", status: "Running", restarts: "9 (5d ago)",
		},
		{
			name: "completed",
			pod: corev1.Pod{Spec: corev1.PodSpec{Containers: containers(1)}, Status: corev1.PodStatus{Phase: corev1.PodSucceeded,
				ContainerStatuses: []corev1.ContainerStatus{{State: terminated("Completed", 0)}}}},
			ready: "0/1", status: "Completed", restarts: "0", completed: "Succeeded",
		},
		{
			name: "error",
			pod: corev1.Pod{Spec: corev1.PodSpec{Containers: containers(1)}, Status: corev1.PodStatus{Phase: corev1.PodFailed,
				ContainerStatuses: []corev1.ContainerStatus{{State: terminated("Error", 1)}}}},
			ready: "0/1", status: "Error", restarts: "0", completed: "Failed",
		},
		{
			name: "terminated without a reason shows the exit code",
			pod: corev1.Pod{Spec: corev1.PodSpec{Containers: containers(1)}, Status: corev1.PodStatus{Phase: corev1.PodFailed,
				ContainerStatuses: []corev1.ContainerStatus{{State: terminated("", 2)}}}},
			ready: "0/1", status: "ExitCode:2", restarts: "0", completed: "Failed",
		},
		{
			name: "terminated by a signal",
			pod: corev1.Pod{Spec: corev1.PodSpec{Containers: containers(1)}, Status: corev1.PodStatus{Phase: corev1.PodFailed,
				ContainerStatuses: []corev1.ContainerStatus{{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Signal: 9, ExitCode: 137}}}}}},
			ready: "0/1", status: "Signal:9", restarts: "0", completed: "Failed",
		},
		{
			name: "one container completed, one running, without the Ready condition",
			pod: corev1.Pod{Spec: corev1.PodSpec{Containers: containers(2)}, Status: corev1.PodStatus{Phase: corev1.PodRunning,
				ContainerStatuses: []corev1.ContainerStatus{
					{Ready: true, RestartCount: 3, State: terminated("Completed", 0)},
					{Ready: true, RestartCount: 3, State: running}}}},
			ready: "1/2", status: "NotReady", restarts: "6",
		},
		{
			name: "one container completed, one running, with the Ready condition",
			pod: corev1.Pod{Spec: corev1.PodSpec{Containers: containers(2)}, Status: corev1.PodStatus{Phase: corev1.PodRunning,
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
				ContainerStatuses: []corev1.ContainerStatus{
					{Ready: true, RestartCount: 3, State: terminated("Completed", 0)},
					{Ready: true, RestartCount: 3, State: running}}}},
			ready: "1/2", status: "Running", restarts: "6",
		},
		{
			name: "init container restarting",
			pod: corev1.Pod{Spec: corev1.PodSpec{InitContainers: containers(1), Containers: containers(1)}, Status: corev1.PodStatus{Phase: corev1.PodPending,
				InitContainerStatuses: []corev1.ContainerStatus{{RestartCount: 3, State: running, LastTerminationState: lastTerminated(10 * time.Second)}},
				ContainerStatuses:     []corev1.ContainerStatus{{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{}}}}}},
			ready: "0/1", status: "Init:0/1", restarts: "3 (10s ago)",
		},
		{
			name: "second of two init containers running",
			pod: corev1.Pod{Spec: corev1.PodSpec{InitContainers: containers(2), Containers: containers(1)}, Status: corev1.PodStatus{Phase: corev1.PodPending,
				InitContainerStatuses: []corev1.ContainerStatus{
					{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}, RestartCount: 2, LastTerminationState: lastTerminated(2 * time.Minute)},
					{RestartCount: 3, State: running, LastTerminationState: lastTerminated(10 * time.Second)}},
				ContainerStatuses: []corev1.ContainerStatus{{State: waiting("PodInitializing")}}}},
			ready: "0/1", status: "Init:1/2", restarts: "5 (10s ago)",
		},
		{
			name: "init container failed",
			pod: corev1.Pod{Spec: corev1.PodSpec{InitContainers: containers(1), Containers: containers(1)}, Status: corev1.PodStatus{Phase: corev1.PodPending,
				InitContainerStatuses: []corev1.ContainerStatus{{State: terminated("Error", 1)}}}},
			ready: "0/1", status: "Init:Error", restarts: "0",
		},
		{
			name: "init container failed without a reason",
			pod: corev1.Pod{Spec: corev1.PodSpec{InitContainers: containers(1), Containers: containers(1)}, Status: corev1.PodStatus{Phase: corev1.PodPending,
				InitContainerStatuses: []corev1.ContainerStatus{{State: terminated("", 3)}}}},
			ready: "0/1", status: "Init:ExitCode:3", restarts: "0",
		},
		{
			name: "init container crash loop",
			pod: corev1.Pod{Spec: corev1.PodSpec{InitContainers: containers(1), Containers: containers(1)}, Status: corev1.PodStatus{Phase: corev1.PodPending,
				InitContainerStatuses: []corev1.ContainerStatus{{State: waiting("CrashLoopBackOff"), RestartCount: 4, LastTerminationState: lastTerminated(90 * time.Second)}}}},
			ready: "0/1", status: "Init:CrashLoopBackOff", restarts: "4 (90s ago)",
		},
		{
			name: "init done, containers initializing",
			pod: corev1.Pod{Spec: corev1.PodSpec{InitContainers: containers(1), Containers: containers(1)}, Status: corev1.PodStatus{Phase: corev1.PodPending,
				InitContainerStatuses: []corev1.ContainerStatus{{State: terminated("Completed", 0)}},
				ContainerStatuses:     []corev1.ContainerStatus{{State: waiting("PodInitializing")}}}},
			ready: "0/1", status: "PodInitializing", restarts: "0",
		},
		{
			name: "init restarts count no more once initialized",
			pod: corev1.Pod{Spec: corev1.PodSpec{InitContainers: containers(1), Containers: containers(1)}, Status: corev1.PodStatus{Phase: corev1.PodRunning,
				InitContainerStatuses: []corev1.ContainerStatus{{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}, RestartCount: 2, LastTerminationState: lastTerminated(2 * time.Minute)}},
				ContainerStatuses:     []corev1.ContainerStatus{{RestartCount: 4, State: running, LastTerminationState: lastTerminated(20 * time.Second)}}}},
			ready: "0/1", status: "Running", restarts: "4 (20s ago)",
		},
		{
			name: "scheduling gated",
			pod: corev1.Pod{Spec: corev1.PodSpec{Containers: containers(2)}, Status: corev1.PodStatus{Phase: corev1.PodPending,
				Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonSchedulingGated}}}},
			ready: "0/2", status: "SchedulingGated", restarts: "0",
		},
		{
			name: "running pod being deleted",
			pod: corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &deleting}, Spec: corev1.PodSpec{Containers: containers(1)},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{State: running}}}},
			ready: "0/1", status: "Terminating", restarts: "0",
		},
		{
			name: "pending pod being deleted",
			pod: corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &deleting}, Spec: corev1.PodSpec{Containers: containers(1)},
				Status: corev1.PodStatus{Phase: corev1.PodPending}},
			ready: "0/1", status: "Terminating", restarts: "0",
		},
		{
			name: "completed pod being deleted stays Completed",
			pod: corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &deleting}, Spec: corev1.PodSpec{Containers: containers(1)},
				Status: corev1.PodStatus{Phase: corev1.PodSucceeded, ContainerStatuses: []corev1.ContainerStatus{{State: terminated("Completed", 0)}}}},
			ready: "0/1", status: "Completed", restarts: "0", completed: "Succeeded",
		},
		{
			name: "pod of a lost node being deleted",
			pod: corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &deleting}, Spec: corev1.PodSpec{Containers: containers(1)},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, Reason: "NodeLost", ContainerStatuses: []corev1.ContainerStatus{{Ready: true, State: running}}}},
			ready: "1/1", status: "Unknown", restarts: "0",
		},
		{
			name:  "evicted",
			pod:   corev1.Pod{Spec: corev1.PodSpec{Containers: containers(1)}, Status: corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted"}},
			ready: "0/1", status: "Evicted", restarts: "0", completed: "Failed",
		},
		{
			name: "sidecars: first running but not started",
			pod: corev1.Pod{
				Spec: corev1.PodSpec{InitContainers: []corev1.Container{sidecar("s1"), sidecar("s2")}, Containers: containers(1)},
				Status: corev1.PodStatus{Phase: corev1.PodPending,
					Conditions: []corev1.PodCondition{{Type: corev1.PodInitialized, Status: corev1.ConditionFalse}},
					InitContainerStatuses: []corev1.ContainerStatus{
						{Name: "s1", RestartCount: 3, State: running, Started: ptr.To(false), LastTerminationState: lastTerminated(10 * time.Second)},
						{Name: "s2", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{}}, Started: ptr.To(false)}},
					ContainerStatuses: []corev1.ContainerStatus{{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{}}}}}},
			ready: "0/3", status: "Init:0/2", restarts: "3 (10s ago)",
		},
		{
			name: "sidecars: first started, second not yet",
			pod: corev1.Pod{
				Spec: corev1.PodSpec{InitContainers: []corev1.Container{sidecar("s1"), sidecar("s2")}, Containers: containers(1)},
				Status: corev1.PodStatus{Phase: corev1.PodPending,
					Conditions: []corev1.PodCondition{{Type: corev1.PodInitialized, Status: corev1.ConditionFalse}},
					InitContainerStatuses: []corev1.ContainerStatus{
						{Name: "s1", RestartCount: 3, State: running, Started: ptr.To(true), LastTerminationState: lastTerminated(10 * time.Second)},
						{Name: "s2", State: running, Started: ptr.To(false)}},
					ContainerStatuses: []corev1.ContainerStatus{{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{}}}}}},
			ready: "0/3", status: "Init:1/2", restarts: "3 (10s ago)",
		},
		{
			name: "sidecars started and ready beside a running container",
			pod: corev1.Pod{
				Spec: corev1.PodSpec{InitContainers: []corev1.Container{sidecar("s1"), sidecar("s2")}, Containers: containers(1)},
				Status: corev1.PodStatus{Phase: corev1.PodRunning,
					Conditions: []corev1.PodCondition{{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}},
					InitContainerStatuses: []corev1.ContainerStatus{
						{Name: "s1", Ready: true, RestartCount: 3, State: running, Started: ptr.To(true), LastTerminationState: lastTerminated(10 * time.Second)},
						{Name: "s2", Ready: true, State: running, Started: ptr.To(true)}},
					ContainerStatuses: []corev1.ContainerStatus{{Ready: true, RestartCount: 4, State: running, LastTerminationState: lastTerminated(20 * time.Second)}}}},
			ready: "3/3", status: "Running", restarts: "7 (10s ago)",
		},
		{
			name: "sidecars ended with errors after the container completed",
			pod: corev1.Pod{
				Spec: corev1.PodSpec{InitContainers: []corev1.Container{sidecar("s1"), sidecar("s2")}, Containers: containers(1)},
				Status: corev1.PodStatus{Phase: corev1.PodSucceeded,
					Conditions: []corev1.PodCondition{{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}},
					InitContainerStatuses: []corev1.ContainerStatus{
						{Name: "s1", RestartCount: 3, State: terminated("Error", 137), Started: ptr.To(false), LastTerminationState: lastTerminated(10 * time.Second)},
						{Name: "s2", State: terminated("Error", 137), Started: ptr.To(false)}},
					ContainerStatuses: []corev1.ContainerStatus{{RestartCount: 4, State: terminated("Completed", 0), LastTerminationState: lastTerminated(20 * time.Second)}}}},
			ready: "0/3", status: "Completed", restarts: "7 (10s ago)", completed: "Succeeded",
		},
		{
			name: "statuses of containers the spec does not have",
			pod: corev1.Pod{
				Spec: corev1.PodSpec{InitContainers: []corev1.Container{{Name: "init1"}, sidecar("sidecar1")}, Containers: []corev1.Container{{Name: "container1"}}},
				Status: corev1.PodStatus{Phase: corev1.PodRunning,
					InitContainerStatuses: []corev1.ContainerStatus{{Name: "initinvalid"}, {Name: "init1"}, {Name: "sidecar1"}},
					ContainerStatuses:     []corev1.ContainerStatus{{Name: "containerinvalid"}, {Name: "container1"}}}},
			ready: "0/2", status: "Init:0/2", restarts: "0",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			row := podRow(&tc.pod)
			got := []interface{}{row.Cells[1], row.Cells[2], row.Cells[3]}
			want := []interface{}{tc.ready, tc.status, tc.restarts}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("READY, STATUS, RESTARTS = %q, want %q", got, want)
			}
			var completed string
			if len(row.Conditions) == 1 && row.Conditions[0].Type == metav1.RowCompleted {
				completed = row.Conditions[0].Reason
			}
			if completed != tc.completed {
				t.Errorf("row completed condition %q, want %q", completed, tc.completed)
			}
		})
	}
}

func TestPodWideCells(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", CreationTimestamp: metav1.NewTime(time.Now().Add(-90 * time.Minute))},
		Spec: corev1.PodSpec{
			Containers: make([]corev1.Container, 2), NodeName: "node-1",
			ReadinessGates: []corev1.PodReadinessGate{{ConditionType: "c1"}, {ConditionType: "c2"}, {ConditionType: "c3"}},
		},
		Status: corev1.PodStatus{
			Phase:      "podPhase",
			Conditions: []corev1.PodCondition{{Type: "c1", Status: corev1.ConditionFalse}, {Type: "c2", Status: corev1.ConditionTrue}},
			PodIP:      "1.1.1.1", PodIPs: []corev1.PodIP{{IP: "1.1.1.1"}, {IP: "2001:db8::"}},
			ContainerStatuses: []corev1.ContainerStatus{
				{Ready: true, RestartCount: 3, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
				{RestartCount: 3},
			},
			NominatedNodeName: "node-2",
		},
	}
	want := []interface{}{"web", "1/2", "podPhase", "6", "90m", "1.1.1.1", "node-1", "node-2", "1/3"}
	if got := podRow(pod).Cells; !reflect.DeepEqual(got, want) {
		t.Errorf("cells %q, want %q", got, want)
	}
	bare := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bare"}, Spec: corev1.PodSpec{Containers: make([]corev1.Container, 1)}}
	want = []interface{}{"bare", "0/1", "", "0", "<unknown>", "<none>", "<none>", "<none>", "<none>"}
	if got := podRow(bare).Cells; !reflect.DeepEqual(got, want) {
		t.Errorf("cells %q, want %q", got, want)
	}
}
