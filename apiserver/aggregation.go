package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/transport"
	"k8s.io/client-go/util/workqueue"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/apiserver/certs"
	"github.com/skiff-dev/skiff/registry"
)

// API aggregation, as upstream's kube-aggregator does it inside the API server, written anew:
//
//   - every group version the server serves itself has a "Local" APIService
//     (apiregistration.k8s.io/v1), made at start and whenever the served set changes, so that
//     CustomResourceDefinitions' versions get theirs as upstream's crdRegistrationController
//     makes them;
//   - an APIService naming a Service is remote: its Available condition comes from checking
//     the Service, its EndpointSlices and the extension server's discovery document
//     (/apis/GROUP/VERSION), at once on every change and every resyncAPIServices after;
//   - while it is available, its group version's requests are proxied to the extension server
//     (aggregation_proxy.go), and discovery lists the resources of its last discovery
//     document beside the server's own (aggregation_discovery.go), and its OpenAPI v3
//     document is listed and proxied (aggregation_openapi.go);
//   - the extension-apiserver-authentication ConfigMap in kube-system tells extension servers
//     which CAs to trust for client certificates and for the front proxy, and which headers
//     name the user.
//
// A remote APIService takes precedence over what the server serves itself for its group
// version, as upstream's aggregator sits in front of everything: registering
// v1beta1.metrics.k8s.io for metrics-server replaces skiff's built-in metrics API until that
// APIService is deleted or made local again.

// resyncAPIServices is how often every remote APIService is checked again (and its discovery
// document refreshed) when nothing about it changed.
const resyncAPIServices = 30 * time.Second

// The label upstream's autoregistration marks the APIServices it manages with: "onstart" for
// the built-in group versions (reconciled when the server starts), "true" for those of
// CustomResourceDefinitions (kept in step continuously).
const (
	autoManagedLabel   = "kube-aggregator.kubernetes.io/automanaged"
	autoManagedOnStart = "onstart"
	autoManagedAlways  = "true"
)

// extensionAuthenticationConfigMap is where extension servers read how to authenticate
// requests, as upstream publishes it.
const extensionAuthenticationConfigMap = "extension-apiserver-authentication"

// remoteAPIService is what the server knows of one remote APIService: immutable once built.
type remoteAPIService struct {
	apiService *apiregistrationv1.APIService
	available  bool
	// transport reaches the extension server; nil with transportErr when the APIService's TLS
	// settings cannot be used
	transport    *http.Transport
	transportErr error
	// discovery is the extension server's last discovery document of the group version
	discovery *metav1.APIResourceList
	// openAPIV3URL is where the extension server serves the group version's OpenAPI v3
	// document ("/openapi/v3/apis/G/V?hash=..."), or ""
	openAPIV3URL string
}

// aggregation is the server's state of APIServices. The worker writes it; requests read
// remote without locks.
type aggregation struct {
	s              *Server
	apiServices    *registry.Store
	services       *registry.Store
	endpointSlices *registry.Store
	configMaps     *registry.Store
	queue          workqueue.TypedRateLimitingInterface[string]
	// remote holds the remote APIServices by group version (a map never changed once stored)
	remote atomic.Pointer[map[schema.GroupVersion]*remoteAPIService]
	// started is set once start has made the local APIServices; from then on they follow
	// the served set
	started atomic.Bool
}

// the queue's key that reconciles local APIServices rather than naming one
const localAPIServicesKey = "\x00local"

func newAggregation(s *Server) *aggregation {
	a := &aggregation{s: s,
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())}
	empty := map[schema.GroupVersion]*remoteAPIService{}
	a.remote.Store(&empty)
	return a
}

// remoteFor is the remote APIService of gv, or nil.
func (a *aggregation) remoteFor(gv schema.GroupVersion) *remoteAPIService {
	if a == nil {
		return nil
	}
	return (*a.remote.Load())[gv]
}

// remoteDiscovery are the remote APIServices whose group versions discovery lists: the
// available ones whose discovery document has been read.
func (a *aggregation) remoteDiscovery() []*remoteAPIService {
	if a == nil {
		return nil
	}
	var out []*remoteAPIService
	for _, rs := range *a.remote.Load() {
		if rs.available && rs.discovery != nil {
			out = append(out, rs)
		}
	}
	return out
}

