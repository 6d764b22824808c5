// Command kubectl is stock kubectl built from the k8s.io/kubectl release it names in go.mod
// (the newest, 1.37), for testing skiff against the kubectl of the API version it serves.
// The machines carry kubectl 1.27–1.33 prebuilt; nothing newer can be downloaded, so CI
// builds this one into bin/kubectl-1.37 (`.ci/run`) and apiserver/kubectl_test.go runs it.
//
// This is the body of upstream's k8s.io/kubernetes/cmd/kubectl/kubectl.go, which is no
// more than k8s.io/kubectl's pkg/cmd wrapped by component-base's CLI runner. It lives in its
// own module so that kubectl's dependencies (cobra, kustomize, …) stay out of skiff's.
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"

	// Client auth plugins (exec, OIDC) as in upstream's binary.
	_ "k8s.io/client-go/plugin/pkg/client/auth"
)

func main() {
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		// Pretty-print the error and exit with an error.
		util.CheckErr(err)
	}
}
