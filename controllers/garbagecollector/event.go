package garbagecollector

import (
	"encoding/json"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// eventObject is what an Event about the object with identity ref is recorded on.
func eventObject(_ metav1.Object, ref objectReference) runtime.Object {
	m := &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: ref.APIVersion, Kind: ref.Kind},
		ObjectMeta: metav1.ObjectMeta{Name: ref.Name, Namespace: ref.Namespace, UID: ref.UID},
	}
	return m
}

func refsString(refs []metav1.OwnerReference) string {
	var parts []string
	for _, r := range refs {
		parts = append(parts, fmt.Sprintf("[%s/%s, name: %s, uid: %s]", r.APIVersion, r.Kind, r.Name, r.UID))
	}
	return strings.Join(parts, ", ")
}
