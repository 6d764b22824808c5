//go:build tools

// Package tools pins k8s.io/sample-apiserver in this module, so that `go build
// k8s.io/sample-apiserver` here builds upstream's own main package of the release go.mod names.
package tools

import _ "k8s.io/sample-apiserver"
