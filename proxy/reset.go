package proxy

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// RemoveFromNode deletes what the proxy, the NetworkPolicy agent and the node-routes syncer
// of a node left in this network namespace when they could not clean after themselves (their
// process was killed): the tables `ip skiff` and `ip skiff-netpol` and the routes of
// DefaultRouteProtocol. Each is theirs by name or protocol; nothing else is touched. `skiff
// reset` runs it; without nft or ip installed there is nothing of theirs to remove.
func RemoveFromNode(ctx context.Context) error {
	var errs []error
	if _, err := exec.LookPath("nft"); err == nil {
		var tx strings.Builder
		for _, t := range []string{DefaultTable, DefaultNetworkPolicyTable} {
			// "add" first so that deleting an absent table is no error
			fmt.Fprintf(&tx, "add table ip %s\ndelete table ip %s\n", t, t)
		}
		if err := runNFT(ctx, []string{"nft"}, tx.String()); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := exec.LookPath("ip"); err == nil {
		out, err := exec.CommandContext(ctx, "ip", "-4", "route", "flush", "table", "main", "proto", strconv.Itoa(DefaultRouteProtocol)).CombinedOutput()
		if err != nil {
			errs = append(errs, fmt.Errorf("ip route flush proto %d: %w: %s", DefaultRouteProtocol, err, strings.TrimSpace(string(out))))
		}
	}
	return errors.Join(errs...)
}
