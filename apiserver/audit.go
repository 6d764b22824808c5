package apiserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"gopkg.in/natefinch/lumberjack.v2"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"sigs.k8s.io/yaml"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/apiserver/authn"
)

// Audit logging, as upstream's --audit-policy-file and --audit-log-path: an audit.k8s.io/v1
// Policy decides, per request, at which level it is recorded (None, Metadata, Request,
// RequestResponse; the first matching rule wins), and each recorded stage of the request
// (RequestReceived, ResponseStarted for watches, ResponseComplete, Panic) is one line of JSON,
// an audit.k8s.io/v1 Event, in the log file. Every response carries the Audit-ID header.

// auditPolicy is a loaded audit policy.
type auditPolicy struct{ auditv1.Policy }

// loadAuditPolicy reads an audit.k8s.io/v1 Policy from a YAML or JSON file.
func loadAuditPolicy(path string) (*auditPolicy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit policy: %w", err)
	}
	var p auditv1.Policy
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		return nil, fmt.Errorf("audit policy %s: %w", path, err)
	}
	if p.APIVersion != auditv1.SchemeGroupVersion.String() || p.Kind != "Policy" {
		return nil, fmt.Errorf("audit policy %s: apiVersion %q kind %q, want %s Policy", path, p.APIVersion, p.Kind, auditv1.SchemeGroupVersion)
	}
	for i, r := range p.Rules {
		switch r.Level {
		case auditv1.LevelNone, auditv1.LevelMetadata, auditv1.LevelRequest, auditv1.LevelRequestResponse:
		default:
			return nil, fmt.Errorf("audit policy %s: rules[%d].level: Unsupported value: %q", path, i, r.Level)
		}
	}
	return &auditPolicy{p}, nil
}

// auditDecision is how the policy records one request.
type auditDecision struct {
	level      auditv1.Level
	omitStages []auditv1.Stage
	// omitManagedFields drops metadata.managedFields from the recorded request and response
	// objects: the rule's omitManagedFields, else the policy's.
	omitManagedFields bool
}

// levelFor is the decision of the first rule matching a request.
func (p *auditPolicy) levelFor(user *authn.User, ri *requestInfo) auditDecision {
	for _, r := range p.Rules {
		if ruleMatches(&r, user, ri) {
			d := auditDecision{level: r.Level, omitStages: append(slices.Clone(p.OmitStages), r.OmitStages...),
				omitManagedFields: p.OmitManagedFields}
			if r.OmitManagedFields != nil {
				d.omitManagedFields = *r.OmitManagedFields
			}
			return d
		}
	}
	return auditDecision{level: auditv1.LevelNone}
}

func ruleMatches(r *auditv1.PolicyRule, user *authn.User, ri *requestInfo) bool {
	if len(r.Users) > 0 && !slices.Contains(r.Users, user.Name) {
		return false
	}
	if len(r.UserGroups) > 0 && !slices.ContainsFunc(user.Groups, func(g string) bool { return slices.Contains(r.UserGroups, g) }) {
		return false
	}
	if len(r.Verbs) > 0 && !slices.Contains(r.Verbs, ri.Verb) {
		return false
	}
	if len(r.Namespaces) > 0 || len(r.Resources) > 0 {
		return ri.IsResourceRequest && ruleMatchesResource(r, ri)
	}
	if len(r.NonResourceURLs) > 0 {
		return !ri.IsResourceRequest && slices.ContainsFunc(r.NonResourceURLs, func(u string) bool {
			prefix, wild := strings.CutSuffix(u, "*")
			return u == ri.Path || wild && strings.HasPrefix(ri.Path, prefix)
		})
	}
	return true
}

// ruleMatchesResource applies a rule's namespaces and group resources as upstream's policy
// checker: "pods" is the resource alone, "pods/log" one subresource, "pods/*" every
// subresource, "*/scale" one subresource of every resource.
func ruleMatchesResource(r *auditv1.PolicyRule, ri *requestInfo) bool {
	if len(r.Namespaces) > 0 && !slices.Contains(r.Namespaces, ri.Namespace) {
		return false
	}
	if len(r.Resources) == 0 {
		return true
	}
	combined := ri.Resource
	if ri.Subresource != "" {
		combined += "/" + ri.Subresource
	}
	for _, gr := range r.Resources {
		if gr.Group != ri.APIGroup && gr.Group != "*" {
			continue
		}
		if len(gr.Resources) == 0 {
			return true
		}
		for _, res := range gr.Resources {
			if res == combined || res == "*/*" || res == "*" && ri.Subresource == "" ||
				res == ri.Resource+"/*" && ri.Subresource != "" || res == "*/"+ri.Subresource && ri.Subresource != "" {
				if len(gr.ResourceNames) == 0 || slices.Contains(gr.ResourceNames, ri.Name) {
					return true
				}
			}
		}
	}
	return false
}

