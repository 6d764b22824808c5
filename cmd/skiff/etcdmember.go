package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiff-dev/skiff/registry/storage/etcd3"
)

// newEtcdMemberCommand lists and removes the etcd members of HA servers (skiff up
// --cluster-init and --server), through the etcd of the server running on this machine.
func newEtcdMemberCommand() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "etcd-member",
		Short: "List or remove the etcd members of a cluster of servers",
		Args:  cobra.NoArgs,
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", defaultDataDir(), "the data directory of a server running on this machine")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the etcd cluster's members: NAME PEER_URLS CLIENT_URLS",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return listEtcdMembers(cmd.Context(), dataDir, cmd.OutOrStdout())
		},
	}
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a server's etcd member (its node name) from the cluster",
		Long: `Remove the etcd member NAME (a server's node name) from the cluster, as 'etcdctl member
remove': do it before or after stopping that server for good ('skiff reset' on its machine),
while the other members still have quorum. A server started again with a removed member's
data directory cannot rejoin: reset it and join it anew with --server.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			etcdDir := filepath.Join(dataDir, "etcd")
			endpoints, err := etcd3.EmbeddedEndpoints(etcdDir)
			if err != nil {
				return fmt.Errorf("finding this machine's etcd: %w", err)
			}
			if err := etcd3.RemoveMember(cmd.Context(), etcdDir, args[0], endpoints); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed etcd member %s (if it was there)\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(list, remove)
	return cmd
}

func listEtcdMembers(ctx context.Context, dataDir string, stdout io.Writer) error {
	etcdDir := filepath.Join(dataDir, "etcd")
	endpoints, err := etcd3.EmbeddedEndpoints(etcdDir)
	if err != nil {
		return fmt.Errorf("finding this machine's etcd: %w", err)
	}
	caFile, certFile, keyFile := etcd3.EmbeddedClientFiles(etcdDir)
	client, err := etcd3.NewClient(endpoints, caFile, certFile, keyFile)
	if err != nil {
		return err
	}
	defer client.Close()
	resp, err := client.MemberList(ctx)
	if err != nil {
		return err
	}
	for _, m := range resp.Members {
		name := m.Name
		if name == "" {
			name = "(unstarted)"
		}
		fmt.Fprintf(stdout, "%s %s %s\n", name, strings.Join(m.PeerURLs, ","), strings.Join(m.ClientURLs, ","))
	}
	return nil
}
