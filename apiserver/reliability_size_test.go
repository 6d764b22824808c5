package apiserver_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// protobufClient talks to s in protobuf, as the request of the report was sent.
func protobufClient(s *apiservertest.Server) kubernetes.Interface {
	cfg := *s.Config
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	return kubernetes.NewForConfigOrDie(&cfg)
}

func labelsOf(n int) map[string]string {
	labels := make(map[string]string, n)
	for i := range n {
		labels[fmt.Sprintf("k%06d", i)] = "v"
	}
	return labels
}

// nearlyFullConfigMap is 1.3 MB in protobuf: 900 kB of data and 30,000 labels. It fits
// etcd's 1.5 MiB request limit, but not with managed fields naming each label beside it (as a
// ConfigMap of 100,000 labels does not). 30,000 labels and not 100,000 because managed
// fields take time quadratic in the number of keys of one map (structured-merge-diff inserts
// each into a sorted slice).
func nearlyFullConfigMap(name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labelsOf(30_000)},
		Data:       map[string]string{"data": strings.Repeat("x", 900_000)},
	}
}

func TestObjectThatFitsEtcdOnlyWithoutManagedFieldsIsStoredWithoutThem(t *testing.T) {
	s := apiservertest.Start(t)
	c := protobufClient(s)
	ctx := context.Background()
	if _, err := c.CoreV1().ConfigMaps("default").Create(ctx, nearlyFullConfigMap("full"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create: %v", err)
	}
	got, err := c.CoreV1().ConfigMaps("default").Get(ctx, "full", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Labels) != 30_000 || len(got.Data["data"]) != 900_000 || len(got.ManagedFields) != 0 {
		t.Errorf("stored %d labels, %d bytes of data and %d managed fields entries, want 30000, 900000 and none",
			len(got.Labels), len(got.Data["data"]), len(got.ManagedFields))
	}

	// An update that makes a small object that large is stored the same way.
	small, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "grows"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	full := nearlyFullConfigMap("grows")
	small.Labels, small.Data = full.Labels, full.Data
	if _, err := c.CoreV1().ConfigMaps("default").Update(ctx, small, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update: %v", err)
	}
}

func TestObjectTooLargeForEtcdGets413(t *testing.T) {
	s := apiservertest.Start(t)
	c := protobufClient(s)
	ctx := context.Background()
	// 1.9 MB: under the API's 3 MiB body limit, over etcd's 1.5 MiB request limit with or
	// without managed fields.
	big := nearlyFullConfigMap("big")
	big.Data["data"] = strings.Repeat("x", 1<<20-10)
	big.Annotations = map[string]string{"a": strings.Repeat("y", 200_000)}
	_, err := c.CoreV1().ConfigMaps("default").Create(ctx, big, metav1.CreateOptions{})
	if !apierrors.IsRequestEntityTooLargeError(err) {
		t.Fatalf("create: %v, want 413", err)
	}
	st := err.(apierrors.APIStatus).Status()
	if st.Code != http.StatusRequestEntityTooLarge || st.Message != "Request entity too large: etcdserver: request is too large" {
		t.Errorf("status %d %q", st.Code, st.Message)
	}

	cm, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "big"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Labels, cm.Data, cm.Annotations = big.Labels, big.Data, big.Annotations
	if _, err := c.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); !apierrors.IsRequestEntityTooLargeError(err) {
		t.Errorf("update: %v, want 413", err)
	}
}
