#!/usr/bin/env bash
# What the kubelet's tests need on the machine, installed idempotently: containerd (its CRI
# plugin), runc, the CNI plugins (bridge, host-local, loopback, portmap in /usr/lib/cni) and a
# static busybox from which the tests build their OCI image tarballs. Nothing is started here:
# each test that needs containerd starts its own under a temporary directory and stops it
# (kubelet/containerdtest), and skips with a message when it cannot.
set -euo pipefail

need=()
command -v containerd >/dev/null 2>&1 || need+=(containerd)
command -v runc >/dev/null 2>&1 || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
[ -x /bin/busybox ] || need+=(busybox-static)
# iproute2 for the tests' network checks; conntrack-free setups still need ip.
command -v ip >/dev/null 2>&1 || need+=(iproute2)

if [ ${#need[@]} -gt 0 ]; then
	echo "kubelet-deps: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# Pod traffic leaves the bridge through the host.
sysctl -qw net.ipv4.ip_forward=1 >/dev/null 2>&1 || true
echo "kubelet-deps: containerd $(containerd --version 2>/dev/null | awk '{print $3}'), runc $(runc --version 2>/dev/null | awk 'NR==1{print $3}'), CNI in /usr/lib/cni"
