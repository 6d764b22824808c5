// Package apiservertest starts a real skiff API server on embedded etcd inside a test
// process, for every package's integration tests: one helper, one place. It never fakes
// anything: clients talk to the server over HTTPS with real certificates.
package apiservertest

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/apiserver/certs"
	"github.com/skiff-dev/skiff/registry/storage/etcd3"
)

// Server is a running API server and what a test needs to reach it.
type Server struct {
	// Config reaches the server as the admin (CN admin, O system:masters).
	Config *rest.Config
	// Client is a typed clientset on Config.
	Client kubernetes.Interface
	// Etcd reaches the server's etcd directly, for checking what was (not) stored.
	Etcd *clientv3.Client
	// EtcdEndpoints are the etcd's client URLs, for other processes (an extension API server),
	// which connect with the CA and client certificate of EtcdCAFile, EtcdCertFile and
	// EtcdKeyFile (etcd answers nothing else).
	EtcdEndpoints                         []string
	EtcdCAFile, EtcdCertFile, EtcdKeyFile string
	PKI                                   *certs.PKI
	// URL is the server's https:// address.
	URL     string
	DataDir string
	Server  *apiserver.Server

	cluster *cluster
}

// Option adjusts the server's configuration before it starts.
type Option func(*apiserver.Config)

// DefaultDisabledAdmission are the admission plugins a test server runs without, as upstream's
// integration test servers: ServiceAccount refuses pods until a controller has made the
// namespace's default ServiceAccount, and TaintNodesByCondition keeps new Nodes unschedulable
// until a node lifecycle controller sees them Ready; tests without those controllers would
// wait forever. EnableAdmission turns them back on.
var DefaultDisabledAdmission = []string{"ServiceAccount", "TaintNodesByCondition"}

// EnableAdmission runs the named admission plugins that a test server leaves off by default.
func EnableAdmission(plugins ...string) Option {
	return func(c *apiserver.Config) {
		c.DisableAdmissionPlugins = slices.DeleteFunc(c.DisableAdmissionPlugins, func(p string) bool {
			return slices.Contains(plugins, p)
		})
	}
}

// Start starts an API server on a fresh embedded etcd in a temporary directory, listening on
// a free loopback port, and stops both when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	dir := t.TempDir()
	etcdCtx, stopEtcd := context.WithCancel(context.Background())
	etcd, err := etcd3.StartEmbedded(etcdCtx, filepath.Join(dir, "etcd"))
	if err != nil {
		stopEtcd()
		t.Fatalf("start etcd: %v", err)
	}
	pki, err := certs.Ensure(filepath.Join(dir, "pki"))
	if err != nil {
		stopEtcd()
		etcd.Close()
		t.Fatalf("pki: %v", err)
	}
	c := &cluster{etcd: etcd.Client, etcdServer: etcd, pki: pki, dir: dir}
	// the API server (the last one, after restarts) stops before its etcd
	t.Cleanup(func() {
		c.stopServer()
		stopEtcd()
		etcd.Close()
	})
	return c.start(t, opts)
}

// cluster is what outlives an API server's restart: etcd, the PKI, the data dir.
type cluster struct {
	etcd       *clientv3.Client
	etcdServer *etcd3.Embedded
	pki        *certs.PKI
	dir        string
	// stopServer stops the running API server and waits for it
	stopServer func()
}

// Restart stops s's API server and starts another on the same etcd, PKI and data dir, as
// an operator restarts kube-apiserver with changed flags: opts are the new server's whole
// options (those of the first start do not carry over). s must not be used afterwards.
func (s *Server) Restart(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s.cluster.stopServer()
	return s.cluster.start(t, opts)
}

// StartPeer starts one more API server on s's etcd, PKI and data dir, as a second
// kube-apiserver of an HA control plane, and stops it when the test ends; stop stops it
// earlier, waiting until it has.
func (s *Server) StartPeer(t testing.TB, opts ...Option) (peer *Server, stop func()) {
	t.Helper()
	peer, stop = s.cluster.startServer(t, opts)
	t.Cleanup(stop)
	return peer, stop
}

func (c *cluster) start(t testing.TB, opts []Option) *Server {
	t.Helper()
	c.stopServer = func() {}
	s, stop := c.startServer(t, opts)
	c.stopServer = stop
	return s
}

// startServer starts an API server on c and returns it and how to stop it (more than once).
func (c *cluster) startServer(t testing.TB, opts []Option) (*Server, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pki := c.pki
	cfg := apiserver.Config{
		BindAddresses: []string{"127.0.0.1:0"},
		ServingCert:   pki.ServingCert,
		ClientCA:      pki.CAPool,
		Etcd:          c.etcd,

		ClientCABundle:       pki.CAPEM,
		FrontProxyClientCert: &pki.FrontProxy.ClientCert,
		FrontProxyCA:         pki.FrontProxy.CAPEM,

		ServiceAccountSigningKey: pki.ServiceAccountKey,

		DisableAdmissionPlugins: slices.Clone(DefaultDisabledAdmission),
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := apiserver.New(cfg)
	if err != nil {
		cancel()
		t.Fatalf("new API server: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("API server stopped before it was ready: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		<-done
		t.Fatalf("API server not ready after a minute")
	}
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			cancel()
			<-done
		})
	}
	url := "https://" + srv.Addresses()[0]
	restConfig := &rest.Config{
		Host: url,
		TLSClientConfig: rest.TLSClientConfig{
			CAFile: pki.CACertFile, CertFile: pki.AdminCertFile, KeyFile: pki.AdminKeyFile,
		},
		QPS: -1, // tests are not rate limited by the client
	}
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		t.Fatalf("clientset: %v", err)
	}
	return &Server{Config: restConfig, Client: client, Etcd: c.etcd, PKI: pki,
		EtcdEndpoints: c.etcdServer.Endpoints, EtcdCAFile: c.etcdServer.CAFile, EtcdCertFile: c.etcdServer.ClientCertFile, EtcdKeyFile: c.etcdServer.ClientKeyFile, URL: url, DataDir: c.dir, Server: srv, cluster: c}, stop
}
