// Package controllers holds what every skiff controller is built from, as upstream's
// pkg/controller does: the work queue and its workers, metrics and Events, expectations of
// pending creations and deletions, ControllerRef adoption and release, pod creation from a
// template, and the order in which pods are given up. Each controller is a package beneath this
// one (replicaset, garbagecollector, namespace, ...) with a constructor that takes informers and
// a client, a Run(ctx, workers), and a sync(ctx, key) error that holds its whole logic.
//
// A controller acts on the cluster only through the API, as any client does: it never reaches
// into the API server's memory or etcd, and it keeps no state that the API cannot rebuild.
package controllers
