package apiserver

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/registry/storage"
	"github.com/skiff-dev/skiff/registry/storage/cacher"
	"github.com/skiff-dev/skiff/registry/storage/encryption"
)

// Encryption at rest, as upstream's --encryption-provider-config: the resources the
// configuration names get an etcd store and a watch cache that run values through their
// transformer; every other resource keeps the shared store and pays nothing.

func init() {
	metricsRegistry.MustRegister(encryption.Collectors()...)
}

// loadEncryptionConfig reads Config.EncryptionProviderConfig; a configuration that is wrong
// stops the server from starting, as upstream's does.
func (s *Server) loadEncryptionConfig() error {
	if s.cfg.EncryptionProviderConfig == "" {
		return nil
	}
	c, err := encryption.LoadConfig(s.cfg.EncryptionProviderConfig)
	if err != nil {
		return fmt.Errorf("--encryption-provider-config: %w", err)
	}
	s.state.encryption = c
	return nil
}

// encryptedStorage is the storage a resource's watch cache writes through and the cache's
// options: the shared store when the resource is not encrypted, else a store of its own
// with the resource's transformer, which the cache reads etcd with too.
func (s *Server) encryptedStorage(res *apis.Resource) (storage.Interface, []cacher.Option) {
	t := s.state.encryption.For(schema.GroupResource{Group: res.GroupVersion.Group, Resource: res.Name})
	if t == nil {
		return s.state.base, nil
	}
	return &instrumentedStorage{inner: s.state.etcd.WithTransformer(t)}, []cacher.Option{cacher.WithTransformer(t)}
}
