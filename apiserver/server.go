package apiserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/registry"
	"github.com/skiff-dev/skiff/registry/storage"
	"github.com/skiff-dev/skiff/registry/storage/cacher"
	"github.com/skiff-dev/skiff/registry/storage/etcd3"
)

// Server is one API server.
type Server struct {
	cfg     Config
	authn   authn.Authenticator
	authz   authorizer
	handler http.Handler
	// resources by group version and plural name
	resources map[schema.GroupVersion]map[string]*resourceHandler
	// storages by etcd key segment; resources sharing storage share the watch cache
	storages map[string]storage.Interface

	// aggregated discovery documents (legacy group, named groups) by apidiscovery version
	discoveryLegacy, discoveryGroups map[string]aggregatedDocument
	advertise                        string

	inflight, mutatingInflight chan struct{}
	// addresses are the listeners' actual addresses, set before ready is closed
	addresses []string
	// allocator reserves services' cluster IPs and node ports; endpointIP is where the
	// kubernetes Service sends clients
	allocator *registry.ServiceAllocator
	// kubeletTransport reaches kubelets for logs, exec and node proxy requests
	kubeletTransport *http.Transport
	endpointIP       netip.Addr
	tokenIssuer      *authn.TokenIssuer // signs the tokens of serviceaccounts/token
	health           *healthChecks
	ready            chan struct{}
	ctx              context.Context
	cancel           context.CancelFunc
}

// New builds an API server from cfg. Run starts it.
func New(cfg Config) (*Server, error) {
	if cfg.Etcd == nil {
		return nil, errors.New("apiserver: no etcd client")
	}
	disabled, err := disabledPlugins(cfg.DisableAdmissionPlugins)
	if err != nil {
		return nil, err
	}
	if cfg.MaxRequestBodyBytes == 0 {
		cfg.MaxRequestBodyBytes = 3 << 20
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 60 * time.Second
	}
	if cfg.MaxRequestsInFlight == 0 {
		cfg.MaxRequestsInFlight = 400
	}
	if cfg.MaxMutatingRequestsInFlight == 0 {
		cfg.MaxMutatingRequestsInFlight = 200
	}
	if cfg.ServiceClusterIPRange == "" {
		cfg.ServiceClusterIPRange = "10.96.0.0/12"
	}
	if cfg.ServiceNodePortRange == "" {
		cfg.ServiceNodePortRange = "30000-32767"
	}
	cidr, err := netip.ParsePrefix(cfg.ServiceClusterIPRange)
	if err != nil {
		return nil, fmt.Errorf("service cluster IP range: %w", err)
	}
	portBase, portCount, err := registry.ParseNodePortRange(cfg.ServiceNodePortRange)
	if err != nil {
		return nil, err
	}
	if cfg.WatchCacheSize == 0 {
		cfg.WatchCacheSize = cacher.DefaultHistorySize
	}
	if cfg.CompactionInterval == 0 {
		cfg.CompactionInterval = 5 * time.Minute
	}
	if len(cfg.BindAddresses) == 0 {
		cfg.BindAddresses = []string{"0.0.0.0:6443"}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:       cfg,
		authz:     allowAuthenticated{},
		resources: map[schema.GroupVersion]map[string]*resourceHandler{},
		storages:  map[string]storage.Interface{},
		discoveryLegacy: map[string]aggregatedDocument{
			"v2": encodeAggregated(aggregated(true), "v2"), "v2beta1": encodeAggregated(aggregated(true), "v2beta1")},
		discoveryGroups: map[string]aggregatedDocument{
			"v2": encodeAggregated(aggregated(false), "v2"), "v2beta1": encodeAggregated(aggregated(false), "v2beta1")},
		advertise:        advertiseAddress(cfg.BindAddresses[0]),
		inflight:         make(chan struct{}, cfg.MaxRequestsInFlight),
		mutatingInflight: make(chan struct{}, cfg.MaxMutatingRequestsInFlight),
		ready:            make(chan struct{}),
		endpointIP:       advertisedIP(cfg.AdvertiseAddress),
		kubeletTransport: newKubeletTransport(cfg.KubeletClientCert, cfg.KubeletCA),
		allocator:        &registry.ServiceAllocator{CIDR: cidr, PortBase: portBase, PortCount: portCount},
		ctx:              ctx,
		cancel:           cancel,
	}
	if err := s.buildResources(ctx, disabled); err != nil {
		cancel()
		return nil, err
	}
	if err := s.buildAuthenticator(); err != nil {
		cancel()
		return nil, err
	}
	s.health = newHealthChecks(cfg.Etcd, s.ready)
	s.handler = s.buildHandlerChain()
	return s, nil
}

