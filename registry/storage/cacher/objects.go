package cacher

import (
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
)

// objectSet is the cache's current state: every object under the prefix, by key, kept in key
// order so that a list is a walk and never a sort. Not safe for concurrent use: the Cacher's
// lock guards it. Objects in it are immutable once stored.
type objectSet struct {
	byKey  map[string]runtime.Object
	sorted []string // keys of byKey, ascending
}

func newObjectSet() *objectSet {
	return &objectSet{byKey: map[string]runtime.Object{}}
}

func (s *objectSet) get(key string) (runtime.Object, bool) {
	obj, ok := s.byKey[key]
	return obj, ok
}

// put stores obj at key and returns what was there.
func (s *objectSet) put(key string, obj runtime.Object) (prev runtime.Object, existed bool) {
	prev, existed = s.byKey[key]
	s.byKey[key] = obj
	if !existed {
		i, _ := slices.BinarySearch(s.sorted, key)
		s.sorted = slices.Insert(s.sorted, i, key)
	}
	return prev, existed
}

// remove deletes key and returns what was there.
func (s *objectSet) remove(key string) (prev runtime.Object, existed bool) {
	prev, existed = s.byKey[key]
	if existed {
		delete(s.byKey, key)
		if i, found := slices.BinarySearch(s.sorted, key); found {
			s.sorted = slices.Delete(s.sorted, i, i+1)
		}
	}
	return prev, existed
}

// keyedObject is an object with the key it is stored under.
type keyedObject struct {
	key string
	obj runtime.Object
}

// rangeFrom returns, in key order, the objects whose key starts with prefix and is >= start
// (start "" means from the beginning of prefix). With recursive false, prefix is one key.
func (s *objectSet) rangeFrom(prefix, start string, recursive bool) []keyedObject {
	if !recursive {
		if obj, ok := s.byKey[prefix]; ok && start <= prefix {
			return []keyedObject{{prefix, obj}}
		}
		return nil
	}
	from := max(prefix, start)
	i, _ := slices.BinarySearch(s.sorted, from)
	end := i
	for end < len(s.sorted) && strings.HasPrefix(s.sorted[end], prefix) {
		end++
	}
	if end == i {
		return nil
	}
	// sized once: growing it by appends allocated three times the list's 32 bytes per object
	out := make([]keyedObject, end-i)
	for j, k := range s.sorted[i:end] {
		out[j] = keyedObject{k, s.byKey[k]}
	}
	return out
}

func (s *objectSet) len() int { return len(s.sorted) }
