package etcd3

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

// Ports of a member of a cluster spanning machines: etcd's registered ones.
const (
	MemberClientPort = 2379
	MemberPeerPort   = 2380
)

// Member is an embedded etcd that is one member of a cluster spanning machines (skiff up
// --cluster-init, and the servers that join it). Unlike StartEmbedded's, it listens on IP
// (not loopback), on the fixed ports MemberClientPort and MemberPeerPort, both TLS with
// certificates from the etcd CA in dataDir/pki, which every member shares (a joining server
// is given it): peers and clients must show a certificate from that CA.
type Member struct {
	// Name is the member's name in the cluster, unique among its members.
	Name string
	// IP is the address the other members and clients reach this one at.
	IP net.IP
	// ClientPort and PeerPort default to MemberClientPort and MemberPeerPort.
	ClientPort, PeerPort int
	// InitialCluster, for a member joining a running cluster (JoinCluster's answer), lists
	// every member as NAME=PEER_URL,...; "" starts a new cluster of this member alone. Either
	// way it matters only on the first start: later starts go on from the data dir.
	InitialCluster string
}

// PeerURL is the URL the other members reach this one at.
func (m Member) PeerURL() string { return memberURL(m.IP, cmp.Or(m.PeerPort, MemberPeerPort)) }

// ClientURL is the URL clients on other machines reach this member at.
func (m Member) ClientURL() string { return memberURL(m.IP, cmp.Or(m.ClientPort, MemberClientPort)) }

func memberURL(ip net.IP, port int) string {
	return "https://" + net.JoinHostPort(ip.String(), strconv.Itoa(port))
}

func (m Member) configure(cfg *embed.Config) {
	parse := func(s string) url.URL { u, _ := url.Parse(s); return *u }
	cfg.Name = m.Name
	cfg.ListenClientUrls = []url.URL{parse(m.ClientURL())}
	cfg.AdvertiseClientUrls = []url.URL{parse(m.ClientURL())}
	cfg.ListenPeerUrls = []url.URL{parse(m.PeerURL())}
	cfg.AdvertisePeerUrls = []url.URL{parse(m.PeerURL())}
	cfg.InitialCluster = m.InitialCluster
	cfg.ClusterState = embed.ClusterStateFlagExisting
	if m.InitialCluster == "" {
		cfg.InitialCluster = m.Name + "=" + m.PeerURL()
		cfg.ClusterState = embed.ClusterStateFlagNew
	}
	cfg.InitialClusterToken = "skiff"
}

// StartMember starts m with its data in dataDir, and returns once it serves (for a joining
// member: once it has caught up with the cluster). The etcd CA must be in dataDir/pki
// already for a member joining a cluster; a new cluster's first member makes it.
func StartMember(ctx context.Context, dataDir string, m Member) (*Embedded, error) {
	if m.Name == "" || m.IP == nil {
		return nil, errors.New("an etcd member needs a name and an address")
	}
	return startEmbedded(ctx, dataDir, &m)
}

// HasMemberData says whether dataDir holds an etcd member's data already: such a member
// starts from it and must not be added to a cluster again.
func HasMemberData(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, "member", "wal"))
	return err == nil
}

// JoinCluster adds m to the cluster whose members serve clients at endpoints (etcd's
// MemberAdd, as `etcdctl member add`), with a client certificate from the etcd CA already in
// dataDir/pki, and returns the InitialCluster m must start with. A member with m's peer URL
// that was added but never started (a join that stopped half way) is taken as m, not added
// twice.
func JoinCluster(ctx context.Context, dataDir string, m Member, endpoints []string) (string, error) {
	pki, err := ensureEmbeddedPKI(filepath.Join(dataDir, "pki"), m.IP)
	if err != nil {
		return "", err
	}
	client, err := NewClient(endpoints, pki.caFile, pki.clientCertFile, pki.clientKeyFile)
	if err != nil {
		return "", err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	list, err := client.MemberList(ctx)
	if err != nil {
		return "", fmt.Errorf("listing the etcd cluster's members at %s: %w", strings.Join(endpoints, ","), err)
	}
	members := list.Members
	known := slices.ContainsFunc(members, func(mem *etcdserverpb.Member) bool { return slices.Contains(mem.PeerURLs, m.PeerURL()) })
	if !known {
		for _, mem := range members {
			if mem.Name == m.Name {
				return "", fmt.Errorf("the etcd cluster has a member named %s already, at %v: remove it first (skiff etcd-member remove %s)", m.Name, mem.PeerURLs, m.Name)
			}
		}
		added, err := addMember(ctx, client, m.PeerURL())
		if err != nil {
			return "", fmt.Errorf("adding %s to the etcd cluster: %w", m.PeerURL(), err)
		}
		members = added.Members
	}
	var parts []string
	for _, mem := range members {
		name := mem.Name
		if slices.Contains(mem.PeerURLs, m.PeerURL()) {
			name = m.Name
		} else if name == "" {
			name = fmt.Sprintf("unstarted-%x", mem.ID) // another join under way
		}
		for _, u := range mem.PeerURLs {
			parts = append(parts, name+"="+u)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ","), nil
}

// addMember adds a member at peerURL. etcd refuses while a member added before has not
// started yet, or the members have not been connected for its health interval (5 s): servers
// that join at once are let in one after the other.
func addMember(ctx context.Context, client *clientv3.Client, peerURL string) (*clientv3.MemberAddResponse, error) {
	for {
		added, err := client.MemberAdd(ctx, []string{peerURL})
		if err == nil || !errors.Is(err, rpctypes.ErrMemberNotEnoughStarted) && !errors.Is(err, rpctypes.ErrUnhealthy) {
			return added, err
		}
		slog.Info("the etcd cluster cannot take a member yet; retrying", "reason", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(2 * time.Second):
		}
	}
}

// RemoveMember removes the member named name from the cluster whose members serve clients at
// endpoints, with the client certificate of dataDir/pki. It is not an error if there is none.
func RemoveMember(ctx context.Context, dataDir, name string, endpoints []string) error {
	caFile, certFile, keyFile := EmbeddedClientFiles(dataDir)
	client, err := NewClient(endpoints, caFile, certFile, keyFile)
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	list, err := client.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("listing the etcd cluster's members: %w", err)
	}
	for _, mem := range list.Members {
		if mem.Name != name {
			continue
		}
		// etcd refuses while the members left would not have been connected for its health
		// interval (5 s): a member that just started or just lost a peer waits a little
		for {
			_, err := client.MemberRemove(ctx, mem.ID)
			if err == nil || !errors.Is(err, rpctypes.ErrUnhealthy) {
				if err != nil {
					return fmt.Errorf("removing etcd member %s: %w", name, err)
				}
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("removing etcd member %s: %w", name, err)
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}
