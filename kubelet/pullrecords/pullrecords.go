// Package pullrecords remembers which credentials pulled each image, so that a pod may use an
// image already on the node only if it could have pulled it itself: upstream's
// KubeletEnsureSecretPulledImages (beta, on by default since 1.35) with its default policy,
// NeverVerifyPreloadedImages.
//
//   - An image the kubelet pulled anonymously is every pod's.
//   - An image it pulled with a pull secret is for pods whose own pull secrets for that image
//     include the same secret (namespace, name and uid) or the same credentials; any other pod
//     pulls it again, so that the registry checks the pod's own credentials.
//   - An image the kubelet never pulled (imported, or pulled before the records existed) is
//     every pod's, unless a pull of it had begun and never ended: then whoever started it may
//     have had credentials, and pods pull it again.
//
// The records live in one JSON file under the kubelet's root directory, written before a pull
// (the intent) and after it, so that a kubelet that restarts, even mid-pull, keeps them.
package pullrecords

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/distribution/reference"

	"github.com/skiff-dev/skiff/kubelet/registryauth"
)

// Records is the kubelet's memory of image pulls. Its methods are safe for concurrent use.
type Records struct {
	mu   sync.Mutex
	path string // "" keeps them in memory only
	st   state
}

type state struct {
	// Pulled maps an image ID to what pulled it, by repository.
	Pulled map[string]*pulledRecord `json:"pulled"`
	// Intents counts the pulls begun and not ended, by the image as pods name it.
	Intents map[string]int `json:"intents"`
}

type pulledRecord struct {
	Updated time.Time `json:"updated"`
	// Repos maps a repository (normalized, no tag or digest) to who may use the image under it.
	Repos map[string]*access `json:"repos"`
}

type access struct {
	// Anonymous: pulled without credentials, so every pod may use it.
	Anonymous bool           `json:"anonymous,omitempty"`
	Secrets   []secretRecord `json:"secrets,omitempty"`
}

type secretRecord struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
	// Hash is SHA-256 of the credentials, never the credentials themselves.
	Hash string `json:"hash"`
}

// A secret's credentials shared by more than this many secrets of an image are not added to its
// record while merely matching (upstream's bound), so that a record cannot grow without end.
const maxSecretsPerRepo = 100

// Open reads the records from dir/image_manager/pullrecords.json (dir "": memory only). A file
// that cannot be read is an error; one that is not there is an empty record.
func Open(dir string) (*Records, error) {
	r := &Records{st: state{Pulled: map[string]*pulledRecord{}, Intents: map[string]int{}}}
	if dir == "" {
		return r, nil
	}
	r.path = filepath.Join(dir, "image_manager", "pullrecords.json")
	b, err := os.ReadFile(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &r.st); err != nil {
		return nil, fmt.Errorf("image pull records %s: %w", r.path, err)
	}
	if r.st.Pulled == nil {
		r.st.Pulled = map[string]*pulledRecord{}
	}
	if r.st.Intents == nil {
		r.st.Intents = map[string]int{}
	}
	return r, nil
}

// save writes the records; r.mu is held.
func (r *Records) save() error {
	if r.path == "" {
		return nil
	}
	b, err := json.Marshal(&r.st)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(r.path), 0o700); err != nil {
		return err
	}
	tmp := r.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, r.path)
}

// BeginPull records that a pull of image starts; EndPull must follow.
func (r *Records) BeginPull(image string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.Intents[image]++
	return r.save()
}

// EndPull records how a pull that BeginPull announced ended: when imageRef is not "" it
// succeeded with cred (nil: anonymously).
func (r *Records) EndPull(image, imageRef string, cred *registryauth.Credential) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.st.Intents[image] <= 1 {
		delete(r.st.Intents, image)
	} else {
		r.st.Intents[image]--
	}
	if imageRef != "" {
		r.merge(image, imageRef, cred)
	}
	return r.save()
}

// merge adds who pulled imageRef as image to its record; r.mu is held. It says whether the
// record changed.
func (r *Records) merge(image, imageRef string, cred *registryauth.Credential) bool {
	rec := r.st.Pulled[imageRef]
	if rec == nil {
		rec = &pulledRecord{Repos: map[string]*access{}}
		r.st.Pulled[imageRef] = rec
	}
	rec.Updated = time.Now().UTC()
	repo := repository(image)
	a := rec.Repos[repo]
	if a == nil {
		a = &access{}
		rec.Repos[repo] = a
	}
	if cred == nil || cred.SecretName == "" {
		changed := !a.Anonymous
		a.Anonymous, a.Secrets = true, nil
		return changed
	}
	s := secretRecord{Namespace: cred.SecretNamespace, Name: cred.SecretName, UID: cred.SecretUID, Hash: hash(cred)}
	for i, have := range a.Secrets {
		if have.Namespace == s.Namespace && have.Name == s.Name && have.UID == s.UID {
			changed := have.Hash != s.Hash
			a.Secrets[i].Hash = s.Hash
			return changed
		}
	}
	a.Secrets = append(a.Secrets, s)
	return true
}

// MustPull says whether a pod whose pull secrets hold creds for image must pull it again
// although imageRef is present: whether the records leave it unproven that the pod could have
// pulled it. A pod that matches by credentials under another secret has that secret added to
// the record, as upstream does.
func (r *Records) MustPull(image, imageRef string, creds []registryauth.Credential) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.st.Pulled[imageRef]
	if rec == nil {
		// never pulled by this kubelet: preloaded, unless a pull of it began and never ended
		return r.st.Intents[image] > 0
	}
	a := rec.Repos[repository(image)]
	switch {
	case a == nil:
		return true
	case a.Anonymous:
		return false
	}
	for _, c := range creds {
		if c.SecretName == "" {
			continue
		}
		h := hash(&c)
		for _, s := range a.Secrets {
			sameSecret := s.Namespace == c.SecretNamespace && s.Name == c.SecretName && s.UID == c.SecretUID
			if s.Hash == h || sameSecret {
				if len(a.Secrets) < maxSecretsPerRepo && r.merge(image, imageRef, &c) {
					_ = r.save() // a record that is not written only costs a pull later
				}
				return false
			}
		}
	}
	return true
}

// Forget drops the records of images no longer on the node: those not in present (image IDs
// listed at listed) and not written since, by a pull that ended after the listing.
func (r *Records) Forget(present map[string]bool, listed time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := false
	for ref, rec := range r.st.Pulled {
		if !present[ref] && rec.Updated.Before(listed) {
			delete(r.st.Pulled, ref)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return r.save()
}

// repository is image without its tag or digest, normalized ("nginx:1" is
// "docker.io/library/nginx").
func repository(image string) string {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return image
	}
	return named.Name()
}

func hash(c *registryauth.Credential) string {
	sum := sha256.Sum256([]byte(c.Username + "\x00" + c.Password))
	return hex.EncodeToString(sum[:])
}
