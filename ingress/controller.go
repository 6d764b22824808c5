// Package ingress is skiff's built-in ingress controller, as k3s ships Traefik: it owns the
// IngressClass "skiff" (controller skiff.dev/ingress) and serves the HTTP(S) rules of the
// Ingresses of that class on this node's ports 80 and 443, proxying each request straight to a
// ready endpoint (pod IP and port) of the backend Service, round-robin. Certificates come from
// the kubernetes.io/tls Secrets that spec.tls names, picked by SNI, with a self-signed one for
// names none covers. It writes the node's address into status.loadBalancer of the Ingresses it
// serves.
//
// It reads Ingresses, IngressClasses, Services, EndpointSlices, TLS Secrets and its Node, and
// writes only its own IngressClass (created once if missing) and ingresses/status. It never
// touches an Ingress of another class, nor the status another controller wrote.
package ingress

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	coreinformers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	networkinginformers "k8s.io/client-go/informers/networking/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	networkinglisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controllers"
)

const (
	// ClassName is the IngressClass this controller owns unless Config names another.
	ClassName = "skiff"
	// ControllerName is the spec.controller of the classes this controller serves.
	ControllerName = "skiff.dev/ingress"
	// DefaultClassAnnotation marks the IngressClass a new Ingress naming none gets.
	DefaultClassAnnotation = "ingressclass.kubernetes.io/is-default-class"
	// ClassAnnotation is the deprecated way an Ingress names its class, still honoured.
	ClassAnnotation = "kubernetes.io/ingress.class"
	// Name names the controller in logs and metrics.
	Name = "ingress-controller"
	// routesKey is the one key of the routes queue: every change rebuilds the whole table.
	routesKey = "routes"
)

// Config is what the controller needs to know of its node.
type Config struct {
	// NodeName is this node's Node; its ExternalIP, else its InternalIP, is the address written
	// into the status of the Ingresses served.
	NodeName string
	// PublishAddress, when set, is written instead of the node's address.
	PublishAddress string
	// ClassName is the IngressClass owned; default ClassName.
	ClassName string
}

// Controller keeps the routing table, certificates and Ingress status. It is the
// http.Handler the node's ports serve; TLSConfig gives the HTTPS port its certificates.
type Controller struct {
	client kubernetes.Interface
	cfg    Config

	ingresses networkinglisters.IngressLister
	classes   networkinglisters.IngressClassLister
	services  corelisters.ServiceLister
	slices    discoverylisters.EndpointSliceLister
	secrets   corelisters.SecretLister
	nodes     corelisters.NodeLister
	synced    []cache.InformerSynced

	routesQueue controllers.Queue
	statusQueue controllers.Queue

	// current is what requests are served from; nil until the first sync.
	current atomic.Pointer[state]
	// keyPairs caches parsed Secrets by namespace/name, only the routes worker touches it.
	keyPairs map[string]parsedKeyPair
	// counters keep each backend's round-robin position across rebuilds.
	counters sync.Map // Backend → *atomic.Uint64
	// selfSigned answers SNI names no Ingress has a certificate for.
	selfSigned *tls.Certificate
	metrics    *Metrics
	proxy      http.Handler
}

// state is one consistent view to serve from: routes, their endpoints, certificates.
type state struct {
	table     *Table
	upstreams map[Backend]*upstream
	certs     *certificates
	// summary is one line per route and per TLS problem, for logging what changed
	summary map[string]string
}

// upstream is a backend's ready endpoints, tried round-robin.
type upstream struct {
	addrs []netip.AddrPort
	// why is the reason there are none, for the 503's body and the log
	why  string
	next *atomic.Uint64
}

// String lists the endpoints for logs, or says why there are none.
func (u *upstream) String() string {
	if len(u.addrs) == 0 {
		return "no endpoints: " + u.why
	}
	shown := make([]string, 0, min(len(u.addrs), 8))
	for _, a := range u.addrs[:cap(shown)] {
		shown = append(shown, a.String())
	}
	out := fmt.Sprintf("%d endpoints: %s", len(u.addrs), strings.Join(shown, ","))
	if len(u.addrs) > len(shown) {
		out += ",..."
	}
	return out
}

func (u *upstream) pick() (netip.AddrPort, bool) {
	if u == nil || len(u.addrs) == 0 {
		return netip.AddrPort{}, false
	}
	return u.addrs[(u.next.Add(1)-1)%uint64(len(u.addrs))], true
}

