#!/usr/bin/env bash
# Runs upstream's own conformance specs (e2e.test v1.37.2) against a fresh `skiff up` on this
# machine and writes conformance/UPSTREAM.md. Builds or reuses (build.sh, images.sh) upstream's
# binaries and the images its specs run, starts `skiff images serve` as the registry mirror of
# every registry (specs that pull with imagePullPolicy Always) and `skiff up` with those images,
# runs every [Conformance] spec that is not [Serial] or [Disruptive] in parallel, then the
# [Serial] ones with one process, and stops everything it started.
# Usage: run.sh [SKIFF-BINARY]   (default bin/skiff; `make upstream-conformance` builds it)
# Env:   E2E (cache, default $HOME/.cache/upstream-e2e)  OUT (reports, default $E2E/report-DATE)
#        NODES (parallel processes, default 6)  TMO (minutes per pass, default 40)
#        FOCUS (ginkgo regex instead of [Conformance], e.g. 'Pods should'; then UPSTREAM.md is
#        not written: a partial run is not the record)  SERIAL=0 skips the serial pass.
#        PORT (API server, default 16443), KUBELET_PORT (default 20250), REGISTRY (default
#        127.0.0.1:15000)
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
E2E=${E2E:-$HOME/.cache/upstream-e2e}
export E2E
SKIFF=$(readlink -f "${1:-$REPO/bin/skiff}")
OUT=${OUT:-$E2E/report-$(date +%Y%m%d-%H%M%S)}
NODES=${NODES:-6}
TMO=${TMO:-40}
PORT=${PORT:-16443}
KUBELET_PORT=${KUBELET_PORT:-20250}
REGISTRY=${REGISTRY:-127.0.0.1:15000}
[ -x "$SKIFF" ] || { echo "no skiff binary at $SKIFF: make build" >&2; exit 1; }
mkdir -p "$OUT"
started=$(date +%s)

echo "== upstream binaries and images (cached in $E2E)"
"$HERE/build.sh" || exit 1
"$HERE/images.sh" "$E2E/images" || exit 1

# a short data dir: containerd's socket path must fit in 107 bytes
DATA=$(mktemp -d /tmp/skiff-e2e-XXXX)
pids=()
cleanup() {
  echo "== stopping skiff up and the registry"
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for _ in $(seq 120); do kill -0 "$p" 2>/dev/null || break; sleep 1; done
    kill -KILL "$p" 2>/dev/null
  done
  rm -rf "$DATA"
}
trap cleanup EXIT

echo "== registry mirror on $REGISTRY, skiff up on :$PORT (data $DATA, log $OUT/skiff-up.log)"
"$SKIFF" images serve --address "$REGISTRY" "$E2E"/images/*.tar > "$OUT/registry.log" 2>&1 &
pids+=($!)
"$SKIFF" up --data-dir "$DATA" --port "$PORT" --kubelet-port "$KUBELET_PORT" \
  --image-dir "$E2E/images" --registry-mirror "*=http://$REGISTRY" > "$OUT/skiff-up.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do
  grep -q "skiff is ready" "$OUT/skiff-up.log" && break
  kill -0 "${pids[1]}" 2>/dev/null || { echo "skiff up exited:"; tail -20 "$OUT/skiff-up.log"; exit 1; }
  sleep 1
done
grep -q "skiff is ready" "$OUT/skiff-up.log" || { echo "skiff up did not get ready"; tail -20 "$OUT/skiff-up.log"; exit 1; }
KCFG=$DATA/kubeconfig
# the specs create pods at once: wait until the node is Ready and the default account exists
for _ in $(seq 120); do [ -n "$("$E2E/bin/kubectl" --kubeconfig "$KCFG" get nodes -o name 2>/dev/null)" ] && break; sleep 1; done
"$E2E/bin/kubectl" --kubeconfig "$KCFG" wait --for=condition=Ready node --all --timeout=5m >/dev/null
for _ in $(seq 120); do "$E2E/bin/kubectl" --kubeconfig "$KCFG" get serviceaccount default >/dev/null 2>&1 && break; sleep 1; done

# ginkgo PASS REPORT NODES FOCUS SKIP: one pass of e2e.test
ginkgo() {
  local pass=$1 report=$2 nodes=$3 focus=$4 skip=$5
  echo "== $pass: focus '$focus', skip '$skip', $nodes process(es), at most $TMO minutes (log $OUT/$pass.log)"
  (cd "$OUT" && timeout "${TMO}m" "$E2E/bin/ginkgo" --nodes="$nodes" --timeout=$((TMO-1))m --no-color \
    --focus="$focus" ${skip:+--skip="$skip"} --json-report="$report" --output-dir="$OUT" \
    "$E2E/bin/e2e.test" -- --kubeconfig="$KCFG" --provider=skeleton --disable-log-dump \
    --report-dir="$OUT" --kubectl-path="$E2E/bin/kubectl" > "$OUT/$pass.log" 2>&1)
  echo "   ginkgo exit $?; $(grep -E '^Ran [0-9]+ of' "$OUT/$pass.log" | tail -1)"
}
reports=()
if [ -n "${FOCUS:-}" ]; then
  ginkgo focused report.json "$NODES" "$FOCUS" '\[Disruptive\]'
  reports+=("$OUT/report.json")
else
  ginkgo parallel report.json "$NODES" '\[Conformance\]' '\[Serial\]|\[Disruptive\]'
  reports+=("$OUT/report.json")
  if [ "${SERIAL:-1}" != 0 ]; then
    ginkgo serial report-serial.json 1 '\[Conformance\].*\[Serial\]|\[Serial\].*\[Conformance\]' '\[Disruptive\]'
    reports+=("$OUT/report-serial.json")
  fi
fi

minutes=$(( ($(date +%s) - started + 59) / 60 ))
machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release; echo "$PRETTY_NAME"), kernel $(uname -r), $(containerd --version 2>/dev/null | awk '{print "containerd", $3}'), $(runc --version 2>/dev/null | head -1)"
commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
printf '{"date": "%s", "commit": "%s", "minutes": %s, "machine": "%s", "nodes": %s}\n' \
  "$(date -u +'%Y-%m-%d %H:%M UTC')" "$commit" "$minutes" "$machine" "$NODES" > "$OUT/runinfo.json"
target=$REPO/conformance/UPSTREAM.md
[ -n "${FOCUS:-}" ] && target=$OUT/UPSTREAM.md
python3 "$HERE/report.py" "$target" "$OUT/runinfo.json" "${reports[@]}"
echo "failures: $OUT/failed.txt; logs: $OUT"
