package apiserver

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
)

// Service-account issuer discovery, as upstream serves it: an OpenID Connect discovery
// document at /.well-known/openid-configuration and the public keys that verify
// service-account tokens at /openid/v1/jwks, so that a relying party (a cloud's workload
// identity, Vault) can verify a pod's token. The default policy lets service accounts read
// both (system:service-account-issuer-discovery).

const (
	openIDConfigurationPath = "/.well-known/openid-configuration"
	jwksPath                = "/openid/v1/jwks"
)

// openIDMetadata is the discovery document, with upstream's fields.
type openIDMetadata struct {
	Issuer        string   `json:"issuer"`
	JWKSURI       string   `json:"jwks_uri"`
	ResponseTypes []string `json:"response_types_supported"`
	SubjectTypes  []string `json:"subject_types_supported"`
	SigningAlgs   []string `json:"id_token_signing_alg_values_supported"`
}

// jsonWebKey is one public key of a JWK set (RFC 7517), as upstream publishes it.
type jsonWebKey struct {
	Use string `json:"use"`
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Crv string `json:"crv,omitempty"`
	Alg string `json:"alg"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
}

// issuerDiscovery is the two documents, made once at start.
type issuerDiscovery struct {
	configuration, keySet []byte
}

// newIssuerDiscovery describes the service-account issuer and its public key. The JWKS URI is
// the issuer's URL with /openid/v1/jwks, as upstream derives it without
// --service-account-jwks-uri; an issuer that is not an https URL gets none.
func newIssuerDiscovery(issuer string, pub crypto.PublicKey) (*issuerDiscovery, error) {
	key, err := publicJWK(pub)
	if err != nil {
		return nil, err
	}
	jwksURI := ""
	if u, err := url.Parse(issuer); err == nil && u.Scheme == "https" {
		u.Path = strings.TrimSuffix(u.Path, "/") + jwksPath
		jwksURI = u.String()
	}
	config, err := json.Marshal(openIDMetadata{
		Issuer: issuer, JWKSURI: jwksURI,
		ResponseTypes: []string{"id_token"}, SubjectTypes: []string{"public"}, SigningAlgs: []string{key.Alg},
	})
	if err != nil {
		return nil, err
	}
	keys, err := json.Marshal(struct {
		Keys []jsonWebKey `json:"keys"`
	}{[]jsonWebKey{key}})
	if err != nil {
		return nil, err
	}
	return &issuerDiscovery{configuration: config, keySet: keys}, nil
}

// serve answers the two paths; it reports whether the request was for one of them.
func (d *issuerDiscovery) serve(w http.ResponseWriter, r *http.Request) bool {
	var body []byte
	contentType := "application/json"
	switch r.URL.Path {
	case openIDConfigurationPath:
		body = d.configuration
	case jwksPath:
		body, contentType = d.keySet, "application/jwk-set+json"
	default:
		return false
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
	return true
}

// publicJWK is pub as a JWK with upstream's key ID (the base64url SHA-256 of its PKIX form).
func publicJWK(pub crypto.PublicKey) (jsonWebKey, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return jsonWebKey{}, err
	}
	sum := sha256.Sum256(der)
	k := jsonWebKey{Use: "sig", Kid: base64.RawURLEncoding.EncodeToString(sum[:])}
	b64 := base64.RawURLEncoding.EncodeToString
	switch p := pub.(type) {
	case *rsa.PublicKey:
		k.Kty, k.Alg = "RSA", "RS256"
		k.N, k.E = b64(p.N.Bytes()), b64(big.NewInt(int64(p.E)).Bytes())
	case *ecdsa.PublicKey:
		size := (p.Curve.Params().BitSize + 7) / 8
		k.Kty, k.Crv = "EC", p.Curve.Params().Name
		switch k.Crv {
		case "P-256":
			k.Alg = "ES256"
		case "P-384":
			k.Alg = "ES384"
		case "P-521":
			k.Alg = "ES512"
		}
		k.X, k.Y = b64(p.X.FillBytes(make([]byte, size))), b64(p.Y.FillBytes(make([]byte, size)))
	default:
		return jsonWebKey{}, fmt.Errorf("service-account key %T cannot be published", pub)
	}
	return k, nil
}