// noteServedChanged brings the local APIServices in step with a changed served set at once,
// once the server has started: a CustomResourceDefinition's APIService exists when the
// definition is Established. Failures are retried by the worker.
func (a *aggregation) noteServedChanged() {
	if a == nil || !a.started.Load() {
		return
	}
	if err := a.reconcileLocal(a.s.ctx, false); err != nil && a.s.ctx.Err() == nil {
		slog.Warn("local APIServices", "err", err)
		a.queue.AddRateLimited(localAPIServicesKey)
	}
}

// serveRemote proxies a request of a remote APIService's group version and reports true, or
// reports false for every other request.
func (a *aggregation) serveRemote(w http.ResponseWriter, r *http.Request) bool {
	parts := splitPath(r.URL.Path)
	if len(parts) < 3 || parts[0] != "apis" {
		return false
	}
	rs := a.remoteFor(schema.GroupVersion{Group: parts[1], Version: parts[2]})
	if rs == nil {
		return false
	}
	a.s.proxyToAPIService(w, r, rs)
	return true
}

// start publishes the authentication ConfigMap and reconciles the local APIServices, before
// the server reports ready (as upstream's start hooks), so that what a cluster has from its
// start is there before the first client looks; then run follows changes.
func (a *aggregation) start(ctx context.Context) error {
	a.apiServices = a.s.builtinStore(apiregistrationv1.SchemeGroupVersion, "apiservices")
	a.services = a.s.builtinStore(corev1.SchemeGroupVersion, "services")
	a.endpointSlices = a.s.builtinStore(discoveryv1.SchemeGroupVersion, "endpointslices")
	a.configMaps = a.s.builtinStore(corev1.SchemeGroupVersion, "configmaps")
	if err := a.publishAuthentication(ctx); err != nil {
		return fmt.Errorf("extension-apiserver-authentication ConfigMap: %w", err)
	}
	if err := a.reconcileLocal(ctx, true); err != nil {
		return fmt.Errorf("local APIServices: %w", err)
	}
	a.started.Store(true)
	return nil
}

// run checks remote APIServices, keeps local ones in step with the served set and the
// authentication ConfigMap published until ctx is done.
func (a *aggregation) run(ctx context.Context) {
	go func() {
		<-ctx.Done()
		a.queue.ShutDown()
	}()
	// what the served set gained between start's reconciliation and started (definitions
	// being served as the server starts)
	a.queue.Add(localAPIServicesKey)
	go a.follow(ctx, a.apiServices, func(obj runtime.Object) {
		if m, err := meta.Accessor(obj); err == nil {
			a.queue.Add(m.GetName())
		}
	})
	// a Service or its EndpointSlices changing may change the availability of APIServices
	// naming it
	byService := func(namespace, name string) {
		for _, rs := range *a.remote.Load() {
			if ref := rs.apiService.Spec.Service; ref.Namespace == namespace && ref.Name == name {
				a.queue.Add(rs.apiService.Name)
			}
		}
	}
	go a.follow(ctx, a.services, func(obj runtime.Object) {
		if m, err := meta.Accessor(obj); err == nil {
			byService(m.GetNamespace(), m.GetName())
		}
	})
	go a.follow(ctx, a.endpointSlices, func(obj runtime.Object) {
		if m, err := meta.Accessor(obj); err == nil {
			byService(m.GetNamespace(), m.GetLabels()[discoveryv1.LabelServiceName])
		}
	})
	go func() {
		tick := time.NewTicker(resyncAPIServices)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				for _, rs := range *a.remote.Load() {
					a.queue.Add(rs.apiService.Name)
				}
				if err := a.publishAuthentication(ctx); err != nil && ctx.Err() == nil {
					slog.Warn("extension-apiserver-authentication ConfigMap", "err", err)
				}
			}
		}
	}()
	for {
		key, quit := a.queue.Get()
		if quit {
			return
		}
		var err error
		if key == localAPIServicesKey {
			err = a.reconcileLocal(ctx, false)
		} else {
			err = a.sync(ctx, key)
		}
		if err != nil && ctx.Err() == nil {
			slog.Warn("APIService", "name", key, "err", err)
			a.queue.AddRateLimited(key)
		} else {
			a.queue.Forget(key)
		}
		a.queue.Done(key)
	}
}

