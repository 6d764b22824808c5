package registryauth

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func dockerConfigJSON(name string, auths map[string]string) *v1.Secret {
	var entries []string
	for registry, userPass := range auths {
		entries = append(entries, fmt.Sprintf("%q:{%q:%q}", registry, "auth", base64.StdEncoding.EncodeToString([]byte(userPass))))
	}
	return &v1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Type:       v1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{v1.DockerConfigJsonKey: []byte(`{"auths":{` + strings.Join(entries, ",") + `}}`)},
	}
}

func users(creds []Credential) []string {
	var out []string
	for _, c := range creds {
		out = append(out, c.Username+":"+c.Password)
	}
	return out
}

func TestLookupMatchesRegistriesAsUpstreamsKeyring(t *testing.T) {
	k, err := FromSecrets([]*v1.Secret{
		dockerConfigJSON("hub", map[string]string{"https://index.docker.io/v1/": "hub:1"}),
		dockerConfigJSON("corp", map[string]string{
			"registry.corp.example":           "corp:1",
			"registry.corp.example/team-a":    "team-a:1",
			"*.mirror.example":                "glob:1",
			"http://localhost:5000":           "local:1",
			"https://quay.io/v2/":             "quay:1",
			"registry.corp.example/team-a/db": "db:1",
		}),
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "opaque"}, Type: v1.SecretTypeOpaque, Data: map[string][]byte{v1.DockerConfigJsonKey: []byte("not looked at")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for image, want := range map[string][]string{
		"nginx":              {"hub:1"},
		"library/nginx:1.27": {"hub:1"},
		"docker.io/bitnami/redis@sha256:" + strings.Repeat("a", 64): {"hub:1"},
		"registry.corp.example/app:1":                               {"corp:1"},
		// every key that covers the image, the most specific first
		"registry.corp.example/team-a/db:2":  {"db:1", "team-a:1", "corp:1"},
		"registry.corp.example/team-ab/x:1":  {"team-a:1", "corp:1"}, // a path prefix, as upstream
		"eu.mirror.example/app:1":            {"glob:1"},
		"a.eu.mirror.example/app:1":          nil, // a glob is one label
		"localhost:5000/app":                 {"local:1"},
		"localhost/app":                      nil, // another port
		"quay.io/org/app:1":                  {"quay:1"},
		"ghcr.io/org/app:1":                  nil,
		"registry.corp.example:443/team-a/x": nil,
	} {
		if got := users(k.Lookup(image)); !slices.Equal(got, want) {
			t.Errorf("Lookup(%q) = %v, want %v", image, got, want)
		}
	}
}

func TestDockerConfigFormsAndErrors(t *testing.T) {
	cfg := &v1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "legacy"},
		Type:       v1.SecretTypeDockercfg,
		// the legacy form: the entries themselves; username and password without auth, and
		// auth without padding
		Data: map[string][]byte{v1.DockerConfigKey: []byte(`{
			"a.example": {"username": "alice", "password": "pw:with:colons"},
			"b.example": {"username": "ignored", "auth": "` + base64.RawStdEncoding.EncodeToString([]byte("bob:pw")) + `"}}`)},
	}
	k, err := FromSecrets([]*v1.Secret{cfg})
	if err != nil {
		t.Fatal(err)
	}
	if got := users(k.Lookup("a.example/x")); !slices.Equal(got, []string{"alice:pw:with:colons"}) {
		t.Errorf("a.example: %v", got)
	}
	got := k.Lookup("b.example/x")
	if !slices.Equal(users(got), []string{"bob:pw"}) || got[0].SecretNamespace+"/"+got[0].SecretName != "ns/legacy" {
		t.Errorf("b.example: %+v", got)
	}
	if a := got[0].Auth(); a.Username != "bob" || a.Password != "pw" {
		t.Errorf("CRI auth %+v", a)
	}

	for name, data := range map[string]string{
		"not JSON":               `{"auths":`,
		"auth without a colon":   `{"auths":{"x.example":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("nocolon")) + `"}}}`,
		"auth that is no base64": `{"auths":{"x.example":{"auth":"***"}}}`,
	} {
		s := &v1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "bad"}, Type: v1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{v1.DockerConfigJsonKey: []byte(data)}}
		if _, err := FromSecrets([]*v1.Secret{s}); err == nil || !strings.Contains(err.Error(), "pull secret ns/bad") {
			t.Errorf("%s: err %v, want one naming the secret", name, err)
		}
	}
	if creds := (*Keyring)(nil).Lookup("nginx"); creds != nil {
		t.Errorf("no keyring: %v", creds)
	}
}
