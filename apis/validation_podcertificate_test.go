package apis

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestProjectedCertificateSourcesAreValidatedAsUpstream(t *testing.T) {
	podCert := func(seconds *int32, signer string) corev1.VolumeProjection {
		return corev1.VolumeProjection{PodCertificate: &corev1.PodCertificateProjection{
			SignerName: signer, KeyType: "ED25519", MaxExpirationSeconds: seconds, CredentialBundlePath: "credentialbundle.pem",
		}}
	}
	tests := []struct {
		name    string
		sources []corev1.VolumeProjection
		want    []string
	}{
		{"pod certificate of default lifetime", []corev1.VolumeProjection{podCert(nil, "example.com/signer")}, nil},
		{"pod certificate of an hour", []corev1.VolumeProjection{podCert(ptr.To[int32](3600), "example.com/signer")}, nil},
		{"pod certificate shorter than an hour", []corev1.VolumeProjection{podCert(ptr.To[int32](3599), "example.com/signer")},
			[]string{"spec.volumes[0].projected.sources[0].podCertificate.maxExpirationSeconds: Invalid value: 3599: if provided, maxExpirationSeconds must be >= 3600"}},
		{"pod certificate longer than 91 days", []corev1.VolumeProjection{podCert(ptr.To[int32](91*24*3600+1), "example.com/signer")},
			[]string{"spec.volumes[0].projected.sources[0].podCertificate.maxExpirationSeconds: Invalid value: 7862401: if provided, maxExpirationSeconds must be <= 7862400"}},
		{"kubernetes signer longer than a day", []corev1.VolumeProjection{podCert(ptr.To[int32](86401), "kubernetes.io/signer")},
			[]string{"spec.volumes[0].projected.sources[0].podCertificate.maxExpirationSeconds: Invalid value: 86401: if provided, maxExpirationSeconds must be <= 86400"}},
		{"pod certificate without key type or files", []corev1.VolumeProjection{{PodCertificate: &corev1.PodCertificateProjection{SignerName: "example.com/signer"}}},
			[]string{
				`spec.volumes[0].projected.sources[0].podCertificate.keyType: Unsupported value: "": supported values: "RSA3072", "RSA4096", "ECDSAP256", "ECDSAP384", "ECDSAP521", "ED25519"`,
				"spec.volumes[0].projected.sources[0].podCertificate: Required value: specify at least one of credentialBundlePath, keyPath, and certificateChainPath",
			}},
		{"trust bundle and pod certificate write one file", []corev1.VolumeProjection{
			podCert(nil, "example.com/signer"),
			{ClusterTrustBundle: &corev1.ClusterTrustBundleProjection{Name: ptr.To("roots"), Path: "credentialbundle.pem"}},
		}, []string{`spec.volumes[0].projected: Invalid value: "credentialbundle.pem": conflicting duplicate paths`}},
		{"trust bundle by signer", []corev1.VolumeProjection{{ClusterTrustBundle: &corev1.ClusterTrustBundleProjection{
			SignerName: ptr.To("example.com/signer"), LabelSelector: &metav1.LabelSelector{}, Path: "ca.pem"}}}, nil},
		{"trust bundle by name and signer", []corev1.VolumeProjection{{ClusterTrustBundle: &corev1.ClusterTrustBundleProjection{
			Name: ptr.To("roots"), SignerName: ptr.To("example.com/signer"), Path: "ca.pem"}}},
			[]string{`spec.volumes[0].projected.sources[0].clusterTrustBundle: Invalid value: {"name":"roots","signerName":"example.com/signer","path":"ca.pem"}: only one of name and signerName may be used`}},
	}
	for _, tt := range tests {
		pod := validPod()
		pod.Spec.Volumes = []corev1.Volume{{Name: "certs", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			DefaultMode: ptr.To[int32](0o644), Sources: tt.sources}}}}
		sameErrors(t, tt.name, ValidatePod(pod), tt.want)
	}
}