// follow calls onEvent for every object of store at start and for each one that changes,
// relisting whenever the watch ends.
func (a *aggregation) follow(ctx context.Context, store *registry.Store, onEvent func(runtime.Object)) {
	for ctx.Err() == nil {
		list, err := store.List(ctx, "", registry.ListOptions{})
		if err != nil {
			sleepCtx(ctx, time.Second)
			continue
		}
		items, _ := meta.ExtractList(list)
		for _, it := range items {
			onEvent(it)
		}
		lm, _ := meta.ListAccessor(list)
		w, err := store.Watch(ctx, "", registry.ListOptions{ResourceVersion: lm.GetResourceVersion()})
		if err != nil {
			sleepCtx(ctx, time.Second)
			continue
		}
		for ev := range w.ResultChan() {
			if ev.Type != watch.Error && ev.Type != watch.Bookmark {
				onEvent(ev.Object)
			}
		}
		w.Stop()
	}
}

// setRemote replaces (rs non-nil) or removes the remote APIService of gv, and rebuilds the
// discovery documents when what discovery lists changed.
func (a *aggregation) setRemote(gv schema.GroupVersion, rs *remoteAPIService) {
	old := *a.remote.Load()
	prev := old[gv]
	if prev == nil && rs == nil {
		return
	}
	next := maps.Clone(old)
	if rs == nil {
		delete(next, gv)
	} else {
		next[gv] = rs
	}
	a.remote.Store(&next)
	listed := func(rs *remoteAPIService) *metav1.APIResourceList {
		if rs == nil || !rs.available {
			return nil
		}
		return rs.discovery
	}
	if !apiequality.Semantic.DeepEqual(listed(prev), listed(rs)) ||
		(prev != nil && rs != nil && !apiequality.Semantic.DeepEqual(prev.apiService.Spec, rs.apiService.Spec)) {
		a.s.rebuildDiscovery()
	}
}

// sync brings one APIService's condition, and the server's view of it, up to date.
func (a *aggregation) sync(ctx context.Context, name string) error {
	obj, err := a.apiServices.Get(ctx, "", name, &metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		for gv, rs := range *a.remote.Load() {
			if rs.apiService.Name == name {
				if rs.transport != nil {
					rs.transport.CloseIdleConnections()
				}
				a.setRemote(gv, nil)
			}
		}
		// a deleted local APIService of a served group version comes back
		a.queue.Add(localAPIServicesKey)
		return nil
	}
	if err != nil {
		return err
	}
	svc := obj.(*apiregistrationv1.APIService)
	gv := schema.GroupVersion{Group: svc.Spec.Group, Version: svc.Spec.Version}
	// a group version moved to another APIService name cannot happen (the name is
	// version.group), but drop any stale entry of this name under another group version
	for other, rs := range *a.remote.Load() {
		if rs.apiService.Name == name && other != gv {
			a.setRemote(other, nil)
		}
	}
	if svc.Spec.Service == nil {
		if prev := a.remoteFor(gv); prev != nil && prev.transport != nil {
			prev.transport.CloseIdleConnections()
		}
		a.setRemote(gv, nil)
		cond := apis.LocalAvailableCondition(time.Now())
		return a.setCondition(ctx, svc, cond)
	}
	rs := &remoteAPIService{apiService: svc}
	prev := a.remoteFor(gv)
	if prev != nil && prev.apiService.UID == svc.UID && sameConnection(prev.apiService, svc) {
		// the same extension server, reached the same way: keep its connections
		rs.transport, rs.transportErr = prev.transport, prev.transportErr
	} else {
		if prev != nil && prev.transport != nil {
			prev.transport.CloseIdleConnections()
		}
		rs.transport, rs.transportErr = newAPIServiceTransport(svc, a.s.cfg.FrontProxyClientCert)
	}
	cond, discovery, openAPIV3URL := a.check(ctx, rs)
	rs.available = cond.Status == apiregistrationv1.ConditionTrue
	rs.discovery, rs.openAPIV3URL = discovery, openAPIV3URL
	if prev != nil && rs.discovery == nil && prev.apiService.UID == svc.UID {
		rs.discovery = prev.discovery
	}
	a.setRemote(gv, rs)
	if err := a.setCondition(ctx, svc, cond); err != nil {
		return err
	}
	if !rs.available {
		// checked again soon, beside the resync, as upstream requeues a failed check
		a.queue.AddAfter(name, 5*time.Second)
	}
	return nil
}

