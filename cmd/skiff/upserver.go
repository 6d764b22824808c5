package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/apiserver/certs"
	"github.com/skiff-dev/skiff/join"
	"github.com/skiff-dev/skiff/kubelet"
	"github.com/skiff-dev/skiff/registry/storage/etcd3"
)

// HA servers: `skiff up --cluster-init` runs its embedded etcd as the first member of a cluster
// that other machines can join, and `skiff up --server URL --token T --ca-cert-hash H` on
// another machine joins it as one more server, as k3s's --cluster-init and --server do. A
// joining server trusts the cluster as an agent does (join.Discovery: cluster-info signed by
// the token, CA pinned by hash), then reads what every server must share from the Secret
// kube-system/skiff-server-bootstrap (kubeadm's kubeadm-certs): the cluster CA, the
// service-account key, the front-proxy CA, the etcd CA and the Secrets' encryption key. Only
// tokens made with `skiff token create --server` may read it (their extra group
// serverTokenGroup); an agent's token may not. With the etcd CA it adds itself to the etcd
// cluster (MemberAdd) and starts a member that joins, then runs everything `skiff up` runs.

const (
	// serverTokenGroup is the extra group of tokens that join servers.
	serverTokenGroup = "system:bootstrappers:skiff:servers"
	// serverBootstrapSecret holds the files every server shares.
	serverBootstrapSecret = "skiff-server-bootstrap"
	serverBootstrapRole   = "skiff:server-bootstrap"
)

// serverBootstrapFiles are the files, relative to the data dir, that every server shares, by
// their key in serverBootstrapSecret. Each server makes its own leaves from the CAs.
var serverBootstrapFiles = map[string]string{
	"ca.crt":                 filepath.Join("pki", certs.CACertFileName),
	"ca.key":                 filepath.Join("pki", certs.CAKeyFileName),
	"sa.key":                 filepath.Join("pki", certs.ServiceAccountKeyFileName),
	"sa.pub":                 filepath.Join("pki", certs.ServiceAccountPublicKeyFileName),
	"front-proxy-ca.crt":     filepath.Join("pki", certs.FrontProxyCACertFileName),
	"front-proxy-ca.key":     filepath.Join("pki", certs.FrontProxyCAKeyFileName),
	"etcd-ca.crt":            filepath.Join("etcd", "pki", "ca.crt"),
	"etcd-ca.key":            filepath.Join("etcd", "pki", "ca.key"),
	"encryption-config.yaml": secretsEncryptionConfigFile,
}

// haServer says whether up runs as one server of several: with its etcd a member of a cluster
// spanning machines. A data dir that holds such a member stays one, whatever the flags of a
// later start.
func (o *upOptions) haServer() bool {
	return o.clusterInit || o.joinServer != "" || o.isMember()
}

// isMember says whether the data dir holds an etcd member of a cluster spanning machines.
func (o *upOptions) isMember() bool {
	_, err := os.Stat(filepath.Join(o.dataDir, "etcd", etcdMembersFile))
	return err == nil
}

func (o *upOptions) validateHA() error {
	if o.clusterInit && o.joinServer != "" {
		return errors.New("--cluster-init starts a new cluster and --server joins one: give one of them")
	}
	if o.joinServer != "" && o.joinToken == "" && !o.isMember() {
		return errors.New("--server needs --token (skiff token create --server on a server prints it)")
	}
	if o.joinServer == "" && (o.joinToken != "" || len(o.joinCAHashes) > 0) {
		return errors.New("--token and --ca-cert-hash go with --server")
	}
	return nil
}

// memberIP is the address the other servers reach this one's etcd at.
func (o *upOptions) memberIP() (net.IP, error) {
	if o.advertiseAddress == "" {
		return kubelet.DefaultNodeIP(), nil
	}
	ip := net.ParseIP(o.advertiseAddress)
	if ip == nil {
		return nil, fmt.Errorf("--advertise-address %q is not an IP address", o.advertiseAddress)
	}
	return ip, nil
}

// startServerEtcd starts this server's etcd member: a new cluster's first with --cluster-init,
// one more of the cluster behind --server otherwise (after taking the shared files from it on
// the first start). Later starts go on from the data dir.
func (o *upOptions) startServerEtcd(ctx context.Context) (*etcdConnection, error) {
	ip, err := o.memberIP()
	if err != nil {
		return nil, err
	}
	name, err := hostNodeName("")
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(o.dataDir, "etcd")
	m := etcd3.Member{Name: name, IP: ip}
	if o.joinServer != "" && !etcd3.HasMemberData(dir) {
		if err := o.fetchServerBootstrap(ctx); err != nil {
			return nil, err
		}
		u, err := url.Parse(o.joinServer)
		if err != nil {
			return nil, fmt.Errorf("--server: %w", err)
		}
		endpoint := "https://" + net.JoinHostPort(u.Hostname(), fmt.Sprint(etcd3.MemberClientPort))
		if m.InitialCluster, err = etcd3.JoinCluster(ctx, dir, m, []string{endpoint}); err != nil {
			return nil, err
		}
		slog.Info("added to the etcd cluster", "member", name, "cluster", m.InitialCluster)
	}
	etcdCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	abortStart := context.AfterFunc(ctx, cancel)
	e, err := etcd3.StartMember(etcdCtx, dir, m)
	abortStart()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("starting etcd member %s in %s: %w", name, dir, err)
	}
	slog.Info("etcd member started", "member", name, "peerURL", m.PeerURL(), "dir", dir)
	// the mark of a member (isMember), before anything else can stop this start
	if !o.isMember() {
		b, _ := json.Marshal(etcdMembersRecord{Name: name})
		if err := os.WriteFile(filepath.Join(dir, etcdMembersFile), b, 0o600); err != nil {
			e.Close()
			cancel()
			return nil, err
		}
	}
	return &etcdConnection{
		client: e.Client,
		close: func() error {
			defer cancel()
			err := e.Close()
			slog.Info("etcd stopped", "dir", dir)
			return err
		},
	}, nil
}

