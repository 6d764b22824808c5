package kubelet_test

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/kubelet"
	"github.com/skiff-dev/skiff/kubelet/kubelettest"
)

// caPEM makes a self-signed CA certificate named cn, PEM-encoded.
func caPEM(t *testing.T, cn string) string {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// pemBlocks splits a PEM file into its blocks, sorted, so that files compare whatever order
// the kubelet gave them.
func pemBlocks(data string) []string {
	var out []string
	rest := []byte(data)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		out = append(out, string(pem.EncodeToMemory(b)))
	}
	slices.Sort(out)
	return out
}

func ctbSource(path string, name, signer *string, selector *metav1.LabelSelector, optional *bool) v1.VolumeProjection {
	return v1.VolumeProjection{ClusterTrustBundle: &v1.ClusterTrustBundleProjection{
		Path: path, Name: name, SignerName: signer, LabelSelector: selector, Optional: optional,
	}}
}

func TestClusterTrustBundleProjectionJoinsSelectedBundles(t *testing.T) {
	s, n := newFakeNode(t, func(c *kubelet.Config) { c.RootDir = t.TempDir() })
	ctx := context.Background()
	roots := map[string]string{}
	for _, cn := range []string{"alive1", "alive2", "dead", "other", "unsigned"} {
		roots[cn] = caPEM(t, cn)
	}
	for _, b := range []certificatesv1.ClusterTrustBundle{
		// alive2's bundle repeats alive1's root: the file lists it once
		{ObjectMeta: metav1.ObjectMeta{Name: "example.com:one:a", Labels: map[string]string{"alive": "true"}},
			Spec: certificatesv1.ClusterTrustBundleSpec{SignerName: "example.com/one", TrustBundle: roots["alive1"]}},
		{ObjectMeta: metav1.ObjectMeta{Name: "example.com:one:b", Labels: map[string]string{"alive": "true"}},
			Spec: certificatesv1.ClusterTrustBundleSpec{SignerName: "example.com/one", TrustBundle: roots["alive2"] + roots["alive1"]}},
		{ObjectMeta: metav1.ObjectMeta{Name: "example.com:one:c", Labels: map[string]string{"alive": "false"}},
			Spec: certificatesv1.ClusterTrustBundleSpec{SignerName: "example.com/one", TrustBundle: roots["dead"]}},
		{ObjectMeta: metav1.ObjectMeta{Name: "example.com:two:a", Labels: map[string]string{"alive": "true"}},
			Spec: certificatesv1.ClusterTrustBundleSpec{SignerName: "example.com/two", TrustBundle: roots["other"]}},
		{ObjectMeta: metav1.ObjectMeta{Name: "unsigned"},
			Spec: certificatesv1.ClusterTrustBundleSpec{TrustBundle: roots["unsigned"]}},
	} {
		if _, err := s.Client.CertificatesV1().ClusterTrustBundles().Create(ctx, &b, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	signer := ptr.To("example.com/one")
	pod := simplePod("ctb", "app")
	pod.Spec.Volumes = []v1.Volume{{Name: "anchors", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
		ctbSource("by-name.pem", ptr.To("unsigned"), nil, nil, nil),
		ctbSource("alive.pem", nil, signer, &metav1.LabelSelector{MatchLabels: map[string]string{"alive": "true"}}, nil),
		ctbSource("all.pem", nil, signer, &metav1.LabelSelector{}, nil),
		ctbSource("missing.pem", ptr.To("missing"), nil, nil, ptr.To(true)),
		// a nil selector matches nothing
		ctbSource("nil-selector.pem", nil, signer, nil, ptr.To(true)),
		ctbSource("no-match.pem", nil, signer, &metav1.LabelSelector{MatchLabels: map[string]string{"alive": "maybe"}}, ptr.To(true)),
	}}}}}
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "anchors", MountPath: "/anchors"}}
	pod = n.CreatePod(pod)
	n.WaitPod(pod, "ready", kubelettest.PodReady)
	var dir string
	for _, m := range n.Fake.ContainerConfig(string(pod.UID), "app").Mounts {
		if m.ContainerPath == "/anchors" {
			dir = m.HostPath
		}
	}
	for file, want := range map[string][]string{
		"by-name.pem":      {roots["unsigned"]},
		"alive.pem":        {roots["alive1"], roots["alive2"]},
		"all.pem":          {roots["alive1"], roots["alive2"], roots["dead"]},
		"missing.pem":      nil,
		"nil-selector.pem": nil,
		"no-match.pem":     nil,
	} {
		path := filepath.Join(dir, file)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		slices.Sort(want)
		if got := pemBlocks(string(data)); !slices.Equal(got, want) || len(want) == 0 && len(data) != 0 {
			t.Errorf("%s holds %d certificates %q, want %d", file, len(got), data, len(want))
		}
		if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v %v, want 0644", file, info.Mode(), err)
		}
	}
}

