package pullrecords

import (
	"testing"
	"time"

	"github.com/skiff-dev/skiff/kubelet/registryauth"
)

func secret(name, uid, user, password string) registryauth.Credential {
	return registryauth.Credential{Username: user, Password: password, SecretNamespace: "ns", SecretName: name, SecretUID: uid}
}

func pulled(t *testing.T, r *Records, image, ref string, cred *registryauth.Credential) {
	t.Helper()
	if err := r.BeginPull(image); err != nil {
		t.Fatal(err)
	}
	if err := r.EndPull(image, ref, cred); err != nil {
		t.Fatal(err)
	}
}

func TestWhoMayUseAnImageOnTheNode(t *testing.T) {
	dir := t.TempDir()
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	alice := secret("alice", "u1", "alice", "pw")
	rotated := secret("alice", "u1", "alice", "new-pw")
	sameCreds := secret("copy-of-alice", "u2", "alice", "pw")
	stranger := secret("bob", "u3", "bob", "pw")

	// an image the kubelet never pulled was preloaded: everyone's
	if r.MustPull("private.example/app:1", "sha256:aaa", nil) {
		t.Error("a preloaded image must be pulled")
	}

	pulled(t, r, "private.example/app:1", "sha256:aaa", &alice)
	pulled(t, r, "public.example/tool:1", "sha256:bbb", nil)
	for _, c := range []struct {
		name  string
		image string
		creds []registryauth.Credential
		must  bool
	}{
		{"no credentials", "private.example/app:1", nil, true},
		{"another secret's credentials", "private.example/app:1", []registryauth.Credential{stranger}, true},
		{"the same secret", "private.example/app:1", []registryauth.Credential{stranger, alice}, false},
		{"another tag of the same image ID", "private.example/app:latest-alias", []registryauth.Credential{alice}, false},
		{"another repository of the same image ID", "private.example/other:1", []registryauth.Credential{alice}, true},
		{"the same credentials in another secret", "private.example/app:1", []registryauth.Credential{sameCreds}, false},
		{"the same secret with new credentials", "private.example/app:1", []registryauth.Credential{rotated}, false},
		{"an anonymous pull", "public.example/tool:1", nil, false},
	} {
		if got := r.MustPull(c.image, imageRefOf(c.image), c.creds); got != c.must {
			t.Errorf("%s: must pull %v, want %v", c.name, got, c.must)
		}
	}

	// what matching taught the records outlives the kubelet: the copy of alice's secret is in
	// them, and the rotated password replaced the old one
	r, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	copyRotated := secret("copy-of-alice", "other-uid", "alice", "new-pw")
	if r.MustPull("private.example/app:1", "sha256:aaa", []registryauth.Credential{copyRotated}) {
		t.Error("the rotated credentials were not recorded")
	}
	guess := secret("someone-else", "u4", "alice", "guess")
	if !r.MustPull("private.example/app:1", "sha256:aaa", []registryauth.Credential{guess}) {
		t.Error("a password never recorded opens the image")
	}
}

func imageRefOf(image string) string {
	if image == "public.example/tool:1" {
		return "sha256:bbb"
	}
	return "sha256:aaa"
}

func TestAPullThatNeverEndedMakesPodsPullAgain(t *testing.T) {
	dir := t.TempDir()
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.BeginPull("private.example/app:1"); err != nil {
		t.Fatal(err)
	}
	// the kubelet restarts mid-pull; the image turns out to be there
	r, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !r.MustPull("private.example/app:1", "sha256:aaa", nil) {
		t.Error("an image whose pull never ended is taken for preloaded")
	}
	// a failed pull ends the intent
	if err := r.EndPull("private.example/app:1", "", nil); err != nil {
		t.Fatal(err)
	}
	if r.MustPull("private.example/app:1", "sha256:aaa", nil) {
		t.Error("the intent outlived its pull")
	}
}

func TestForgetDropsOnlyImagesGoneBeforeTheListing(t *testing.T) {
	r, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cred := secret("alice", "u1", "alice", "pw")
	pulled(t, r, "private.example/gone:1", "sha256:gone", &cred)
	pulled(t, r, "private.example/kept:1", "sha256:kept", &cred)
	listed := time.Now()
	pulled(t, r, "private.example/new:1", "sha256:new", &cred) // ended after the listing
	if err := r.Forget(map[string]bool{"sha256:kept": true}, listed); err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]bool{"sha256:gone": false, "sha256:kept": true, "sha256:new": true} {
		if _, ok := r.st.Pulled[ref]; ok != want {
			t.Errorf("record of %s kept %v, want %v", ref, ok, want)
		}
	}
	// once gone, the image is preloaded if it comes back by other means (an import)
	if r.MustPull("private.example/gone:1", "sha256:gone", nil) {
		t.Error("a forgotten image still wants credentials")
	}
}
