// Package flowcontrol is API priority and fairness for skiff's API server: it classifies a
// request by the FlowSchemas to a priority level and flow, and holds it in that level's
// shuffle-sharded fair queues until the level has seats for it, or rejects it.
//
// It decides only whether and when a request runs; it never reads or writes the store, never
// writes a response and never serves the flowcontrol API objects (the server hands it their
// current lists). Facts and figures follow upstream's k8s.io/apiserver/pkg/util/flowcontrol;
// its code is not used.
package flowcontrol
