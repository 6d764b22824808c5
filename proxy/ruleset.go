package proxy

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ruleset is the whole content of the proxy's nftables table: its chains with their rules, its
// maps and sets with their elements, and the dynamic sets (session affinity) whose elements
// the kernel adds. It is built afresh on every sync and compared with the one last applied, so
// that one nft transaction changes only what differs.
type ruleset struct {
	chains map[string]*chain
	// maps holds the maps and the static sets, whose elements we write.
	maps map[string]*nftMap
	// dynamicSets maps a set's name to its declaration; its elements are the kernel's, never
	// flushed by a sync.
	dynamicSets map[string]string
	// comment describes the table; "rules of the skiff proxy" when empty.
	comment string
}

type chain struct {
	// base is the hook declaration of a base chain ("type nat hook prerouting priority
	// dstnat"), empty for a regular chain.
	base  string
	rules []string
}

type nftMap struct {
	// kind is "map" or "set".
	kind string
	// decl is the type declaration ("type ipv4_addr . inet_proto . inet_service : verdict").
	decl     string
	elements []string
	// incremental makes a change to the elements one delete of the elements gone and one add
	// of the new ones, instead of a flush and a refill: for large sets of which one sync
	// changes a few, such as the pod addresses of NetworkPolicies. Its elements must be sorted
	// and unique.
	incremental bool
}

func newRuleset() *ruleset {
	return &ruleset{chains: map[string]*chain{}, maps: map[string]*nftMap{}, dynamicSets: map[string]string{}}
}

// chain returns the named chain, declaring it if needed.
func (r *ruleset) chain(name string) *chain {
	c := r.chains[name]
	if c == nil {
		c = &chain{}
		r.chains[name] = c
	}
	return c
}

func (r *ruleset) rule(chainName string, format string, args ...any) {
	c := r.chain(chainName)
	c.rules = append(c.rules, fmt.Sprintf(format, args...))
}

func (r *ruleset) element(mapName string, element string) {
	m := r.maps[mapName]
	m.elements = append(m.elements, element)
}

func (c *chain) equal(o *chain) bool {
	return c.base == o.base && slices.Equal(c.rules, o.rules)
}

func (m *nftMap) equal(o *nftMap) bool {
	return m.kind == o.kind && m.decl == o.decl && slices.Equal(m.elements, o.elements)
}

// transaction writes what `nft -f -` must apply to turn the table holding prev into one
// holding r, in one atomic transaction. With prev nil the table is rebuilt from nothing: it is
// created if absent and deleted in the same transaction, so that nothing left by an earlier
// run survives.
func (r *ruleset) transaction(family, table string, prev *ruleset) string {
	var b strings.Builder
	t := family + " " + table
	comment := r.comment
	if comment == "" {
		comment = "rules of the skiff proxy"
	}
	fmt.Fprintf(&b, "add table %s { comment %q ; }\n", t, comment)
	if prev == nil {
		fmt.Fprintf(&b, "delete table %s\n", t)
		fmt.Fprintf(&b, "add table %s { comment %q ; }\n", t, comment)
		prev = newRuleset()
	}
	chainNames := slices.Sorted(maps.Keys(r.chains))
	mapNames := slices.Sorted(maps.Keys(r.maps))
	setNames := slices.Sorted(maps.Keys(r.dynamicSets))

	// declarations first: rules and elements refer to chains, maps and sets
	for _, name := range chainNames {
		c := r.chains[name]
		if old, ok := prev.chains[name]; ok && old.base == c.base {
			continue
		}
		if c.base != "" {
			fmt.Fprintf(&b, "add chain %s %s { %s ; }\n", t, name, c.base)
		} else {
			fmt.Fprintf(&b, "add chain %s %s\n", t, name)
		}
	}
	for _, name := range mapNames {
		m := r.maps[name]
		if old, ok := prev.maps[name]; ok && old.kind == m.kind && old.decl == m.decl {
			continue
		}
		fmt.Fprintf(&b, "add %s %s %s { %s ; }\n", m.kind, t, name, m.decl)
	}
	for _, name := range setNames {
		if _, ok := prev.dynamicSets[name]; ok {
			continue // the set's name carries its declaration: same name, same set
		}
		fmt.Fprintf(&b, "add set %s %s { %s ; }\n", t, name, r.dynamicSets[name])
	}
	// contents of what changed
	for _, name := range chainNames {
		c := r.chains[name]
		if old, ok := prev.chains[name]; ok && old.equal(c) {
			continue
		}
		if _, ok := prev.chains[name]; ok {
			fmt.Fprintf(&b, "flush chain %s %s\n", t, name)
		}
		for _, rule := range c.rules {
			fmt.Fprintf(&b, "add rule %s %s %s\n", t, name, rule)
		}
	}
	for _, name := range mapNames {
		m := r.maps[name]
		old, ok := prev.maps[name]
		if ok && old.equal(m) {
			continue
		}
		if ok && m.incremental && old.kind == m.kind && old.decl == m.decl {
			gone, added := elementChanges(old.elements, m.elements)
			if len(gone) > 0 {
				fmt.Fprintf(&b, "delete element %s %s { %s }\n", t, name, strings.Join(gone, ", "))
			}
			if len(added) > 0 {
				fmt.Fprintf(&b, "add element %s %s { %s }\n", t, name, strings.Join(added, ", "))
			}
			continue
		}
		if ok {
			fmt.Fprintf(&b, "flush %s %s %s\n", m.kind, t, name)
		}
		if len(m.elements) > 0 {
			fmt.Fprintf(&b, "add element %s %s { %s }\n", t, name, strings.Join(m.elements, ", "))
		}
	}
	// what is gone: emptied first, so nothing refers to it when it is deleted
	var staleChains []string
	for _, name := range slices.Sorted(maps.Keys(prev.chains)) {
		if _, ok := r.chains[name]; !ok {
			staleChains = append(staleChains, name)
			fmt.Fprintf(&b, "flush chain %s %s\n", t, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(prev.maps)) {
		if _, ok := r.maps[name]; !ok {
			fmt.Fprintf(&b, "delete %s %s %s\n", prev.maps[name].kind, t, name)
		}
	}
	for _, name := range staleChains {
		fmt.Fprintf(&b, "delete chain %s %s\n", t, name)
	}
	for _, name := range slices.Sorted(maps.Keys(prev.dynamicSets)) {
		if _, ok := r.dynamicSets[name]; !ok {
			fmt.Fprintf(&b, "delete set %s %s\n", t, name)
		}
	}
	return b.String()
}

// elementChanges compares two sorted, unique element lists: what is in old only, and what is
// in new only.
func elementChanges(old, new []string) (gone, added []string) {
	i, j := 0, 0
	for i < len(old) || j < len(new) {
		switch {
		case j == len(new) || (i < len(old) && old[i] < new[j]):
			gone = append(gone, old[i])
			i++
		case i == len(old) || new[j] < old[i]:
			added = append(added, new[j])
			j++
		default:
			i++
			j++
		}
	}
	return gone, added
}
