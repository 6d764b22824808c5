package tainteviction

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controllers"
)

var unreachable = corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}

func toleration(seconds *int64) corev1.Toleration {
	return corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: seconds}
}

func newController(t *testing.T) (*Controller, *record.FakeRecorder) {
	t.Helper()
	client := fake.NewClientset()
	factory := informers.NewSharedInformerFactory(client, 0)
	rec := record.NewFakeRecorder(10)
	c, err := New(factory.Core().V1().Pods(), factory.Core().V1().Nodes(), client, controllers.Reporting{
		Recorder: func(string) record.EventRecorder { return rec },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.evictions.ShutDown(); c.nodes.ShutDown() })
	return c, rec
}

func pod(tolerations ...corev1.Toleration) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: corev1.PodSpec{Tolerations: tolerations}}
}

func TestEvictionIsScheduledByTheShortestToleration(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name   string
		pod    *corev1.Pod
		want   time.Duration
		forget bool
	}{
		{"no toleration: at once", pod(), 0, false},
		{"300s", pod(toleration(ptr.To(int64(300)))), 300 * time.Second, false},
		{"shortest of two", pod(toleration(ptr.To(int64(300))), corev1.Toleration{Operator: corev1.TolerationOpExists, TolerationSeconds: ptr.To(int64(5))}), 300 * time.Second, false},
		{"forever", pod(toleration(nil)), 0, true},
		{"negative is at once", pod(toleration(ptr.To(int64(-1)))), 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newController(t)
			c.processPod(tc.pod, []corev1.Taint{unreachable}, now)
			s, ok := c.scheduled["ns/p"]
			if tc.forget {
				if ok {
					t.Errorf("scheduled %+v, want none", s)
				}
				return
			}
			if !ok || s.fireAt.Sub(now) != tc.want {
				t.Errorf("scheduled %+v (%v), want in %v", s, ok, tc.want)
			}
		})
	}
}

func TestTaintsGoneCancelsTheEvictionWithAnEvent(t *testing.T) {
	c, rec := newController(t)
	p := pod(toleration(ptr.To(int64(300))))
	now := time.Now()
	c.processPod(p, []corev1.Taint{unreachable}, now)
	// a later look at the same taints keeps the original deadline
	c.processPod(p, []corev1.Taint{unreachable}, now.Add(time.Minute))
	if s := c.scheduled["ns/p"]; !s.fireAt.Equal(now.Add(300 * time.Second)) {
		t.Errorf("deadline moved to %v, want %v", s.fireAt, now.Add(300*time.Second))
	}
	c.processPod(p, nil, now.Add(2*time.Minute))
	if _, ok := c.scheduled["ns/p"]; ok {
		t.Error("eviction still scheduled after the taint went")
	}
	select {
	case e := <-rec.Events:
		if e != "Normal TaintManagerEviction Cancelling deletion of Pod ns/p" {
			t.Errorf("event %q", e)
		}
	default:
		t.Error("no cancellation event")
	}
}
