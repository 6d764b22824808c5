// Package registryauth finds the registry credentials for an image pull in a pod's
// imagePullSecrets, as upstream's kubelet does (its credentialprovider keyring): secrets of
// type kubernetes.io/dockerconfigjson and kubernetes.io/dockercfg, entries keyed by registry
// host (with an optional port, path and * globs in host labels), the most specific first, and
// Docker Hub's legacy key for images of the default registry.
package registryauth

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"

	"github.com/distribution/reference"
	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Credential is one entry of a pull secret: what a pull sends the registry.
type Credential struct {
	Username string
	Password string
	// the secret the entry came from
	SecretNamespace, SecretName, SecretUID string
}

// Auth is the credential in CRI's form, as the kubelet hands it to the runtime.
func (c Credential) Auth() *runtimeapi.AuthConfig {
	return &runtimeapi.AuthConfig{Username: c.Username, Password: c.Password}
}

// Keyring holds the entries of some pull secrets by registry key.
type Keyring struct {
	// keys are the distinct keys, in reverse lexical order: a longer path under the same host
	// sorts before the host, so the most specific entries come first
	keys  []string
	creds map[string][]Credential
}

// The key under which Docker's own tools store Docker Hub's credentials, and the host it
// reduces to.
const defaultRegistryHost = "index.docker.io"

// FromSecrets reads the docker config secrets among secrets; other types are ignored. A
// docker config that is not valid JSON is an error, as upstream refuses the pull then.
func FromSecrets(secrets []*v1.Secret) (*Keyring, error) {
	k := &Keyring{creds: map[string][]Credential{}}
	for _, s := range secrets {
		var entries map[string]entry
		switch {
		case s.Type == v1.SecretTypeDockerConfigJson && len(s.Data[v1.DockerConfigJsonKey]) > 0:
			var cfg struct {
				Auths map[string]entry `json:"auths"`
			}
			if err := json.Unmarshal(s.Data[v1.DockerConfigJsonKey], &cfg); err != nil {
				return nil, fmt.Errorf("pull secret %s/%s: %w", s.Namespace, s.Name, err)
			}
			entries = cfg.Auths
		case s.Type == v1.SecretTypeDockercfg && len(s.Data[v1.DockerConfigKey]) > 0:
			if err := json.Unmarshal(s.Data[v1.DockerConfigKey], &entries); err != nil {
				return nil, fmt.Errorf("pull secret %s/%s: %w", s.Namespace, s.Name, err)
			}
		default:
			continue
		}
		// in the order of the keys, so that two entries of one secret under one key keep an
		// order that does not depend on the map's
		for _, registry := range slices.Sorted(maps.Keys(entries)) {
			key, ok := registryKey(registry)
			if !ok {
				continue // as upstream, an entry whose key is no URL is left out
			}
			e := entries[registry]
			k.creds[key] = append(k.creds[key], Credential{Username: e.Username, Password: e.Password,
				SecretNamespace: s.Namespace, SecretName: s.Name, SecretUID: string(s.UID)})
		}
	}
	for key := range k.creds {
		k.keys = append(k.keys, key)
	}
	slices.Sort(k.keys)
	slices.Reverse(k.keys)
	return k, nil
}

// entry is one registry's entry of a docker config: a username and password, or auth, which is
// base64 of "username:password" and wins over them.
type entry struct {
	Username string
	Password string
}

func (e *entry) UnmarshalJSON(b []byte) error {
	var raw struct {
		Username string `json:"username"`
		Password string `json:"password"`
		Auth     string `json:"auth"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	e.Username, e.Password = raw.Username, raw.Password
	if raw.Auth == "" {
		return nil
	}
	enc := base64.RawStdEncoding
	if strings.HasSuffix(strings.TrimSpace(raw.Auth), "=") {
		enc = base64.StdEncoding
	}
	decoded, err := enc.DecodeString(raw.Auth)
	if err != nil {
		return err
	}
	user, pass, ok := strings.Cut(string(decoded), ":")
	if !ok {
		return fmt.Errorf("unable to parse auth field, must be formatted as base64(username:password)")
	}
	e.Username, e.Password = user, pass
	return nil
}

// registryKey is the key of a docker config entry: its host and path, without a scheme or the
// API version path Docker's tools add ("https://index.docker.io/v1/" is "index.docker.io").
func registryKey(registry string) (string, bool) {
	if !strings.HasPrefix(registry, "https://") && !strings.HasPrefix(registry, "http://") {
		registry = "https://" + registry
	}
	u, err := url.Parse(registry)
	if err != nil {
		return "", false
	}
	path := u.Path
	if strings.HasPrefix(path, "/v2/") || strings.HasPrefix(path, "/v1/") {
		path = path[3:]
	}
	if path == "" || path == "/" {
		return u.Host, true
	}
	return u.Host + path, true
}

// Lookup is the credentials for pulling image, the most specific key's first; none means an
// anonymous pull.
func (k *Keyring) Lookup(image string) []Credential {
	if k == nil || len(k.keys) == 0 {
		return nil
	}
	repo := image
	if named, err := reference.ParseNormalizedNamed(image); err == nil {
		repo = named.Name()
	}
	var out []Credential
	for _, key := range k.keys {
		if matches(key, repo) {
			out = append(out, k.creds[key]...)
		}
	}
	if len(out) == 0 && isDefaultRegistry(repo) {
		out = k.creds[defaultRegistryHost]
	}
	return out
}

// matches says whether the key (a host, with a port, a path, and globs in its labels) covers
// the repository: the same port, as many host labels each matching its glob, and the key's
// path a prefix of the repository's.
func matches(key, repo string) bool {
	k, err := url.Parse("https://" + key)
	if err != nil {
		return false
	}
	r, err := url.Parse("https://" + repo)
	if err != nil {
		return false
	}
	kLabels, kPort := splitHost(k.Host)
	rLabels, rPort := splitHost(r.Host)
	if kPort != rPort || len(kLabels) != len(rLabels) || !strings.HasPrefix(r.Path, k.Path) {
		return false
	}
	for i, glob := range kLabels {
		if ok, err := filepath.Match(glob, rLabels[i]); err != nil || !ok {
			return false
		}
	}
	return true
}

func splitHost(hostport string) (labels []string, port string) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, ""
	}
	return strings.Split(host, "."), port
}

// isDefaultRegistry says whether the repository, normalized, is on Docker Hub. Upstream's test
// takes any first part without a dot or colon for Hub's, which after normalization leaves only
// "localhost": skiff does not send Hub's credentials there.
func isDefaultRegistry(repo string) bool {
	domain, _, _ := strings.Cut(repo, "/")
	return domain == "docker.io" || domain == defaultRegistryHost
}