// sameConnection reports whether two versions of a remote APIService reach their extension
// server the same way (Service and TLS settings).
func sameConnection(a, b *apiregistrationv1.APIService) bool {
	return apiequality.Semantic.DeepEqual(a.Spec.Service, b.Spec.Service) &&
		a.Spec.InsecureSkipTLSVerify == b.Spec.InsecureSkipTLSVerify && string(a.Spec.CABundle) == string(b.Spec.CABundle)
}

// check is upstream's availability check of a remote APIService: the Service exists and
// listens on the port, its EndpointSlices have a ready address for it, and the extension
// server answers its discovery document. It returns the Available condition and, when
// available, that document and where the extension serves its OpenAPI v3 document.
func (a *aggregation) check(ctx context.Context, rs *remoteAPIService) (apiregistrationv1.APIServiceCondition, *metav1.APIResourceList, string) {
	svc := rs.apiService
	target, failed := a.s.resolveAPIService(ctx, svc)
	if failed != nil {
		return *failed, nil, ""
	}
	discoveryURL := *target
	discoveryURL.Path = "/apis/" + svc.Spec.Group + "/" + svc.Spec.Version
	if svc.Name == "v1." {
		discoveryURL.Path = "/api/" + svc.Spec.Version
	}
	fail := func(err error) apiregistrationv1.APIServiceCondition {
		return apiregistrationv1.APIServiceCondition{Type: apiregistrationv1.Available, Status: apiregistrationv1.ConditionFalse,
			Reason: "FailedDiscoveryCheck", Message: fmt.Sprintf("failing or missing response from %v: %v", discoveryURL.String(), err)}
	}
	if rs.transport == nil {
		return fail(rs.transportErr), nil, ""
	}
	client := &http.Client{Transport: rs.transport, Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		list, err := a.fetchDiscovery(ctx, client, discoveryURL.String())
		if err == nil {
			base := target.Scheme + "://" + target.Host
			return apiregistrationv1.APIServiceCondition{Type: apiregistrationv1.Available, Status: apiregistrationv1.ConditionTrue,
				Reason: "Passed", Message: "all checks passed"}, list, a.fetchOpenAPIV3URL(ctx, client, base, remoteGroupVersion(rs))
		}
		lastErr = err
		rs.transport.CloseIdleConnections()
		if ctx.Err() != nil {
			break
		}
	}
	return fail(lastErr), nil, ""
}

// fetchDiscovery reads a group version's discovery document as upstream's check does: as
// system:kube-aggregator in system:masters, which every extension server allows.
func (a *aggregation) fetchDiscovery(ctx context.Context, client *http.Client, u string) (*metav1.APIResourceList, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	transport.SetAuthProxyHeaders(req, "system:kube-aggregator", "", []string{"system:masters"}, nil)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode < http.StatusOK || resp.StatusCode >= http.StatusMultipleChoices {
		return nil, fmt.Errorf("bad status from %v: %d", u, resp.StatusCode)
	}
	if err != nil {
		return nil, err
	}
	list := &metav1.APIResourceList{}
	if err := json.Unmarshal(body, list); err != nil {
		// available all the same, as upstream only asks for an answer; discovery lists nothing
		slog.Warn("APIService discovery document", "url", u, "err", err)
		return nil, nil
	}
	return list, nil
}

