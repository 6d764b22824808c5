package storage

// Transformer changes an encoded object on its way into etcd and back: encryption at rest.
// A store given one runs every value under its prefix through it; a store given none (nil)
// writes the encoded object as it is and pays nothing for the feature.
//
// key is the object's full etcd key ("/registry/secrets/ns/name"); some transformations bind
// the value to it (AES-GCM authenticates it), so a value copied to another key does not read.
type Transformer interface {
	// ToStorage returns what etcd holds for the encoded object plain.
	ToStorage(plain []byte, key string) ([]byte, error)
	// FromStorage returns the encoded object a stored value holds. stale reports that the
	// value was not written as ToStorage would write it now (an older key, another provider,
	// or none): an update must write it again even when the object did not change, which is
	// how a rewrite of every object moves them all to the current key.
	FromStorage(stored []byte, key string) (plain []byte, stale bool, err error)
}
