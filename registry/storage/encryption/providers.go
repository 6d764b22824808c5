// Package encryption is encryption at rest, as upstream's --encryption-provider-config: it
// reads an apiserver.config.k8s.io/v1 EncryptionConfiguration and gives each configured
// resource a storage.Transformer that encrypts what etcd holds with the first provider and
// reads values written by any listed provider.
//
// Stored values are byte for byte upstream's ("k8s:enc:aescbc:v1:KEYNAME:" then the
// ciphertext; AES-GCM authenticates the etcd key), so skiff and a kube-apiserver with the
// same configuration read each other's data. The crypto is Go's crypto/aes and cipher, and
// golang.org/x/crypto/nacl/secretbox. This package must never log or return key material,
// nor plaintext values in errors.
package encryption

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"golang.org/x/crypto/nacl/secretbox"
)

// encryptedPrefix starts every encrypted value, whatever the provider; identity refuses to
// read such a value, so that a config listing identity first still reads encrypted data
// through a later provider.
var encryptedPrefix = []byte("k8s:enc:")

// The providers' prefixes, as upstream writes them.
const (
	aescbcPrefix    = "k8s:enc:aescbc:v1:"
	aesgcmPrefix    = "k8s:enc:aesgcm:v1:"
	secretboxPrefix = "k8s:enc:secretbox:v1:"
)

// sealer encrypts and decrypts with one key. aad is the etcd key, for the modes that
// authenticate it.
type sealer interface {
	seal(plain, aad []byte) ([]byte, error)
	open(sealed, aad []byte) ([]byte, error)
}

// namedKey is one key of a provider: values it wrote start with its name and a colon.
type namedKey struct {
	prefix []byte // "NAME:"
	sealer sealer
}

// provider is one entry of a resource's providers: its value prefix (empty for identity)
// and its keys, the first of which writes.
type provider struct {
	prefix []byte
	// label names the provider in metrics: its prefix, or "identity".
	label string
	keys  []namedKey
}

func (p *provider) identity() bool { return len(p.prefix) == 0 }

// seal writes plain as the provider stores it: prefix, first key's name, ciphertext.
func (p *provider) seal(plain, aad []byte) ([]byte, error) {
	if p.identity() {
		return plain, nil
	}
	k := p.keys[0]
	sealed, err := k.sealer.seal(plain, aad)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(p.prefix)+len(k.prefix)+len(sealed))
	out = append(append(append(out, p.prefix...), k.prefix...), sealed...)
	return out, nil
}

// open reads a value that starts with the provider's prefix (the caller checked), by the key
// its name says; staleKey reports a key other than the first.
func (p *provider) open(value, aad []byte) (plain []byte, staleKey bool, err error) {
	if p.identity() {
		if bytes.HasPrefix(value, encryptedPrefix) {
			return nil, false, errors.New("identity transformer tried to read encrypted data")
		}
		return value, false, nil
	}
	rest := value[len(p.prefix):]
	var errs []error
	for i, k := range p.keys {
		if !bytes.HasPrefix(rest, k.prefix) {
			continue
		}
		plain, err := k.sealer.open(rest[len(k.prefix):], aad)
		if err != nil {
			// Two providers of one kind may hold keys of one name (rotating between
			// configurations); a failure here must not hide a later match.
			errs = append(errs, fmt.Errorf("key %s: %w", k.prefix[:len(k.prefix)-1], err))
			continue
		}
		return plain, i != 0, nil
	}
	if len(errs) > 0 {
		return nil, false, errors.Join(errs...)
	}
	return nil, false, fmt.Errorf("no matching key was found for the provided %s transformer", p.label)
}

// cbc is AES-CBC with PKCS#7 padding, a random IV before the ciphertext, as upstream's aescbc.
type cbc struct{ block cipher.Block }

func (c cbc) seal(plain, _ []byte) ([]byte, error) {
	bs := aes.BlockSize
	pad := bs - len(plain)%bs
	out := make([]byte, bs+len(plain)+pad)
	iv := out[:bs]
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	copy(out[bs:], plain)
	for i := bs + len(plain); i < len(out); i++ {
		out[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(c.block, iv).CryptBlocks(out[bs:], out[bs:])
	return out, nil
}

func (c cbc) open(sealed, _ []byte) ([]byte, error) {
	bs := aes.BlockSize
	if len(sealed) < 2*bs {
		return nil, errors.New("the stored data was shorter than the required size")
	}
	if len(sealed)%bs != 0 {
		return nil, errors.New("the stored data is not a multiple of the block size")
	}
	out := make([]byte, len(sealed)-bs)
	cipher.NewCBCDecrypter(c.block, sealed[:bs]).CryptBlocks(out, sealed[bs:])
	pad := int(out[len(out)-1])
	if pad == 0 || pad > bs || pad > len(out) {
		return nil, errors.New("invalid PKCS7 data (empty or not padded)")
	}
	for _, b := range out[len(out)-pad:] {
		if int(b) != pad {
			return nil, errors.New("invalid padding on input")
		}
	}
	return out[:len(out)-pad], nil
}

// gcm is AES-GCM with a random 12-byte nonce before the ciphertext and the etcd key as
// additional data, as upstream's aesgcm.
type gcm struct{ aead cipher.AEAD }

func (g gcm) seal(plain, aad []byte) ([]byte, error) {
	ns := g.aead.NonceSize()
	out := make([]byte, ns, ns+len(plain)+g.aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("failed to write nonce for AES-GCM: %w", err)
	}
	return g.aead.Seal(out, out[:ns], plain, aad), nil
}

func (g gcm) open(sealed, aad []byte) ([]byte, error) {
	ns := g.aead.NonceSize()
	if len(sealed) < ns {
		return nil, errors.New("the stored data was shorter than the required size")
	}
	return g.aead.Open(nil, sealed[:ns], sealed[ns:], aad)
}

// box is NaCl secretbox (XSalsa20-Poly1305) with a random 24-byte nonce before the box, as
// upstream's secretbox.
type box struct{ key [32]byte }

func (b box) seal(plain, _ []byte) ([]byte, error) {
	var nonce [24]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	return secretbox.Seal(nonce[:], plain, &nonce, &b.key), nil
}

func (b box) open(sealed, _ []byte) ([]byte, error) {
	if len(sealed) < 24+secretbox.Overhead {
		return nil, errors.New("the stored data was shorter than the required size")
	}
	var nonce [24]byte
	copy(nonce[:], sealed)
	plain, ok := secretbox.Open(nil, sealed[24:], &nonce, &b.key)
	if !ok {
		return nil, errors.New("output array was not large enough for encryption")
	}
	return plain, nil
}

func newAESCBC(key []byte) (sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cbc{block}, nil
}

func newAESGCM(key []byte) (sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return gcm{aead}, nil
}

func newSecretbox(key []byte) (sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("expected key size 32 for secretbox provider, got %v", len(key))
	}
	var b box
	copy(b.key[:], key)
	return b, nil
}
