package apis

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestValidateConfigMap(t *testing.T) {
	meta := metav1.ObjectMeta{Name: "cfg", Namespace: "ns"}
	for _, tc := range []struct {
		name string
		cm   corev1.ConfigMap
		want []string
	}{
		{name: "valid", cm: corev1.ConfigMap{ObjectMeta: meta, Data: map[string]string{"app.conf": "x", "KEY_1": "y"}, BinaryData: map[string][]byte{"logo.png": {1}}}},
		{
			name: "keys are config keys",
			cm:   corev1.ConfigMap{ObjectMeta: meta, Data: map[string]string{"a b": "x"}},
			want: []string{`data[a b]: Invalid value: "a b": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')`},
		},
		{
			name: "a key is in data or binaryData, not both",
			cm:   corev1.ConfigMap{ObjectMeta: meta, Data: map[string]string{"k": "x"}, BinaryData: map[string][]byte{"k": {1}}},
			want: []string{`data[k]: Invalid value: "k": duplicate of key present in binaryData`},
		},
		{
			name: "values together stay within 1 MiB, reported on the empty path as upstream",
			cm:   corev1.ConfigMap{ObjectMeta: meta, Data: map[string]string{"a": strings.Repeat("x", corev1.MaxSecretSize)}, BinaryData: map[string][]byte{"b": {1}}},
			want: []string{`[]: Too long: may not be more than 1048576 bytes`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkFieldErrors(t, ValidateConfigMap(&tc.cm), tc.want...)
		})
	}
}

func TestValidateConfigMapUpdateOfImmutableConfigMap(t *testing.T) {
	yes, no := true, false
	old := corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "ns", ResourceVersion: "3"}, Data: map[string]string{"k": "v"}, Immutable: &yes}

	same := old
	same.Labels = map[string]string{"a": "b"}
	checkFieldErrors(t, ValidateConfigMapUpdate(&same, &old))

	changed := old
	changed.Data = map[string]string{"k": "w"}
	changed.BinaryData = map[string][]byte{"b": {1}}
	changed.Immutable = &no
	checkFieldErrors(t, ValidateConfigMapUpdate(&changed, &old),
		"immutable: Forbidden: field is immutable when `immutable` is set",
		"data: Forbidden: field is immutable when `immutable` is set",
		"binaryData: Forbidden: field is immutable when `immutable` is set")
}

func TestValidateConfigMapUpdateMayMakeItImmutable(t *testing.T) {
	yes := true
	old := corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "ns", ResourceVersion: "3"}}
	cm := old
	cm.Data = map[string]string{"k": "v"}
	cm.Immutable = &yes
	checkFieldErrors(t, ValidateConfigMapUpdate(&cm, &old))
}
