#!/usr/bin/env bash
# Builds upstream's control plane v1.37.2 (kube-apiserver, kube-controller-manager,
# kube-scheduler) and kwok (simulated nodes for it) from the Go module proxy, for the
# side-by-side benches. No git, no registry.
# Usage: build.sh   (15-20 minutes cold on 2 cores; a second run with everything present does
#        nothing)
# Env:   UPSTREAM (cache folder, default $HOME/.cache/upstream-bench)  JOBS (go build -p,
#        default 2)  FORCE=1 rebuilds.
# Out:   $UPSTREAM/bin/{kube-apiserver,kube-controller-manager,kube-scheduler,kwok,kwok-stages.yaml}
set -euo pipefail
UPSTREAM=${UPSTREAM:-$HOME/.cache/upstream-bench}
JOBS=${JOBS:-2}
K8S_VERSION=v1.37.2
STAGING_VERSION=v0.37.2
KWOK_VERSION=v0.8.0
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
mkdir -p "$UPSTREAM/bin" "$UPSTREAM/mod"

have() { [ -z "${FORCE:-}" ] && [ -x "$UPSTREAM/bin/$1" ]; }
components=(kube-apiserver kube-controller-manager kube-scheduler)
missing=()
for c in "${components[@]}"; do have "$c" || missing+=("$c"); done
if [ ${#missing[@]} -gt 0 ]; then
  # k8s.io/kubernetes requires its staging modules at v0.0.0 with replace => ./staging/...,
  # which a dependent module does not inherit: a scratch module replaces each with its tag.
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  {
    printf 'module upstreambench\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$K8S_VERSION"
    grep -E '^\s+k8s.io/[a-z0-9-]+ v0.0.0$' "$gomod" | awk -v v="$STAGING_VERSION" '{print "\t"$1" => "$1" "v}'
    printf ')\n'
  } > "$UPSTREAM/mod/go.mod"
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for c in "${components[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done
    printf ')\n'
  } > "$UPSTREAM/mod/tools.go"
  ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=37 -X $p.gitTreeState=clean"
  done
  cd "$UPSTREAM/mod"
  go mod tidy
  for c in "${missing[@]}"; do
    echo ">>> $c"
    go build -mod=mod -p "$JOBS" -ldflags "$ldflags" -o "$UPSTREAM/bin/$c" "k8s.io/kubernetes/cmd/$c"
  done
fi
if ! have kwok; then
  echo ">>> kwok $KWOK_VERSION"
  GOBIN="$UPSTREAM/bin" go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
fi
# kwok's default stages, as kwokctl configures them: nodes Ready with a lease, pods running at
# once, deleted pods gone
if [ -n "${FORCE:-}" ] || [ ! -s "$UPSTREAM/bin/kwok-stages.yaml" ]; then
  stages=$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage
  [ -d "$stages" ] || go mod download "sigs.k8s.io/kwok@$KWOK_VERSION"
  for f in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
    pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
    echo ---; cat "$stages/$f.yaml"
  done > "$UPSTREAM/bin/kwok-stages.yaml"
fi
ls -l "$UPSTREAM/bin"
