package apiserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fcbootstrap "k8s.io/apiserver/pkg/apis/flowcontrol/bootstrap"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/apiserver/flowcontrol"
)

// API priority and fairness in the request chain: every request but the long-running ones
// that are not watches is classified by the FlowSchemas and waits for a seat of its priority
// level (apiserver/flowcontrol), in place of upstream's flat max-in-flight limit. The
// FlowSchemas and PriorityLevelConfigurations are read from the watch caches; upstream's
// mandatory and suggested ones are kept as its config producer keeps them.

func init() {
	metricsRegistry.MustRegister(flowcontrol.Collectors()...)
}

const (
	flowSchemaUIDHeader    = "X-Kubernetes-PF-FlowSchema-UID"
	priorityLevelUIDHeader = "X-Kubernetes-PF-PriorityLevel-UID"
	// autoUpdateAnnotation says whether the server keeps a bootstrap object's spec.
	autoUpdateAnnotation = "apf.kubernetes.io/autoupdate-spec"
)

// withPriorityAndFairness holds each request until its priority level has seats for it, or
// answers upstream's 429. The server's concurrency is upstream's: max-requests-inflight plus
// max-mutating-requests-inflight, shared among the limited levels by their shares.
func (s *Server) withPriorityAndFairness(next http.Handler) http.Handler {
	s.apf = flowcontrol.NewController(s.cfg.MaxRequestsInFlight + s.cfg.MaxMutatingRequestsInFlight)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := requestInfoFrom(r.Context())
		isWatch := ri.Verb == "watch"
		if isLongRunning(ri) && !isWatch {
			// upstream does not track long-running requests other than watches
			next.ServeHTTP(w, r)
			return
		}
		d := flowcontrol.RequestDigest{
			IsResourceRequest: ri.IsResourceRequest, Verb: ri.Verb, APIGroup: ri.APIGroup,
			Resource: ri.Resource, Subresource: ri.Subresource, Namespace: ri.Namespace, Path: ri.Path,
		}
		if user, ok := authn.UserFrom(r.Context()); ok {
			d.User, d.Groups = user.Name, user.Groups
		}
		// a request waits at most a quarter of its timeout in a queue, as upstream
		waitCtx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		ticket, err := s.apf.Admit(waitCtx, d, s.seatsOf(r, ri))
		cancel()
		w.Header().Set(flowSchemaUIDHeader, string(ticket.FlowSchema.UID))
		w.Header().Set(priorityLevelUIDHeader, string(ticket.PriorityLevel.UID))
		if errors.Is(err, flowcontrol.ErrRejected) {
			tooManyRequests(w, s.apf.RetryAfter(ticket.PriorityLevel.Name))
			return
		}
		if !isWatch {
			defer ticket.Finish()
			next.ServeHTTP(w, r)
			return
		}
		// A watch holds its seat only while it starts: until it answers (its headers, or an
		// error), as upstream releases it once the watch is initialized.
		var once sync.Once
		release := func() { once.Do(ticket.Finish) }
		defer release()
		next.ServeHTTP(&watchStartWriter{ResponseWriter: w, started: release}, r)
	})
}

// tooManyRequests answers as upstream's priority-and-fairness filter does: plain text, and
// a Retry-After that rises while the level keeps rejecting.
func tooManyRequests(w http.ResponseWriter, retryAfter int64) {
	w.Header().Set("Retry-After", strconv.FormatInt(retryAfter, 10))
	http.Error(w, "Too many requests, please try again later.", http.StatusTooManyRequests)
}

// seatsOf is upstream's work estimate: a LIST costs seats by the objects of its resource the
// watch cache holds (or its page size), everything else one seat.
func (s *Server) seatsOf(r *http.Request, ri *requestInfo) int {
	if !ri.IsResourceRequest || ri.Verb != "list" {
		return 1
	}
	var limit int64
	if v := r.URL.Query().Get("limit"); v != "" {
		limit, _ = strconv.ParseInt(v, 10, 64)
	}
	return flowcontrol.ListSeats(s.storedObjects(ri), limit)
}