// New makes the controller on informers of every Ingress, IngressClass, Service,
// EndpointSlice and kubernetes.io/tls Secret, and of its Node (the caller may narrow the
// Secret and Node informers with field selectors). Call it before the informers start.
func New(client kubernetes.Interface, ingresses networkinginformers.IngressInformer, classes networkinginformers.IngressClassInformer,
	services coreinformers.ServiceInformer, slices discoveryinformers.EndpointSliceInformer, secrets coreinformers.SecretInformer,
	nodes coreinformers.NodeInformer, cfg Config) (*Controller, error) {
	if cfg.ClassName == "" {
		cfg.ClassName = ClassName
	}
	selfSigned, err := selfSignedCertificate()
	if err != nil {
		return nil, err
	}
	c := &Controller{
		client:    client,
		cfg:       cfg,
		ingresses: ingresses.Lister(),
		classes:   classes.Lister(),
		services:  services.Lister(),
		slices:    slices.Lister(),
		secrets:   secrets.Lister(),
		nodes:     nodes.Lister(),
		synced: []cache.InformerSynced{ingresses.Informer().HasSynced, classes.Informer().HasSynced, services.Informer().HasSynced,
			slices.Informer().HasSynced, secrets.Informer().HasSynced, nodes.Informer().HasSynced},
		routesQueue: controllers.NewQueue(Name+"-routes", controllers.Reporting{}),
		statusQueue: controllers.NewQueue(Name+"-status", controllers.Reporting{}),
		keyPairs:    map[string]parsedKeyPair{},
		selfSigned:  selfSigned,
		metrics:     newMetrics(),
	}
	c.proxy = c.newReverseProxy()
	rebuild := func(any) { c.routesQueue.Add(routesKey) }
	everyChange := cache.ResourceEventHandlerFuncs{AddFunc: rebuild, UpdateFunc: func(_, cur any) { rebuild(cur) }, DeleteFunc: rebuild}
	for _, inf := range []cache.SharedIndexInformer{services.Informer(), slices.Informer(), secrets.Informer()} {
		if _, err := inf.AddEventHandler(everyChange); err != nil {
			return nil, err
		}
	}
	ingressChange := func(obj any) {
		rebuild(obj)
		if key, err := controllers.KeyOf(obj); err == nil {
			c.statusQueue.Add(key)
		}
	}
	if _, err := ingresses.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: ingressChange, UpdateFunc: func(_, cur any) { ingressChange(cur) }, DeleteFunc: rebuild,
	}); err != nil {
		return nil, err
	}
	// the class (which Ingresses are ours) and the node's address change every status
	everyIngress := func(obj any) {
		rebuild(obj)
		c.enqueueAllStatus()
	}
	for _, inf := range []cache.SharedIndexInformer{classes.Informer(), nodes.Informer()} {
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: everyIngress, UpdateFunc: func(_, cur any) { everyIngress(cur) }, DeleteFunc: everyIngress,
		}); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Run keeps the routes and the status until ctx is done. Requests are answered 503 until
// the first routes are built.
func (c *Controller) Run(ctx context.Context) {
	c.routesQueue.Add(routesKey)
	var wg sync.WaitGroup
	wg.Go(func() {
		controllers.Workers{Name: Name + "-routes", Queue: c.routesQueue, Sync: c.syncRoutes, Synced: c.synced}.Run(ctx, 1)
	})
	wg.Go(func() {
		controllers.Workers{Name: Name + "-status", Queue: c.statusQueue, Sync: c.syncStatus, Synced: c.synced}.Run(ctx, 1)
	})
	wg.Wait()
}

// Healthy says whether routes have been built: the controller serves what the API says.
func (c *Controller) Healthy() bool { return c.current.Load() != nil }

// Metrics are the controller's series for /metrics.
func (c *Controller) Metrics() *Metrics { return c.metrics }

func (c *Controller) enqueueAllStatus() {
	ings, err := c.ingresses.List(labels.Everything())
	if err != nil {
		return
	}
	for _, ing := range ings {
		c.statusQueue.Add(ing.Namespace + "/" + ing.Name)
	}
}

// class is the IngressClass this controller owns, nil while it does not exist or belongs to
// another controller.
func (c *Controller) class() *networkingv1.IngressClass {
	ic, err := c.classes.Get(c.cfg.ClassName)
	if err != nil || ic.Spec.Controller != ControllerName {
		return nil
	}
	return ic
}

