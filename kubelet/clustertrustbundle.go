package kubelet

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/pem"
	"fmt"
	"os"
	"slices"

	certificatesv1 "k8s.io/api/certificates/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// trustAnchorOrderSeed keys the order in which a projected clusterTrustBundle file lists its
// certificates. Upstream shuffles the anchors so that nobody relies on their order, but keeps
// one order for the life of the kubelet: a file that changed on every resync would be
// rewritten (and its ..data link swapped) for nothing. A per-process seed gives both.
var trustAnchorOrderSeed = func() []byte {
	seed := make([]byte, 32)
	_, _ = rand.Read(seed)
	return seed
}()

// trustBundleFile computes the file of a clusterTrustBundle projection: the certificates of
// the named bundle, or of every bundle of the signer that the label selector matches, each
// once, re-encoded as bare CERTIFICATE blocks. A missing bundle (or no match) is an error
// unless the source is optional, in which case the file is there and empty, as upstream.
func (m *volumeManager) trustBundleFile(ctx context.Context, src *v1.ClusterTrustBundleProjection, mode os.FileMode, files map[string]volumeFile) error {
	allowMissing := src.Optional != nil && *src.Optional
	var bundles []certificatesv1.ClusterTrustBundle
	switch {
	case src.Name != nil:
		b, err := m.k.client.CertificatesV1().ClusterTrustBundles().Get(ctx, *src.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) && allowMissing {
			break
		}
		if err != nil {
			return fmt.Errorf("while getting ClusterTrustBundle: %w", err)
		}
		bundles = append(bundles, *b)
	case src.SignerName != nil:
		// nil matches nothing, an empty selector everything (LabelSelectorAsSelector's rule);
		// the API cannot be asked for "nothing", so that case makes no request.
		selector, err := metav1.LabelSelectorAsSelector(src.LabelSelector)
		if err != nil {
			return fmt.Errorf("while parsing label selector: %w", err)
		}
		if src.LabelSelector != nil {
			list, err := m.k.client.CertificatesV1().ClusterTrustBundles().List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
			if err != nil {
				return fmt.Errorf("while listing ClusterTrustBundles matching label selector %v: %w", src.LabelSelector, err)
			}
			for _, b := range list.Items {
				if b.Spec.SignerName == *src.SignerName && selector.Matches(labels.Set(b.Labels)) {
					bundles = append(bundles, b)
				}
			}
		}
		if len(bundles) == 0 && !allowMissing {
			return fmt.Errorf("combination of signerName and labelSelector matched zero ClusterTrustBundles")
		}
	}
	files[src.Path] = volumeFile{normalizeTrustAnchors(bundles), mode}
	return nil
}

// normalizeTrustAnchors joins the certificates of bundles, dropping duplicates (by their DER
// bytes) and anything that is not a PEM block, in the kubelet's stable shuffled order.
func normalizeTrustAnchors(bundles []certificatesv1.ClusterTrustBundle) []byte {
	seen := map[string]bool{}
	var ders [][]byte
	for _, b := range bundles {
		rest := []byte(b.Spec.TrustBundle)
		for {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			if !seen[string(block.Bytes)] {
				seen[string(block.Bytes)] = true
				ders = append(ders, block.Bytes)
			}
		}
	}
	key := func(der []byte) []byte {
		h := sha256.New()
		h.Write(trustAnchorOrderSeed)
		h.Write(der)
		return h.Sum(nil)
	}
	slices.SortFunc(ders, func(a, b []byte) int { return bytes.Compare(key(a), key(b)) })
	out := []byte{}
	for _, der := range ders {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return out
}
