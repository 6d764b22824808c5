package proxy

import (
	"encoding/binary"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
)

// Most syncs of the NetworkPolicy agent change nothing but which addresses are in some sets:
// a pod came, went or was relabelled. `nft -f` first reads the whole table back (every set
// with every element) before it applies even one element, which at a thousand pods costs tens
// of milliseconds per transaction; a netlink batch of the element changes costs well under
// one. So a sync whose difference is only elements of hash sets writes them through netlink
// (google/nftables), in one batch the kernel applies atomically; any other change (chains,
// rules, set declarations, interval sets) goes through nft as one transaction.

// setElementChange is what one set loses and gains.
type setElementChange struct {
	name, decl  string
	gone, added []string
}

// elementOnlyChanges returns the element changes that turn prev into next, and true, when
// that is all that differs and every changed set is a hash set (no intervals) written
// incrementally, or a verdict map; otherwise false.
func elementOnlyChanges(prev, next *ruleset) ([]setElementChange, bool) {
	if prev == nil || prev.comment != next.comment || len(prev.dynamicSets)+len(next.dynamicSets) > 0 ||
		!maps.EqualFunc(prev.chains, next.chains, func(a, b *chain) bool { return a.equal(b) }) || len(prev.maps) != len(next.maps) {
		return nil, false
	}
	var changes []setElementChange
	for name, m := range next.maps {
		old, ok := prev.maps[name]
		if !ok || old.kind != m.kind || old.decl != m.decl {
			return nil, false
		}
		if old.equal(m) {
			continue
		}
		verdictMap := m.kind == "map" && strings.HasSuffix(m.decl, ": verdict")
		if !m.incremental || (m.kind != "set" && !verdictMap) || strings.Contains(m.decl, "interval") {
			return nil, false
		}
		gone, added := elementChanges(old.elements, m.elements)
		changes = append(changes, setElementChange{name: name, decl: m.decl, gone: gone, added: added})
	}
	return changes, true
}

// applyElementChanges writes the changes to the sets of a table of the family (ip or ip6) in
// one netlink batch. With netns set (a path such as /var/run/netns/NAME) it writes in that
// network namespace.
func applyElementChanges(netns string, family ipFamily, table string, changes []setElementChange) error {
	// the kernel acknowledges every message of the batch; a pod change at a thousand policies
	// touches hundreds of sets, whose acknowledgements overflow a default receive buffer
	// (ENOBUFS). A larger buffer, and acknowledgements without the request echoed, hold them.
	opts := []nftables.ConnOption{nftables.WithSockOptions(func(c *netlink.Conn) error {
		if err := c.SetOption(netlink.CapAcknowledge, true); err != nil {
			return err
		}
		return c.SetReadBuffer(8 << 20)
	})}
	if netns != "" {
		f, err := os.Open(netns)
		if err != nil {
			return err
		}
		defer f.Close()
		opts = append(opts, nftables.WithNetNSFd(int(f.Fd())))
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		return err
	}
	t := &nftables.Table{Name: table, Family: nftables.TableFamilyIPv4}
	if family == ipv6Family {
		t.Family = nftables.TableFamilyIPv6
	}
	for _, c := range changes {
		set := &nftables.Set{Table: t, Name: c.name}
		if len(c.gone) > 0 {
			keys, err := setElements(c.decl, c.gone)
			if err != nil {
				return err
			}
			if err := conn.SetDeleteElements(set, keys); err != nil {
				return err
			}
		}
		if len(c.added) > 0 {
			keys, err := setElements(c.decl, c.added)
			if err != nil {
				return err
			}
			if err := conn.SetAddElements(set, keys); err != nil {
				return err
			}
		}
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("netlink: writing set elements: %w", err)
	}
	return nil
}

// setElements encodes elements of a set, or of a verdict map ("10.0.0.1 : goto in-X",
// declared "type ipv4_addr : verdict").
func setElements(decl string, elements []string) ([]nftables.SetElement, error) {
	keyDecl, isMap := strings.CutSuffix(decl, " : verdict")
	out := make([]nftables.SetElement, 0, len(elements))
	for _, e := range elements {
		keyPart, verdict, _ := strings.Cut(e, " : ")
		key, err := elementKey(keyDecl, keyPart)
		if err != nil {
			return nil, err
		}
		el := nftables.SetElement{Key: key}
		if isMap {
			kind, chain, _ := strings.Cut(verdict, " ")
			switch kind {
			case "goto":
				el.VerdictData = &expr.Verdict{Kind: expr.VerdictGoto, Chain: chain}
			case "jump":
				el.VerdictData = &expr.Verdict{Kind: expr.VerdictJump, Chain: chain}
			default:
				return nil, fmt.Errorf("element %q: no netlink encoding for verdict %q", e, verdict)
			}
		}
		out = append(out, el)
	}
	return out, nil
}

// elementKey encodes an element written for nft ("10.0.0.1 . tcp . 80") as the kernel holds
// it for a set declared "type ipv4_addr . inet_proto . inet_service": each field in network
// byte order, padded to 4 bytes when the key is a concatenation, as nft does.
func elementKey(decl, element string) ([]byte, error) {
	typ, _, _ := strings.Cut(strings.TrimPrefix(decl, "type "), ";")
	types := strings.Split(strings.TrimSpace(typ), " . ")
	fields := strings.Split(element, " . ")
	if len(fields) != len(types) {
		return nil, fmt.Errorf("element %q does not fit %q", element, decl)
	}
	var key []byte
	for i, f := range fields {
		var b []byte
		switch types[i] {
		case "ipv4_addr":
			a, err := netip.ParseAddr(f)
			if err != nil || !a.Is4() {
				return nil, fmt.Errorf("element %q: %q is no IPv4 address", element, f)
			}
			a4 := a.As4()
			b = a4[:]
		case "ipv6_addr":
			a, err := netip.ParseAddr(f)
			if err != nil || !a.Is6() || a.Is4In6() {
				return nil, fmt.Errorf("element %q: %q is no IPv6 address", element, f)
			}
			a16 := a.As16()
			b = a16[:]
		case "inet_proto":
			n, ok := map[string]byte{"tcp": 6, "udp": 17, "sctp": 132}[f]
			if !ok {
				return nil, fmt.Errorf("element %q: unknown protocol %q", element, f)
			}
			b = []byte{n}
		case "inet_service":
			n, err := strconv.ParseUint(f, 10, 16)
			if err != nil {
				return nil, fmt.Errorf("element %q: %q is no port", element, f)
			}
			b = binary.BigEndian.AppendUint16(nil, uint16(n))
		default:
			return nil, fmt.Errorf("no netlink encoding for %q", types[i])
		}
		if len(types) > 1 {
			for len(b)%4 != 0 {
				b = append(b, 0)
			}
		}
		key = append(key, b...)
	}
	return key, nil
}
