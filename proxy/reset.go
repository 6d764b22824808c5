package proxy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// RemoveFromNode deletes what the proxy, the NetworkPolicy agent and the node-routes syncer
// of a node left in this network namespace when they could not clean after themselves (their
// process was killed), or left on purpose (the syncer's routes outlive it): the
// tables `ip skiff`, `ip6 skiff` (a dual-stack proxy's), `ip skiff-netpol` and
// `ip6 skiff-netpol` (a dual-stack agent's), `ip skiff-podnet` and `ip6 skiff-podnet` (the
// syncer's pod network masquerade) and the routes of DefaultRouteProtocol of both IP
// families. Each is theirs by name or protocol; nothing else is touched. `skiff reset` runs
// it; without nft or ip installed there is nothing of theirs to remove.
func RemoveFromNode(ctx context.Context) error {
	var errs []error
	if _, err := exec.LookPath("nft"); err == nil {
		var tx strings.Builder
		tables := []string{DefaultTable, DefaultNetworkPolicyTable, DefaultPodNetworkTable}
		for _, t := range tables {
			// "add" first so that deleting an absent table is no error
			fmt.Fprintf(&tx, "add table ip %s\ndelete table ip %s\n", t, t)
		}
		if ipv6Enabled() {
			for _, t := range tables {
				fmt.Fprintf(&tx, "add table ip6 %s\ndelete table ip6 %s\n", t, t)
			}
		}
		if err := runNFT(ctx, []string{"nft"}, tx.String()); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := exec.LookPath("ip"); err == nil {
		versions := []string{"-4"}
		if ipv6Enabled() {
			versions = append(versions, "-6")
		}
		for _, version := range versions {
			out, err := exec.CommandContext(ctx, "ip", version, "route", "flush", "table", "main", "proto", strconv.Itoa(DefaultRouteProtocol)).CombinedOutput()
			if err != nil {
				errs = append(errs, fmt.Errorf("ip %s route flush proto %d: %w: %s", version, DefaultRouteProtocol, err, strings.TrimSpace(string(out))))
			}
		}
	}
	return errors.Join(errs...)
}

// ipv6Enabled says whether this kernel has IPv6, without which there is no IPv6 table or route
// to remove.
func ipv6Enabled() bool {
	_, err := os.Stat("/proc/sys/net/ipv6")
	return err == nil
}