// fetchServerBootstrap trusts the cluster behind --server as an agent does, then writes the
// files every server shares into the data dir.
func (o *upOptions) fetchServerBootstrap(ctx context.Context) error {
	caPEM, err := join.Discovery{Server: o.joinServer, Token: o.joinToken, CACertHashes: o.joinCAHashes}.Discover(ctx)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(&rest.Config{
		Host: o.joinServer, BearerToken: o.joinToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: caPEM},
	})
	if err != nil {
		return err
	}
	var secret *corev1.Secret
	for {
		secret, err = client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, serverBootstrapSecret, metav1.GetOptions{})
		if err == nil {
			break
		}
		if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
			return fmt.Errorf("reading the servers' shared files with the token: %w (a server joins with a token of 'skiff token create --server')", err)
		}
		slog.Info("the servers' shared files are not readable yet; retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Second):
		}
	}
	for key, rel := range serverBootstrapFiles {
		data, ok := secret.Data[key]
		if !ok {
			continue
		}
		path := filepath.Join(o.dataDir, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return err
		}
	}
	slog.Info("took the servers' shared certificates and keys", "server", o.joinServer)
	return nil
}

// ensureServerBootstrap publishes the files every server shares in serverBootstrapSecret,
// readable by server tokens only.
func ensureServerBootstrap(ctx context.Context, cfg *rest.Config, dataDir string) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	data := map[string][]byte{}
	for key, rel := range serverBootstrapFiles {
		b, err := os.ReadFile(filepath.Join(dataDir, rel))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		data[key] = b
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: serverBootstrapSecret, Namespace: metav1.NamespaceSystem},
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	}
	// the first server's files are the cluster's: a later server only makes the Secret again
	if _, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Create(ctx, secret, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("secret %s: %w", serverBootstrapSecret, err)
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: serverBootstrapRole, Namespace: metav1.NamespaceSystem},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"},
			ResourceNames: []string{serverBootstrapSecret}, Verbs: []string{"get"}}},
	}
	if _, err := client.RbacV1().Roles(metav1.NamespaceSystem).Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("role %s: %w", serverBootstrapRole, err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: serverBootstrapRole, Namespace: metav1.NamespaceSystem},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: serverBootstrapRole},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: serverTokenGroup}},
	}
	if _, err := client.RbacV1().RoleBindings(metav1.NamespaceSystem).Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("role binding %s: %w", serverBootstrapRole, err)
	}
	return nil
}

// etcdMembersFile, in DATA/etcd, says which member this server's etcd is and where the other
// members serve clients, so that `skiff reset`, with this server stopped, can take the member
// out of the cluster through them.
const etcdMembersFile = "members.json"

type etcdMembersRecord struct {
	Name string `json:"name"`
	// Others are the other members' client URLs.
	Others []string `json:"others"`
}

// recordEtcdMembers keeps etcdMembersFile up to date while the server runs, as servers join
// and leave.
func recordEtcdMembers(etcd *etcdConnection, dataDir string) func(context.Context) error {
	return func(ctx context.Context) error {
		name, err := hostNodeName("")
		if err != nil {
			return err
		}
		path := filepath.Join(dataDir, "etcd", etcdMembersFile)
		var last string
		for {
			listCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			list, err := etcd.client.MemberList(listCtx)
			cancel()
			if err == nil {
				rec := etcdMembersRecord{Name: name}
				for _, m := range list.Members {
					if m.Name != name {
						rec.Others = append(rec.Others, m.ClientURLs...)
					}
				}
				b, _ := json.Marshal(rec)
				if string(b) != last {
					if err := os.WriteFile(path, b, 0o600); err != nil {
						slog.Warn("recording the etcd members failed", "err", err)
					} else {
						last = string(b)
						slog.Info("etcd members", "self", name, "others", rec.Others)
					}
				}
			} else if ctx.Err() == nil {
				slog.Warn("listing the etcd members failed", "err", err)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(5 * time.Second):
			}
		}
	}
}

// leaveEtcdCluster takes the member of a stopped server out of its etcd cluster, through the
// other members etcdMembersFile names. It says why it could not rather than failing: a reset
// must go on when the other servers are gone too.
func leaveEtcdCluster(ctx context.Context, dataDir string, stdout io.Writer) {
	etcdDir := filepath.Join(dataDir, "etcd")
	b, err := os.ReadFile(filepath.Join(etcdDir, etcdMembersFile))
	if err != nil {
		return // not a server of several
	}
	var rec etcdMembersRecord
	if err := json.Unmarshal(b, &rec); err != nil || rec.Name == "" || len(rec.Others) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := etcd3.RemoveMember(ctx, etcdDir, rec.Name, rec.Others); err != nil {
		fmt.Fprintf(stdout, "could not remove etcd member %s from the cluster (%v): run 'skiff etcd-member remove %s' on a running server\n", rec.Name, err, rec.Name)
		return
	}
	fmt.Fprintf(stdout, "removed etcd member %s from the cluster\n", rec.Name)
}
