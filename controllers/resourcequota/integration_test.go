package resourcequota_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/restmapper"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/resourcequota"
)

func startController(t *testing.T, s *apiservertest.Server) {
	t.Helper()
	startControllerResyncing(t, s, time.Second)
}

// startControllerResyncing starts the controller with a full recount every resync.
func startControllerResyncing(t *testing.T, s *apiservertest.Server, resync time.Duration) {
	t.Helper()
	factory := informers.NewSharedInformerFactory(s.Client, 0)
	dyn, err := dynamic.NewForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	md, err := metadata.NewForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(s.Client.Discovery()))
	c, err := resourcequota.New(factory.Core().V1().ResourceQuotas(), factory.Core().V1().Pods(), s.Client, dyn, md, mapper, resync, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	factory.Start(ctx.Done())
	go func() { defer close(done); c.Run(ctx, 2) }()
	t.Cleanup(func() { cancel(); <-done; factory.Shutdown() })
}

func kubectl(t *testing.T, s *apiservertest.Server) func(args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("no kubectl on PATH")
	}
	kubeconfig := filepath.Join(s.DataDir, "kubeconfig")
	if err := s.PKI.WriteKubeconfig(kubeconfig, s.URL); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	return func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "HOME="+home)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
}

// waitUsed waits until the quota's status says used[name] == want.
func waitUsed(t *testing.T, client kubernetes.Interface, quota string, name corev1.ResourceName, want string) {
	t.Helper()
	var last corev1.ResourceQuotaStatus
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		q, err := client.CoreV1().ResourceQuotas("default").Get(ctx, quota, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = q.Status
		v, ok := q.Status.Used[name]
		return ok && v.Cmp(resource.MustParse(want)) == 0, nil
	})
	if err != nil {
		t.Fatalf("quota %s never used %s=%s; status %+v", quota, name, want, last)
	}
}

func pod(name string, requests corev1.ResourceList, limits corev1.ResourceList) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36",
			Resources: corev1.ResourceRequirements{Requests: requests, Limits: limits}}}},
	}
}

func cpu(q string) corev1.ResourceList {
	return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(q)}
}

func TestQuotaAdmissionAndControllerWithLimitRangeDefaults(t *testing.T) {
	s := apiservertest.Start(t)
	run := kubectl(t, s)
	startController(t, s)
	ctx := context.Background()
	pods := s.Client.CoreV1().Pods("default")

	if out, err := run("create", "quota", "compute", "--hard=pods=2,requests.cpu=1,count/configmaps=2,count/deployments.apps=1"); err != nil ||
		!strings.Contains(out, "resourcequota/compute created") {
		t.Fatalf("kubectl create quota: %v\n%s", err, out)
	}
	waitUsed(t, s.Client, "compute", corev1.ResourcePods, "0")

	if _, err := pods.Create(ctx, pod("p1", cpu("600m"), nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// admission charges at once, before the controller recounts
	q, _ := s.Client.CoreV1().ResourceQuotas("default").Get(ctx, "compute", metav1.GetOptions{})
	if u := q.Status.Used[corev1.ResourceRequestsCPU]; u.Cmp(resource.MustParse("600m")) != 0 {
		t.Errorf("used after the first pod: %v", q.Status.Used)
	}
	_, err := pods.Create(ctx, pod("p2", cpu("600m"), nil), metav1.CreateOptions{})
	want := `pods "p2" is forbidden: exceeded quota: compute, requested: requests.cpu=600m, used: requests.cpu=600m, limited: requests.cpu=1`
	if err == nil || err.Error() != want {
		t.Errorf("over quota: %v\nwant %s", err, want)
	}
	_, err = pods.Create(ctx, pod("p3", nil, nil), metav1.CreateOptions{})
	want = `pods "p3" is forbidden: failed quota: compute: must specify requests.cpu for: c`
	if err == nil || err.Error() != want {
		t.Errorf("no request under a cpu quota: %v\nwant %s", err, want)
	}

	// a LimitRange gives containers a request, and bounds them
	if _, err := s.Client.CoreV1().LimitRanges("default").Create(ctx, &corev1.LimitRange{
		ObjectMeta: metav1.ObjectMeta{Name: "limits"},
		Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{Type: corev1.LimitTypeContainer,
			DefaultRequest: cpu("100m"), Default: cpu("200m"), Max: cpu("500m")}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p3, err := pods.Create(ctx, pod("p3", nil, nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("a defaulted pod: %v", err)
	}
	if r := p3.Spec.Containers[0].Resources; r.Requests.Cpu().String() != "100m" || r.Limits.Cpu().String() != "200m" ||
		p3.Annotations["kubernetes.io/limit-ranger"] != "LimitRanger plugin set: cpu request for container c; cpu limit for container c" {
		t.Errorf("defaults: %+v %v", r, p3.Annotations)
	}
	_, err = pods.Create(ctx, pod("big", cpu("100m"), cpu("1")), metav1.CreateOptions{})
	want = `pods "big" is forbidden: maximum cpu usage per Container is 500m, but limit is 1`
	if err == nil || err.Error() != want {
		t.Errorf("over the LimitRange: %v\nwant %s", err, want)
	}
	_, err = pods.Create(ctx, pod("p4", nil, nil), metav1.CreateOptions{})
	want = `pods "p4" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2`
	if err == nil || err.Error() != want {
		t.Errorf("over the pod count: %v\nwant %s", err, want)
	}

	// object counts, of any group
	deploy := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d1"}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "b"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36"}}}}}}
	if _, err := s.Client.AppsV1().Deployments("default").Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deploy.Name = "d2"
	_, err = s.Client.AppsV1().Deployments("default").Create(ctx, deploy, metav1.CreateOptions{})
	want = `deployments.apps "d2" is forbidden: exceeded quota: compute, requested: count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1`
	if err == nil || err.Error() != want {
		t.Errorf("second deployment: %v\nwant %s", err, want)
	}

	// what a deleted pod held comes back
	if err := pods.Delete(ctx, "p1", *metav1.NewDeleteOptions(0)); err != nil {
		t.Fatal(err)
	}
	waitUsed(t, s.Client, "compute", corev1.ResourceRequestsCPU, "100m")
	waitUsed(t, s.Client, "compute", corev1.ResourcePods, "1")

	out, err := run("get", "quota", "compute")
	if err != nil || !strings.Contains(out, "REQUEST") ||
		!strings.Contains(out, "count/configmaps: 0/2, count/deployments.apps: 1/1, pods: 1/2, requests.cpu: 100m/1") {
		t.Errorf("kubectl get quota: %v\n%s", err, out)
	}
}

