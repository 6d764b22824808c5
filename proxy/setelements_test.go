package proxy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestElementKeysAreEncodedAsNftEncodesThem(t *testing.T) {
	for _, c := range []struct {
		decl, element string
		want          []byte
	}{
		{"type ipv4_addr", "10.244.1.10", []byte{10, 244, 1, 10}},
		{"type ipv4_addr . ipv4_addr", "10.0.0.1 . 10.0.0.2", []byte{10, 0, 0, 1, 10, 0, 0, 2}},
		{"type ipv4_addr . inet_proto . inet_service", "10.0.0.1 . udp . 53", []byte{10, 0, 0, 1, 17, 0, 0, 0, 0, 53, 0, 0}},
		{"type ipv4_addr . inet_proto . inet_service", "10.0.0.1 . tcp . 8080", []byte{10, 0, 0, 1, 6, 0, 0, 0, 0x1f, 0x90, 0, 0}},
		{"type ipv6_addr", "fd44:1::10", []byte{0xfd, 0x44, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10}},
		{"type ipv6_addr . inet_proto . inet_service", "fd44:1::10 . tcp . 8080", []byte{0xfd, 0x44, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 6, 0, 0, 0, 0x1f, 0x90, 0, 0}},
	} {
		got, err := elementKey(c.decl, c.element)
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("%s in %s: got %v (err %v), want %v", c.element, c.decl, got, err, c.want)
		}
	}
	if _, err := elementKey("type ipv6_addr", "10.0.0.1"); err == nil {
		t.Error("an IPv4 address has no key in an IPv6 set")
	}
	if _, err := elementKey("type ipv4_addr ; flags interval", "10.0.0.0-10.0.0.9"); err == nil {
		t.Error("an interval has no hash-set key")
	}
}

func TestOnlyHashSetElementChangesBypassNft(t *testing.T) {
	base := func(peers ...string) *ruleset {
		r := newRuleset()
		r.chain("c").rules = []string{"ip saddr @peers accept"}
		r.maps["peers"] = &nftMap{kind: "set", decl: "type ipv4_addr", incremental: true, elements: peers}
		r.maps["blocks"] = &nftMap{kind: "set", decl: "type ipv4_addr ; flags interval", incremental: true}
		return r
	}
	changes, ok := elementOnlyChanges(base("10.0.0.1"), base("10.0.0.2"))
	if !ok || len(changes) != 1 || changes[0].name != "peers" || strings.Join(changes[0].gone, ",") != "10.0.0.1" || strings.Join(changes[0].added, ",") != "10.0.0.2" {
		t.Errorf("a peer replaced: %+v, %v", changes, ok)
	}
	withRule := base("10.0.0.1")
	withRule.chain("c").rules = append(withRule.chain("c").rules, "drop")
	if _, ok := elementOnlyChanges(base("10.0.0.1"), withRule); ok {
		t.Error("a changed chain must go through nft")
	}
	withBlock := base("10.0.0.1")
	withBlock.maps["blocks"].elements = []string{"10.1.0.0-10.1.0.255"}
	if _, ok := elementOnlyChanges(base("10.0.0.1"), withBlock); ok {
		t.Error("a changed interval set must go through nft")
	}
	if _, ok := elementOnlyChanges(nil, base()); ok {
		t.Error("the first sync must go through nft")
	}
}

func TestSetElementsWrittenThroughNetlink(t *testing.T) {
	requireNetworkPrivileges(t)
	n := &testNode{t: t}
	name := fmt.Sprintf("skp-netlink-%d", os.Getpid()%100000)
	n.addNetns(name)
	t.Cleanup(func() { n.run("ip", "netns", "del", name) })
	n.run("sh", "-c", "printf 'add table ip np\\nadd set ip np peers { type ipv4_addr ; }\\nadd set ip np named { type ipv4_addr . inet_proto . inet_service ; }\\nadd chain ip np c1\\nadd chain ip np c2\\nadd map ip np dispatch { type ipv4_addr : verdict ; }\\nadd element ip np dispatch { 10.0.0.1 : goto c1 }\\nadd element ip np peers { 10.0.0.1, 10.0.0.2 }\\n' | ip netns exec "+name+" nft -f -")

	err := applyElementChanges(netnsDir+"/"+name, ipv4Family, "np", []setElementChange{
		{name: "peers", decl: "type ipv4_addr", gone: []string{"10.0.0.1"}, added: []string{"10.0.0.3"}},
		{name: "named", decl: "type ipv4_addr . inet_proto . inet_service", added: []string{"10.0.0.3 . tcp . 8080", "10.0.0.3 . udp . 53"}},
		{name: "dispatch", decl: "type ipv4_addr : verdict", gone: []string{"10.0.0.1 : goto c1"}, added: []string{"10.0.0.1 : goto c2", "10.0.0.3 : goto c1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "netns", "exec", name, "nft", "list", "table", "ip", "np").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	listing := strings.Join(strings.Fields(string(out)), " ")
	for _, want := range []string{"elements = { 10.0.0.2, 10.0.0.3 }", "10.0.0.3 . tcp . 8080", "10.0.0.3 . udp . 53", "10.0.0.1 : goto c2", "10.0.0.3 : goto c1"} {
		if !strings.Contains(listing, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(listing, "10.0.0.1,") || strings.Contains(listing, "10.0.0.1 : goto c1") {
		t.Errorf("10.0.0.1 should be gone from peers, and sent to c2:\n%s", out)
	}
}

func TestIPv6SetElementsWrittenThroughNetlink(t *testing.T) {
	requireNetworkPrivileges(t)
	n := &testNode{t: t}
	name := fmt.Sprintf("skp-netlink6-%d", os.Getpid()%100000)
	n.addNetns(name)
	t.Cleanup(func() { n.run("ip", "netns", "del", name) })
	n.run("sh", "-c", "printf 'add table ip6 np\\nadd set ip6 np peers { type ipv6_addr ; }\\nadd set ip6 np named { type ipv6_addr . inet_proto . inet_service ; }\\nadd chain ip6 np c1\\nadd chain ip6 np c2\\nadd map ip6 np dispatch { type ipv6_addr : verdict ; }\\nadd element ip6 np dispatch { fd44::1 : goto c1 }\\nadd element ip6 np peers { fd44::1, fd44::2 }\\n' | ip netns exec "+name+" nft -f -")

	err := applyElementChanges(netnsDir+"/"+name, ipv6Family, "np", []setElementChange{
		{name: "peers", decl: "type ipv6_addr", gone: []string{"fd44::1"}, added: []string{"fd44::3"}},
		{name: "named", decl: "type ipv6_addr . inet_proto . inet_service", added: []string{"fd44::3 . tcp . 8080"}},
		{name: "dispatch", decl: "type ipv6_addr : verdict", gone: []string{"fd44::1 : goto c1"}, added: []string{"fd44::1 : goto c2", "fd44::3 : goto c1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "netns", "exec", name, "nft", "list", "table", "ip6", "np").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	listing := strings.Join(strings.Fields(string(out)), " ")
	for _, want := range []string{"elements = { fd44::2, fd44::3 }", "fd44::3 . tcp . 8080", "fd44::1 : goto c2", "fd44::3 : goto c1"} {
		if !strings.Contains(listing, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}
