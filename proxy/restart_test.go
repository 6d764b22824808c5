package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/e2e/netnstest"
)

const echoPort = 8081

// serveEcho answers every line on ip:8081 in the namespace with "echo: " and the line, for as
// long as the connection stays open.
func (n *testNode) serveEcho(netns, ip string) {
	n.t.Helper()
	var l net.Listener
	err := netnstest.InNetns(netns, func() (err error) {
		l, err = net.Listen("tcp", fmt.Sprintf("%s:%d", ip, echoPort))
		return err
	})
	if err != nil {
		n.t.Fatalf("listen in %s: %v", netns, err)
	}
	n.t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.t.Cleanup(func() { c.Close() })
			go func() {
				defer c.Close()
				s := bufio.NewScanner(c)
				for s.Scan() {
					if _, err := fmt.Fprintf(c, "echo: %s\n", s.Text()); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// TestProxyRestartKeepsEstablishedConnections opens a long-lived connection from the client
// through a cluster IP, stops the proxy (its table goes), changes the Services while it is
// down, starts it again and talks on the same connection: conntrack holds the connection's
// NAT, so it carries on; and the rebuilt table holds exactly the chains and rules of the
// current Services.
func TestProxyRestartKeepsEstablishedConnections(t *testing.T) {
	requireNetworkPrivileges(t)
	n := newTestNode(t, 1)
	n.serveEcho(n.pods[0], podIP(0))
	srv := apiservertest.Start(t)
	client := srv.Client
	ctx := context.Background()

	echo := createService(t, client, "echo", corev1.ServiceTypeClusterIP)
	createService(t, client, "old", corev1.ServiceTypeNodePort)
	echoSlice := endpointSlice("echo", podIP(0))
	echoSlice.Ports[0].Port = ptr.To[int32](echoPort)
	for _, s := range []*discoveryv1.EndpointSlice{echoSlice, endpointSlice("old", podIP(0))} {
		if _, err := client.DiscoveryV1().EndpointSlices("default").Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	stop := startProxy(t, client, n)

	// the long-lived connection, from the client through the cluster IP (masqueraded: the
	// client is outside the cluster CIDR)
	addr := net.JoinHostPort(echo.Spec.ClusterIP, "80")
	var conn net.Conn
	eventually(t, "a connection to the echo service", func() (bool, string) {
		err := netnstest.InNetns(n.client, func() (err error) {
			conn, err = net.DialTimeout("tcp", addr, dialTimout)
			return err
		})
		return err == nil, fmt.Sprintf("err %v", err)
	})
	t.Cleanup(func() { conn.Close() })
	lines := bufio.NewReader(conn)
	exchange := func(msg string) {
		t.Helper()
		conn.SetDeadline(time.Now().Add(10 * dialTimout))
		if _, err := fmt.Fprintf(conn, "%s\n", msg); err != nil {
			t.Fatalf("sending %q: %v", msg, err)
		}
		got, err := lines.ReadString('\n')
		if want := "echo: " + msg + "\n"; err != nil || got != want {
			t.Fatalf("sent %q: got %q, %v; want %q", msg, got, err, want)
		}
	}
	exchange("before the restart")

	stop()
	if out, err := n.nftOutput("list", "tables"); err != nil || strings.Contains(out, "skiff") {
		t.Fatalf("after the proxy stopped: err %v, tables:\n%s", err, out)
	}
	// while it is down a Service goes
	if err := client.CoreV1().Services("default").Delete(ctx, "old", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := client.DiscoveryV1().EndpointSlices("default").Delete(ctx, "old-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// and the client talks meanwhile: without the table no NAT hook sees the packet, so it
	// is lost; TCP sends it again, and a retransmission after the restart gets its answer
	conn.SetDeadline(time.Now().Add(10 * dialTimout))
	if _, err := fmt.Fprintf(conn, "during the restart\n"); err != nil {
		t.Fatalf("sending while the proxy is down: %v", err)
	}
	startProxy(t, client, n)
	if got, err := lines.ReadString('\n'); err != nil || got != "echo: during the restart\n" {
		t.Fatalf("a message sent while the proxy was down: got %q, %v", got, err)
	}
	want := expectedTable(t, client)
	eventually(t, "the restarted proxy's table holding the current Services", func() (bool, string) {
		got, err := n.tableContent()
		if err != nil {
			return false, err.Error()
		}
		return maps.Equal(got, want), fmt.Sprintf("table %v, want %v", got, want)
	})

	// the same connection, same NAT, after the restart
	exchange("after the restart")
	// and a new one goes through the rebuilt rules
	err := netnstest.InNetns(n.client, func() error {
		c, err := net.DialTimeout("tcp", addr, dialTimout)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(dialTimout))
		fmt.Fprintf(c, "new\n")
		got, err := bufio.NewReader(c).ReadString('\n')
		if err == nil && got != "echo: new\n" {
			err = fmt.Errorf("got %q", got)
		}
		return err
	})
	if err != nil {
		t.Errorf("a new connection after the restart: %v", err)
	}
}

func (n *testNode) nftOutput(args ...string) (string, error) {
	cmd := append(append([]string{}, n.nftInNode...), args...)
	out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput()
	return string(out), err
}

// tableContent reads `nft -j list table ip skiff` as "chain NAME" → its rule count and
// "map NAME"/"set NAME" → its element count.
func (n *testNode) tableContent() (map[string]int, error) {
	out, err := n.nftOutput("-j", "list", "table", "ip", DefaultTable)
	if err != nil {
		return nil, fmt.Errorf("nft list table: %v: %s", err, out)
	}
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return nil, err
	}
	content := map[string]int{}
	for _, obj := range doc.Nftables {
		for kind, raw := range obj {
			var o struct {
				Name  string            `json:"name"`
				Chain string            `json:"chain"`
				Elem  []json.RawMessage `json:"elem"`
			}
			if err := json.Unmarshal(raw, &o); err != nil {
				continue
			}
			switch kind {
			case "chain":
				content["chain "+o.Name] += 0
			case "rule":
				content["chain "+o.Chain]++
			case "map", "set":
				content[kind+" "+o.Name] = len(o.Elem)
			}
		}
	}
	return content, nil
}

// expectedTable is what tableContent must read for the Services in the API now, from the same
// rule builder the proxy uses.
func expectedTable(t *testing.T, client kubernetes.Interface) map[string]int {
	t.Helper()
	ctx := context.Background()
	svcs, err := client.CoreV1().Services("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ports []*servicePort
	for i := range svcs.Items {
		svc := &svcs.Items[i]
		sl, err := client.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{
			LabelSelector: labels.Set{discoveryv1.LabelServiceName: svc.Name}.String(),
		})
		if err != nil {
			t.Fatal(err)
		}
		var slices []*discoveryv1.EndpointSlice
		for j := range sl.Items {
			slices = append(slices, &sl.Items[j])
		}
		ports = append(ports, servicePorts(svc, slices, nodeName)...)
	}
	r := buildRules(ports, ruleConfig{clusterCIDR: netip.MustParsePrefix("10.244.0.0/16")})
	want := map[string]int{}
	for name, c := range r.chains {
		want["chain "+name] = len(c.rules)
	}
	for name, m := range r.maps {
		want[m.kind+" "+name] = len(m.elements)
	}
	for name := range r.dynamicSets {
		want["set "+name] = 0
	}
	if len(want) == 0 || !slices.ContainsFunc(svcs.Items, func(s corev1.Service) bool { return s.Name == "echo" }) {
		t.Fatalf("no rules expected for %d services", len(svcs.Items))
	}
	return want
}
