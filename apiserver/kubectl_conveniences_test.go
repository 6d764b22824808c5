package apiserver_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// kubectl's conveniences beyond get/create/delete, through every kubectl on the machine: wait
// (condition, jsonpath, delete), edit with a scripted editor, label --overwrite, delete --all,
// get all and get events --sort-by.
func TestKubectlConveniences(t *testing.T) {
	s := apiservertest.Start(t)
	kubeconfig := adminKubeconfig(t, s)
	ctx := context.Background()
	editor := filepath.Join(t.TempDir(), "editor.sh")
	// the "editor" changes data.a from 1 to 2 in the file kubectl hands it
	if err := os.WriteFile(editor, []byte("#!/bin/sh\nsed -i 's/^  a: \"1\"$/  a: \"2\"/' \"$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, bin := range kubectlBinaries(t) {
		t.Run(filepath.Base(bin), func(t *testing.T) {
			ns := "conv" + strings.ReplaceAll(strings.TrimPrefix(filepath.Base(bin), "kubectl"), ".", "-")
			if _, err := s.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			run := kubectlRunner(t, bin, kubeconfig, []string{"KUBE_EDITOR=" + editor}, "-n", ns)

			run("create", "configmap", "c1", "--from-literal=a=1")
			run("label", "configmap", "c1", "tier=a")
			run("label", "configmap", "c1", "tier=b", "--overwrite")
			if out := run("get", "cm", "c1", "-o", "jsonpath={.metadata.labels.tier}"); out != "b" {
				t.Errorf("label --overwrite: tier=%q", out)
			}
			run("edit", "configmap", "c1")
			if out := run("get", "cm", "c1", "-o", "jsonpath={.data.a}"); out != "2" {
				t.Errorf("after edit: data.a=%q", out)
			}
			if out := run("wait", "--for=jsonpath={.data.a}=2", "configmap/c1", "--timeout=30s"); !strings.Contains(out, "condition met") {
				t.Errorf("wait --for=jsonpath: %q", out)
			}

			// a pod whose Ready condition the test writes, as a kubelet would
			pod := testPod("waited")
			pod.Spec.NodeName = "n1"
			created, err := s.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				time.Sleep(time.Second)
				p, err := s.Client.CoreV1().Pods(ns).Get(ctx, "waited", metav1.GetOptions{})
				if err != nil {
					return
				}
				p.Status.Phase = corev1.PodRunning
				p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue})
				s.Client.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
			}()
			if out := run("wait", "--for=condition=Ready", "pod/waited", "--timeout=60s"); !strings.Contains(out, "condition met") {
				t.Errorf("wait --for=condition=Ready: %q", out)
			}
			if out := run("get", "all"); !strings.Contains(out, "pod/waited") {
				t.Errorf("get all:\n%s", out)
			}
			for _, reason := range []string{"Second", "First"} {
				ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{GenerateName: "ev-"}, Reason: reason, Message: reason,
					InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "waited", Namespace: ns, UID: created.UID}, Type: corev1.EventTypeNormal,
					LastTimestamp: metav1.NewTime(time.Now().Add(map[string]time.Duration{"First": -time.Hour, "Second": -time.Minute}[reason]))}
				if _, err := s.Client.CoreV1().Events(ns).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			out := run("get", "events", "--sort-by=.lastTimestamp")
			if i, j := strings.Index(out, "First"), strings.Index(out, "Second"); i < 0 || j < 0 || i > j {
				t.Errorf("get events --sort-by=.lastTimestamp:\n%s", out)
			}
			if out := run("describe", "pod", "waited"); !strings.Contains(out, "Events:") || !strings.Contains(out, "First") {
				t.Errorf("describe lists the pod's events:\n%s", out)
			}

			run("create", "configmap", "c2")
			go func() {
				time.Sleep(time.Second)
				s.Client.CoreV1().ConfigMaps(ns).Delete(ctx, "c2", metav1.DeleteOptions{})
			}()
			run("wait", "--for=delete", "configmap/c2", "--timeout=60s")
			run("delete", "configmaps", "--all")
			if out := run("get", "configmaps", "-o", "name"); strings.Contains(out, "configmap/c1") {
				t.Errorf("delete --all left:\n%s", out)
			}
		})
	}
}
