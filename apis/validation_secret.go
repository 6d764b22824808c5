package apis

import (
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// redactedSecret stands in for secret content in error messages.
const redactedSecret = "<secret contents redacted>"

// ValidateSecret checks key names, the 1 MiB limit on the values, and the keys each well-known
// secret type requires.
func ValidateSecret(secret *corev1.Secret) field.ErrorList {
	allErrs := ValidateObjectMeta(&secret.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, metadataPath)

	dataPath := field.NewPath("data")
	total := 0
	for key, value := range secret.Data {
		for _, msg := range validation.IsConfigMapKey(key) {
			allErrs = append(allErrs, field.Invalid(dataPath.Key(key), key, msg))
		}
		total += len(value)
	}
	if total > corev1.MaxSecretSize {
		allErrs = append(allErrs, field.TooLong(dataPath, "", corev1.MaxSecretSize))
	}

	// Upstream names the basic-auth and ssh-auth keys under the literal path "data[%s]"; kept so
	// the messages read the same.
	quirkPath := field.NewPath("data[%s]")
	switch secret.Type {
	case corev1.SecretTypeServiceAccountToken:
		// Only the account name is required; a controller fills in the token later.
		if secret.Annotations[corev1.ServiceAccountNameKey] == "" {
			allErrs = append(allErrs, field.Required(metadataPath.Child("annotations").Key(corev1.ServiceAccountNameKey), ""))
		}
	case corev1.SecretTypeDockercfg:
		allErrs = append(allErrs, validateJSONKey(secret.Data, corev1.DockerConfigKey, dataPath)...)
	case corev1.SecretTypeDockerConfigJson:
		allErrs = append(allErrs, validateJSONKey(secret.Data, corev1.DockerConfigJsonKey, dataPath)...)
	case corev1.SecretTypeBasicAuth:
		_, hasUser := secret.Data[corev1.BasicAuthUsernameKey]
		_, hasPassword := secret.Data[corev1.BasicAuthPasswordKey]
		if !hasUser && !hasPassword {
			allErrs = append(allErrs,
				field.Required(quirkPath.Key(corev1.BasicAuthUsernameKey), ""),
				field.Required(quirkPath.Key(corev1.BasicAuthPasswordKey), ""))
		}
	case corev1.SecretTypeSSHAuth:
		if len(secret.Data[corev1.SSHAuthPrivateKey]) == 0 {
			allErrs = append(allErrs, field.Required(quirkPath.Key(corev1.SSHAuthPrivateKey), ""))
		}
	case corev1.SecretTypeTLS:
		for _, key := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
			if _, ok := secret.Data[key]; !ok {
				allErrs = append(allErrs, field.Required(dataPath.Key(key), ""))
			}
		}
	}
	return allErrs
}

// validateJSONKey requires data[key] to be present and to hold a JSON object.
func validateJSONKey(data map[string][]byte, key string, dataPath *field.Path) field.ErrorList {
	value, ok := data[key]
	if !ok {
		return field.ErrorList{field.Required(dataPath.Key(key), "")}
	}
	if err := json.Unmarshal(value, &map[string]interface{}{}); err != nil {
		return field.ErrorList{field.Invalid(dataPath.Key(key), redactedSecret, err.Error())}
	}
	return nil
}

// ValidateSecretUpdate checks secret replacing old: the type never changes, and once immutable a
// secret keeps its data and stays immutable.
func ValidateSecretUpdate(secret, old *corev1.Secret) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&secret.ObjectMeta, &old.ObjectMeta, metadataPath)
	allErrs = append(allErrs, apivalidation.ValidateImmutableField(secret.Type, old.Type, field.NewPath("type"))...)
	if old.Immutable != nil && *old.Immutable {
		if secret.Immutable == nil || !*secret.Immutable {
			allErrs = append(allErrs, field.Forbidden(field.NewPath("immutable"), fieldImmutableWhenSet))
		}
		// stringData needs no check: the strategy has already folded it into data.
		if !sameMap(secret.Data, old.Data) {
			allErrs = append(allErrs, field.Forbidden(field.NewPath("data"), fieldImmutableWhenSet))
		}
	}
	return append(allErrs, ValidateSecret(secret)...)
}
