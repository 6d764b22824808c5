#!/usr/bin/env bash
# Runs upstream's own conformance specs (e2e.test v1.37.2) against a fresh `skiff up` on this
# machine and writes conformance/UPSTREAM.md. Builds or reuses (build.sh, images.sh) upstream's
# binaries and the images its specs run, starts `skiff images serve` as the registry mirror of
# every registry (specs that pull with imagePullPolicy Always) and `skiff up` with those images,
# runs every [Conformance] spec that is not [Serial] or [Disruptive] in parallel, then the
# [Serial] ones with one process, and stops everything it started.
# With AGENTS=N (default 1) it first joins N agents to that skiff up (`skiff agent`, each a
# "machine" of its own: a network namespace whose veth is a port of a bridge, the segment
# AGENT_NET.0/24; skiff up's node has AGENT_NET.1, agent i AGENT_NET.(i+1)), so that
# the specs that need two nodes, or spread pods over nodes, run as upstream means them.
# Usage: run.sh [SKIFF-BINARY]   (default bin/skiff; `make upstream-conformance` builds it)
# Env:   E2E (cache, default $HOME/.cache/upstream-e2e)  OUT (reports, default $E2E/report-DATE)
#        NODES (parallel processes, default 6)  TMO (minutes per pass, default 40)
#        FOCUS (ginkgo regex instead of [Conformance], e.g. 'Pods should'; then UPSTREAM.md is
#        not written: a partial run is not the record)  SERIAL=0 skips the serial pass.
#        PORT (API server, default 16443), KUBELET_PORT (default 20250), REGISTRY (default
#        127.0.0.1:15000; AGENT_NET.1:15000 with agents, where they reach it)
#        AGENTS (agent nodes, default 1; 0: skiff up's node alone), AGENT_NET (default 10.79.0)
set -uo pipefail
# all of it in one function: bash then reads the whole script before running any of it, so
# editing the file during a run (it takes an hour) cannot change what the run does
main() {
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
AGENTS=${AGENTS:-1}
AGENT_NET=${AGENT_NET:-10.79.0}
if [ "$AGENTS" -gt 0 ]; then
  REGISTRY=${REGISTRY:-$AGENT_NET.1:15000}
else
  REGISTRY=${REGISTRY:-127.0.0.1:15000}
fi
[ -x "$SKIFF" ] || { echo "no skiff binary at $SKIFF: make build" >&2; exit 1; }
mkdir -p "$OUT"
started=$(date +%s)
# the commit the skiff binary is meant to be; recorded now, not when the run ends
commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
load_at_start=$(cut -d" " -f1-3 /proc/loadavg)

echo "== upstream binaries and images (cached in $E2E)"
"$HERE/build.sh" || exit 1
"$HERE/images.sh" "$E2E/images" || exit 1

# a short data dir: containerd's socket path must fit in 107 bytes
DATA=$(mktemp -d /tmp/skiff-e2e-XXXX)
pids=()
# the agents' segment, namespaces and data dirs, named by this run (an interface name has at
# most 15 characters). The segment's switch is a bridge in a namespace of its own, LAN, and this
# side joins it by a veth, as a machine's NIC joins a LAN: a bridge here would be one with
# br_netfilter, which hands a packet DNATed back onto the bridge (a NodePort of this node whose
# endpoint is an agent's pod) straight to the agent before it is masqueraded, and the agent drops
# it as coming from its own address. No machine's NIC does that.
LINK=ske2e$$
LAN=skiff-e2e-$$-lan
agent_ns() { echo "skiff-e2e-$$-agent-$1"; }
agent_data() { echo "$DATA-agent-$1"; }
agent_node() { echo "skiff-agent-$1"; }
ginkgo_pid=
cleanup() {
  if [ -n "$ginkgo_pid" ]; then
    echo "== stopping ginkgo"
    kill -TERM "$ginkgo_pid" 2>/dev/null # timeout passes it on to ginkgo's process group
    for _ in $(seq 60); do kill -0 "$ginkgo_pid" 2>/dev/null || break; sleep 1; done
    kill -KILL "$ginkgo_pid" 2>/dev/null
  fi
  echo "== stopping skiff up, its agents and the registry"
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for _ in $(seq 120); do kill -0 "$p" 2>/dev/null || break; sleep 1; done
    kill -KILL "$p" 2>/dev/null
  done
  for i in $(seq "$AGENTS"); do
    local ns; ns=$(agent_ns "$i")
    [ -e "/run/netns/$ns" ] || continue
    # in the agent's namespace: reset removes the node's nftables tables and routes there
    if [ -d "$(agent_data "$i")" ] && ! nsenter --net="/run/netns/$ns" "$SKIFF" reset --data-dir "$(agent_data "$i")" >> "$OUT/agent-$i.log" 2>&1; then
      echo "skiff reset of $(agent_data "$i") failed (its data dir stays): $(tail -1 "$OUT/agent-$i.log")"
    fi
    ip netns del "$ns" # its veth, and with it the switch's end
  done
  # this side's veth and the routes through it, then the switch
  ip link del "$LINK" 2>/dev/null
  [ -e "/run/netns/$LAN" ] && ip netns del "$LAN"
  rm -rf "$DATA"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$AGENTS" -gt 0 ]; then
  echo "== $AGENTS agent machine(s): $LINK $AGENT_NET.1/24 on the switch of namespace $LAN, network namespaces $(agent_ns 1)…"
  ip netns add "$LAN" &&
    ip -n "$LAN" link add switch type bridge &&
    ip -n "$LAN" link set switch up &&
    ip link add "$LINK" type veth peer name host netns "$LAN" &&
    ip -n "$LAN" link set host master switch up &&
    ip addr add "$AGENT_NET.1/24" dev "$LINK" && ip link set "$LINK" up || exit 1
  for i in $(seq "$AGENTS"); do
    ns=$(agent_ns "$i")
    ip netns add "$ns" &&
      ip link add "agent$i" netns "$LAN" type veth peer name eth0 netns "$ns" &&
      ip -n "$LAN" link set "agent$i" master switch up &&
      ip -n "$ns" link set lo up &&
      ip -n "$ns" addr add "$AGENT_NET.$((i + 1))/24" dev eth0 &&
      ip -n "$ns" link set eth0 up &&
      ip -n "$ns" route add default via "$AGENT_NET.1" || exit 1
  done
  # the node's address on the agents' segment: they route its pods, reach its DNS and join
  # the API server through it
  node_flags=(--node-ip "$AGENT_NET.1" --advertise-address "$AGENT_NET.1")
else
  node_flags=()
fi

echo "== registry mirror on $REGISTRY, skiff up on :$PORT (data $DATA, log $OUT/skiff-up.log)"
"$SKIFF" images serve --address "$REGISTRY" "$E2E"/images/*.tar > "$OUT/registry.log" 2>&1 &
pids+=($!)
"$SKIFF" up --data-dir "$DATA" --port "$PORT" --kubelet-port "$KUBELET_PORT" \
  --image-dir "$E2E/images" --registry-mirror "*=http://$REGISTRY" "${node_flags[@]}" > "$OUT/skiff-up.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do
  grep -q "skiff is ready" "$OUT/skiff-up.log" && break
  kill -0 "${pids[1]}" 2>/dev/null || { echo "skiff up exited:"; tail -20 "$OUT/skiff-up.log"; exit 1; }
  sleep 1
done
grep -q "skiff is ready" "$OUT/skiff-up.log" || { echo "skiff up did not get ready"; tail -20 "$OUT/skiff-up.log"; exit 1; }
KCFG=$DATA/kubeconfig
kubectl() { "$E2E/bin/kubectl" --kubeconfig "$KCFG" "$@"; }

if [ "$AGENTS" -gt 0 ]; then
  join=$("$SKIFF" token create --kubeconfig "$KCFG") || { echo "skiff token create failed"; exit 1; }
  read -r -a join_flags <<< "${join#skiff agent }"
  for i in $(seq "$AGENTS"); do
    echo "== agent $(agent_node "$i") at $AGENT_NET.$((i + 1)) (data $(agent_data "$i"), log $OUT/agent-$i.log)"
    # nsenter execs skiff: its pid is the agent's
    nsenter --net="/run/netns/$(agent_ns "$i")" "$SKIFF" agent "${join_flags[@]}" \
      --data-dir "$(agent_data "$i")" --node-name "$(agent_node "$i")" --node-ip "$AGENT_NET.$((i + 1))" \
      --image-dir "$E2E/images" --registry-mirror "*=http://$REGISTRY" > "$OUT/agent-$i.log" 2>&1 &
    pids+=($!)
  done
  # each agent's kubelet asks for its serving certificate (the API server's logs, exec and
  # port-forward reach it with it), which a person approves, as upstream's
  for i in $(seq "$AGENTS"); do
    node=$(agent_node "$i")
    for _ in $(seq 300); do
      [ -s "$(agent_data "$i")/kubelet/pki/kubelet-server-current.pem" ] && break
      kubectl get csr -o jsonpath='{range .items[?(@.spec.signerName=="kubernetes.io/kubelet-serving")]}{.metadata.name} {.spec.username} {.status.conditions[*].type}{"\n"}{end}' 2>/dev/null |
        awk -v user="system:node:$node" '$2 == user && NF == 2 {print $1}' |
        while read -r csr; do kubectl certificate approve "$csr"; done
      sleep 1
    done
    [ -s "$(agent_data "$i")/kubelet/pki/kubelet-server-current.pem" ] ||
      { echo "agent $node has no serving certificate"; tail -20 "$OUT/agent-$i.log"; exit 1; }
  done
fi

# the specs create pods at once: wait until every node is Ready and the default account exists
for _ in $(seq 300); do [ "$(kubectl get nodes -o name 2>/dev/null | wc -l)" -gt "$AGENTS" ] && break; sleep 1; done
kubectl wait --for=condition=Ready node --all --timeout=5m >/dev/null || { echo "not every node got Ready:"; kubectl get nodes -o wide; exit 1; }
echo "== nodes"
kubectl get nodes -o wide | tee "$OUT/nodes.txt"
for _ in $(seq 120); do kubectl get serviceaccount default >/dev/null 2>&1 && break; sleep 1; done

# ginkgo PASS REPORT NODES FOCUS SKIP: one pass of e2e.test
ginkgo() {
  local pass=$1 report=$2 nodes=$3 focus=$4 skip=$5
  echo "== $pass: focus '$focus', skip '$skip', $nodes process(es), at most $TMO minutes (log $OUT/$pass.log)"
  # in the background, waited for: an interrupt then stops the wait at once (timeout runs
  # ginkgo in a process group of its own, which a Ctrl-C does not reach; cleanup stops it)
  (cd "$OUT" && exec timeout "${TMO}m" "$E2E/bin/ginkgo" --nodes="$nodes" --timeout=$((TMO-1))m --no-color \
    --focus="$focus" ${skip:+--skip="$skip"} --json-report="$report" --output-dir="$OUT" \
    "$E2E/bin/e2e.test" -- --kubeconfig="$KCFG" --provider=skeleton --disable-log-dump \
    --report-dir="$OUT" --kubectl-path="$E2E/bin/kubectl") > "$OUT/$pass.log" 2>&1 &
  ginkgo_pid=$!
  wait "$ginkgo_pid"
  local rc=$?
  ginkgo_pid=
  echo "   ginkgo exit $rc; $(grep -E '^Ran [0-9]+ of' "$OUT/$pass.log" | tail -1)"
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
machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release; echo "$PRETTY_NAME"), kernel $(uname -r), $(containerd --version 2>/dev/null | awk '{print "containerd", $3}'), $(runc --version 2>/dev/null | head -1); load average $load_at_start at the start, $(cut -d" " -f1-3 /proc/loadavg) at the end"
printf '{"date": "%s", "commit": "%s", "minutes": %s, "machine": "%s", "nodes": %s, "agents": %s}\n' \
  "$(date -u +'%Y-%m-%d %H:%M UTC')" "$commit" "$minutes" "$machine" "$NODES" "$AGENTS" > "$OUT/runinfo.json"
target=$REPO/conformance/UPSTREAM.md
[ -n "${FOCUS:-}" ] && target=$OUT/UPSTREAM.md
python3 "$HERE/report.py" "$target" "$OUT/runinfo.json" "${reports[@]}"
echo "failures: $OUT/failed.txt; logs: $OUT"
}
main "$@"; exit  # on one line: bash has read all of it before main runs, edits during the run cannot change what follows
