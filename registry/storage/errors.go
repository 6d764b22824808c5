package storage

import (
	"errors"
	"fmt"
)

// ErrorCode says what kind of storage failure an Error is.
type ErrorCode int

const (
	ErrCodeKeyNotFound ErrorCode = iota + 1
	ErrCodeKeyExists
	ErrCodeConflict // a precondition or the compare-and-swap failed
	ErrCodeInvalidObj
	ErrCodeExpired                 // the requested revision was compacted
	ErrCodeTooLargeResourceVersion // the requested revision is not reached in time
	ErrCodeInvalidContinue         // a malformed continue token
	ErrCodeRequestTooLarge         // the write is larger than the store takes in one request
)

// Error is a storage failure on a key.
type Error struct {
	Code ErrorCode
	Key  string
	// ResourceVersion is the revision involved, when there is one (the current one for
	// TooLargeResourceVersion, the requested one for Expired).
	ResourceVersion int64
	// Detail is a human-readable explanation, as upstream words it where upstream shows it.
	Detail string
}

func (e *Error) Error() string {
	return fmt.Sprintf("storage error %d on %q: %s", e.Code, e.Key, e.Detail)
}

// NewError builds an Error.
func NewError(code ErrorCode, key string, rv int64, detail string) *Error {
	return &Error{Code: code, Key: key, ResourceVersion: rv, Detail: detail}
}

// HasCode reports whether err is (or wraps) a storage Error with the given code.
func HasCode(err error, code ErrorCode) bool {
	var se *Error
	return errors.As(err, &se) && se.Code == code
}
