package storage

import (
	"encoding/base64"
	"path"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// The fuzz targets of what a client sends the store as text: continue tokens and
// resourceVersions. Their seeds (below and testdata/fuzz) run in every `go test`;
// `go test -fuzz=FuzzDecodeContinue ./registry/storage` searches further.

const fuzzKeyPrefix = "/registry/pods/"

func FuzzDecodeContinue(f *testing.F) {
	for _, seed := range []string{
		"",
		"e30",
		base64.RawURLEncoding.EncodeToString([]byte(`{"v":"meta.k8s.io/v1","rv":5,"start":"default/a\u0000"}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"v":"meta.k8s.io/v1","rv":-1,"start":"ns/b"}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"v":"meta.k8s.io/v1","rv":5,"start":"../secrets/x"}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"v":"meta.k8s.io/v1","rv":5,"start":"/"}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"v":"meta.k8s.io/v1","rv":1e40,"start":"a"}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"v":"meta.k8s.io/v2","rv":5,"start":"a"}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`[]`)),
		"!!!not base64",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		key, rv, err := DecodeContinue(token, fuzzKeyPrefix)
		if err != nil {
			if !HasCode(err, ErrCodeInvalidContinue) {
				t.Fatalf("DecodeContinue(%q) failed with %v, want an InvalidContinue error", token, err)
			}
			return
		}
		// a token never reaches outside the resource's keys, nor up the hierarchy
		rest, ok := strings.CutPrefix(key, fuzzKeyPrefix)
		if !ok {
			t.Fatalf("DecodeContinue(%q) = key %q outside %q", token, key, fuzzKeyPrefix)
		}
		if cleaned := path.Clean("/" + rest); cleaned != "/"+rest && rest != "" {
			t.Fatalf("DecodeContinue(%q) = key %q, not a clean path under the prefix", token, key)
		}
		if rv == 0 {
			t.Fatalf("DecodeContinue(%q) accepted resourceVersion 0", token)
		}
		if key == fuzzKeyPrefix {
			return // start "/" is the whole list, as upstream reads it: no token encodes it
		}
		// what decodes encodes to a token that decodes to the same place
		again, err := EncodeContinue(key, fuzzKeyPrefix, rv)
		if err != nil {
			t.Fatalf("EncodeContinue(%q, %d) of a decoded token: %v", key, rv, err)
		}
		key2, rv2, err := DecodeContinue(again, fuzzKeyPrefix)
		if err != nil || key2 != key || rv2 != rv {
			t.Fatalf("token %q re-encoded as %q decodes to %q, %d, %v; want %q, %d", token, again, key2, rv2, err, key, rv)
		}
	})
}

func FuzzContinueRoundTrip(f *testing.F) {
	f.Add("default/a\x00", int64(7))
	f.Add("kube-system/coredns-1", int64(-1))
	f.Add("x", int64(1<<62))
	f.Fuzz(func(t *testing.T, rest string, rv int64) {
		if rv == 0 || rest == "" || !utf8.ValidString(rest) {
			// none is a token a list hands out: keys are object names, which are ASCII (JSON
			// would carry other bytes as U+FFFD, upstream's tokens too)
			return
		}
		token, err := EncodeContinue(fuzzKeyPrefix+rest, fuzzKeyPrefix, rv)
		if err != nil {
			t.Fatalf("EncodeContinue(%q, %d): %v", fuzzKeyPrefix+rest, rv, err)
		}
		key, got, err := DecodeContinue(token, fuzzKeyPrefix)
		if err != nil {
			if !HasCode(err, ErrCodeInvalidContinue) {
				t.Fatalf("decoding our own token for %q: %v", rest, err)
			}
			// only keys that are no clean path (.., //, a trailing /) are refused
			if path.Clean("/"+rest) == "/"+rest && !strings.HasPrefix(rest, "/") {
				t.Fatalf("our own token for the clean key %q is refused: %v", rest, err)
			}
			return
		}
		if key != fuzzKeyPrefix+strings.TrimPrefix(rest, "/") || got != rv {
			t.Fatalf("token for %q at %d decodes to %q at %d", rest, rv, key, got)
		}
	})
}

func FuzzParseResourceVersion(f *testing.F) {
	for _, seed := range []string{"", "0", "1", "00", "+5", "-1", "9223372036854775807", "9223372036854775808",
		"18446744073709551615", " 5", "5 ", "0x10", "1e3", "١٢"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rv, err := ParseResourceVersion("/registry/pods/default/a", s)
		if err != nil {
			if !HasCode(err, ErrCodeInvalidObj) {
				t.Fatalf("ParseResourceVersion(%q): %v, want an InvalidObj error", s, err)
			}
			if _, uerr := strconv.ParseUint(s, 10, 64); uerr == nil {
				t.Fatalf("ParseResourceVersion(%q) refuses what the API server admits: %v", s, err)
			}
			return
		}
		if rv < 0 {
			t.Fatalf("ParseResourceVersion(%q) = %d, a negative revision", s, rv)
		}
		// exactly what the API server's query check admits (upstream's versioner) is a revision
		if _, err := strconv.ParseUint(s, 10, 64); err != nil && s != "" {
			t.Fatalf("ParseResourceVersion(%q) = %d, but it is no unsigned decimal number", s, rv)
		}
	})
}
