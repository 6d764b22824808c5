package manager

import (
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/scale"
)

// scales is a client of any kind's scale subresource, and the mapper it finds kinds with: a
// discovery-backed mapper that rereads discovery when it misses a kind, so that custom
// resources defined later are found.
func (b *builder) scales() (scale.ScalesGetter, meta.RESTMapper, error) {
	cached := memory.NewMemCacheClient(b.client.Discovery())
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(cached)
	sc, err := scale.NewForConfig(b.config, mapper, dynamic.LegacyAPIPathResolverFunc, scale.NewDiscoveryScaleKindResolver(cached))
	if err != nil {
		return nil, nil, err
	}
	return sc, mapper, nil
}

// restMapper is a discovery-backed mapper that rereads discovery when it misses a kind.
func (b *builder) restMapper() meta.RESTMapper {
	return restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(b.client.Discovery()))
}
