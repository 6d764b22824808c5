// Package conformance is skiff's conformance-style suite: ginkgo specs that drive a cluster
// through client-go and a stock kubectl, the way upstream's e2e conformance tests do, and assert
// only what a user of Kubernetes would observe.
//
// The specs live in this package's tests. Run them against any cluster:
//
//	go test ./conformance -args --kubeconfig=PATH [--kubectl=PATH]
//
// With neither --kubeconfig nor KUBECONFIG the suite builds skiff, starts `skiff up` in a
// temporary data dir and a network namespace of its own, with real containers on images it
// builds from busybox-static where the host allows, runs against it and stops it at the end.
//
// A spec must never depend on skiff's internals: every one must also pass on a real Kubernetes
// cluster. A spec that needs something the cluster lacks (a real container runtime, a
// scheduler, a kubectl binary) skips and says what it needs.
package conformance