func TestMissingClusterTrustBundleKeepsPodContainerCreating(t *testing.T) {
	_, n := newFakeNode(t, func(c *kubelet.Config) { c.RootDir = t.TempDir() })
	for name, src := range map[string]v1.VolumeProjection{
		"by-name":   ctbSource("ca.pem", ptr.To("absent"), nil, nil, ptr.To(false)),
		"by-signer": ctbSource("ca.pem", nil, ptr.To("example.com/none"), &metav1.LabelSelector{}, nil),
	} {
		pod := simplePod(name, "app")
		pod.Spec.Volumes = []v1.Volume{{Name: "anchors", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{src}}}}}
		pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "anchors", MountPath: "/anchors"}}
		pod = n.CreatePod(pod)
		want := `Warning FailedMount MountVolume.SetUp failed for volume "anchors" : `
		if name == "by-name" {
			want += `while getting ClusterTrustBundle: clustertrustbundles.certificates.k8s.io "absent" not found`
		} else {
			want += `combination of signerName and labelSelector matched zero ClusterTrustBundles`
		}
		n.WaitEvent(pod, want)
		got := n.WaitPod(pod, "pending, not ready", func(p *v1.Pod) bool {
			ready := condition(p, v1.PodReady)
			return ready != nil && ready.Status == v1.ConditionFalse && ready.Reason == "ContainersNotReady"
		})
		cs := containerStatus(got, "app")
		if got.Status.Phase != v1.PodPending || cs == nil || cs.State.Waiting == nil || cs.State.Waiting.Reason != "ContainerCreating" {
			t.Errorf("%s: %s", name, kubelettest.DescribeStatus(got))
		}
		if msg := condition(got, v1.PodReady).Message; !strings.Contains(msg, "[app]") {
			t.Errorf("%s: ready message %q", name, msg)
		}
	}
}

// signPodCertificates plays a signer for the test: it issues every pending
// PodCertificateRequest of signer with a certificate for the requested key, valid for the
// requested lifetime, until ctx ends.
func signPodCertificates(ctx context.Context, t *testing.T, client kubernetes.Interface, signer string) {
	_, caKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Error(err)
		return
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour)}
	_ = wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		list, err := client.CertificatesV1().PodCertificateRequests("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for _, pcr := range list.Items {
			if pcr.Spec.SignerName != signer || pcr.Status.CertificateChain != "" {
				continue
			}
			stub, err := x509.ParseCertificateRequest(pcr.Spec.StubPKCS10Request)
			if err != nil {
				t.Errorf("stub CSR: %v", err)
				continue
			}
			notBefore := time.Now().Truncate(time.Second)
			lifetime := time.Duration(*pcr.Spec.MaxExpirationSeconds) * time.Second
			leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: pcr.Spec.PodName}, NotBefore: notBefore, NotAfter: notBefore.Add(lifetime)}
			der, err := x509.CreateCertificate(rand.Reader, leaf, ca, stub.PublicKey, caKey)
			if err != nil {
				t.Errorf("signing: %v", err)
				continue
			}
			pcr.Status = certificatesv1.PodCertificateRequestStatus{
				Conditions:       []metav1.Condition{{Type: "Issued", Status: metav1.ConditionTrue, Reason: "Issued", Message: "issued", LastTransitionTime: metav1.Now()}},
				CertificateChain: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
				NotBefore:        &metav1.Time{Time: notBefore}, NotAfter: &metav1.Time{Time: notBefore.Add(lifetime)},
				BeginRefreshAt: &metav1.Time{Time: notBefore.Add(lifetime / 2)},
			}
			if _, err := client.CertificatesV1().PodCertificateRequests(pcr.Namespace).UpdateStatus(ctx, &pcr, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil {
				t.Errorf("issuing: %v", err)
			}
		}
		return false, nil
	})
}

func TestPodCertificateSourceProjectsKeyAndIssuedChain(t *testing.T) {
	s, n := newFakeNode(t, func(c *kubelet.Config) { c.RootDir = t.TempDir() })
	ctx, cancel := context.WithCancel(context.Background())
	signed := make(chan struct{})
	defer func() { cancel(); <-signed }()
	go func() { defer close(signed); signPodCertificates(ctx, t, s.Client, "example.com/signer") }()

	if _, err := s.Client.CoreV1().ServiceAccounts("default").Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	pod := simplePod("certified", "app")
	pod.Spec.Volumes = []v1.Volume{{Name: "cert", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{{
		PodCertificate: &v1.PodCertificateProjection{SignerName: "example.com/signer", KeyType: "ECDSAP256",
			MaxExpirationSeconds: ptr.To[int32](3600), CredentialBundlePath: "bundle.pem", CertificateChainPath: "chain.pem"},
	}}}}}}
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "cert", MountPath: "/cert"}}
	pod = n.CreatePod(pod)
	n.WaitPod(pod, "ready", kubelettest.PodReady)
	var dir string
	for _, m := range n.Fake.ContainerConfig(string(pod.UID), "app").Mounts {
		if m.ContainerPath == "/cert" {
			dir = m.HostPath
		}
	}
	bundle, err := os.ReadFile(filepath.Join(dir, "bundle.pem"))
	if err != nil {
		t.Fatal(err)
	}
	keyBlock, rest := pem.Decode(bundle)
	certBlock, _ := pem.Decode(rest)
	if keyBlock == nil || keyBlock.Type != "PRIVATE KEY" || certBlock == nil || certBlock.Type != "CERTIFICATE" {
		t.Fatalf("credential bundle is not a key and a chain:\n%s", bundle)
	}
	key, err := x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !key.(crypto.Signer).Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(cert.PublicKey) {
		t.Error("the projected certificate is not for the projected key")
	}
	if cert.NotAfter.Sub(cert.NotBefore) != time.Hour || cert.Subject.CommonName != "certified" {
		t.Errorf("certificate %v for %v..%v", cert.Subject, cert.NotBefore, cert.NotAfter)
	}
	if chain, err := os.ReadFile(filepath.Join(dir, "chain.pem")); err != nil || !strings.HasSuffix(string(bundle), string(chain)) {
		t.Errorf("chain.pem %q %v is not the bundle's chain", chain, err)
	}
}
