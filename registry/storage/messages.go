package storage

import (
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"
)

// Upstream's wording of the errors a client sees when a revision is gone or not yet reached;
// clients, kubectl and conformance tests compare these strings.
const (
	// ExpiredListDetail is the Detail of an Expired list read at a compacted revision.
	ExpiredListDetail = "The resourceVersion for the provided list is too old."
	// InconsistentContinueDetail is the Detail of an Expired continued list.
	InconsistentContinueDetail = "The provided continue parameter is too old to display a consistent list result. " +
		"You can start a new list without the continue parameter, or use the continue token in this response to " +
		"retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - " +
		"objects that were created, modified, or deleted between the time the first chunk was returned and now may " +
		"show up in the list."
)

// NewTooOldResourceVersionError is the Expired error of a watch from revision requested when
// only revisions after oldest are still known.
func NewTooOldResourceVersionError(key string, requested, oldest int64) *Error {
	return NewError(ErrCodeExpired, key, requested, fmt.Sprintf("too old resource version: %d (%d)", requested, oldest))
}

// NewTooLargeResourceVersionError is the error of a read that asked for revision requested
// when the store is at current.
func NewTooLargeResourceVersionError(key string, requested, current int64) *Error {
	return NewError(ErrCodeTooLargeResourceVersion, key, current,
		fmt.Sprintf("Too large resource version: %d, current: %d", requested, current))
}

// WatchErrorEvent is the ERROR event that ends a watch because of err: a metav1.Status with
// 410 Expired for an Expired Error (what client-go's reflector relists on), 500 otherwise.
func WatchErrorEvent(err error) watch.Event {
	var status *apierrors.StatusError
	var se *Error
	if errors.As(err, &se) && se.Code == ErrCodeExpired {
		status = apierrors.NewResourceExpired(se.Detail)
	} else {
		status = apierrors.NewInternalError(err)
	}
	return watch.Event{Type: watch.Error, Object: &status.ErrStatus}
}
