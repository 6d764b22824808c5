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
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/google/uuid"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/apiserver/admissionpolicy"
	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/apiserver/flowcontrol"
	"github.com/skiff-dev/skiff/apiserver/webhook"
	"github.com/skiff-dev/skiff/registry"
	"github.com/skiff-dev/skiff/registry/storage/cacher"
	"github.com/skiff-dev/skiff/registry/storage/etcd3"
)

// Server is one API server.
type Server struct {
	cfg   Config
	authn authn.Authenticator
	authz *authorization
	// loopbackToken authenticates the server's own requests (loopback.go)
	loopbackToken string
	// audit records requests as auditPolicy says (audit.go); nil records nothing
	audit       auditBackend
	auditPolicy *auditPolicy
	// tokenAuthn is authn without the loopback token: what TokenReview answers with
	tokenAuthn authn.Authenticator
	handler    http.Handler
	// state is what is served now (served.go); it changes as resources come and go
	state     servedState
	admission *admission
	// policies are the ValidatingAdmissionPolicies in force (admission_policy.go)
	policies *admissionpolicy.Policies
	// webhooks calls the admission webhooks (admission_webhook.go)
	webhooks  *webhook.Dispatcher
	openAPI   openAPIDocuments
	advertise string

	apf *flowcontrol.Controller // API priority and fairness (priorityandfairness.go)
	// addresses are the listeners' actual addresses, set before ready is closed
	addresses []string
	// allocator reserves services' cluster IPs and node ports; endpointIP is where the
	// kubernetes Service sends clients
	allocator *registry.ServiceAllocator
	// kubeletTransport reaches kubelets for logs, exec and node proxy requests
	kubeletTransport *http.Transport
	// endpointTransport reaches pods for pods/proxy and services/proxy requests
	endpointTransport *http.Transport
	// aggregation follows APIServices: local ones, and remote ones proxied to
	// (aggregation.go)
	aggregation *aggregation
	// resourceMetrics keeps the kubelets' earlier scrapes for the metrics API
	resourceMetrics resourceMetricsState
	endpointIP      netip.Addr
	tokenIssuer     *authn.TokenIssuer // signs the tokens of serviceaccounts/token
	issuerDiscovery *issuerDiscovery   // its OpenID discovery documents (oidc.go)
	health          *healthChecks
	ready           chan struct{}
	ctx             context.Context
	cancel          context.CancelFunc
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
		cfg.ServiceClusterIPRange = DefaultServiceClusterIPRange
	}
	if cfg.ServiceNodePortRange == "" {
		cfg.ServiceNodePortRange = "30000-32767"
	}
	cidr, secondaryCIDR, err := registry.ParseServiceCIDRs(cfg.ServiceClusterIPRange)
	if err != nil {
		return nil, err
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
		cfg:               cfg,
		admission:         &admission{disabled: disabled},
		advertise:         advertiseAddress(cfg.BindAddresses[0]),
		ready:             make(chan struct{}),
		endpointIP:        advertisedIP(cfg.AdvertiseAddress),
		kubeletTransport:  newKubeletTransport(cfg.KubeletClientCert, cfg.KubeletCA),
		endpointTransport: newEndpointTransport(),
		allocator:         &registry.ServiceAllocator{CIDR: cidr, SecondaryCIDR: secondaryCIDR, PortBase: portBase, PortCount: portCount},
		ctx:               ctx,
		cancel:            cancel,
	}
	s.aggregation = newAggregation(s)
	if err := s.buildResources(ctx, disabled); err != nil {
		cancel()
		return nil, err
	}
	if err := s.buildAuthenticator(); err != nil {
		cancel()
		return nil, err
	}
	if s.loopbackToken, err = newLoopbackToken(); err != nil {
		cancel()
		return nil, err
	}
	s.tokenAuthn = s.authn
	s.authn = authn.Union(loopbackAuthenticator(s.loopbackToken, uuid.NewString()), s.authn)
	modes := cfg.AuthorizationModes
	if len(modes) == 0 {
		modes = DefaultAuthorizationModes
	}
	if s.authz, err = s.newAuthorization(modes); err != nil {
		cancel()
		return nil, err
	}
	s.webhooks = s.newWebhookDispatcher()
	if err := s.startAudit(); err != nil {
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

// buildResources serves the built-in resources: one watch cache per etcd key segment and one
// registry store and handler per resource (served.go), and gives admission the stores it reads.
func (s *Server) buildResources(ctx context.Context, disabled sets.Set[string]) error {
	if err := s.loadEncryptionConfig(); err != nil {
		return err
	}
	s.state.etcd = etcd3.New(s.cfg.Etcd)
	base := &instrumentedStorage{inner: s.state.etcd}
	s.allocator.Storage = base
	s.state.base = base
	s.state.storages = map[string]*sharedStorage{}
	s.state.current.Store(newServed(apis.NewSet(nil), nil, nil))
	s.policies = s.newAdmissionPolicies()
	if err := s.serveResources(apis.Builtin.All(), nil); err != nil {
		return err
	}
	s.admission.namespaces = s.builtinStore(corev1.SchemeGroupVersion, "namespaces")
	s.admission.priorityClasses = s.builtinStore(schedulingv1.SchemeGroupVersion, "priorityclasses")
	s.admission.serviceAccounts = s.builtinStore(corev1.SchemeGroupVersion, "serviceaccounts")
	s.admission.pods = s.builtinStore(corev1.SchemeGroupVersion, "pods")
	s.admission.storageClasses = s.builtinStore(storagev1.SchemeGroupVersion, "storageclasses")
	s.admission.ingressClasses = s.builtinStore(networkingv1.SchemeGroupVersion, "ingressclasses")
	s.admission.runtimeClasses = s.builtinStore(nodev1.SchemeGroupVersion, "runtimeclasses")
	s.admission.limitRanges = s.builtinStore(corev1.SchemeGroupVersion, "limitranges")
	s.admission.resourceQuotas = s.builtinStore(corev1.SchemeGroupVersion, "resourcequotas")
	s.admission.quotaBatches = newQuotaBatches()
	return nil
}

// builtinStore is the registry store of a built-in resource, which is always served.
func (s *Server) builtinStore(gv schema.GroupVersion, resource string) *registry.Store {
	h := s.current().handler(gv, resource)
	if h == nil {
		panic(fmt.Sprintf("%s %s is not served", gv, resource)) // the table lost a built-in kind
	}
	return h.store
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
	if s.audit != nil {
		defer s.audit.close()
	}
	if err := s.authz.run(ctx); err != nil {
		return err
	}
	if err := s.bootstrap(ctx); err != nil {
		return err
	}
	// the default policy is in place before the server says it is ready, as upstream's
	// readyz waits for its rbac/bootstrap-roles hook
	if err := s.ensureDefaultPolicy(ctx); err != nil {
		return err
	}
	// admission policies are enforced from the first request, as upstream waits for them
	if err := s.startAdmissionPolicies(ctx); err != nil {
		return fmt.Errorf("admission policies: %w", err)
	}
	if err := s.startPriorityAndFairness(ctx); err != nil {
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
			// as upstream: a keep-alive connection left idle is closed (bodies have their
			// deadline in withRequestBodyRead)
			IdleTimeout:    90 * time.Second,
			MaxHeaderBytes: 1 << 20,
			ErrorLog:       nil,
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
	go s.maintainKubernetesEndpoints(ctx)
	go s.runCustomResourceDefinitions(ctx)
	if err := s.aggregation.start(ctx); err != nil {
		for _, srv := range servers {
			srv.Close()
		}
		return err
	}
	go s.aggregation.run(ctx)
	close(s.ready)
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	slog.Info("API server stopping")
	s.leaveKubernetesEndpoints()
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
	ns := s.builtinStore(corev1.SchemeGroupVersion, "namespaces")
	for _, name := range systemNamespaces {
		obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		apis.Scheme.Default(obj)
		_, err := ns.Create(ctx, "", obj, false)
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", name, err)
		}
	}
	pcs := s.builtinStore(schedulingv1.SchemeGroupVersion, "priorityclasses")
	for _, pc := range apis.SystemPriorityClasses {
		obj := pc.DeepCopy()
		apis.Scheme.Default(obj)
		if _, err := pcs.Create(ctx, "", obj, false); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create priority class %s: %w", pc.Name, err)
		}
	}
	return s.ensureDefaultServiceCIDR(ctx)
}
