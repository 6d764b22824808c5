package storage

import (
	"fmt"
	"math"
	"strconv"
)

// ParseResourceVersion reads a resourceVersion parameter as an etcd revision; "" and "0" are
// 0. It reads what the API server's query check admits (any unsigned 64-bit decimal, as
// upstream's versioner): one beyond the largest revision etcd can have is that largest
// revision, which no store reaches, so the read is "too large" (504) as upstream's, never an
// error of the server's own. Anything else is an InvalidObj error on key.
func ParseResourceVersion(key, rv string) (int64, error) {
	if rv == "" || rv == "0" {
		return 0, nil
	}
	n, err := strconv.ParseUint(rv, 10, 64)
	if err != nil {
		return 0, NewError(ErrCodeInvalidObj, key, 0, fmt.Sprintf("invalid resource version: %q", rv))
	}
	if n > math.MaxInt64 {
		return math.MaxInt64, nil
	}
	return int64(n), nil
}
