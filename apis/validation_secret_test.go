package apis

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestValidateSecret(t *testing.T) {
	meta := metav1.ObjectMeta{Name: "s", Namespace: "ns"}
	for _, tc := range []struct {
		name   string
		secret corev1.Secret
		want   []string
	}{
		{name: "opaque", secret: corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"password": []byte("x")}}},
		{
			name:   "keys are config keys",
			secret: corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"../x": nil}},
			want: []string{
				`data[../x]: Invalid value: "../x": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')`,
				`data[../x]: Invalid value: "../x": must not start with '..'`,
			},
		},
		{
			name:   "data stays within 1 MiB",
			secret: corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"a": []byte(strings.Repeat("x", corev1.MaxSecretSize+1))}},
			want:   []string{`data: Too long: may not be more than 1048576 bytes`},
		},
		{
			name:   "tls needs a certificate and a key",
			secret: corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeTLS},
			want:   []string{`data[tls.crt]: Required value`, `data[tls.key]: Required value`},
		},
		{
			name:   "basic-auth needs a username or a password, under upstream's odd path",
			secret: corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeBasicAuth},
			want:   []string{`data[%s][username]: Required value`, `data[%s][password]: Required value`},
		},
		{
			name:   "basic-auth with only a password",
			secret: corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeBasicAuth, Data: map[string][]byte{"password": nil}},
		},
		{
			name:   "ssh-auth needs a private key",
			secret: corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeSSHAuth, Data: map[string][]byte{"ssh-privatekey": {}}},
			want:   []string{`data[%s][ssh-privatekey]: Required value`},
		},
		{
			name:   "dockerconfigjson must be JSON, contents redacted",
			secret: corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{".dockerconfigjson": []byte("{")}},
			want:   []string{`data[.dockerconfigjson]: Invalid value: "<secret contents redacted>": unexpected end of JSON input`},
		},
		{
			name:   "dockercfg is required",
			secret: corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeDockercfg},
			want:   []string{`data[.dockercfg]: Required value`},
		},
		{
			name:   "service account token names its account",
			secret: corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeServiceAccountToken},
			want:   []string{`metadata.annotations[kubernetes.io/service-account.name]: Required value`},
		},
		{
			name:   "other types are free-form",
			secret: corev1.Secret{ObjectMeta: meta, Type: "example.com/custom"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkFieldErrors(t, ValidateSecret(&tc.secret), tc.want...)
		})
	}
}

func TestValidateSecretUpdate(t *testing.T) {
	yes := true
	old := corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns", ResourceVersion: "2"}, Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"k": []byte("v")}}

	retyped := old
	retyped.Type = "example.com/other"
	checkFieldErrors(t, ValidateSecretUpdate(&retyped, &old), `type: Invalid value: "example.com/other": field is immutable`)

	frozen := old
	frozen.Immutable = &yes
	thawed := frozen
	thawed.Immutable = nil
	thawed.Data = map[string][]byte{"k": []byte("w")}
	checkFieldErrors(t, ValidateSecretUpdate(&thawed, &frozen),
		"immutable: Forbidden: field is immutable when `immutable` is set",
		"data: Forbidden: field is immutable when `immutable` is set")
}
