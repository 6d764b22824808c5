package etcd3

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/logutil"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	clientsnapshot "go.etcd.io/etcd/client/v3/snapshot"
	utlsnapshot "go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"
)

// SnapshotSource is an etcd cluster to take a snapshot of: its client URLs and the TLS files
// that let a client in (all optional).
type SnapshotSource struct {
	Endpoints                 []string
	CAFile, CertFile, KeyFile string
}

// SaveSnapshot writes a point-in-time copy of the whole key space of one member of src to path
// (0600), through etcd's Snapshot RPC, as `etcdutl snapshot save` does. The API asks one
// member, so the endpoints are tried in turn until one answers. The file is written beside
// path and renamed into place only when complete and its checksum verified.
func SaveSnapshot(ctx context.Context, src SnapshotSource, path string) error {
	if len(src.Endpoints) == 0 {
		return errors.New("no etcd endpoint to take a snapshot from")
	}
	logger, err := quietLogger()
	if err != nil {
		return err
	}
	cfg := clientv3.Config{DialTimeout: 10 * time.Second}
	if src.CAFile != "" || src.CertFile != "" || src.KeyFile != "" {
		tlsInfo := transport.TLSInfo{CertFile: src.CertFile, KeyFile: src.KeyFile, TrustedCAFile: src.CAFile}
		if cfg.TLS, err = tlsInfo.ClientConfig(); err != nil {
			return fmt.Errorf("etcd client TLS: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("snapshot directory: %w", err)
	}
	var errs []error
	for _, endpoint := range src.Endpoints {
		cfg.Endpoints = []string{endpoint}
		if _, err := clientsnapshot.SaveWithVersion(ctx, logger, cfg, path); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", endpoint, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		return os.Chmod(path, 0o600)
	}
	return fmt.Errorf("taking an etcd snapshot: %w", errors.Join(errs...))
}

// RestoreOptions say what cluster a restored snapshot becomes.
type RestoreOptions struct {
	// MemberName and PeerURL name the one member of the new cluster: the name the member
	// started on the restored dir runs as ("skiff" for StartEmbedded).
	MemberName, PeerURL string
}

// snapshotRevisionBump is how far a restore moves the revision forward, as upstream's
// "etcdutl snapshot restore --bump-revision 1000000000 --mark-compacted" advice for
// Kubernetes: resourceVersions never go back for a client that saw the cluster after the
// snapshot was taken, and every watch or list from before the restore gets 410 Gone and relists.
const snapshotRevisionBump = 1_000_000_000

// RestoreSnapshot makes etcdDir hold the data of the snapshot file as a new one-member cluster
// (new cluster ID, every other member forgotten), as k3s's --cluster-reset-restore-path: the
// etcd started next on etcdDir serves exactly the snapshot's keys. It returns where the member
// data that etcdDir held before was moved (etcdDir/member-old-TIMESTAMP), or "" if it held
// none. Files beside the member directory (the PKI) are kept. The caller makes sure no etcd
// runs on etcdDir.
func RestoreSnapshot(snapshotPath, etcdDir string, o RestoreOptions) (previous string, err error) {
	if _, err := os.Stat(snapshotPath); err != nil {
		return "", fmt.Errorf("snapshot: %w", err)
	}
	if o.MemberName == "" {
		o.MemberName = embeddedMemberName
	}
	if o.PeerURL == "" {
		o.PeerURL = "https://127.0.0.1:2380" // a placeholder the next start advertises over
	}
	logger, err := quietLogger()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(etcdDir, 0o700); err != nil {
		return "", err
	}
	// Restore into a directory of its own next to the member directory, so that a failure
	// half way leaves the current data as it was.
	staging, err := os.MkdirTemp(etcdDir, "restore-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(staging)
	out := filepath.Join(staging, "data")
	err = utlsnapshot.NewV3(logger).Restore(utlsnapshot.RestoreConfig{
		SnapshotPath:        snapshotPath,
		Name:                o.MemberName,
		OutputDataDir:       out,
		PeerURLs:            []string{o.PeerURL},
		InitialCluster:      o.MemberName + "=" + o.PeerURL,
		InitialClusterToken: "skiff-restored-" + time.Now().UTC().Format("20060102T150405"),
		RevisionBump:        snapshotRevisionBump,
		MarkCompacted:       true,
	})
	if err != nil {
		return "", fmt.Errorf("restoring %s: %w", snapshotPath, err)
	}
	member := filepath.Join(etcdDir, "member")
	switch _, err := os.Stat(member); {
	case err == nil:
		previous = filepath.Join(etcdDir, "member-old-"+time.Now().UTC().Format("20060102T150405"))
		if err := os.Rename(member, previous); err != nil {
			return "", fmt.Errorf("moving the current etcd data aside: %w", err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return "", err
	}
	if err := os.Rename(filepath.Join(out, "member"), member); err != nil {
		return "", fmt.Errorf("putting the restored data in place: %w", err)
	}
	return previous, nil
}

// embeddedMemberName is the member name of StartEmbedded's single-member cluster.
const embeddedMemberName = "skiff"

// quietLogger logs etcd's client and restore errors only.
func quietLogger() (*zap.Logger, error) {
	logCfg := logutil.DefaultZapLoggerConfig
	logCfg.Level = zap.NewAtomicLevelAt(zap.ErrorLevel)
	logCfg.DisableStacktrace = true
	return logCfg.Build()
}

// endpointsFileName is the file in an embedded etcd's data dir that lists, one a line, the
// client URLs it serves on while it runs: its ports are picked at start, and other processes
// on the machine (`skiff etcd-snapshot save`) find it there.
const endpointsFileName = "client-urls"

// EmbeddedEndpoints reads the client URLs the embedded etcd of dataDir wrote at its start.
// They are stale if that etcd is no longer running.
func EmbeddedEndpoints(dataDir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, endpointsFileName))
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(b)), nil
}

// EmbeddedClientFiles are the CA, client certificate and key that let a process in to the
// embedded etcd of dataDir.
func EmbeddedClientFiles(dataDir string) (caFile, certFile, keyFile string) {
	dir := filepath.Join(dataDir, "pki")
	return filepath.Join(dir, etcdCAFileName), filepath.Join(dir, etcdClientCertFileName), filepath.Join(dir, etcdClientKeyFileName)
}
