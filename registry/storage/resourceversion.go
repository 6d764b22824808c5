package storage

import (
	"fmt"
	"strconv"
)

// ParseResourceVersion reads a resourceVersion parameter as an etcd revision; "" and "0" are
// 0. Anything else that is not a revision is an InvalidObj error on key.
func ParseResourceVersion(key, rv string) (int64, error) {
	if rv == "" || rv == "0" {
		return 0, nil
	}
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n < 0 {
		return 0, NewError(ErrCodeInvalidObj, key, 0, fmt.Sprintf("invalid resource version: %q", rv))
	}
	return n, nil
}