// serves says whether ing is this controller's: it names the class (ingressClassName, or the
// deprecated annotation), or names none while the class is the default one.
func serves(ing *networkingv1.Ingress, class *networkingv1.IngressClass) bool {
	if class == nil {
		return false
	}
	if name := ing.Spec.IngressClassName; name != nil {
		return *name == class.Name
	}
	if name, ok := ing.Annotations[ClassAnnotation]; ok {
		return name == class.Name
	}
	return class.Annotations[DefaultClassAnnotation] == "true"
}

// ensureClass creates the IngressClass when it is missing: marked default when no other
// class is, so that a fresh cluster's Ingresses are served as on k3s, where Traefik's class is
// the default one. Once made it is the user's: the default mark is never put back.
func (c *Controller) ensureClass(ctx context.Context) error {
	existing, err := c.classes.Get(c.cfg.ClassName)
	if err == nil {
		if existing.Spec.Controller != ControllerName {
			return fmt.Errorf("IngressClass %s exists with controller %q, not %q: serving nothing", c.cfg.ClassName, existing.Spec.Controller, ControllerName)
		}
		return nil
	}
	all, err := c.classes.List(labels.Everything())
	if err != nil {
		return err
	}
	ic := &networkingv1.IngressClass{
		ObjectMeta: metav1.ObjectMeta{Name: c.cfg.ClassName, Labels: map[string]string{"app.kubernetes.io/managed-by": "skiff"}},
		Spec:       networkingv1.IngressClassSpec{Controller: ControllerName},
	}
	if !slices.ContainsFunc(all, func(other *networkingv1.IngressClass) bool {
		return other.Annotations[DefaultClassAnnotation] == "true"
	}) {
		ic.Annotations = map[string]string{DefaultClassAnnotation: "true"}
	}
	_, err = c.client.NetworkingV1().IngressClasses().Create(ctx, ic, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err == nil {
		slog.Info("ingress class created", "class", ic.Name, "controller", ControllerName, "default", ic.Annotations[DefaultClassAnnotation] == "true")
	}
	return err
}

// syncRoutes rebuilds the routing table, endpoints and certificates from the informers'
// caches, swaps them in and logs each route that changed.
func (c *Controller) syncRoutes(ctx context.Context, _ string) error {
	classErr := c.ensureClass(ctx)
	class := c.class()
	all, err := c.ingresses.List(labels.Everything())
	if err != nil {
		return err
	}
	var ours []*networkingv1.Ingress
	for _, ing := range all {
		if serves(ing, class) {
			ours = append(ours, ing)
		}
	}
	next := &state{table: NewTable(ours), upstreams: map[Backend]*upstream{}, summary: map[string]string{}}
	for _, r := range next.table.Routes() {
		next.summary["route "+r.Key()] = fmt.Sprintf("ingress=%s backend=%s", r.Ingress, r.Backend)
		if _, ok := next.upstreams[r.Backend]; !ok {
			u := c.resolve(r.Backend)
			next.upstreams[r.Backend] = u
			next.summary["backend "+r.Backend.String()] = u.String()
		}
	}
	var problems map[string]string
	next.certs, problems = c.buildCertificates(ours)
	for k, v := range problems {
		next.summary[k] = v
	}
	prev := c.current.Swap(next)
	logChanges(prev, next)
	c.metrics.routes.Set(float64(len(next.table.Routes())))
	c.metrics.lastSync.SetToCurrentTime()
	if classErr != nil {
		return classErr // retried, with back-off
	}
	return nil
}

// logChanges logs one line per route, backend's endpoints or TLS problem added, changed or
// removed.
func logChanges(prev, next *state) {
	var before map[string]string
	if prev != nil {
		before = prev.summary
	}
	keys := make([]string, 0, len(next.summary))
	for k := range next.summary {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		was, ok := before[k]
		switch {
		case !ok:
			slog.Info("ingress: added "+k, "now", next.summary[k])
		case was != next.summary[k]:
			slog.Info("ingress: changed "+k, "was", was, "now", next.summary[k])
		}
	}
	for k, was := range before {
		if _, ok := next.summary[k]; !ok {
			slog.Info("ingress: removed "+k, "was", was)
		}
	}
}

// resolve finds a backend's ready endpoints: the Service's port (by number or name), then the
// EndpointSlices' port of that name, on every ready endpoint's first address.
func (c *Controller) resolve(b Backend) *upstream {
	u := &upstream{}
	counter, _ := c.counters.LoadOrStore(b, &atomic.Uint64{})
	u.next = counter.(*atomic.Uint64)
	if b.Resource != "" {
		u.why = "resource backends are not served"
		return u
	}
	svc, err := c.services.Services(b.Namespace).Get(b.Service)
	if err != nil {
		u.why = "no such service"
		return u
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		u.why = "ExternalName services are not served"
		return u
	}
	var port *corev1.ServicePort
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if p.Protocol == corev1.ProtocolTCP && ((b.Port.Name != "" && p.Name == b.Port.Name) || (b.Port.Name == "" && p.Port == b.Port.Number)) {
			port = p
		}
	}
	if port == nil {
		u.why = "the service has no such TCP port"
		return u
	}
	epSlices, err := c.slices.EndpointSlices(b.Namespace).List(labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: b.Service}))
	if err != nil {
		u.why = err.Error()
		return u
	}
	seen := map[netip.AddrPort]bool{}
	for _, s := range epSlices {
		var number int32
		for _, p := range s.Ports {
			if ptr.Deref(p.Name, "") == port.Name && ptr.Deref(p.Protocol, corev1.ProtocolTCP) == corev1.ProtocolTCP && p.Port != nil {
				number = *p.Port
			}
		}
		if number == 0 {
			continue
		}
		for _, e := range s.Endpoints {
			if !ptr.Deref(e.Conditions.Ready, true) || len(e.Addresses) == 0 {
				continue
			}
			ip, err := netip.ParseAddr(e.Addresses[0])
			if err != nil {
				continue
			}
			ap := netip.AddrPortFrom(ip, uint16(number))
			if !seen[ap] {
				seen[ap] = true
				u.addrs = append(u.addrs, ap)
			}
		}
	}
	slices.SortFunc(u.addrs, func(a, b netip.AddrPort) int { return a.Compare(b) })
	if len(u.addrs) == 0 {
		u.why = "no ready endpoints"
	}
	return u
}

