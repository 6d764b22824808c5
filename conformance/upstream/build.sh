#!/usr/bin/env bash
# Builds upstream Kubernetes' own conformance binary (e2e.test v1.37.2), the ginkgo CLI it pins,
# kubectl 1.37.2 and agnhost (upstream's test-image tool) from the Go module proxy, the two
# stand-in binaries of this directory (pause, nnp), and the two servers of the Aggregator spec's
# pod: k8s.io/sample-apiserver v0.37.2 (tools/sample-apiserver) and etcd (go.etcd.io/etcd/server/v3
# at the version skiff's go.mod names). Every binary is static (CGO_ENABLED=0): images.sh puts
# them in images with no C library. No git, no registry.
# Usage: build.sh   (about 10 minutes cold on 2 cores, ~6 GB of Go build cache; a second run
#        with everything present does nothing)
# Env:   E2E (cache folder, default $HOME/.cache/upstream-e2e)  JOBS (go build -p, default 2)
#        FORCE=1 rebuilds.
# Out:   $E2E/bin/{e2e.test,ginkgo,kubectl,agnhost,pause,nnp,sample-apiserver,etcd}
set -euo pipefail
E2E=${E2E:-$HOME/.cache/upstream-e2e}
JOBS=${JOBS:-2}
K8S_VERSION=v1.37.2
STAGING_VERSION=v0.37.2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
mkdir -p "$E2E/bin" "$E2E/mod"

have() { [ -z "${FORCE:-}" ] && [ -x "$E2E/bin/$1" ]; }
# the Aggregator spec's servers, each in a module that pins it; added after the others, so a
# cache that has those gets only these two
if ! have sample-apiserver; then
  echo ">>> sample-apiserver"
  (cd "$REPO/tools/sample-apiserver" && go build -p "$JOBS" -trimpath -ldflags '-s -w' -o "$E2E/bin/sample-apiserver" k8s.io/sample-apiserver)
fi
if ! have etcd; then
  echo ">>> etcd"
  (cd "$REPO" && go build -p "$JOBS" -trimpath -ldflags '-s -w' -o "$E2E/bin/etcd" go.etcd.io/etcd/server/v3)
fi
if have e2e.test && have ginkgo && have kubectl && have agnhost && have pause && have nnp; then
  echo "upstream e2e binaries present in $E2E/bin (FORCE=1 rebuilds)"
  exit 0
fi

# k8s.io/kubernetes requires its staging modules at v0.0.0 with replace => ./staging/..., which
# a dependent module does not inherit: a scratch module replaces each with its published tag.
gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
{
  printf 'module upstreame2e\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$K8S_VERSION"
  grep -E '^\s+k8s.io/[a-z0-9-]+ v0.0.0$' "$gomod" | awk -v v="$STAGING_VERSION" '{print "\t"$1" => "$1" "v}'
  printf ')\n'
} > "$E2E/mod/go.mod"
printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kubectl"\n\t_ "k8s.io/kubernetes/test/e2e"\n\t_ "k8s.io/kubernetes/test/images/agnhost"\n)\n' > "$E2E/mod/tools.go"
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=37 -X $p.gitTreeState=clean"
done
(
  cd "$E2E/mod"
  go mod tidy
  echo ">>> e2e.test"; go test -mod=mod -c -p "$JOBS" -ldflags "$ldflags" -o "$E2E/bin/e2e.test" k8s.io/kubernetes/test/e2e
  echo ">>> ginkgo";   go build -mod=mod -p "$JOBS" -o "$E2E/bin/ginkgo" github.com/onsi/ginkgo/v2/ginkgo
  echo ">>> kubectl";  go build -mod=mod -p "$JOBS" -ldflags "$ldflags" -o "$E2E/bin/kubectl" k8s.io/kubernetes/cmd/kubectl
  echo ">>> agnhost";  go build -mod=mod -p "$JOBS" -ldflags "-s -w" -o "$E2E/bin/agnhost" k8s.io/kubernetes/test/images/agnhost
)
for x in pause nnp; do
  echo ">>> $x"; (cd "$HERE" && go build -ldflags '-s -w' -o "$E2E/bin/$x" "./$x")
done
ls -l "$E2E/bin"
