package apiserver_test

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// emptyContainersPod is the JSON of a pod with n containers that set nothing: each is
// invalid three times over (name and image required, and the name is not a DNS label).
func emptyContainersPod(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"many"},"spec":{"containers":[`)
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("{}")
	}
	b.WriteString("]}}")
	return []byte(b.String())
}

func TestPodWithAHundredThousandEmptyContainersGetsACappedInvalid(t *testing.T) {
	s := apiservertest.Start(t)
	body := emptyContainersPod(100_000)
	err := s.Client.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").
		SetHeader("Content-Type", "application/json").Body(body).Do(context.Background()).Error()
	if !apierrors.IsInvalid(err) {
		t.Fatalf("create: %v, want 422 Invalid", err)
	}
	st := err.(apierrors.APIStatus).Status()
	if len(st.Details.Causes) != apis.MaxInvalidCauses {
		t.Errorf("%d causes, want %d", len(st.Details.Causes), apis.MaxInvalidCauses)
	}
	if c := st.Details.Causes[0]; c.Field != "spec.containers[0].name" || c.Message != "Required value" {
		t.Errorf("first cause %+v", c)
	}
	if !strings.HasPrefix(st.Message, `Pod "many" is invalid: [spec.containers[0].name: Required value, `) ||
		!strings.HasSuffix(st.Message, " more errors]") {
		t.Errorf("message %.100s ... %s", st.Message, st.Message[max(0, len(st.Message)-60):])
	}
	// The server is free for the next request.
	if _, err := s.Client.CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{}); err != nil {
		t.Errorf("a request after: %v", err)
	}
}