// setCondition writes the Available condition unless the APIService has it already; the
// transition time moves only when the status does.
func (a *aggregation) setCondition(ctx context.Context, svc *apiregistrationv1.APIService, cond apiregistrationv1.APIServiceCondition) error {
	if cur := apis.APIServiceAvailable(svc); cur != nil && cur.Status == cond.Status && cur.Reason == cond.Reason && cur.Message == cond.Message {
		return nil
	}
	_, _, err := a.apiServices.Update(ctx, "", svc.Name, apis.APIServiceStatusStrategy, func(_ context.Context, cur runtime.Object) (runtime.Object, error) {
		c := cur.(*apiregistrationv1.APIService).DeepCopy()
		if c.UID != svc.UID {
			return nil, apierrors.NewConflict(apiregistrationv1.Resource("apiservices"), svc.Name, errors.New("the APIService was replaced"))
		}
		now := cond
		now.LastTransitionTime = metav1.Now()
		if old := apis.APIServiceAvailable(c); old != nil {
			if old.Status == now.Status {
				now.LastTransitionTime = old.LastTransitionTime
			}
			*old = now
		} else {
			c.Status.Conditions = append(c.Status.Conditions, now)
		}
		return c, nil
	}, false)
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		a.queue.Add(svc.Name)
		return nil
	}
	return err
}

// apiServicePriority is a group version's place in discovery: upstream's table for the
// built-in groups (kube-apiserver's and the generic API server's default priorities).
type apiServicePriority struct{ group, version int32 }

var builtinAPIServicePriorities = map[schema.GroupVersion]apiServicePriority{
	{Group: "", Version: "v1"}:                             {18000, 1},
	{Group: "apps", Version: "v1"}:                         {17800, 15},
	{Group: "events.k8s.io", Version: "v1"}:                {17750, 15},
	{Group: "authentication.k8s.io", Version: "v1"}:        {17700, 15},
	{Group: "authorization.k8s.io", Version: "v1"}:         {17600, 15},
	{Group: "autoscaling", Version: "v1"}:                  {17500, 15},
	{Group: "autoscaling", Version: "v2"}:                  {17500, 30},
	{Group: "batch", Version: "v1"}:                        {17400, 15},
	{Group: "certificates.k8s.io", Version: "v1"}:          {17300, 15},
	{Group: "networking.k8s.io", Version: "v1"}:            {17200, 15},
	{Group: "policy", Version: "v1"}:                       {17100, 15},
	{Group: "rbac.authorization.k8s.io", Version: "v1"}:    {17000, 15},
	{Group: "storage.k8s.io", Version: "v1"}:               {16800, 15},
	{Group: "apiextensions.k8s.io", Version: "v1"}:         {16700, 15},
	{Group: "admissionregistration.k8s.io", Version: "v1"}: {16700, 15},
	{Group: "scheduling.k8s.io", Version: "v1"}:            {16600, 15},
	{Group: "coordination.k8s.io", Version: "v1"}:          {16500, 15},
	{Group: "node.k8s.io", Version: "v1"}:                  {16300, 15},
	{Group: "discovery.k8s.io", Version: "v1"}:             {16200, 15},
	{Group: "flowcontrol.apiserver.k8s.io", Version: "v1"}: {16100, 21},
	{Group: "apiregistration.k8s.io", Version: "v1"}:       {18000, 15},
	// upstream has no built-in metrics API; these are metrics-server's APIService's
	{Group: "metrics.k8s.io", Version: "v1beta1"}: {100, 100},
}

// localAPIService is the local APIService of a group version the server serves: upstream's
// priorities for built-in ones, and for CustomResourceDefinitions' those upstream's
// crdRegistrationController gives them.
func localAPIService(gv schema.GroupVersion, builtin bool) *apiregistrationv1.APIService {
	p, ok := builtinAPIServicePriorities[gv]
	managed := autoManagedOnStart
	if !builtin {
		managed = autoManagedAlways
	}
	if !ok {
		p = apiServicePriority{1000, 100}
	}
	return &apiregistrationv1.APIService{
		ObjectMeta: metav1.ObjectMeta{Name: apis.APIServiceName(gv), Labels: map[string]string{autoManagedLabel: managed}},
		Spec: apiregistrationv1.APIServiceSpec{Group: gv.Group, Version: gv.Version,
			GroupPriorityMinimum: p.group, VersionPriority: p.version},
	}
}

