package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skiff-dev/skiff/registry/storage/etcd3"
)

// etcdOptions say where the cluster's state lives: an external etcd cluster when servers are
// given, otherwise an etcd embedded in this process with its data in the data directory.
type etcdOptions struct {
	servers                   []string
	caFile, certFile, keyFile string
}

func (o *etcdOptions) validate() error {
	if (o.certFile == "") != (o.keyFile == "") {
		return errors.New("--etcd-certfile and --etcd-keyfile go together")
	}
	if len(o.servers) == 0 && (o.caFile != "" || o.certFile != "") {
		return errors.New("--etcd-cafile, --etcd-certfile and --etcd-keyfile need --etcd-servers")
	}
	return nil
}

// etcdConnection is an open etcd client and what must be done to let go of it.
type etcdConnection struct {
	client *clientv3.Client
	close  func() error
}

// openEtcd connects to the external etcd of o, or starts the embedded one in dataDir/etcd.
func openEtcd(ctx context.Context, o etcdOptions, dataDir string) (*etcdConnection, error) {
	if len(o.servers) > 0 {
		client, err := etcd3.NewClient(o.servers, o.caFile, o.certFile, o.keyFile)
		if err != nil {
			return nil, fmt.Errorf("connecting to etcd at %s: %w", strings.Join(o.servers, ","), err)
		}
		slog.Info("using etcd", "servers", strings.Join(o.servers, ","))
		return &etcdConnection{client: client, close: client.Close}, nil
	}
	return startEmbeddedEtcd(ctx, filepath.Join(dataDir, "etcd"))
}

// startEmbeddedEtcd starts etcd in dir. A signal during start-up aborts the start, but once
// started etcd outlives ctx: it is closed only after everything that uses it has stopped.
func startEmbeddedEtcd(ctx context.Context, dir string) (*etcdConnection, error) {
	etcdCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	abortStart := context.AfterFunc(ctx, cancel)
	e, err := etcd3.StartEmbedded(etcdCtx, dir)
	abortStart()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("starting etcd in %s: %w", dir, err)
	}
	slog.Info("etcd started", "dir", dir)
	return &etcdConnection{
		client: e.Client,
		close: func() error {
			defer cancel()
			err := e.Close()
			slog.Info("etcd stopped", "dir", dir)
			return err
		},
	}, nil
}
