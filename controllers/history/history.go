// Package history keeps the ControllerRevisions of DaemonSets and StatefulSets, as upstream's
// pkg/controller/history: a revision is a snapshot of a controller's pod template (a strategic
// merge patch that puts the template back, which kubectl rollout undo applies), named by the
// controller's name and a hash of that snapshot, numbered in the order it became current. It
// names, hashes, creates (resolving hash collisions), orders and trims revisions; what a
// revision means to its controller is the controller's business.
//
// It acts only through the API and never changes a revision's data.
package history

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
)

// HashLabel is the label holding a revision's hash.
const HashLabel = "controller.kubernetes.io/hash"

// TemplatePatch is the data of a revision of template: the strategic merge patch
// {"spec":{"template":{...,"$patch":"replace"}}}, keys in JSON's sorted order, byte for byte as
// upstream's controllers write it, so that the same template hashes the same.
func TemplatePatch(template *corev1.PodTemplateSpec) ([]byte, error) {
	b, err := json.Marshal(template)
	if err != nil {
		return nil, err
	}
	var t map[string]any
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, err
	}
	t["$patch"] = "replace"
	return json.Marshal(map[string]any{"spec": map[string]any{"template": t}})
}

// Hash is upstream's hash of a revision: FNV-32 of its data and, after a collision, of the
// collision count, encoded safe for names.
func Hash(revision *appsv1.ControllerRevision, probe *int32) string {
	h := fnv.New32()
	h.Write(revision.Data.Raw)
	if probe != nil {
		h.Write([]byte(strconv.FormatInt(int64(*probe), 10)))
	}
	return rand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

// Name is the name of a revision of the controller named prefix: prefix-hash, the prefix cut
// to keep the name within 253 characters.
func Name(prefix, hash string) string {
	if len(prefix) > 223 {
		prefix = prefix[:223]
	}
	return prefix + "-" + hash
}

// New is a revision of parent (of kind) holding data, labelled with the template's labels and
// its hash, named by parent's name and that hash (with the collision count), and numbered
// revision.
func New(parent metav1.Object, kind schema.GroupVersionKind, templateLabels map[string]string, data []byte, revision int64, collisionCount *int32) *appsv1.ControllerRevision {
	labels := make(map[string]string, len(templateLabels)+1)
	for k, v := range templateLabels {
		labels[k] = v
	}
	cr := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       parent.GetNamespace(),
			Labels:          labels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(parent, kind)},
		},
		Data:     runtime.RawExtension{Raw: data},
		Revision: revision,
	}
	hash := Hash(cr, collisionCount)
	cr.Labels[HashLabel] = hash
	cr.Name = Name(parent.GetName(), hash)
	return cr
}

// Create stores revision under the name its hash gives. When that name is taken by a revision
// with other data (a hash collision), it bumps *collisionCount and tries the next name; the
// caller keeps the count in its status. A revision with the same data already there is
// returned as it is.
func Create(ctx context.Context, client kubernetes.Interface, parentName string, revision *appsv1.ControllerRevision, collisionCount *int32) (*appsv1.ControllerRevision, error) {
	if collisionCount == nil {
		return nil, fmt.Errorf("collisionCount should not be nil")
	}
	revisions := client.AppsV1().ControllerRevisions(revision.Namespace)
	for {
		clone := revision.DeepCopy()
		hash := Hash(revision, collisionCount)
		clone.Name = Name(parentName, hash)
		clone.Labels[HashLabel] = hash
		created, err := revisions.Create(ctx, clone, metav1.CreateOptions{})
		if !apierrors.IsAlreadyExists(err) {
			return created, err
		}
		exists, err := revisions.Get(ctx, clone.Name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		if bytes.Equal(exists.Data.Raw, clone.Data.Raw) {
			return exists, nil
		}
		*collisionCount++
	}
}

// Equal reports whether two revisions hold the same data. Their hash labels are not compared:
// the same data hashed after a collision has another hash.
func Equal(a, b *appsv1.ControllerRevision) bool {
	if a == nil || b == nil {
		return a == b
	}
	return bytes.Equal(a.Data.Raw, b.Data.Raw)
}

// FindEqual returns the revisions holding the same data as needle.
func FindEqual(revisions []*appsv1.ControllerRevision, needle *appsv1.ControllerRevision) []*appsv1.ControllerRevision {
	var out []*appsv1.ControllerRevision
	for _, r := range revisions {
		if Equal(r, needle) {
			out = append(out, r)
		}
	}
	return out
}

// Sort orders revisions oldest first: by revision number, then creation, then name.
func Sort(revisions []*appsv1.ControllerRevision) {
	sort.SliceStable(revisions, func(i, j int) bool {
		a, b := revisions[i], revisions[j]
		if a.Revision != b.Revision {
			return a.Revision < b.Revision
		}
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Name < b.Name
	})
}

// Next is the number the next revision gets: one more than the largest.
func Next(revisions []*appsv1.ControllerRevision) int64 {
	var max int64
	for _, r := range revisions {
		if r.Revision > max {
			max = r.Revision
		}
	}
	return max + 1
}

// Renumber makes revision the newest, numbered n, when it is not already (a rollback to an
// old template makes its old revision current again).
func Renumber(ctx context.Context, client kubernetes.Interface, revision *appsv1.ControllerRevision, n int64) (*appsv1.ControllerRevision, error) {
	if revision.Revision == n {
		return revision, nil
	}
	clone := revision.DeepCopy()
	clone.Revision = n
	return client.AppsV1().ControllerRevisions(clone.Namespace).Update(ctx, clone, metav1.UpdateOptions{})
}

// Trim deletes the oldest n of candidates (revisions no pod and no status still names), as
// a controller's revisionHistoryLimit asks.
func Trim(ctx context.Context, client kubernetes.Interface, candidates []*appsv1.ControllerRevision, n int) error {
	if n <= 0 {
		return nil
	}
	candidates = append([]*appsv1.ControllerRevision(nil), candidates...)
	Sort(candidates)
	for _, r := range candidates[:min(n, len(candidates))] {
		err := client.AppsV1().ControllerRevisions(r.Namespace).Delete(ctx, r.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}