// reconcileLocal makes the local APIServices match the served group versions: missing ones
// are created; managed ones whose spec drifted are set back (the built-in ones at start only,
// those of CustomResourceDefinitions always), and managed ones of group versions no longer
// served are deleted. An APIService a user pointed at a Service is left alone.
func (a *aggregation) reconcileLocal(ctx context.Context, startup bool) error {
	set := a.s.current().set
	builtin := map[schema.GroupVersion]bool{}
	for _, gv := range apis.Builtin.GroupVersions() {
		builtin[gv] = true
	}
	want := map[string]*apiregistrationv1.APIService{}
	for _, gv := range set.GroupVersions() {
		svc := localAPIService(gv, builtin[gv])
		want[svc.Name] = svc
	}
	// from the watch cache: cheap on the path that serves a definition, and a stale answer
	// only makes a create meet AlreadyExists or a delete NotFound
	list, err := a.apiServices.List(ctx, "", registry.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return err
	}
	have := map[string]*apiregistrationv1.APIService{}
	for i := range list.(*apiregistrationv1.APIServiceList).Items {
		svc := &list.(*apiregistrationv1.APIServiceList).Items[i]
		have[svc.Name] = svc
	}
	var errs []error
	for name, svc := range want {
		cur, ok := have[name]
		switch {
		case !ok:
			apis.Scheme.Default(svc)
			if _, err := a.apiServices.Create(ctx, "", svc, false); err != nil && !apierrors.IsAlreadyExists(err) {
				errs = append(errs, err)
			}
		case cur.Spec.Service != nil, cur.Labels[autoManagedLabel] == "":
			// a user's: a remote APIService replaces the server's own serving
		case cur.Labels[autoManagedLabel] == autoManagedOnStart && !startup:
		case !apiequality.Semantic.DeepEqual(cur.Spec, svc.Spec) || cur.Labels[autoManagedLabel] != svc.Labels[autoManagedLabel]:
			_, _, err := a.apiServices.Update(ctx, "", name, apis.APIServiceStrategy, func(_ context.Context, obj runtime.Object) (runtime.Object, error) {
				c := obj.(*apiregistrationv1.APIService).DeepCopy()
				c.Spec = svc.Spec
				if c.Labels == nil {
					c.Labels = map[string]string{}
				}
				c.Labels[autoManagedLabel] = svc.Labels[autoManagedLabel]
				return c, nil
			}, false)
			if err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	for name, cur := range have {
		managed := cur.Labels[autoManagedLabel]
		if _, ok := want[name]; ok || cur.Spec.Service != nil || managed == "" || (managed == autoManagedOnStart && !startup) {
			continue
		}
		uid := cur.UID
		if _, _, err := a.apiServices.Delete(ctx, "", name, &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}); err != nil &&
			!apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// publishAuthentication writes the extension-apiserver-authentication ConfigMap as upstream
// publishes it: the CA that verifies client certificates, and the front proxy's CA, allowed
// name and headers.
func (a *aggregation) publishAuthentication(ctx context.Context) error {
	data := map[string]string{}
	if len(a.s.cfg.ClientCABundle) > 0 {
		data["client-ca-file"] = string(a.s.cfg.ClientCABundle)
	}
	if len(a.s.cfg.FrontProxyCA) > 0 {
		data["requestheader-client-ca-file"] = string(a.s.cfg.FrontProxyCA)
		data["requestheader-allowed-names"] = `["` + certs.FrontProxyClientName + `"]`
		data["requestheader-username-headers"] = `["X-Remote-User"]`
		data["requestheader-uid-headers"] = `["X-Remote-Uid"]`
		data["requestheader-group-headers"] = `["X-Remote-Group"]`
		data["requestheader-extra-headers-prefix"] = `["X-Remote-Extra-"]`
	}
	obj, err := a.configMaps.Get(ctx, metav1.NamespaceSystem, extensionAuthenticationConfigMap, &metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: extensionAuthenticationConfigMap, Namespace: metav1.NamespaceSystem}, Data: data}
		if _, err := a.configMaps.Create(ctx, metav1.NamespaceSystem, cm, false); !apierrors.IsAlreadyExists(err) {
			return err
		}
	} else if err != nil {
		return err
	} else if maps.Equal(obj.(*corev1.ConfigMap).Data, data) {
		return nil
	}
	_, _, err = a.configMaps.Update(ctx, metav1.NamespaceSystem, extensionAuthenticationConfigMap, apis.ConfigMapStrategy, func(_ context.Context, obj runtime.Object) (runtime.Object, error) {
		c := obj.(*corev1.ConfigMap).DeepCopy()
		c.Data = data
		return c, nil
	}, false)
	return err
}
