package join

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cluster-bootstrap/token/jws"
)

const (
	tokenID     = "abcdef"
	tokenSecret = "0123456789abcdef"
)

// clusterInfoServer serves a cluster-info whose kubeconfig names the test server's own
// certificate as the CA, signed by the token when signed is set.
func clusterInfoServer(t *testing.T, signed bool) (*httptest.Server, []byte) {
	t.Helper()
	var data map[string]string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != clusterInfoPath || r.Header.Get("Authorization") != "" {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cluster-info"}, Data: data})
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	kubeconfig, err := ClusterInfoKubeconfig(srv.URL, caPEM)
	if err != nil {
		t.Fatal(err)
	}
	data = map[string]string{"kubeconfig": string(kubeconfig)}
	if signed {
		sig, err := jws.ComputeDetachedSignature(string(kubeconfig), tokenID, tokenSecret)
		if err != nil {
			t.Fatal(err)
		}
		data["jws-kubeconfig-"+tokenID] = sig
	}
	return srv, caPEM
}

func TestDiscoverTrustsTheSignedCAWhoseHashIsPinned(t *testing.T) {
	srv, caPEM := clusterInfoServer(t, true)
	got, err := Discovery{Server: srv.URL, Token: tokenID + "." + tokenSecret, CACertHashes: []string{CACertHash(srv.Certificate())}}.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(caPEM) {
		t.Errorf("CA %q, want the server's", got)
	}
}

func TestDiscoverRefusesACAThatMatchesNoPin(t *testing.T) {
	srv, _ := clusterInfoServer(t, true)
	_, err := Discovery{Server: srv.URL, Token: tokenID + "." + tokenSecret, CACertHashes: []string{"sha256:0000000000000000000000000000000000000000000000000000000000000000"}}.Discover(context.Background())
	if !errors.Is(err, ErrUntrusted) {
		t.Errorf("err %v, want ErrUntrusted", err)
	}
}

func TestDiscoverRefusesASignatureOfAnotherSecret(t *testing.T) {
	srv, _ := clusterInfoServer(t, true)
	_, err := Discovery{Server: srv.URL, Token: tokenID + ".fedcba9876543210", UnsafeSkipCAVerification: true}.Discover(context.Background())
	if !errors.Is(err, ErrUntrusted) {
		t.Errorf("err %v, want ErrUntrusted", err)
	}
}

func TestDiscoverWaitsForTheTokensSignature(t *testing.T) {
	srv, _ := clusterInfoServer(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := Discovery{Server: srv.URL, Token: tokenID + "." + tokenSecret, UnsafeSkipCAVerification: true, RetryInterval: 50 * time.Millisecond}.Discover(ctx)
	if err == nil || errors.Is(err, ErrUntrusted) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %v, want waiting until the context ends", err)
	}
}

func TestDiscoverNeedsAPinOrTheUnsafeChoice(t *testing.T) {
	if _, err := (Discovery{Server: "https://127.0.0.1:1", Token: tokenID + "." + tokenSecret}).Discover(context.Background()); err == nil {
		t.Error("discovery without a pin went ahead")
	}
}
