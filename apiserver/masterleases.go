package apiserver

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/registry/storage/etcd3"
)

// The kubernetes Service's endpoints name every API server that runs, as upstream's "lease"
// endpoint reconciler (kube-apiserver's default --endpoint-reconciler-type): each server keeps
// a key /registry/masterleases/IP alive under an etcd lease of masterLeaseTTL, renewed every
// masterLeaseInterval, and writes the Endpoints and EndpointSlice from the keys it finds. A
// server that stops deletes its key and rewrites them without itself; one that dies stops
// renewing, and the others drop it when its key expires.

const (
	// masterLeasePrefix is upstream's key prefix, so that a kube-apiserver on the same etcd
	// sees skiff's servers and skiff sees its.
	masterLeasePrefix = "/registry/masterleases/"
	// masterLeaseTTL and masterLeaseInterval are upstream's DefaultEndpointReconcilerTTL and
	// DefaultEndpointReconcilerInterval.
	masterLeaseTTL      = 15 * time.Second
	masterLeaseInterval = 10 * time.Second
)

// renewMasterLease (re)writes this server's key under a fresh etcd lease of ttl. The lease of
// the previous write is left to expire on its own: its key has moved to the new one.
func (s *Server) renewMasterLease(ctx context.Context, ttl time.Duration) error {
	ip := s.endpointIP.String()
	value, err := etcd3.Encode(&corev1.Endpoints{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Endpoints"},
		ObjectMeta: metav1.ObjectMeta{Name: ip},
	})
	if err != nil {
		return err
	}
	lease, err := s.cfg.Etcd.Grant(ctx, int64(ttl/time.Second))
	if err != nil {
		return err
	}
	_, err = s.cfg.Etcd.Put(ctx, masterLeasePrefix+ip, string(value), clientv3.WithLease(lease.ID))
	return err
}

// liveAPIServers are the addresses of the servers whose lease has not expired, in order, with
// this server's own when includeSelf (it may have just written it and not yet see it, or be
// leaving and want itself out).
func (s *Server) liveAPIServers(ctx context.Context, includeSelf bool) ([]string, error) {
	resp, err := s.cfg.Etcd.Get(ctx, masterLeasePrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	self := s.endpointIP.String()
	var ips []string
	for _, kv := range resp.Kvs {
		ip := strings.TrimPrefix(string(kv.Key), masterLeasePrefix)
		if _, err := netip.ParseAddr(ip); err != nil || ip == self {
			continue
		}
		ips = append(ips, ip)
	}
	if includeSelf {
		ips = append(ips, self)
	}
	slices.Sort(ips)
	return ips, nil
}

// maintainKubernetesEndpoints renews this server's lease and rewrites the kubernetes Service's
// endpoints every masterLeaseInterval until ctx is done. Run takes the server out of them when
// it stops (leaveKubernetesEndpoints).
func (s *Server) maintainKubernetesEndpoints(ctx context.Context) {
	tick := time.NewTicker(masterLeaseInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := s.reconcileKubernetesService(ctx); err != nil && ctx.Err() == nil {
			slog.Warn("reconciling the kubernetes service's endpoints failed", "err", err)
		}
	}
}

// leaveKubernetesEndpoints deletes this server's lease and writes the endpoints without it, so
// that clients stop being sent to a server that is going away.
func (s *Server) leaveKubernetesEndpoints() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.cfg.Etcd.Delete(ctx, masterLeasePrefix+s.endpointIP.String()); err != nil {
		slog.Warn("removing this API server's endpoint lease failed", "err", err)
		return
	}
	ips, err := s.liveAPIServers(ctx, false)
	if err != nil || len(ips) == 0 {
		// the last server leaves its address in place, as upstream: a Service without
		// endpoints helps no client, and the next server to start rewrites it
		return
	}
	if err := s.writeKubernetesEndpoints(ctx, ips, s.securePort()); err != nil {
		slog.Warn("taking this API server out of the kubernetes service failed", "err", err)
	}
}
