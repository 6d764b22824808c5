package nodeipam

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
)

// errCIDRRangeFull: every subnet of the cluster CIDR is taken.
var errCIDRRangeFull = errors.New("CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range")

// cidrSet hands out the subnets of one cluster CIDR, each of one size, never two at once.
type cidrSet struct {
	cluster  netip.Prefix
	maskSize int
	// size is how many subnets there are; used marks the taken ones.
	size uint64
	used map[uint64]bool
	// next is where the search for a free subnet starts: allocations go round, so a subnet
	// just released is not handed out again at once.
	next uint64
}

// maxSubnets bounds a set so that its bookkeeping stays small.
const maxSubnets = 1 << 24

func newCIDRSet(cluster netip.Prefix, maskSize int) (*cidrSet, error) {
	cluster = cluster.Masked()
	bits := cluster.Addr().BitLen()
	if maskSize < cluster.Bits() || maskSize > bits {
		return nil, fmt.Errorf("node CIDR mask size /%d does not fit in cluster CIDR %v", maskSize, cluster)
	}
	if maskSize-cluster.Bits() > 24 {
		return nil, fmt.Errorf("cluster CIDR %v holds more than %d subnets of /%d", cluster, maxSubnets, maskSize)
	}
	return &cidrSet{cluster: cluster, maskSize: maskSize, size: 1 << (maskSize - cluster.Bits()), used: map[uint64]bool{}}, nil
}

// subnet is the i-th subnet.
func (s *cidrSet) subnet(i uint64) netip.Prefix {
	base := new(big.Int).SetBytes(s.cluster.Addr().AsSlice())
	shift := uint(s.cluster.Addr().BitLen() - s.maskSize)
	base.Add(base, new(big.Int).Lsh(new(big.Int).SetUint64(i), shift))
	b := base.FillBytes(make([]byte, s.cluster.Addr().BitLen()/8))
	addr, _ := netip.AddrFromSlice(b)
	return netip.PrefixFrom(addr, s.maskSize)
}

// index is the position of a subnet of this set, or false if it is not one.
func (s *cidrSet) index(p netip.Prefix) (uint64, bool) {
	if p.Bits() != s.maskSize || p.Addr().BitLen() != s.cluster.Addr().BitLen() || !s.cluster.Contains(p.Addr()) || p.Masked() != p {
		return 0, false
	}
	off := new(big.Int).Sub(new(big.Int).SetBytes(p.Addr().AsSlice()), new(big.Int).SetBytes(s.cluster.Addr().AsSlice()))
	off.Rsh(off, uint(s.cluster.Addr().BitLen()-s.maskSize))
	return off.Uint64(), true
}

// allocateNext takes the next free subnet.
func (s *cidrSet) allocateNext() (netip.Prefix, error) {
	for k := uint64(0); k < s.size; k++ {
		i := (s.next + k) % s.size
		if !s.used[i] {
			s.used[i] = true
			s.next = (i + 1) % s.size
			return s.subnet(i), nil
		}
	}
	return netip.Prefix{}, errCIDRRangeFull
}

// occupy marks a subnet taken; it reports false for a prefix outside the set.
func (s *cidrSet) occupy(p netip.Prefix) bool {
	i, ok := s.index(p)
	if ok {
		s.used[i] = true
	}
	return ok
}

// release frees a subnet.
func (s *cidrSet) release(p netip.Prefix) {
	if i, ok := s.index(p); ok {
		delete(s.used, i)
	}
}
