// Package apiserver serves the Kubernetes REST API over HTTPS for the resources in the apis
// table: authentication, authorization, limits, routing, content negotiation, discovery, watch
// streaming and patch, in front of the registry. It never touches etcd directly.
package apiserver

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Config is everything an API server needs to run.
type Config struct {
	// BindAddresses are the host:port pairs to serve HTTPS on.
	BindAddresses []string
	// ServingCert is the server's TLS certificate.
	ServingCert tls.Certificate
	// ClientCA verifies client certificates; a verified certificate authenticates its CN as the
	// user and its O values as groups. Nil disables client-certificate authentication.
	ClientCA *x509.CertPool
	// ClientCABundle is ClientCA's certificates, PEM-encoded: what extension API servers
	// verify clients' certificates with (client-ca-file of the extension-apiserver-authentication
	// ConfigMap).
	ClientCABundle []byte
	// FrontProxyClientCert is what the API server presents to extension API servers when it
	// proxies an APIService's requests to them, naming the user in X-Remote-* headers, and
	// FrontProxyCA the PEM of the CA that signed it (requestheader-client-ca-file). Without
	// them extension servers cannot trust what the API server proxies to them.
	FrontProxyClientCert *tls.Certificate
	FrontProxyCA         []byte
	// TokenFile is a static token file (token,user,uid,"group1,group2" per line), or empty.
	TokenFile string
	// ServiceAccountSigningKey signs the service-account tokens TokenRequest issues, and its
	// public half verifies them; every API server of a cluster needs the same one
	// (certs.PKI.ServiceAccountKey, the PKI's sa.key). Nil: a key made at start, so that
	// tokens verify on this server only, until it stops.
	ServiceAccountSigningKey crypto.Signer
	// ServiceAccountIssuer is the iss of service-account tokens, as upstream's
	// --service-account-issuer. Default https://kubernetes.default.svc.cluster.local.
	ServiceAccountIssuer string
	// APIAudiences are the audiences a service-account token must name one of to
	// authenticate, and those of a TokenRequest that names none, as upstream's
	// --api-audiences. Default: the issuer.
	APIAudiences []string
	// KubeletClientCert is what the API server presents to kubelets when it passes logs,
	// exec, attach, port-forward and node proxy requests through to them.
	KubeletClientCert *tls.Certificate
	// KubeletCA verifies kubelets' serving certificates (upstream's
	// --kubelet-certificate-authority); nil: they are not verified.
	KubeletCA *x509.CertPool
	// AuthorizationModes are the authorization modes in the order asked, as upstream's
	// --authorization-mode: Node, RBAC, AlwaysAllow, AlwaysDeny (ABAC and Webhook are refused).
	// Members of system:masters are always allowed. Default: Node, RBAC.
	AuthorizationModes []string
	// AuditPolicyFile is an audit.k8s.io/v1 Policy (upstream's --audit-policy-file) and
	// AuditLogPath the file events are appended to ("-": standard output), as upstream's
	// --audit-log-path; a policy needs a log path or a webhook, and the other way round.
	AuditPolicyFile string
	AuditLogPath    string
	// AuditLogRotation rotates the audit log file; AuditWebhook sends events to a webhook
	// too, or instead (audit_backends.go).
	AuditLogRotation AuditLogRotation
	AuditWebhook     AuditWebhook
	// EncryptionProviderConfig is an apiserver.config.k8s.io/v1 EncryptionConfiguration
	// file saying which resources are encrypted at rest, and how (upstream's
	// --encryption-provider-config); empty stores every resource as encoded.
	EncryptionProviderConfig string
	// Etcd is the client to the etcd holding the cluster's state.
	Etcd *clientv3.Client

	// MaxRequestBodyBytes bounds request bodies (413 beyond it). Default 3 MiB.
	MaxRequestBodyBytes int64
	// RequestTimeout bounds non-watch requests (504 beyond it). Default 60 s.
	RequestTimeout time.Duration
	// MaxRequestsInFlight and MaxMutatingRequestsInFlight add up to the server's concurrency
	// limit, the seats API priority and fairness shares among the priority levels (as
	// upstream's flags do with APF on). Defaults 400 and 200, as upstream.
	MaxRequestsInFlight         int
	MaxMutatingRequestsInFlight int
	// CompactionInterval is how often etcd history older than one interval is compacted.
	// Default 5 minutes; negative disables compaction.
	CompactionInterval time.Duration
	// ServiceClusterIPRange is the CIDR cluster IPs are allocated from (default
	// DefaultServiceClusterIPRange; its first address is the kubernetes Service's). Two
	// comma-separated CIDRs, one of each IP family, make Services dual-stack; the first is the
	// primary family.
	ServiceClusterIPRange string
	// ServiceNodePortRange is the range node ports are allocated from (default 30000-32767).
	ServiceNodePortRange string
	// AdvertiseAddress is the IP the kubernetes Service's endpoints name; default the host's
	// first global unicast IPv4 address.
	AdvertiseAddress string
	// WatchCacheSize is how many recent events each resource's watch cache keeps for watches
	// that resume from a resourceVersion (older ones get 410 Gone). Default 10000.
	WatchCacheSize int
	// DisableAdmissionPlugins names admission plugins (of AdmissionPlugins) to turn off; every
	// other one runs, as upstream's --disable-admission-plugins.
	DisableAdmissionPlugins []string
	// Verbosity selects the log: 0 logs start and stop, 2 and above one line per request.
	Verbosity int
}