// startAudit loads the policy and opens the backends Config names: a policy needs at least
// one backend, and a backend a policy.
func (s *Server) startAudit() error {
	cfg := s.cfg
	hasBackend := cfg.AuditLogPath != "" || cfg.AuditWebhook.ConfigFile != ""
	if (cfg.AuditPolicyFile == "") != !hasBackend {
		return errors.New("apiserver: an audit policy file needs an audit log path or an audit webhook config file, and the other way round")
	}
	if cfg.AuditPolicyFile == "" {
		return nil
	}
	var err error
	if s.auditPolicy, err = loadAuditPolicy(cfg.AuditPolicyFile); err != nil {
		return err
	}
	var backends auditBackends
	if cfg.AuditLogPath != "" {
		backends = append(backends, openAuditLog(cfg.AuditLogPath, cfg.AuditLogRotation))
	}
	if cfg.AuditWebhook.ConfigFile != "" {
		w, err := newAuditWebhook(cfg.AuditWebhook)
		if err != nil {
			return err
		}
		backends = append(backends, w)
	}
	s.audit = backends
	return nil
}

// AuditLogRotation is when the audit log file is rotated, as upstream's flags: MaxAge days
// old files are kept (--audit-log-maxage), MaxBackups of them (--audit-log-maxbackup), and
// the file is rotated at MaxSize megabytes (--audit-log-maxsize); zero is lumberjack's
// default for each (keep all, 100 MB), as upstream. Compress gzips rotated files
// (--audit-log-compress).
type AuditLogRotation struct {
	MaxAge, MaxBackups, MaxSize int
	Compress                    bool
}

// auditLog writes events, one JSON line each, to a file rotated by lumberjack (or standard
// output for "-").
type auditLog struct {
	mu sync.Mutex
	w  io.Writer
}

func openAuditLog(path string, rotation AuditLogRotation) *auditLog {
	if path == "-" {
		return &auditLog{w: os.Stdout}
	}
	// lumberjack opens the file at the first write, 0600, and makes its directory
	return &auditLog{w: &lumberjack.Logger{Filename: path, MaxAge: rotation.MaxAge, MaxBackups: rotation.MaxBackups,
		MaxSize: rotation.MaxSize, Compress: rotation.Compress}}
}

func (l *auditLog) write(ev *auditv1.Event) {
	withType := *ev // other backends share ev
	withType.TypeMeta = metav1.TypeMeta{APIVersion: auditv1.SchemeGroupVersion.String(), Kind: "Event"}
	line, err := json.Marshal(&withType)
	if err != nil {
		slog.Error("audit event", "err", err)
		auditErrors.WithLabelValues("log").Inc()
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.w.Write(append(line, '\n')); err != nil {
		slog.Error("writing the audit log", "err", err)
		auditErrors.WithLabelValues("log").Inc()
	}
}

func (l *auditLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.w.(io.Closer); ok {
		c.Close()
	}
}

// auditEventKey carries the request's audit event, which impersonation and authorization add
// to.
type auditEventKey struct{}

// auditEventFrom is the request's audit event, or nil when it is not recorded.
func auditEventFrom(ctx context.Context) *auditv1.Event {
	ev, _ := ctx.Value(auditEventKey{}).(*auditv1.Event)
	return ev
}

// userInfo is a user as audit events and reviews show it.
func userInfo(u *authn.User) authenticationv1.UserInfo {
	info := authenticationv1.UserInfo{Username: u.Name, UID: u.UID, Groups: u.Groups}
	for k, v := range u.Extra {
		if info.Extra == nil {
			info.Extra = map[string]authenticationv1.ExtraValue{}
		}
		info.Extra[k] = v
	}
	return info
}

// maxAuditedBody bounds the request and response bodies an event records.
const maxAuditedBody = 1 << 20

// withAudit records requests as the policy says. It runs after authentication, so that the
// event names the authenticated user; impersonation adds whom the request acted as.
func (s *Server) withAudit(next http.Handler) http.Handler {
	if s.audit == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auditID := r.Header.Get("Audit-ID")
		if auditID == "" {
			auditID = uuid.NewString()
		}
		w.Header().Set("Audit-ID", auditID)
		ri := requestInfoFrom(r.Context())
		user, _ := authn.UserFrom(r.Context())
		if user == nil {
			user = &authn.User{}
		}
		decision := s.auditPolicy.levelFor(user, ri)
		level, omit := decision.level, decision.omitStages
		auditLevels.WithLabelValues(string(level)).Inc()
		if level == auditv1.LevelNone {
			next.ServeHTTP(w, r)
			return
		}
		ev := &auditv1.Event{
			Level: level, AuditID: types.UID(auditID), RequestURI: r.URL.RequestURI(), Verb: ri.Verb,
			User: userInfo(user), SourceIPs: sourceIPs(r), UserAgent: r.UserAgent(),
			RequestReceivedTimestamp: metav1.NewMicroTime(time.Now()),
		}
		if ri.IsResourceRequest {
			ev.ObjectRef = &auditv1.ObjectReference{Resource: ri.Resource, Namespace: ri.Namespace, Name: ri.Name,
				APIGroup: ri.APIGroup, APIVersion: ri.APIVersion, Subresource: ri.Subresource}
		}
		emit := func(stage auditv1.Stage) {
			if slices.Contains(omit, stage) {
				return
			}
			e := ev.DeepCopy()
			e.Stage, e.StageTimestamp = stage, metav1.NewMicroTime(time.Now())
			s.audit.write(e)
		}
		if level != auditv1.LevelMetadata && r.Body != nil && isMutating(ri.Verb) {
			// whole: withRequestBodyRead has bounded it already, and a body cut at the
			// audit bound would reach the handler cut too
			body, err := io.ReadAll(r.Body)
			r.Body.Close()
			r.Body = io.NopCloser(bytes.NewReader(body))
			if err == nil && len(body) <= maxAuditedBody {
				ev.RequestObject = auditedObject(body, decision.omitManagedFields)
			}
		}
		emit(auditv1.StageRequestReceived)
		rec := &auditWriter{ResponseWriter: w, captureBody: level == auditv1.LevelRequestResponse}
		if isLongRunning(ri) {
			rec.started = func() { ev.ResponseStatus = &metav1.Status{Code: int32(rec.code)}; emit(auditv1.StageResponseStarted) }
		}
		defer func() {
			if v := recover(); v != nil {
				ev.ResponseStatus = &metav1.Status{Code: http.StatusInternalServerError, Status: metav1.StatusFailure,
					Message: fmt.Sprintf("APIServer panic'd: %v", v)}
				emit(auditv1.StagePanic)
				panic(v)
			}
		}()
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), auditEventKey{}, ev)))
		code := rec.code
		if code == 0 {
			code = http.StatusOK
		}
		ev.ResponseStatus = &metav1.Status{Code: int32(code)}
		if code >= 400 {
			var st metav1.Status
			if json.Unmarshal(rec.body.Bytes(), &st) == nil && st.Kind == "Status" {
				ev.ResponseStatus.Status, ev.ResponseStatus.Message, ev.ResponseStatus.Reason = st.Status, st.Message, st.Reason
			}
		}
		if level == auditv1.LevelRequestResponse && rec.body.Len() > 0 && rec.body.Len() <= maxAuditedBody {
			ev.ResponseObject = auditedObject(rec.body.Bytes(), decision.omitManagedFields)
		}
		emit(auditv1.StageResponseComplete)
	})
}

