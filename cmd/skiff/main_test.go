package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/version"

	"github.com/skiff-dev/skiff/apiserver/certs"
)

func runSkiff(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := newRootCommand()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&out)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestVersionPrintsOneLineWithGitVersionGoAndPlatform(t *testing.T) {
	out, err := runSkiff(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	want := "Version: v1.37.0+skiff.0.1.0 (" + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
	if out != want {
		t.Errorf("skiff version printed %q, want %q", out, want)
	}

	out, err = runSkiff(t, "version", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var info version.Info
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("skiff version -o json printed %q: %v", out, err)
	}
	if info.GitVersion != "v1.37.0+skiff.0.1.0" || info.Major != "1" || info.Minor != "37" {
		t.Errorf("skiff version -o json = %+v", info)
	}
}

func parseAPIServerFlags(t *testing.T, args ...string) *apiServerOptions {
	t.Helper()
	o := &apiServerOptions{}
	f := pflag.NewFlagSet("apiserver", pflag.ContinueOnError)
	o.addFlags(f)
	if err := f.Parse(args); err != nil {
		t.Fatal(err)
	}
	return o
}

func TestAPIServerFlagDefaultsAreUpstreams(t *testing.T) {
	o := parseAPIServerFlags(t)
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	pki, err := certs.Ensure(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := o.config(pki, &etcdConnection{}, 0)
	if len(cfg.BindAddresses) != 1 || cfg.BindAddresses[0] != "0.0.0.0:6443" {
		t.Errorf("BindAddresses = %v, want [0.0.0.0:6443]", cfg.BindAddresses)
	}
	if cfg.MaxRequestsInFlight != 400 || cfg.MaxMutatingRequestsInFlight != 200 || cfg.RequestTimeout != time.Minute {
		t.Errorf("limits = %d/%d/%s, want 400/200/1m0s",
			cfg.MaxRequestsInFlight, cfg.MaxMutatingRequestsInFlight, cfg.RequestTimeout)
	}
	if len(o.etcd.servers) != 0 {
		t.Errorf("etcd servers = %v, want none (embedded)", o.etcd.servers)
	}
	if filepath.Base(o.dataDir) != ".skiff" {
		t.Errorf("data dir = %s, want $HOME/.skiff", o.dataDir)
	}
	if o.localURL() != "https://127.0.0.1:6443" {
		t.Errorf("local URL = %s", o.localURL())
	}
	if !cfg.ServingCert.Leaf.Equal(pki.ServingCert.Leaf) || cfg.ClientCA != pki.CAPool {
		t.Error("config does not carry the PKI's serving certificate and CA")
	}
}

func TestAPIServerFlagsReachConfig(t *testing.T) {
	o := parseAPIServerFlags(t,
		"--etcd-servers=https://10.0.0.1:2379,https://10.0.0.2:2379",
		"--etcd-cafile=/etc/etcd/ca.crt", "--etcd-certfile=/etc/etcd/c.crt", "--etcd-keyfile=/etc/etcd/c.key",
		"--bind-address=127.0.0.1", "--secure-port=7443", "--token-auth-file=/etc/tokens.csv",
		"--max-requests-inflight=10", "--max-mutating-requests-inflight=5", "--request-timeout=30s",
		"--data-dir=/var/lib/skiff")
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379"}; strings.Join(o.etcd.servers, " ") != strings.Join(want, " ") {
		t.Errorf("etcd servers = %v, want %v", o.etcd.servers, want)
	}
	if o.etcd.caFile != "/etc/etcd/ca.crt" || o.etcd.certFile != "/etc/etcd/c.crt" || o.etcd.keyFile != "/etc/etcd/c.key" {
		t.Errorf("etcd TLS files = %+v", o.etcd)
	}
	pki, err := certs.Ensure(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := o.config(pki, &etcdConnection{}, 3)
	if cfg.BindAddresses[0] != "127.0.0.1:7443" || cfg.TokenFile != "/etc/tokens.csv" ||
		cfg.MaxRequestsInFlight != 10 || cfg.MaxMutatingRequestsInFlight != 5 ||
		cfg.RequestTimeout != 30*time.Second || cfg.Verbosity != 3 {
		t.Errorf("config = %+v", cfg)
	}
	if o.localURL() != "https://127.0.0.1:7443" || o.dataDir != "/var/lib/skiff" {
		t.Errorf("local URL %s, data dir %s", o.localURL(), o.dataDir)
	}

	v6 := parseAPIServerFlags(t, "--bind-address=::1")
	if got := v6.config(pki, &etcdConnection{}, 0).BindAddresses[0]; got != "[::1]:6443" {
		t.Errorf("IPv6 bind address = %s, want [::1]:6443", got)
	}
	if got := v6.extraSANs(); len(got) != 1 || got[0] != "::1" {
		t.Errorf("extra SANs for a specific bind address = %v", got)
	}
}

func TestAPIServerRejectsContradictoryFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--bind-address=localhost"},
		{"--secure-port=0"},
		{"--request-timeout=0s"},
		{"--etcd-servers=https://10.0.0.1:2379", "--etcd-certfile=/c.crt"},
		{"--etcd-cafile=/ca.crt"},
	} {
		if err := parseAPIServerFlags(t, args...).validate(); err == nil {
			t.Errorf("flags %v accepted", args)
		}
	}
}

// fakeComponent runs until its context ends, or fails after failAfter when that is set.
type fakeComponent struct {
	failAfter time.Duration
	stopped   atomic.Bool
}

func (f *fakeComponent) run(ctx context.Context) error {
	defer f.stopped.Store(true)
	if f.failAfter > 0 {
		select {
		case <-time.After(f.failAfter):
			return errors.New("boom")
		case <-ctx.Done():
			return nil
		}
	}
	<-ctx.Done()
	return nil
}

func TestComponentsStopTogetherWhenAsked(t *testing.T) {
	a, b := &fakeComponent{}, &fakeComponent{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- runComponents(ctx, []component{{"a", a.run}, {"b", b.run}}) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runComponents after cancel = %v, want nil", err)
	}
	if !a.stopped.Load() || !b.stopped.Load() {
		t.Error("runComponents returned before every component stopped")
	}
}

func TestOneFailingComponentStopsTheOthers(t *testing.T) {
	healthy, failing := &fakeComponent{}, &fakeComponent{failAfter: 10 * time.Millisecond}
	err := runComponents(context.Background(), []component{{"healthy", healthy.run}, {"failing", failing.run}})
	if err == nil || err.Error() != "failing: boom" {
		t.Fatalf("runComponents = %v, want failing: boom", err)
	}
	if !healthy.stopped.Load() {
		t.Error("the healthy component was left running")
	}
}

func TestComponentReturningEarlyStopsTheCluster(t *testing.T) {
	healthy := &fakeComponent{}
	quitter := func(context.Context) error { return nil }
	err := runComponents(context.Background(), []component{{"healthy", healthy.run}, {"quitter", quitter}})
	if err == nil || !strings.Contains(err.Error(), "quitter: stopped unexpectedly") {
		t.Fatalf("runComponents = %v, want quitter: stopped unexpectedly", err)
	}
}
