package apis

import (
	"fmt"
	"runtime"

	"k8s.io/apimachinery/pkg/version"
)

// Version of skiff itself, and of the Kubernetes API it serves.
const (
	SkiffVersion      = "0.1.0"
	KubernetesMajor   = "1"
	KubernetesMinor   = "37"
	kubernetesRelease = "v1.37.0"
)

// VersionInfo is what /version answers and `skiff version` prints: the Kubernetes version
// whose API skiff serves, with skiff's own version as build metadata.
func VersionInfo() version.Info {
	return version.Info{
		Major:      KubernetesMajor,
		Minor:      KubernetesMinor,
		GitVersion: fmt.Sprintf("%s+skiff.%s", kubernetesRelease, SkiffVersion),
		GitCommit:  "",
		// upstream reports "clean" or "dirty"; skiff is built from a module, not a tree
		GitTreeState: "clean",
		BuildDate:    "1970-01-01T00:00:00Z",
		GoVersion:    runtime.Version(),
		Compiler:     runtime.Compiler,
		Platform:     fmt.Sprintf("%s/%s", runtime.GOOS, runtime.GOARCH),
	}
}
