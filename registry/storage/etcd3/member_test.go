package etcd3

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// copyEtcdCA gives dir the etcd CA of from, as a joining server is given it.
func copyEtcdCA(t *testing.T, from, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "pki"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{etcdCAFileName, etcdCAKeyFileName} {
		b, err := os.ReadFile(filepath.Join(from, "pki", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "pki", f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// testMember is a member on loopback address ip, on ports the kernel picked free.
func testMember(t *testing.T, name, ip string) Member {
	t.Helper()
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	return Member{Name: name, IP: net.ParseIP(ip), ClientPort: ports[0], PeerPort: ports[1]}
}

func TestAMemberJoinsAClusterAndServesItsKeysUntilRemoved(t *testing.T) {
	ctx := context.Background()
	firstDir, secondDir := t.TempDir(), t.TempDir()
	first := testMember(t, "first", "127.0.0.2")
	a, err := StartMember(ctx, firstDir, first)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Client.Put(ctx, "/registry/namespaces/before", "v"); err != nil {
		t.Fatal(err)
	}

	copyEtcdCA(t, firstDir, secondDir)
	second := testMember(t, "second", "127.0.0.3")
	if HasMemberData(secondDir) {
		t.Fatal("a fresh dir holds member data")
	}
	second.InitialCluster, err = JoinCluster(ctx, secondDir, second, []string{first.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	if want := "first=" + first.PeerURL() + ",second=" + second.PeerURL(); second.InitialCluster != want {
		t.Errorf("initial cluster %q, want %q", second.InitialCluster, want)
	}
	b, err := StartMember(ctx, secondDir, second)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got, err := b.Client.Get(ctx, "/registry/namespaces/before")
	if err != nil || got.Count != 1 {
		t.Fatalf("the joined member reads %v, %v; want the key written before it joined", got, err)
	}
	if _, err := b.Client.Put(ctx, "/registry/namespaces/after", "v"); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Client.Get(ctx, "/registry/namespaces/after"); err != nil || got.Count != 1 {
		t.Fatalf("the first member reads %v, %v; want the key the joined one wrote", got, err)
	}

	// removed while it runs: two members without one have no quorum to remove it after
	if err := RemoveMember(ctx, firstDir, "second", []string{first.ClientURL()}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	list, err := a.Client.MemberList(ctx)
	if err != nil || len(list.Members) != 1 || list.Members[0].Name != "first" {
		t.Fatalf("members after removing second: %v, %v", list, err)
	}
	// with one member again, it has quorum alone
	if _, err := a.Client.Put(ctx, "/registry/namespaces/alone", "v"); err != nil {
		t.Fatal(err)
	}
}

func TestASnapshotRestoredForAMemberStartsAClusterOthersCanJoin(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e, err := StartEmbedded(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.Put(ctx, "/registry/namespaces/saved", "v"); err != nil {
		t.Fatal(err)
	}
	endpoints, _ := EmbeddedEndpoints(dir)
	src := SnapshotSource{Endpoints: endpoints}
	src.CAFile, src.CertFile, src.KeyFile = EmbeddedClientFiles(dir)
	file := filepath.Join(t.TempDir(), "snap")
	if err := SaveSnapshot(ctx, src, file); err != nil {
		t.Fatal(err)
	}
	e.Close()

	m := testMember(t, "first", "127.0.0.4")
	if _, err := RestoreSnapshot(file, dir, RestoreOptions{MemberName: m.Name, PeerURL: m.PeerURL()}); err != nil {
		t.Fatal(err)
	}
	r, err := StartMember(ctx, dir, m)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, err := r.Client.Get(ctx, "/registry/namespaces/saved"); err != nil || got.Count != 1 {
		t.Fatalf("the restored member reads %v, %v", got, err)
	}
	list, err := r.Client.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Members) != 1 || list.Members[0].Name != "first" || len(list.Members[0].PeerURLs) != 1 || list.Members[0].PeerURLs[0] != m.PeerURL() {
		t.Errorf("members after the restore: %v, want first at %s alone (the URL joining members dial)", list.Members, m.PeerURL())
	}
}