// syncStatus writes the node's address into status.loadBalancer of an Ingress served, and
// takes it out of one no longer served (only when it is exactly what this controller wrote).
func (c *Controller) syncStatus(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	ing, err := c.ingresses.Ingresses(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	addr := c.publishAddress()
	if !addr.IsValid() {
		return nil // the node's informer brings it, and with it every Ingress again
	}
	ours := []networkingv1.IngressLoadBalancerIngress{{IP: addr.String()}}
	var want []networkingv1.IngressLoadBalancerIngress
	switch {
	case serves(ing, c.class()):
		want = ours
	case apiequality.Semantic.DeepEqual(ing.Status.LoadBalancer.Ingress, ours):
		want = nil
	default:
		return nil
	}
	if apiequality.Semantic.DeepEqual(ing.Status.LoadBalancer.Ingress, want) {
		return nil
	}
	out := ing.DeepCopy()
	out.Status.LoadBalancer.Ingress = want
	_, err = c.client.NetworkingV1().Ingresses(namespace).UpdateStatus(ctx, out, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err == nil {
		slog.Info("ingress: status written", "ingress", key, "loadBalancer", addressesOf(want))
	}
	return err
}

func addressesOf(lb []networkingv1.IngressLoadBalancerIngress) []string {
	out := []string{}
	for _, i := range lb {
		out = append(out, i.IP)
	}
	return out
}

// publishAddress is the configured address, or the node's ExternalIP, else its InternalIP
// (IPv4 first); invalid while the node is unknown.
func (c *Controller) publishAddress() netip.Addr {
	if a, err := netip.ParseAddr(c.cfg.PublishAddress); err == nil {
		return a
	}
	node, err := c.nodes.Get(c.cfg.NodeName)
	if err != nil {
		return netip.Addr{}
	}
	var found netip.Addr
	for _, t := range []corev1.NodeAddressType{corev1.NodeExternalIP, corev1.NodeInternalIP} {
		for _, a := range node.Status.Addresses {
			ip, err := netip.ParseAddr(a.Address)
			if a.Type != t || err != nil {
				continue
			}
			if ip.Is4() {
				return ip
			}
			if !found.IsValid() {
				found = ip
			}
		}
		if found.IsValid() {
			return found
		}
	}
	return found
}
