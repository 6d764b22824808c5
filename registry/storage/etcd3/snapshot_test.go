package etcd3

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestRestoredSnapshotServesTheSavedKeysAtLaterRevisions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e, err := StartEmbedded(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for i := range 20 {
		if _, err := e.Client.Put(ctx, fmt.Sprintf("/registry/configmaps/default/cm-%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	before, err := e.Client.Get(ctx, "/registry/configmaps/default/cm-0")
	if err != nil {
		t.Fatal(err)
	}

	endpoints, err := EmbeddedEndpoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	src := SnapshotSource{Endpoints: endpoints}
	src.CAFile, src.CertFile, src.KeyFile = EmbeddedClientFiles(dir)
	file := filepath.Join(t.TempDir(), "snapshots", "on-demand")
	if err := SaveSnapshot(ctx, src, file); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot file: %v, %v; want mode 0600", fi, err)
	}
	// written after the snapshot: not in the restored cluster
	if _, err := e.Client.Put(ctx, "/registry/configmaps/default/later", "v"); err != nil {
		t.Fatal(err)
	}
	e.Close()

	fresh := t.TempDir()
	previous, err := RestoreSnapshot(file, fresh, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if previous != "" {
		t.Errorf("a fresh directory had data moved to %s", previous)
	}
	r, err := StartEmbedded(ctx, fresh)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := r.Client.Get(ctx, "/registry/configmaps/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, kv := range got.Kvs {
		keys = append(keys, strings.TrimPrefix(string(kv.Key), "/registry/configmaps/default/"))
	}
	if len(keys) != 20 || strings.Contains(strings.Join(keys, ","), "later") {
		t.Errorf("restored keys %v, want cm-0..cm-19 only", keys)
	}
	if got.Header.Revision <= before.Header.Revision {
		t.Errorf("restored revision %d, want beyond the saved cluster's %d", got.Header.Revision, before.Header.Revision)
	}
	// a watch from before the restore must relist
	if _, err := r.Client.Get(ctx, "/registry/configmaps/default/cm-0", clientv3.WithRev(before.Header.Revision)); err == nil || !strings.Contains(err.Error(), "compacted") {
		t.Errorf("read at a revision from before the restore: %v, want compacted", err)
	}
}

func TestRestoreMovesTheCurrentDataAside(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e, err := StartEmbedded(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.Put(ctx, "/registry/namespaces/kept", "v"); err != nil {
		t.Fatal(err)
	}
	endpoints, _ := EmbeddedEndpoints(dir)
	src := SnapshotSource{Endpoints: endpoints}
	src.CAFile, src.CertFile, src.KeyFile = EmbeddedClientFiles(dir)
	file := filepath.Join(t.TempDir(), "snap")
	if err := SaveSnapshot(ctx, src, file); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.Put(ctx, "/registry/namespaces/dropped", "v"); err != nil {
		t.Fatal(err)
	}
	e.Close()

	previous, err := RestoreSnapshot(file, dir, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(previous, "snap")); err != nil {
		t.Errorf("the data before the restore is not kept in %q: %v", previous, err)
	}
	r, err := StartEmbedded(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for key, want := range map[string]int64{"/registry/namespaces/kept": 1, "/registry/namespaces/dropped": 0} {
		got, err := r.Client.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if got.Count != want {
			t.Errorf("%s: %d keys after the restore, want %d", key, got.Count, want)
		}
	}
}
