package etcd3

import (
	"errors"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/skiff-dev/skiff/registry/storage"
)

// writeError is the error of a failed put of key: storage's RequestTooLarge when etcd refused
// the request for its size (beyond the server's --max-request-bytes, or beyond the gRPC message
// size the client may send), so that the API can retry without managed fields and answer 413;
// otherwise err, wrapped.
func writeError(op, key string, err error) error {
	if isRequestTooLarge(err) {
		return &storage.Error{Code: storage.ErrCodeRequestTooLarge, Key: key, Detail: err.Error()}
	}
	return fmt.Errorf("%s %q: %w", op, key, err)
}

func isRequestTooLarge(err error) bool {
	if errors.Is(err, rpctypes.ErrRequestTooLarge) || errors.Is(err, rpctypes.ErrGRPCRequestTooLarge) {
		return true
	}
	if st, ok := status.FromError(err); ok && st.Code() == codes.ResourceExhausted &&
		strings.Contains(st.Message(), "trying to send message larger than max") {
		return true
	}
	return false
}