func TestQuotaScopesSelectPods(t *testing.T) {
	s := apiservertest.Start(t)
	run := kubectl(t, s)
	startController(t, s)
	ctx := context.Background()
	pods := s.Client.CoreV1().Pods("default")
	if out, err := run("create", "quota", "besteffort", "--hard=pods=1", "--scopes=BestEffort"); err != nil {
		t.Fatalf("kubectl create quota: %v\n%s", err, out)
	}
	if _, err := s.Client.CoreV1().ResourceQuotas("default").Create(ctx, &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "high"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")},
			ScopeSelector: &corev1.ScopeSelector{MatchExpressions: []corev1.ScopedResourceSelectorRequirement{{
				ScopeName: corev1.ResourceQuotaScopePriorityClass, Operator: corev1.ScopeSelectorOpIn, Values: []string{"system-cluster-critical"}}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUsed(t, s.Client, "besteffort", corev1.ResourcePods, "0")
	waitUsed(t, s.Client, "high", corev1.ResourcePods, "0")

	if _, err := pods.Create(ctx, pod("be1", nil, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Create(ctx, pod("be2", nil, nil), metav1.CreateOptions{}); err == nil ||
		err.Error() != `pods "be2" is forbidden: exceeded quota: besteffort, requested: pods=1, used: pods=1, limited: pods=1` {
		t.Errorf("second best-effort pod: %v", err)
	}
	// a pod with a request is not best effort: the scoped quota leaves it alone
	if _, err := pods.Create(ctx, pod("burst", cpu("10m"), nil), metav1.CreateOptions{}); err != nil {
		t.Errorf("a burstable pod: %v", err)
	}
	critical := pod("critical", cpu("10m"), nil)
	critical.Spec.PriorityClassName = "system-cluster-critical"
	if _, err := pods.Create(ctx, critical, metav1.CreateOptions{}); err == nil ||
		err.Error() != `pods "critical" is forbidden: exceeded quota: high, requested: pods=1, used: pods=0, limited: pods=0` {
		t.Errorf("a pod of the selected priority class: %v", err)
	}
}

func TestBadQuotasAndLimitRangesAreRefusedAndNotStored(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	_, err := s.Client.CoreV1().ResourceQuotas("default").Create(ctx, &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "neg"},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("-1")}},
	}, metav1.CreateOptions{})
	if want := `ResourceQuota "neg" is invalid: spec.hard[pods]: Invalid value: "-1": must be greater than or equal to 0`; err == nil || err.Error() != want {
		t.Errorf("negative quota: %v\nwant %s", err, want)
	}
	_, err = s.Client.CoreV1().ResourceQuotas("default").Create(ctx, &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "scopes"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourceRequestsCPU: resource.MustParse("1")},
			Scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeBestEffort}},
	}, metav1.CreateOptions{})
	if want := `ResourceQuota "scopes" is invalid: spec.scopes: Invalid value: ["BestEffort"]: unsupported scope applied to resource`; err == nil || err.Error() != want {
		t.Errorf("best-effort cpu quota: %v\nwant %s", err, want)
	}
	_, err = s.Client.CoreV1().LimitRanges("default").Create(ctx, &corev1.LimitRange{
		ObjectMeta: metav1.ObjectMeta{Name: "inverted"},
		Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{Type: corev1.LimitTypePod,
			Min: cpu("2"), Max: cpu("1")}}},
	}, metav1.CreateOptions{})
	if want := `LimitRange "inverted" is invalid: spec.limits[0].min[cpu]: Invalid value: "2": min value 2 is greater than max value 1`; err == nil || err.Error() != want {
		t.Errorf("min > max: %v\nwant %s", err, want)
	}
	for _, prefix := range []string{"/registry/resourcequotas/", "/registry/limitranges/"} {
		resp, err := s.Etcd.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil || resp.Count != 0 {
			t.Errorf("%s holds %v after refused creates (%v)", prefix, resp, err)
		}
	}
}