// storedObjects is how many objects of the request's resource the watch cache holds.
func (s *Server) storedObjects(ri *requestInfo) int64 {
	res := s.current().set.Lookup(ri.groupVersion(), ri.Resource)
	if res == nil || res.StorageKey == "" {
		return 0
	}
	s.state.mu.Lock()
	st := s.state.storages[res.StorageKey]
	s.state.mu.Unlock()
	if st == nil {
		return 0
	}
	return st.Count()
}

// watchStartWriter reports the first thing a watch handler writes: the watch has started.
type watchStartWriter struct {
	http.ResponseWriter
	started func()
}

func (w *watchStartWriter) WriteHeader(code int) {
	w.ResponseWriter.WriteHeader(code)
	w.started()
}

func (w *watchStartWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.started()
	return n, err
}

func (w *watchStartWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	w.started()
}

func (w *watchStartWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := w.ResponseWriter.(http.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, errors.New("hijack not supported")
}

// startPriorityAndFairness puts the bootstrap objects in place before the server says it is
// ready, as upstream's readyz waits for its priority-and-fairness-config-producer hook, and
// then keeps the configuration in step until ctx ends.
func (s *Server) startPriorityAndFairness(ctx context.Context) error {
	client, err := kubernetes.NewForConfig(s.loopbackConfig())
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		err := ensureFlowControlObjects(ctx, client)
		if err == nil {
			break
		}
		slog.Warn("creating the priority and fairness configuration failed; retrying", "attempt", attempt+1, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	// the FlowSchemas' first Dangling conditions too: written later, they would land in the
	// middle of the first clients' requests (a writer of nothing would see etcd change)
	if err := markDanglingStored(ctx, client); err != nil {
		slog.Warn("priority and fairness: setting Dangling conditions failed; the controller retries", "err", err)
	}
	go s.runPriorityAndFairness(ctx, client)
	// the levels lend and borrow seats by their demand, recomputed every ten seconds
	go s.apf.RunBorrowing(ctx)
	return nil
}

// markDanglingStored sets the Dangling conditions of the FlowSchemas stored now.
func markDanglingStored(ctx context.Context, client kubernetes.Interface) error {
	fsList, err := client.FlowcontrolV1().FlowSchemas().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	plcList, err := client.FlowcontrolV1().PriorityLevelConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	fss := make([]*flowcontrolv1.FlowSchema, len(fsList.Items))
	for i := range fsList.Items {
		fss[i] = &fsList.Items[i]
	}
	plcs := make([]*flowcontrolv1.PriorityLevelConfiguration, len(plcList.Items))
	for i := range plcList.Items {
		plcs[i] = &plcList.Items[i]
	}
	return markDanglingFlowSchemas(ctx, client, fss, plcs)
}

// runPriorityAndFairness keeps the controller's configuration, the bootstrap objects and the
// FlowSchemas' Dangling conditions in step with what is stored, until ctx ends.
func (s *Server) runPriorityAndFairness(ctx context.Context, client kubernetes.Interface) {
	schemas := s.storeInformer(flowcontrolv1.SchemeGroupVersion, "flowschemas", &flowcontrolv1.FlowSchema{})
	levels := s.storeInformer(flowcontrolv1.SchemeGroupVersion, "prioritylevelconfigurations", &flowcontrolv1.PriorityLevelConfiguration{})
	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	}
	schemas.AddEventHandler(handler)
	levels.AddEventHandler(handler)
	go schemas.Run(ctx.Done())
	go levels.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), schemas.HasSynced, levels.HasSynced) {
		return
	}
	for {
		var fss []*flowcontrolv1.FlowSchema
		for _, o := range schemas.GetStore().List() {
			fss = append(fss, o.(*flowcontrolv1.FlowSchema))
		}
		var plcs []*flowcontrolv1.PriorityLevelConfiguration
		for _, o := range levels.GetStore().List() {
			plcs = append(plcs, o.(*flowcontrolv1.PriorityLevelConfiguration))
		}
		s.apf.Update(fss, plcs)
		// bootstrap objects deleted or changed are put back, as upstream's config producer
		err := errors.Join(ensureFlowControlObjects(ctx, client), markDanglingFlowSchemas(ctx, client, fss, plcs))
		if err != nil && ctx.Err() == nil {
			slog.Warn("priority and fairness: maintaining configuration failed; retrying", "err", err)
			time.AfterFunc(time.Second, notify)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// markDanglingFlowSchemas sets each FlowSchema's Dangling condition in upstream's words.
func markDanglingFlowSchemas(ctx context.Context, client kubernetes.Interface, fss []*flowcontrolv1.FlowSchema, plcs []*flowcontrolv1.PriorityLevelConfiguration) error {
	exists := map[string]bool{}
	for _, plc := range plcs {
		exists[plc.Name] = true
	}
	var errs []error
	for _, fs := range fss {
		pl := fs.Spec.PriorityLevelConfiguration.Name
		want := flowcontrolv1.FlowSchemaCondition{Type: flowcontrolv1.FlowSchemaConditionDangling}
		if exists[pl] {
			want.Status, want.Reason = flowcontrolv1.ConditionFalse, "Found"
			want.Message = fmt.Sprintf("This FlowSchema references the PriorityLevelConfiguration object named %q and it exists", pl)
		} else {
			want.Status, want.Reason = flowcontrolv1.ConditionTrue, "NotFound"
			want.Message = fmt.Sprintf("This FlowSchema references the PriorityLevelConfiguration object named %q but there is no such object", pl)
		}
		updated := fs.DeepCopy()
		found := false
		for i, c := range updated.Status.Conditions {
			if c.Type != flowcontrolv1.FlowSchemaConditionDangling {
				continue
			}
			found = true
			if c.Status == want.Status && c.Reason == want.Reason && c.Message == want.Message {
				break
			}
			want.LastTransitionTime = metav1.Now()
			updated.Status.Conditions[i] = want
		}
		if found && want.LastTransitionTime.IsZero() {
			continue
		}
		if !found {
			want.LastTransitionTime = metav1.Now()
			updated.Status.Conditions = append(updated.Status.Conditions, want)
		}
		if _, err := client.FlowcontrolV1().FlowSchemas().UpdateStatus(ctx, updated, metav1.UpdateOptions{FieldManager: "api-priority-and-fairness-config-consumer-v1"}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ensureFlowControlObjects keeps upstream's bootstrap objects as its config producer does:
// the mandatory ones always exist with their fixed spec; a suggested one is created when
// missing, and its spec is put back while the server controls it (annotation
// apf.kubernetes.io/autoupdate-spec "true", or no annotation and generation 1); objects the
// server controls that are no longer suggested are deleted.
func ensureFlowControlObjects(ctx context.Context, client kubernetes.Interface) error {
	fsClient := client.FlowcontrolV1().FlowSchemas()
	plClient := client.FlowcontrolV1().PriorityLevelConfigurations()
	var errs []error
	bootstrapPLs := map[string]bool{}
	for i, plc := range append(append([]*flowcontrolv1.PriorityLevelConfiguration(nil), fcbootstrap.MandatoryPriorityLevelConfigurations...), fcbootstrap.SuggestedPriorityLevelConfigurations...) {
		bootstrapPLs[plc.Name] = true
		want := plc.DeepCopy()
		apis.DefaultPriorityLevelConfiguration(want)
		mandatory := i < len(fcbootstrap.MandatoryPriorityLevelConfigurations)
		errs = append(errs, ensureObject(ctx, plClient, want, mandatory,
			func(got, want *flowcontrolv1.PriorityLevelConfiguration) bool {
				return apiequality.Semantic.DeepEqual(got.Spec, want.Spec)
			},
			func(got, want *flowcontrolv1.PriorityLevelConfiguration) { got.Spec = want.Spec }))
	}
	bootstrapFSs := map[string]bool{}
	for i, fs := range append(append([]*flowcontrolv1.FlowSchema(nil), fcbootstrap.MandatoryFlowSchemas...), fcbootstrap.SuggestedFlowSchemas...) {
		bootstrapFSs[fs.Name] = true
		want := fs.DeepCopy()
		apis.DefaultFlowSchema(want)
		mandatory := i < len(fcbootstrap.MandatoryFlowSchemas)
		errs = append(errs, ensureObject(ctx, fsClient, want, mandatory,
			func(got, want *flowcontrolv1.FlowSchema) bool {
				return apiequality.Semantic.DeepEqual(got.Spec, want.Spec)
			},
			func(got, want *flowcontrolv1.FlowSchema) { got.Spec = want.Spec }))
	}
	// objects the server once kept that are neither mandatory nor suggested now go
	if list, err := fsClient.List(ctx, metav1.ListOptions{}); err != nil {
		errs = append(errs, err)
	} else {
		for _, fs := range list.Items {
			if !bootstrapFSs[fs.Name] && fs.Annotations[autoUpdateAnnotation] == "true" {
				errs = append(errs, ignoreNotFound(fsClient.Delete(ctx, fs.Name, metav1.DeleteOptions{})))
			}
		}
	}
	if list, err := plClient.List(ctx, metav1.ListOptions{}); err != nil {
		errs = append(errs, err)
	} else {
		for _, plc := range list.Items {
			if !bootstrapPLs[plc.Name] && plc.Annotations[autoUpdateAnnotation] == "true" {
				errs = append(errs, ignoreNotFound(plClient.Delete(ctx, plc.Name, metav1.DeleteOptions{})))
			}
		}
	}
	return errors.Join(errs...)
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// flowControlClient is what ensureObject needs of the typed FlowSchema and
// PriorityLevelConfiguration clients.
type flowControlClient[T any] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
	Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
}

type flowControlObject interface {
	*flowcontrolv1.FlowSchema | *flowcontrolv1.PriorityLevelConfiguration
	metav1.Object
}

func ensureObject[T flowControlObject](ctx context.Context, client flowControlClient[T], want T, mandatory bool,
	sameSpec func(got, want T) bool, setSpec func(got, want T)) error {
	got, err := client.Get(ctx, want.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		want.SetAnnotations(map[string]string{autoUpdateAnnotation: "true"})
		_, err = client.Create(ctx, want, metav1.CreateOptions{FieldManager: "api-priority-and-fairness-config-producer-v1"})
		if apierrors.IsAlreadyExists(err) {
			return nil // another writer was first; the next pass looks again
		}
		return err
	}
	if err != nil {
		return err
	}
	var autoUpdate bool
	switch v, ok := got.GetAnnotations()[autoUpdateAnnotation]; {
	case mandatory:
		autoUpdate = true
	case ok && (v == "true" || v == "false"):
		autoUpdate = v == "true"
	default:
		autoUpdate = got.GetGeneration() == 1
	}
	wantAnnotation := strconv.FormatBool(autoUpdate)
	if got.GetAnnotations()[autoUpdateAnnotation] == wantAnnotation && (!autoUpdate || sameSpec(got, want)) {
		return nil
	}
	annotations := got.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[autoUpdateAnnotation] = wantAnnotation
	got.SetAnnotations(annotations)
	if autoUpdate {
		setSpec(got, want)
	}
	_, err = client.Update(ctx, got, metav1.UpdateOptions{FieldManager: "api-priority-and-fairness-config-producer-v1"})
	if apierrors.IsConflict(err) {
		return nil // changed meanwhile: its watch event brings another pass
	}
	return err
}