// auditedObject is a request or response body as an event records it: JSON, whatever the
// wire format was (protobuf and YAML are decoded and written again as JSON); nil for a body
// that is no object (a patch in protobuf, a stream). omitManagedFields drops the object's
// managedFields, and those of a list's items.
func auditedObject(body []byte, omitManagedFields bool) *runtime.Unknown {
	raw := body
	if json.Valid(body) {
		raw = bytes.Clone(body)
	} else {
		obj, _, err := apis.Codecs.UniversalDeserializer().Decode(body, nil, nil)
		if err != nil {
			return nil
		}
		if raw, err = json.Marshal(obj); err != nil {
			return nil
		}
	}
	if omitManagedFields {
		raw = withoutManagedFields(raw)
	}
	return &runtime.Unknown{Raw: raw, ContentType: runtime.ContentTypeJSON}
}

// withoutManagedFields removes metadata.managedFields from a JSON object and its items; a
// body that is no JSON object is returned as it is.
func withoutManagedFields(raw []byte) []byte {
	var obj map[string]any
	if json.Unmarshal(raw, &obj) != nil {
		return raw
	}
	drop := func(o any) {
		if m, ok := o.(map[string]any); ok {
			if md, ok := m["metadata"].(map[string]any); ok {
				delete(md, "managedFields")
			}
		}
	}
	drop(obj)
	if items, ok := obj["items"].([]any); ok {
		for _, item := range items {
			drop(item)
		}
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return raw
	}
	return out
}

// sourceIPs are the client's address, after those X-Forwarded-For names, as upstream's.
func sourceIPs(r *http.Request) []string {
	var ips []string
	if fwd := r.Header.Get("X-Forwarded-For"); fwd != "" {
		for _, p := range strings.Split(fwd, ",") {
			if ip := net.ParseIP(strings.TrimSpace(p)); ip != nil {
				ips = append(ips, ip.String())
			}
		}
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil && !slices.Contains(ips, host) {
		ips = append(ips, host)
	}
	return ips
}

// auditWriter remembers the status code and, for error statuses and RequestResponse, the
// body of a response.
type auditWriter struct {
	http.ResponseWriter
	code        int
	captureBody bool
	body        bytes.Buffer
	started     func()
}

func (a *auditWriter) WriteHeader(code int) {
	if a.code == 0 {
		a.code = code
		if a.started != nil {
			a.started()
		}
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *auditWriter) Write(b []byte) (int, error) {
	if a.code == 0 {
		a.WriteHeader(http.StatusOK)
	}
	if (a.captureBody || a.code >= 400) && a.body.Len() <= maxAuditedBody {
		a.body.Write(b)
	}
	return a.ResponseWriter.Write(b)
}

func (a *auditWriter) Flush() {
	if f, ok := a.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (a *auditWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := a.ResponseWriter.(http.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, fmt.Errorf("hijack not supported")
}

func (a *auditWriter) Unwrap() http.ResponseWriter { return a.ResponseWriter }
