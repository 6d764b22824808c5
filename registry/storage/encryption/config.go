package encryption

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apiserver/pkg/apis/apiserver"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	"k8s.io/apiserver/pkg/apis/apiserver/validation"

	"github.com/skiff-dev/skiff/registry/storage"
)

// configCodecs decode the configuration file strictly (an unknown or duplicate field is an
// error), as upstream reads it.
var configCodecs = func() serializer.CodecFactory {
	scheme := runtime.NewScheme()
	utilruntime.Must(apiserver.AddToScheme(scheme))
	utilruntime.Must(apiserverv1.AddToScheme(scheme))
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict)
}()

// Config is a loaded EncryptionConfiguration: a transformer per configured resource.
type Config struct {
	transformers map[schema.GroupResource]*transformer
}

var (
	anyGroupAnyResource = schema.GroupResource{Group: "*", Resource: "*"}
)

// LoadConfig reads an EncryptionConfiguration (YAML or JSON, apiserver.config.k8s.io/v1)
// and checks it as upstream does; an error names what is wrong in upstream's words.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("error reading encryption provider configuration file %q: %w", path, err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("encryption provider configuration file %q is empty", path)
	}
	obj, gvk, err := configCodecs.UniversalDecoder().Decode(data, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("error decoding encryption provider configuration file %q: %w", path, err)
	}
	cfg, ok := obj.(*apiserver.EncryptionConfiguration)
	if !ok {
		return nil, fmt.Errorf("got unexpected config type: %v", gvk)
	}
	if err := validation.ValidateEncryptionConfiguration(cfg, false).ToAggregate(); err != nil {
		return nil, fmt.Errorf("encryption provider configuration file %q: %w", path, err)
	}
	c, err := newConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("encryption provider configuration file %q: %w", path, err)
	}
	return c, nil
}

func newConfig(cfg *apiserver.EncryptionConfiguration) (*Config, error) {
	c := &Config{transformers: map[schema.GroupResource]*transformer{}}
	for _, rc := range cfg.Resources {
		providers, err := newProviders(rc.Providers)
		if err != nil {
			return nil, err
		}
		for _, res := range rc.Resources {
			gr := schema.ParseGroupResource(res)
			// A rule after a wildcard that covers it would never be used: upstream refuses it.
			if group := (schema.GroupResource{Group: gr.Group, Resource: "*"}); c.transformers[group] != nil {
				return nil, fmt.Errorf("resource %q is masked by earlier rule %q", yamlName(gr), yamlName(group))
			}
			if c.transformers[anyGroupAnyResource] != nil {
				return nil, fmt.Errorf("resource %q is masked by earlier rule %q", yamlName(gr), yamlName(anyGroupAnyResource))
			}
			t := c.transformers[gr]
			if t == nil {
				t = &transformer{resource: gr.String()}
				c.transformers[gr] = t
			}
			// a resource listed in two rules reads with both, writes with the first
			t.providers = append(t.providers, providers...)
		}
	}
	return c, nil
}

// yamlName is a group resource as the configuration spells it ("*." for the core group).
func yamlName(gr schema.GroupResource) string {
	if gr.Group == "" && gr.Resource == "*" {
		return "*."
	}
	return gr.String()
}

func newProviders(configs []apiserver.ProviderConfiguration) ([]*provider, error) {
	var out []*provider
	for _, pc := range configs {
		var p *provider
		var err error
		switch {
		case pc.AESCBC != nil:
			p, err = keyedProvider(aescbcPrefix, pc.AESCBC.Keys, newAESCBC)
		case pc.AESGCM != nil:
			p, err = keyedProvider(aesgcmPrefix, pc.AESGCM.Keys, newAESGCM)
		case pc.Secretbox != nil:
			p, err = keyedProvider(secretboxPrefix, pc.Secretbox.Keys, newSecretbox)
		case pc.Identity != nil:
			p = &provider{label: "identity"}
		case pc.KMS != nil:
			err = fmt.Errorf("the kms provider %q is not supported by skiff: use aescbc, aesgcm, secretbox or identity", pc.KMS.Name)
		default:
			err = errors.New("provider does not contain any of the expected providers: KMS, AESGCM, AESCBC, Secretbox, Identity")
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func keyedProvider(prefix string, keys []apiserver.Key, newSealer func([]byte) (sealer, error)) (*provider, error) {
	p := &provider{prefix: []byte(prefix), label: prefix}
	for _, k := range keys {
		secret, err := base64.StdEncoding.DecodeString(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("could not obtain secret for named key %s: %w", k.Name, err)
		}
		s, err := newSealer(secret)
		if err != nil {
			return nil, fmt.Errorf("error while creating cipher for named key %s: %w", k.Name, err)
		}
		p.keys = append(p.keys, namedKey{prefix: []byte(k.Name + ":"), sealer: s})
	}
	if len(p.keys) == 0 {
		return nil, fmt.Errorf("%s provider has no valid keys", prefix)
	}
	return p, nil
}

// For is the transformer of a resource's values, as upstream picks it: the resource's own
// rule, else its group's "*.group", else "*.*"; nil when none applies, and the resource is
// stored as encoded (its encrypted values, if any, then fail to read).
func (c *Config) For(gr schema.GroupResource) storage.Transformer {
	if c == nil {
		return nil
	}
	for _, k := range []schema.GroupResource{gr, {Group: gr.Group, Resource: "*"}, anyGroupAnyResource} {
		if t := c.transformers[k]; t != nil {
			return &transformer{resource: gr.String(), providers: t.providers}
		}
	}
	return nil
}

// transformer is one resource's providers: the first writes, each reads what it wrote.
type transformer struct {
	resource  string // the metrics' resource label
	providers []*provider
}

var _ storage.Transformer = &transformer{}

// ToStorage implements storage.Transformer.
func (t *transformer) ToStorage(plain []byte, key string) ([]byte, error) {
	start := time.Now()
	p := t.providers[0]
	out, err := p.seal(plain, []byte(key))
	recordTransformation(t.resource, "to_storage", p.label, start, err)
	if err != nil {
		return nil, fmt.Errorf("failed to encrypt data: %w", err)
	}
	return out, nil
}

// FromStorage implements storage.Transformer: the first provider whose prefix the value has
// and that reads it wins; stale unless that is the writing provider and its first key.
func (t *transformer) FromStorage(stored []byte, key string) ([]byte, bool, error) {
	start := time.Now()
	var errs []error
	for i, p := range t.providers {
		if !bytes.HasPrefix(stored, p.prefix) {
			continue
		}
		plain, staleKey, err := p.open(stored, []byte(key))
		if err != nil {
			if !p.identity() {
				recordTransformation(t.resource, "from_storage", p.label, start, err)
				errs = append(errs, err)
			}
			// identity says the value is encrypted: a later provider may read it
			continue
		}
		recordTransformation(t.resource, "from_storage", p.label, start, nil)
		return plain, staleKey || i != 0, nil
	}
	if len(errs) > 0 {
		return nil, false, fmt.Errorf("failed to decrypt data: %w", errors.Join(errs...))
	}
	err := errors.New("no matching prefix found")
	recordTransformation(t.resource, "from_storage", "unknown", start, err)
	return nil, false, err
}
