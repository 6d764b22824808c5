package storage

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path"
	"strings"
)

// continueToken is the decoded form of a list's continue parameter, byte for byte upstream's,
// so that a token from skiff continues on kube-apiserver and the other way round.
type continueToken struct {
	APIVersion      string `json:"v"`
	ResourceVersion int64  `json:"rv"`
	StartKey        string `json:"start"`
}

const continueTokenVersion = "meta.k8s.io/v1"

// EncodeContinue returns the continue token of a list that resumes at key (a full etcd key
// under keyPrefix, usually the last returned key + "\x00") and is read at resourceVersion.
// resourceVersion -1 means "at the latest revision", as upstream offers after compaction.
func EncodeContinue(key, keyPrefix string, resourceVersion int64) (string, error) {
	nextKey := strings.TrimPrefix(key, keyPrefix)
	if nextKey == key {
		return "", fmt.Errorf("unable to encode next field: the key %q and key prefix %q do not match", key, keyPrefix)
	}
	out, err := json.Marshal(&continueToken{APIVersion: continueTokenVersion, ResourceVersion: resourceVersion, StartKey: nextKey})
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(out), nil
}

// DecodeContinue returns the full etcd key a continued list starts at and the revision it is
// read at (-1: the latest). It fails with an InvalidContinue Error on a malformed token, and
// never returns a key outside keyPrefix (a token cannot walk up the key hierarchy).
func DecodeContinue(continueValue, keyPrefix string) (fromKey string, rv int64, err error) {
	invalid := func(detail string) error {
		return NewError(ErrCodeInvalidContinue, keyPrefix, 0, "continue key is not valid: "+detail)
	}
	data, err := base64.RawURLEncoding.DecodeString(continueValue)
	if err != nil {
		return "", 0, invalid(err.Error())
	}
	var c continueToken
	if err := json.Unmarshal(data, &c); err != nil {
		return "", 0, invalid(err.Error())
	}
	if c.APIVersion != continueTokenVersion {
		return "", 0, invalid(fmt.Sprintf("server does not recognize this encoded version %q", c.APIVersion))
	}
	if c.ResourceVersion == 0 {
		return "", 0, invalid("incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
	}
	if len(c.StartKey) == 0 {
		return "", 0, invalid("encoded start key empty (version meta.k8s.io/v1)")
	}
	// path.Clean refuses "..": the key stays under keyPrefix once the prefix is prepended.
	key := c.StartKey
	if !strings.HasPrefix(key, "/") {
		key = "/" + key
	}
	if cleaned := path.Clean(key); cleaned != key {
		return "", 0, invalid(c.StartKey)
	}
	return keyPrefix + key[1:], c.ResourceVersion, nil
}

// ExpiredContinueError is the Expired error of a continued list whose revision was compacted.
// Continue, when not empty, resumes the same list from the same key at the latest revision (an
// inconsistent list), which upstream returns in the 410 Status's metadata.continue.
type ExpiredContinueError struct {
	Err      *Error
	Continue string
}

func (e *ExpiredContinueError) Error() string { return e.Err.Error() }

// Unwrap lets HasCode(err, ErrCodeExpired) see the Error.
func (e *ExpiredContinueError) Unwrap() error { return e.Err }
