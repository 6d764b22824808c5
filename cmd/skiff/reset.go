package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/kubelet/localcontainerd"
	"github.com/skiff-dev/skiff/kubelet/podcgroups"
	"github.com/skiff-dev/skiff/proxy"
)

// upLockFile, in the data directory, is locked (flock) by the `skiff up` running on it, and
// holds its pid: the kernel drops the lock when that process ends, however it ends, so a
// lock that is held is a skiff up that runs.
const upLockFile = "skiff-up.lock"

// errDataDirInUse is wrapped by lockDataDir's error when a skiff up holds the data directory.
var errDataDirInUse = errors.New("data directory in use")

// lockDataDir makes dataDir (private to its owner) and locks it for this process until
// unlock, so that no second skiff up, and no skiff reset, works on it meanwhile.
func lockDataDir(dataDir string) (unlock func(), err error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	path := filepath.Join(dataDir, upLockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := io.ReadAll(f)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			holder := "a skiff up"
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				holder = fmt.Sprintf("a skiff up (pid %d)", pid)
			}
			return nil, fmt.Errorf("%w: %s is running with data directory %s", errDataDirInUse, holder, dataDir)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}

func newResetCommand() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Remove everything a skiff up left on this host, and its data directory",
		Long: `Remove everything the 'skiff up' of a data directory left on this host, as after a
kill -9 or a crash, then the data directory itself (every object of the cluster goes with it):
its containerd's containers, tasks and pod sandboxes with their network namespaces, veths and
CNI rules, the pods' bridge and cgroups, every mount beneath the data directory, the proxy's
and the NetworkPolicy agent's nftables tables (ip skiff, ip skiff-netpol, and their ip6 twins)
and node routes (proto 77). A server of a --cluster-init cluster first takes its etcd member
out of the cluster, through the other servers. It refuses while a skiff up runs with that
data directory. Run it as root.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			return runReset(ctx, dataDir, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", defaultDataDir(), "the data directory of the skiff up to remove")
	return cmd
}

// runReset removes what the skiff up of dataDir left on this host, then dataDir. It refuses,
// wrapping errDataDirInUse, while a skiff up runs on dataDir, and changes nothing then.
func runReset(ctx context.Context, dataDir string, stdout io.Writer) error {
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	if dataDir == "/" {
		return errors.New("refusing to reset /")
	}
	exists := true
	if _, err := os.Stat(dataDir); errors.Is(err, fs.ErrNotExist) {
		exists = false
	}
	var errs []error
	if exists {
		unlock, err := lockDataDir(dataDir)
		if err != nil {
			if errors.Is(err, errDataDirInUse) {
				return fmt.Errorf("%w: stop it first (Ctrl-C, or SIGTERM), then reset", err)
			}
			return err
		}
		defer unlock()
		// a server of several leaves the etcd cluster first, while its certificates are here
		leaveEtcdCluster(ctx, dataDir, stdout)
		// the kubelet's pods, before their directories go: their cgroups are looked for
		// even when no process of theirs is left to tell
		pods, _ := os.ReadDir(filepath.Join(dataDir, "kubelet", "pods"))
		containerdDir := filepath.Join(dataDir, "containerd")
		if _, err := os.Stat(filepath.Join(containerdDir, "config.toml")); err == nil {
			slog.Info("removing the pods of skiff up's containerd", "dir", containerdDir)
			if err := localcontainerd.Reset(ctx, containerdDir); err != nil {
				errs = append(errs, err)
			}
		}
		for _, p := range pods {
			if err := podcgroups.Remove(types.UID(p.Name())); err != nil {
				errs = append(errs, err)
			}
		}
		if err := localcontainerd.UnmountUnder(dataDir); err != nil {
			errs = append(errs, err)
		}
	}
	// the node's network parts are the host's, not the data directory's: they go even when
	// the directory is already gone
	if err := proxy.RemoveFromNode(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		// the data directory stays: the next reset can still find what this one missed
		return fmt.Errorf("reset %s: %w", dataDir, err)
	}
	if exists {
		if err := os.RemoveAll(dataDir); err != nil {
			return fmt.Errorf("remove %s: %w", dataDir, err)
		}
	}
	fmt.Fprintf(stdout, "skiff up's cluster in %s is removed from this host\n", dataDir)
	return nil
}
