package cacher

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// managedFieldsInterner makes the cached objects whose managedFields say the same thing share
// one copy of it. Objects made by one controller from one template (a Deployment's pods, a
// DaemonSet's) carry the same field sets byte for byte, and those sets are the biggest part of
// many small objects: a third of a typical Deployment pod in the cache, decoded afresh for each
// one. Sharing is safe because cached objects are never modified (see objectSet).
//
// Only the reflector uses it, so it needs no lock. It forgets everything when it holds
// maxInternedFieldSets, so field sets unique to their objects cannot grow it without bound;
// objects decoded before then keep what they share.
type managedFieldsInterner struct {
	fieldSets map[string]*metav1.FieldsV1
	strings   map[string]string
}

const maxInternedFieldSets = 4096

func newManagedFieldsInterner() *managedFieldsInterner {
	return &managedFieldsInterner{fieldSets: map[string]*metav1.FieldsV1{}, strings: map[string]string{}}
}

// intern replaces obj's managedFields' field sets, managers and API versions with equal
// values already held by other cached objects. obj must be one no one else has seen
// yet. Unstructured objects are left alone: their managedFields are maps, not shared bytes.
func (in *managedFieldsInterner) intern(obj runtime.Object) {
	a, ok := obj.(metav1.ObjectMetaAccessor)
	if !ok {
		return
	}
	om, ok := a.GetObjectMeta().(*metav1.ObjectMeta)
	if !ok {
		return
	}
	if len(in.fieldSets) >= maxInternedFieldSets {
		in.fieldSets, in.strings = map[string]*metav1.FieldsV1{}, map[string]string{}
	}
	for i := range om.ManagedFields {
		e := &om.ManagedFields[i]
		e.Manager = in.string(e.Manager)
		e.APIVersion = in.string(e.APIVersion)
		e.Subresource = in.string(e.Subresource)
		e.FieldsType = in.string(e.FieldsType)
		if e.FieldsV1 == nil {
			continue
		}
		if shared, ok := in.fieldSets[string(e.FieldsV1.Raw)]; ok {
			e.FieldsV1 = shared
		} else {
			in.fieldSets[string(e.FieldsV1.Raw)] = e.FieldsV1
		}
	}
}

func (in *managedFieldsInterner) string(s string) string {
	if shared, ok := in.strings[s]; ok {
		return shared
	}
	in.strings[s] = s
	return s
}