func TestAnInvalidObjectIsNeverCharged(t *testing.T) {
	s := apiservertest.Start(t)
	startController(t, s)
	ctx := context.Background()
	if _, err := s.Client.CoreV1().ResourceQuotas("default").Create(ctx, &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "q"},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1")}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUsed(t, s.Client, "q", corev1.ResourcePods, "0")
	bad := pod("bad", nil, nil)
	bad.Spec.Containers[0].Image = ""
	if _, err := s.Client.CoreV1().Pods("default").Create(ctx, bad, metav1.CreateOptions{}); err == nil || !strings.Contains(err.Error(), "spec.containers[0].image: Required value") {
		t.Fatalf("invalid pod: %v", err)
	}
	if _, err := s.Client.CoreV1().Pods("default").Create(ctx, pod("good", nil, nil), metav1.CreateOptions{}); err != nil {
		t.Errorf("the one pod the quota allows, after an invalid one: %v", err)
	}
}

// What a deleted object used comes back at once, not at the next full recount (upstream's
// conformance spec "capture the life of a configMap" waits for it less than the 5 minutes
// between recounts).
func TestADeletedObjectsUsageIsGivenBackBeforeTheResync(t *testing.T) {
	s := apiservertest.Start(t)
	startControllerResyncing(t, s, time.Hour)
	ctx := context.Background()
	if _, err := s.Client.CoreV1().ResourceQuotas("default").Create(ctx, &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "q"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{
			corev1.ResourceConfigMaps: resource.MustParse("5"), "count/replicasets.apps": resource.MustParse("5"),
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUsed(t, s.Client, "q", "count/replicasets.apps", "0")
	if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "r"}, Spec: appsv1.ReplicaSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "b"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}},
	}}
	if _, err := s.Client.AppsV1().ReplicaSets("default").Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUsed(t, s.Client, "q", "count/replicasets.apps", "1")
	cms, _ := s.Client.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	waitUsed(t, s.Client, "q", corev1.ResourceConfigMaps, fmt.Sprint(len(cms.Items)))
	if err := s.Client.CoreV1().ConfigMaps("default").Delete(ctx, "c", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Client.AppsV1().ReplicaSets("default").Delete(ctx, "r", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUsed(t, s.Client, "q", corev1.ResourceConfigMaps, fmt.Sprint(len(cms.Items)-1))
	waitUsed(t, s.Client, "q", "count/replicasets.apps", "0")
}

func TestConcurrentCreatesFillAQuotaExactlyWithoutConflicts(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	// no controller: its recount, which sees only stored pods, must not race the charges;
	// the test writes the first status as it would
	hard := corev1.ResourceList{corev1.ResourcePods: resource.MustParse("10")}
	q, err := s.Client.CoreV1().ResourceQuotas("default").Create(ctx, &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "ten"}, Spec: corev1.ResourceQuotaSpec{Hard: hard},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	q.Status = corev1.ResourceQuotaStatus{Hard: hard, Used: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}}
	if _, err := s.Client.CoreV1().ResourceQuotas("default").UpdateStatus(ctx, q, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// the first pod goes in once the server's cache has that status
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := s.Client.CoreV1().Pods("default").Create(ctx, pod("first", nil, nil), metav1.CreateOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatal("no pod could be created under the quota")
	}

	// 40 creates at once, all charged against the one quota: 9 more fit, and the others
	// are refused for the quota, never for a conflict over it
	errs := make(chan error, 40)
	for i := range 40 {
		go func() {
			_, err := s.Client.CoreV1().Pods("default").Create(ctx, pod(fmt.Sprintf("p%02d", i), nil, nil), metav1.CreateOptions{})
			errs <- err
		}()
	}
	created := 0
	for range 40 {
		err := <-errs
		switch {
		case err == nil:
			created++
		case !strings.Contains(err.Error(), "is forbidden: exceeded quota: ten, requested: pods=1, used: pods=10, limited: pods=10"):
			t.Errorf("a create failed otherwise: %v", err)
		}
	}
	if created != 9 {
		t.Errorf("%d pods were created beside the first under a quota of 10", created)
	}
	waitUsed(t, s.Client, "ten", corev1.ResourcePods, "10")
}