// advertiseAddress is the address discovery tells clients: the bind host, or the loopback
// address when bound to every interface.
func advertiseAddress(bind string) string {
	host, port, err := net.SplitHostPort(bind)
	if err != nil {
		return bind
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// buildResources makes one storage per etcd key segment (an etcd store behind a watch cache)
// and one registry store and handler per served resource, from the apis table.
func (s *Server) buildResources(ctx context.Context, disabled sets.Set[string]) error {
	base := &instrumentedStorage{inner: etcd3.New(s.cfg.Etcd)}
	s.allocator.Storage = base
	var namespaces, priorityClasses, serviceAccounts *registry.Store
	for _, res := range apis.Resources {
		if res.Review {
			continue // answered, never stored: see reviews.go
		}
		st, ok := s.storages[res.StorageKey]
		if !ok {
			storageRes := res
			if res.StorageVersion != res.GroupVersion {
				storageRes = apis.ForKind(res.StorageVersion.WithKind(res.Kind))
			}
			opts := []cacher.Option{cacher.WithHistorySize(s.cfg.WatchCacheSize)}
			if f := storageRes.IndexedField; f != "" {
				opts = append(opts, cacher.WithIndexedField(f, func(obj runtime.Object) string {
					return storageRes.SelectableFields(obj)[f]
				}))
			}
			c, err := cacher.New(ctx, base, s.cfg.Etcd, "/registry/"+res.StorageKey+"/", storageRes.New, storageRes.NewList, opts...)
			if err != nil {
				return fmt.Errorf("watch cache for %s: %w", res.Name, err)
			}
			st = c
			s.storages[res.StorageKey] = st
		}
		store, err := registry.NewStore(res, st)
		if err != nil {
			return err
		}
		if res.GroupVersion.Group == "" && res.Name == "services" {
			store.Allocator = s.allocator
		}
		switch res.GroupVersionResource().GroupResource().String() {
		case "namespaces":
			namespaces = store
		case "priorityclasses.scheduling.k8s.io":
			priorityClasses = store
		case "serviceaccounts":
			serviceAccounts = store
		}
		h := &resourceHandler{res: res, store: store, maxBodyBytes: s.cfg.MaxRequestBodyBytes,
			subresources: map[string]subresource{}, fieldManagers: map[string]*managedfields.FieldManager{}}
		for _, sub := range []string{"", "status"} {
			if sub != "" && res.Subresource(sub) == nil {
				continue
			}
			fm, err := newFieldManager(res, sub)
			if err != nil {
				return fmt.Errorf("field manager for %s: %w", res.Name, err)
			}
			h.fieldManagers[sub] = fm
		}
		for _, sub := range res.Subresources {
			switch sub.Name {
			case "status":
				h.subresources["status"] = parentWrite{strategy: registry.StatusStrategyFor(res), getAllowed: true}
			case "finalize":
				h.subresources["finalize"] = parentWrite{strategy: registry.FinalizeStrategyFor(res)}
			case "binding":
				h.subresources["binding"] = podBinding{}
			case "scale":
				h.subresources["scale"] = workloadScale{}
			case "token":
				h.subresources["token"] = serviceAccountToken{s: s}
			}
		}
		if s.resources[res.GroupVersion] == nil {
			s.resources[res.GroupVersion] = map[string]*resourceHandler{}
		}
		s.resources[res.GroupVersion][res.Name] = h
	}
	for _, byName := range s.resources {
		for _, h := range byName {
			h.admit = admission{namespaces: namespaces, priorityClasses: priorityClasses, serviceAccounts: serviceAccounts, disabled: disabled}
		}
	}
	return nil
}

// Ready is closed once the server serves on every bind address.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addresses are the host:port pairs the server listens on (with ports chosen when a bind
// address asked for port 0); valid once Ready is closed.
func (s *Server) Addresses() []string { return s.addresses }

// Handler is the server's whole HTTP handler (for tests that serve it themselves).
func (s *Server) Handler() http.Handler { return s.handler }

// Run serves HTTPS on every bind address until ctx is done, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	defer s.cancel()
	if err := s.bootstrap(ctx); err != nil {
		return err
	}
	if s.cfg.CompactionInterval > 0 {
		etcd3.StartCompactor(ctx, s.cfg.Etcd, s.cfg.CompactionInterval)
	}
	tlsConfig := &tls.Config{
		Certificates: []tls.Certificate{s.cfg.ServingCert},
		ClientCAs:    s.cfg.ClientCA,
		// authn verifies certificates itself, so a bad one is a 401 rather than a failed
		// handshake, as upstream
		ClientAuth: tls.RequestClientCert,
		NextProtos: []string{"h2", "http/1.1"},
		MinVersion: tls.VersionTLS12,
	}
	var servers []*http.Server
	errc := make(chan error, len(s.cfg.BindAddresses))
	for _, addr := range s.cfg.BindAddresses {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, srv := range servers {
				srv.Close()
			}
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
		srv := &http.Server{
			Handler:           s.handler,
			TLSConfig:         tlsConfig,
			ReadHeaderTimeout: 32 * time.Second,
			MaxHeaderBytes:    1 << 20,
			ErrorLog:          nil,
		}
		servers = append(servers, srv)
		s.addresses = append(s.addresses, ln.Addr().String())
		slog.Info("serving the Kubernetes API", "address", ln.Addr().String())
		go func() {
			if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	// the kubernetes Service names the port actually bound, so it comes after the listeners
	if err := s.reconcileKubernetesService(ctx); err != nil {
		for _, srv := range servers {
			srv.Close()
		}
		return fmt.Errorf("the kubernetes service: %w", err)
	}
	go s.maintainServices(ctx)
	close(s.ready)
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	slog.Info("API server stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Shutdown(shutdownCtx); err != nil {
				srv.Close()
			}
		}()
	}
	s.cancel() // ends watches so that shutdown does not wait for them
	wg.Wait()
	return runErr
}

// systemNamespaces exist from the start, as upstream's bootstrap controller makes them.
var systemNamespaces = []string{metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic, corev1.NamespaceNodeLease}

// bootstrap creates what every cluster has before the first request.
func (s *Server) bootstrap(ctx context.Context) error {
	ns := s.resources[schema.GroupVersion{Version: "v1"}]["namespaces"].store
	for _, name := range systemNamespaces {
		obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		apis.Scheme.Default(obj)
		_, err := ns.Create(ctx, "", obj, false)
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", name, err)
		}
	}
	pcs := s.resources[schedulingv1.SchemeGroupVersion]["priorityclasses"].store
	for _, pc := range apis.SystemPriorityClasses {
		obj := pc.DeepCopy()
		apis.Scheme.Default(obj)
		if _, err := pcs.Create(ctx, "", obj, false); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create priority class %s: %w", pc.Name, err)
		}
	}
	return nil
}
