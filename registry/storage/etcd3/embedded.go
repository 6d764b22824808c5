package etcd3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/logutil"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
)

// Embedded is an etcd server running inside this process, for `skiff up` and tests.
type Embedded struct {
	// Client talks to the server over its loopback client URL.
	Client *clientv3.Client
	// Endpoints are the client URLs other processes can reach it at (loopback only, TLS).
	Endpoints []string
	// CAFile, ClientCertFile and ClientKeyFile are what another process needs to talk to it
	// (as NewClient and kube-apiserver's --etcd-cafile, --etcd-certfile and --etcd-keyfile
	// take them): the server refuses any client without a certificate from its own CA.
	CAFile, ClientCertFile, ClientKeyFile string

	etcd      *embed.Etcd
	logLevel  zap.AtomicLevel
	closeOnce sync.Once
	closeErr  error
}

// embeddedReadyTimeout bounds how long a start may take (WAL replay of a big data dir
// included) before StartEmbedded gives up.
const embeddedReadyTimeout = 2 * time.Minute

// StartEmbedded starts a single-member etcd keeping its data in dataDir (created if missing;
// started again on the same dir, it serves the same data) and returns once it serves. It
// listens on 127.0.0.1 only, on ports the kernel picks free, so any number of embedded etcds
// run side by side in one process or many. Its logs are errors only. It stops when ctx is
// done or Close is called.
//
// Both its client and peer URLs are TLS and demand a client certificate from a CA of its own,
// kept in dataDir/pki (embeddedPKI): loopback is shared with every local user, and the store
// holds every Secret and every service account's token key.
func StartEmbedded(ctx context.Context, dataDir string) (*Embedded, error) {
	return startEmbedded(ctx, dataDir, nil)
}

// startEmbedded starts StartEmbedded's loopback etcd when member is nil, else the member of a
// cluster spanning machines that member describes (StartMember).
func startEmbedded(ctx context.Context, dataDir string, member *Member) (*Embedded, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd data dir: %w", err)
	}
	var memberIPs []net.IP
	if member != nil {
		memberIPs = append(memberIPs, member.IP)
	}
	pki, err := ensureEmbeddedPKI(filepath.Join(dataDir, "pki"), memberIPs...)
	if err != nil {
		return nil, err
	}
	var e *embed.Etcd
	level := zap.NewAtomicLevelAt(zap.ErrorLevel)
	// A port found free can be taken by someone else before etcd binds it: try again.
	for attempt := 0; attempt < 5; attempt++ {
		e, err = startEtcd(dataDir, pki, level, member)
		if err == nil || !isAddrInUse(err) || member != nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("starting embedded etcd in %s: %w", dataDir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		level.SetLevel(zap.FatalLevel)
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s: %w", dataDir, err)
	case <-time.After(embeddedReadyTimeout):
		level.SetLevel(zap.FatalLevel)
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s: not ready after %s", dataDir, embeddedReadyTimeout)
	case <-ctx.Done():
		level.SetLevel(zap.FatalLevel)
		e.Close()
		return nil, ctx.Err()
	}

	endpoints := make([]string, 0, len(e.Clients))
	for _, l := range e.Clients {
		endpoints = append(endpoints, "https://"+l.Addr().String())
	}
	if err := os.WriteFile(filepath.Join(dataDir, endpointsFileName), []byte(strings.Join(endpoints, "\n")+"\n"), 0o600); err != nil {
		level.SetLevel(zap.FatalLevel)
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s: %w", dataDir, err)
	}
	// The API server in this process talks to etcd by function calls, not through gRPC over
	// loopback: that transport cost a fifth of a write. Other processes use Endpoints.
	client := v3client.New(e.Server)
	em := &Embedded{
		Client: client, Endpoints: endpoints,
		CAFile: pki.caFile, ClientCertFile: pki.clientCertFile, ClientKeyFile: pki.clientKeyFile,
		etcd: e, logLevel: level,
	}
	go func() {
		select {
		case <-ctx.Done():
			em.Close()
		case <-e.Server.StopNotify():
		}
	}()
	return em, nil
}

// startEtcd starts etcd logging at level; the caller raises it before stopping the server,
// whose shutdown otherwise logs each closed listener as an error.
func startEtcd(dataDir string, pki *embeddedPKI, level zap.AtomicLevel, member *Member) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Dir = dataDir
	if member == nil {
		ports, err := freePorts(2)
		if err != nil {
			return nil, err
		}
		clientURL := url.URL{Scheme: "https", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))}
		peerURL := url.URL{Scheme: "https", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))}
		cfg.Name = embeddedMemberName
		cfg.ListenClientUrls = []url.URL{clientURL}
		cfg.AdvertiseClientUrls = []url.URL{clientURL}
		cfg.ListenPeerUrls = []url.URL{peerURL}
		cfg.AdvertisePeerUrls = []url.URL{peerURL}
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	} else {
		member.configure(cfg)
	}
	cfg.ListenMetricsUrls = nil
	cfg.ClientTLSInfo = transport.TLSInfo{
		CertFile: pki.serverCertFile, KeyFile: pki.serverKeyFile,
		TrustedCAFile: pki.caFile, ClientCertAuth: true,
	}
	cfg.PeerTLSInfo = transport.TLSInfo{
		CertFile: pki.peerCertFile, KeyFile: pki.peerKeyFile,
		TrustedCAFile: pki.caFile, ClientCertAuth: true,
	}
	logCfg := logutil.DefaultZapLoggerConfig
	logCfg.Level = level
	logCfg.DisableStacktrace = true
	logger, err := logCfg.Build()
	if err != nil {
		return nil, err
	}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(logger.Named("etcd"))
	return embed.StartEtcd(cfg)
}

// freePorts asks the kernel for n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func isAddrInUse(err error) bool {
	return err != nil && strings.Contains(err.Error(), "address already in use")
}

// Close closes the client and stops the server; it is safe to call more than once.
func (e *Embedded) Close() error {
	e.closeOnce.Do(func() {
		e.closeErr = e.Client.Close()
		if errors.Is(e.closeErr, context.Canceled) {
			e.closeErr = nil
		}
		e.logLevel.SetLevel(zap.FatalLevel)
		e.etcd.Close()
	})
	return e.closeErr
}

// NewClient connects to an etcd cluster. caFile, certFile and keyFile are optional: with a CA
// the connection is TLS, with a cert and key it authenticates this client too.
func NewClient(endpoints []string, caFile, certFile, keyFile string) (*clientv3.Client, error) {
	logCfg := logutil.DefaultZapLoggerConfig
	logCfg.Level = zap.NewAtomicLevelAt(zap.ErrorLevel)
	logger, err := logCfg.Build()
	if err != nil {
		return nil, err
	}
	cfg := clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          20 * time.Second,
		DialKeepAliveTime:    30 * time.Second,
		DialKeepAliveTimeout: 10 * time.Second,
		Logger:               logger,
	}
	if caFile != "" || certFile != "" || keyFile != "" {
		tlsInfo := transport.TLSInfo{CertFile: certFile, KeyFile: keyFile, TrustedCAFile: caFile}
		tlsCfg, err := tlsInfo.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("etcd client TLS: %w", err)
		}
		cfg.TLS = tlsCfg
	}
	client, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to etcd %v: %w", endpoints, err)
	}
	return client, nil
}
