package kubelet_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// createPullSecret stores a kubernetes.io/dockerconfigjson secret whose one entry is
// registry's, as `kubectl create secret docker-registry` writes it.
func createPullSecret(t *testing.T, client kubernetes.Interface, ns, name, registry, user, password string) {
	t.Helper()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	cfg := fmt.Sprintf(`{"auths":{%q:{"username":%q,"password":%q,"auth":%q}}}`, registry, user, password, auth)
	if _, err := client.CoreV1().Secrets(ns).Create(context.Background(), &v1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Type:       v1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{v1.DockerConfigJsonKey: []byte(cfg)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func pullSecrets(names ...string) []v1.LocalObjectReference {
	var refs []v1.LocalObjectReference
	for _, n := range names {
		refs = append(refs, v1.LocalObjectReference{Name: n})
	}
	return refs
}

func TestPullsUseThePodsImagePullSecretsInTurn(t *testing.T) {
	s, n := newFakeNode(t)
	n.Fake.RequireCredentials("private.invalid", "alice", "s3cret")
	createPullSecret(t, s.Client, "default", "wrong", "private.invalid", "bob", "nope")
	createPullSecret(t, s.Client, "default", "right", "https://private.invalid/v1/", "alice", "s3cret")
	createPullSecret(t, s.Client, "default", "elsewhere", "ghcr.io", "carol", "pw")

	// a secret that does not exist is left out; the two that cover the registry are tried in
	// turn until one is let in
	with := simplePod("with-secrets", "app")
	with.Spec.Containers[0].Image = "private.invalid/team/app:1"
	with.Spec.ImagePullSecrets = pullSecrets("absent", "wrong", "right")
	with = n.CreatePod(with)
	n.WaitPod(with, "running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	var sent []string
	for _, p := range n.Fake.Pulls() {
		if p.Image == "private.invalid/team/app:1" {
			sent = append(sent, p.Username+":"+p.Password)
		}
	}
	// "wrong" and "right" have the same key, so their order is the pod's
	if want := []string{"bob:nope", "alice:s3cret"}; !slices.Equal(sent, want) {
		t.Errorf("credentials sent %v, want %v", sent, want)
	}

	// none of the pod's secrets covers the registry: one anonymous pull, refused, and the event
	// names the secret that could not be read
	without := simplePod("without", "app")
	without.Spec.Containers[0].Image = "private.invalid/team/other:1"
	without.Spec.ImagePullSecrets = pullSecrets("elsewhere", "absent")
	without = n.CreatePod(without)
	got := n.WaitPod(without, "in ErrImagePull", waitingFor("app", "ErrImagePull"))
	if msg := containerStatus(got, "app").State.Waiting.Message; !strings.Contains(msg, "401 Unauthorized") {
		t.Errorf("waiting message %q, want the registry's refusal", msg)
	}
	n.WaitEvent(without, "Warning FailedToRetrieveImagePullSecret Unable to retrieve some image pull secrets (absent); attempting to pull the image may not succeed.")
	for _, p := range n.Fake.Pulls() {
		if p.Image == "private.invalid/team/other:1" && p.Username != "" {
			t.Errorf("credentials %s:%s sent for a registry no secret covers", p.Username, p.Password)
		}
	}
}

// TestImagePulledWithASecretIsOnlyForPodsWithIt is upstream's KubeletEnsureSecretPulledImages:
// a pod finds a private image already on the node usable only if its own pull secrets could
// have pulled it; otherwise it pulls, and the registry judges its credentials.
func TestImagePulledWithASecretIsOnlyForPodsWithIt(t *testing.T) {
	s, n := newFakeNode(t)
	n.Fake.RequireCredentials("private.invalid", "alice", "s3cret")
	createPullSecret(t, s.Client, "default", "right", "private.invalid", "alice", "s3cret")
	createPullSecret(t, s.Client, "default", "copy", "private.invalid", "alice", "s3cret")
	const image = "private.invalid/app:1"
	pullsOf := func() int {
		count := 0
		for _, p := range n.Fake.Pulls() {
			if p.Image == image {
				count++
			}
		}
		return count
	}
	running := func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning }

	owner := simplePod("owner", "app")
	owner.Spec.Containers[0].Image = image
	owner.Spec.ImagePullSecrets = pullSecrets("right")
	n.WaitPod(n.CreatePod(owner), "running", running)
	if got := pullsOf(); got != 1 {
		t.Fatalf("%d pulls for the first pod", got)
	}

	// the same credentials under another secret: the image is the pod's without a pull
	sharer := simplePod("sharer", "app")
	sharer.Spec.Containers[0].Image = image
	sharer.Spec.ImagePullSecrets = pullSecrets("copy")
	sharer = n.CreatePod(sharer)
	n.WaitPod(sharer, "running", running)
	n.WaitEvent(sharer, `Normal Pulled Container image "private.invalid/app:1" already present on machine and can be accessed by the pod`)
	if got := pullsOf(); got != 1 {
		t.Errorf("%d pulls after a pod with the same credentials", got)
	}

	// no secret: the image is on the node, but the pod pulls it, and the registry refuses it;
	// with pull policy Never it is as if the image were not there
	for _, policy := range []v1.PullPolicy{v1.PullIfNotPresent, v1.PullNever} {
		borrower := simplePod("borrower-"+strings.ToLower(string(policy)), "app")
		borrower.Spec.Containers[0].Image = image
		borrower.Spec.Containers[0].ImagePullPolicy = policy
		borrower = n.CreatePod(borrower)
		reason := map[v1.PullPolicy]string{v1.PullIfNotPresent: "ErrImagePull", v1.PullNever: "ErrImageNeverPull"}[policy]
		got := n.WaitPod(borrower, "in "+reason, waitingFor("app", reason))
		if got.Status.Phase != v1.PodPending {
			t.Errorf("%s: phase %s", policy, got.Status.Phase)
		}
	}
	if got := pullsOf(); got < 2 {
		t.Errorf("%d pulls: the pod without credentials did not pull", got)
	}
}
