package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers/manager"
)

// A joining server reads the cluster's CA keys with a token of `skiff token create --server`;
// an agent's token is refused them.
func TestOnlyServerTokensReadTheKeysEveryServerShares(t *testing.T) {
	s := apiservertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	managerDone := make(chan error, 1)
	go func() {
		managerDone <- manager.Run(ctx, s.Config, manager.Options{Controllers: []string{"bootstrapsigner"}, Port: -1, UseServiceAccountCredentials: true})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-managerDone; err != nil {
			t.Errorf("controller manager: %v", err)
		}
	})
	if err := ensureNodeBootstrapBindings(ctx, s.Config); err != nil {
		t.Fatal(err)
	}
	if err := ensureClusterInfo(ctx, s.Config, s.URL, s.PKI.CAPEM); err != nil {
		t.Fatal(err)
	}
	// the test server's data dir has the cluster's pki/ and the etcd's etcd/pki/
	if err := ensureServerBootstrap(ctx, s.Config, s.DataDir); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "admin.kubeconfig")
	if err := s.PKI.WriteKubeconfig(kubeconfig, s.URL); err != nil {
		t.Fatal(err)
	}
	join := regexp.MustCompile(`skiff (agent|up) --server (\S+) --token (\S+) --ca-cert-hash (\S+)\n`)
	token := func(server bool) [][]string {
		var out bytes.Buffer
		if err := createToken(ctx, &tokenOptions{kubeconfig: kubeconfig, ttl: time.Hour, groups: []string{defaultNodeTokenGroup},
			usages: []string{"signing", "authentication"}, server: server}, &out); err != nil {
			t.Fatal(err)
		}
		return join.FindAllStringSubmatch(out.String(), -1)
	}
	agent, server := token(false), token(true)
	if len(agent) != 1 || agent[0][1] != "agent" {
		t.Fatalf("an agent token printed %v, want the agent's join command only", agent)
	}
	if len(server) != 2 || server[1][1] != "up" {
		t.Fatalf("a server token printed %v, want the agent's and the server's join commands", server)
	}

	fetch := func(cmd []string) (string, error) {
		dir := t.TempDir()
		o := &upOptions{dataDir: dir, joinServer: cmd[2], joinToken: cmd[3], joinCAHashes: []string{cmd[4]}}
		fetchCtx, stop := context.WithTimeout(ctx, time.Minute)
		defer stop()
		return dir, o.fetchServerBootstrap(fetchCtx)
	}
	if _, err := fetch(agent[0]); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("an agent's token read the servers' keys: %v", err)
	}
	dir, err := fetch(server[1])
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"pki/ca.key", "pki/sa.key", "pki/front-proxy-ca.key", "etcd/pki/ca.key"} {
		want, err := os.ReadFile(filepath.Join(s.DataDir, rel))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: the joining server has %d bytes (%v), want the cluster's", rel, len(got), err)
		}
		if fi, err := os.Stat(filepath.Join(dir, rel)); err == nil && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s is %v, want 0600", rel, fi.Mode().Perm())
		}
	}
}

func TestUpTakesEitherClusterInitOrServer(t *testing.T) {
	for _, tc := range []struct {
		o    upOptions
		fail bool
	}{
		{upOptions{}, false},
		{upOptions{clusterInit: true}, false},
		{upOptions{joinServer: "https://10.0.0.1:6443", joinToken: "abcdef.0123456789abcdef"}, false},
		{upOptions{clusterInit: true, joinServer: "https://10.0.0.1:6443", joinToken: "abcdef.0123456789abcdef"}, true},
		{upOptions{joinServer: "https://10.0.0.1:6443"}, true},
		{upOptions{joinToken: "abcdef.0123456789abcdef"}, true},
	} {
		tc.o.dataDir = t.TempDir()
		if err := tc.o.validateHA(); (err != nil) != tc.fail {
			t.Errorf("%+v: %v, want failure %v", tc.o, err, tc.fail)
		}
	}
}
