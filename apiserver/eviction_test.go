package apiserver_test

import (
	"context"
	"net/http"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// runningPod creates a pod labelled app=web on node n, Running with the given readiness.
func runningPod(t *testing.T, client kubernetes.Interface, name string, ready bool) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	pod, err := client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{NodeName: "n", Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
	if pod, err = client.CoreV1().Pods("default").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	return pod
}

// budgetWithStatus creates a budget over app=web and writes the status a disruption
// controller would.
func budgetWithStatus(t *testing.T, client kubernetes.Interface, name string, policy *policyv1.UnhealthyPodEvictionPolicyType, status policyv1.PodDisruptionBudgetStatus) {
	t.Helper()
	ctx := context.Background()
	one := intstr.FromInt32(1)
	pdb, err := client.PolicyV1().PodDisruptionBudgets("default").Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &one, UnhealthyPodEvictionPolicy: policy,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if status.ObservedGeneration == 0 {
		status.ObservedGeneration = pdb.Generation
	}
	pdb.Status = status
	if _, err := client.PolicyV1().PodDisruptionBudgets("default").UpdateStatus(ctx, pdb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func evict(client kubernetes.Interface, name string, dryRun bool) error {
	e := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	if dryRun {
		e.DeleteOptions = &metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}
	}
	return client.PolicyV1().Evictions("default").Evict(context.Background(), e)
}

func podExists(t *testing.T, client kubernetes.Interface, name string) (bool, *corev1.Pod) {
	t.Helper()
	pod, err := client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return true, pod
}

func statusOf(err error) metav1.Status {
	if s, ok := err.(apierrors.APIStatus); ok {
		return s.Status()
	}
	return metav1.Status{Message: "not a status: " + errString(err)}
}

func TestEvictionAnswersAsUpstream(t *testing.T) {
	s := apiservertest.Start(t)
	client := s.Client

	// no budget: the pod is deleted gracefully, marked as evicted
	runningPod(t, client, "free", true)
	if err := evict(client, "free", false); err != nil {
		t.Fatalf("evict without a budget: %v", err)
	}
	if ok, pod := podExists(t, client, "free"); !ok || pod.DeletionTimestamp == nil || !hasDisruptionTarget(pod) {
		t.Errorf("pod after eviction: %+v", pod)
	}

	// the budget allows nothing: 429 with the cause, and the pod stays
	budgetWithStatus(t, client, "web", nil, policyv1.PodDisruptionBudgetStatus{CurrentHealthy: 1, DesiredHealthy: 1, ExpectedPods: 1})
	runningPod(t, client, "guarded", true)
	err := evict(client, "guarded", false)
	st := statusOf(err)
	if st.Code != http.StatusTooManyRequests || st.Reason != metav1.StatusReasonTooManyRequests ||
		st.Message != "Cannot evict pod as it would violate the pod's disruption budget." ||
		st.Details == nil || len(st.Details.Causes) != 1 || st.Details.Causes[0].Type != "DisruptionBudget" ||
		st.Details.Causes[0].Message != "The disruption budget web needs 1 healthy pods and has 1 currently" {
		t.Errorf("eviction against an exhausted budget: %+v", st)
	}
	if ok, pod := podExists(t, client, "guarded"); !ok || pod.DeletionTimestamp != nil {
		t.Errorf("a refused eviction deleted the pod")
	}

	// an unready pod goes under AlwaysAllow, and spends nothing
	always := policyv1.AlwaysAllow
	client.PolicyV1().PodDisruptionBudgets("default").Delete(context.Background(), "web", metav1.DeleteOptions{})
	budgetWithStatus(t, client, "web", &always, policyv1.PodDisruptionBudgetStatus{CurrentHealthy: 1, DesiredHealthy: 1, ExpectedPods: 2})
	runningPod(t, client, "sick", false)
	if err := evict(client, "sick", false); err != nil {
		t.Errorf("evict an unready pod under AlwaysAllow: %v", err)
	}

	// dry run checks and spends nothing
	client.PolicyV1().PodDisruptionBudgets("default").Delete(context.Background(), "web", metav1.DeleteOptions{})
	budgetWithStatus(t, client, "web", nil, policyv1.PodDisruptionBudgetStatus{CurrentHealthy: 2, DesiredHealthy: 1, ExpectedPods: 2, DisruptionsAllowed: 1})
	if err := evict(client, "guarded", true); err != nil {
		t.Errorf("dry-run eviction: %v", err)
	}
	pdb, _ := client.PolicyV1().PodDisruptionBudgets("default").Get(context.Background(), "web", metav1.GetOptions{})
	if ok, pod := podExists(t, client, "guarded"); !ok || pod.DeletionTimestamp != nil || pdb.Status.DisruptionsAllowed != 1 {
		t.Errorf("a dry run changed something: pod %v, budget %+v", ok, pdb.Status)
	}
	// a real one spends the disruption and records the pod
	if err := evict(client, "guarded", false); err != nil {
		t.Fatalf("eviction within the budget: %v", err)
	}
	pdb, _ = client.PolicyV1().PodDisruptionBudgets("default").Get(context.Background(), "web", metav1.GetOptions{})
	if _, ok := pdb.Status.DisruptedPods["guarded"]; !ok || pdb.Status.DisruptionsAllowed != 0 || pdb.Status.Conditions[0].Reason != "InsufficientPods" {
		t.Errorf("budget after the eviction: %+v", pdb.Status)
	}

	// a budget whose status lags its spec: 429, still being processed
	client.PolicyV1().PodDisruptionBudgets("default").Delete(context.Background(), "web", metav1.DeleteOptions{})
	budgetWithStatus(t, client, "web", nil, policyv1.PodDisruptionBudgetStatus{ObservedGeneration: -1})
	runningPod(t, client, "fresh", true)
	if st := statusOf(evict(client, "fresh", false)); st.Code != 429 || st.Details == nil || len(st.Details.Causes) != 1 ||
		st.Details.Causes[0].Message != "The disruption budget web is still being processed by the server." {
		t.Errorf("eviction against a stale budget: %+v", st)
	}

	// two budgets: upstream's 500
	budgetWithStatus(t, client, "web2", nil, policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 5})
	if st := statusOf(evict(client, "fresh", false)); st.Code != 500 || st.Message != "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support." {
		t.Errorf("eviction under two budgets: %+v", st)
	}

	// the eviction names another pod than the URL
	err = client.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name("fresh").SubResource("eviction").
		Body(&policyv1.Eviction{TypeMeta: metav1.TypeMeta{APIVersion: "policy/v1", Kind: "Eviction"}, ObjectMeta: metav1.ObjectMeta{Name: "other"}}).
		Do(context.Background()).Error()
	if st := statusOf(err); st.Code != 400 || st.Message != "name in URL does not match name in Eviction object" {
		t.Errorf("mismatched name: %+v", st)
	}
}

func hasDisruptionTarget(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue && c.Reason == "EvictionByEvictionAPI" {
			return true
		}
	}
	return false
}

func TestInvalidPodDisruptionBudgetsAreRefusedAndNotStored(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	pct := intstr.FromString("150%")
	for _, tc := range []struct {
		spec policyv1.PodDisruptionBudgetSpec
		want string
	}{
		{policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "In"}}}},
			`PodDisruptionBudget.policy "bad" is invalid: spec.selector.matchExpressions[0].values: Required value: must be specified when ` + "`operator` is 'In' or 'NotIn'"},
		{policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &pct},
			`PodDisruptionBudget.policy "bad" is invalid: spec.maxUnavailable: Invalid value: "150%": must not be greater than 100%`},
	} {
		_, err := s.Client.PolicyV1().PodDisruptionBudgets("default").Create(ctx, &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Spec: tc.spec}, metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || err.Error() != tc.want {
			t.Errorf("create: %v\nwant %s", err, tc.want)
		}
	}
	resp, err := s.Etcd.Get(ctx, "/registry/poddisruptionbudgets/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Errorf("etcd holds %v budgets after refused creates (%v)", resp, err)
	}
}
