package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-dev/skiff/registry/storage/etcd3"
)

// etcdSnapshotOptions are the flags of `skiff etcd-snapshot save` and `restore`.
type etcdSnapshotOptions struct {
	dataDir string
	etcd    etcdOptions
	// name prefixes a saved snapshot's file name, as k3s's --name ("on-demand")
	name string
	// dir is where save writes; "" is DATA_DIR/snapshots
	dir string
	// clusterInit restores for a server started with --cluster-init, whose etcd member is
	// named by the node and reached at advertiseAddress
	clusterInit      bool
	advertiseAddress string
}

func newEtcdSnapshotCommand() *cobra.Command {
	o := &etcdSnapshotOptions{}
	cmd := &cobra.Command{
		Use:   "etcd-snapshot",
		Short: "Save the cluster's etcd to a file, or restore one",
		Args:  cobra.NoArgs,
	}
	save := &cobra.Command{
		Use:   "save",
		Short: "Save a point-in-time copy of the cluster's etcd to a file",
		Long: `Save a point-in-time copy of every key of the cluster's etcd, through etcd's snapshot
API, to DATA_DIR/snapshots/NAME-NODE-UNIXTIME (or --dir). It reads the embedded etcd of the
skiff up running with --data-dir (starting that etcd for the time of the copy if no skiff up
runs there), or the cluster --etcd-servers names.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			path, err := o.save(ctx, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), path)
			return nil
		},
	}
	save.Flags().StringVar(&o.dataDir, "data-dir", defaultDataDir(), "the data directory of the skiff up whose etcd to save")
	save.Flags().StringVar(&o.name, "name", "on-demand", "first part of the snapshot's file name")
	save.Flags().StringVar(&o.dir, "dir", "", "directory to write the snapshot to (default DATA_DIR/snapshots)")
	save.Flags().StringSliceVar(&o.etcd.servers, "etcd-servers", nil, "an external etcd cluster's client URLs, instead of the embedded etcd")
	save.Flags().StringVar(&o.etcd.caFile, "etcd-cafile", "", "CA bundle that signed the external etcd's serving certificates")
	save.Flags().StringVar(&o.etcd.certFile, "etcd-certfile", "", "client certificate for the external etcd")
	save.Flags().StringVar(&o.etcd.keyFile, "etcd-keyfile", "", "client key for the external etcd")

	restore := &cobra.Command{
		Use:   "restore FILE",
		Short: "Make the data directory's etcd hold a snapshot, as a new one-member cluster",
		Long: `Make DATA_DIR/etcd hold exactly the keys of a snapshot file, as a new etcd cluster of one
member (as k3s's --cluster-reset --cluster-reset-restore-path): the next 'skiff up' with
--data-dir serves the snapshot's objects. The etcd data the directory held before is kept in
DATA_DIR/etcd/member-old-TIMESTAMP. Revisions move forward by 10^9, so that clients'
resourceVersions never go back, and every watch from before the restore relists. It refuses
while a skiff up runs with the data directory.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.restore(args[0], cmd.OutOrStdout())
		},
	}
	restore.Flags().StringVar(&o.dataDir, "data-dir", defaultDataDir(), "the data directory whose etcd to replace")
	restore.Flags().BoolVar(&o.clusterInit, "cluster-init", false,
		"restore for 'skiff up --cluster-init': a first server that others join again with --server (each after a 'skiff reset')")
	restore.Flags().StringVar(&o.advertiseAddress, "advertise-address", "", "with --cluster-init, the address the server will advertise (default: this host's address of the default route)")
	cmd.AddCommand(save, restore)
	return cmd
}

// save writes a snapshot and returns its path.
func (o *etcdSnapshotOptions) save(ctx context.Context, now time.Time) (string, error) {
	if err := o.etcd.validate(); err != nil {
		return "", err
	}
	dir := o.dir
	if dir == "" {
		dir = filepath.Join(o.dataDir, "snapshots")
	}
	node, err := hostNodeName("")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, o.name+"-"+node+"-"+strconv.FormatInt(now.Unix(), 10))
	if len(o.etcd.servers) > 0 {
		src := etcd3.SnapshotSource{Endpoints: o.etcd.servers, CAFile: o.etcd.caFile, CertFile: o.etcd.certFile, KeyFile: o.etcd.keyFile}
		return path, etcd3.SaveSnapshot(ctx, src, path)
	}
	etcdDir := filepath.Join(o.dataDir, "etcd")
	src := etcd3.SnapshotSource{}
	src.CAFile, src.CertFile, src.KeyFile = etcd3.EmbeddedClientFiles(etcdDir)
	unlock, err := lockDataDir(o.dataDir)
	switch {
	case errors.Is(err, errDataDirInUse):
		// skiff up runs: its etcd said where it listens when it started
		if src.Endpoints, err = etcd3.EmbeddedEndpoints(etcdDir); err != nil {
			return "", fmt.Errorf("finding the running etcd of %s: %w", o.dataDir, err)
		}
	case err != nil:
		return "", err
	default:
		// nobody runs on the data dir, and the lock keeps it so: start its etcd for the copy
		defer unlock()
		etcd, err := startEmbeddedEtcd(ctx, etcdDir)
		if err != nil {
			return "", err
		}
		defer etcd.close()
		if src.Endpoints, err = etcd3.EmbeddedEndpoints(etcdDir); err != nil {
			return "", err
		}
	}
	return path, etcd3.SaveSnapshot(ctx, src, path)
}

// restore replaces the data dir's etcd data by the snapshot in file.
func (o *etcdSnapshotOptions) restore(file string, stdout io.Writer) error {
	unlock, err := lockDataDir(o.dataDir)
	if err != nil {
		if errors.Is(err, errDataDirInUse) {
			return fmt.Errorf("%w: stop it first (Ctrl-C, or SIGTERM), then restore", err)
		}
		return err
	}
	defer unlock()
	var member etcd3.RestoreOptions
	if o.clusterInit {
		up := &upOptions{advertiseAddress: o.advertiseAddress}
		ip, err := up.memberIP()
		if err != nil {
			return err
		}
		if member.MemberName, err = hostNodeName(""); err != nil {
			return err
		}
		member.PeerURL = etcd3.Member{Name: member.MemberName, IP: ip}.PeerURL()
	}
	previous, err := etcd3.RestoreSnapshot(file, filepath.Join(o.dataDir, "etcd"), member)
	if err != nil {
		return err
	}
	if previous != "" {
		fmt.Fprintf(stdout, "the etcd data this directory held is kept in %s\n", previous)
	}
	fmt.Fprintf(stdout, "restored %s; start 'skiff up --data-dir %s'\n", file, o.dataDir)
	return nil
}
