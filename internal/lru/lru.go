// Package lru is a bounded map from series key to per-series state that
// tracks recency of use, so each stateful stage (windowing, learners) can
// cap its memory with the same policy. Lookups by []byte do not allocate.
package lru

// Map holds at most Cap entries. It is not safe for concurrent use.
type Map[V any] struct {
	m    map[string]*entry[V]
	head entry[V] // sentinel: head.next is the most recent, head.prev the least
	cap  int
}

type entry[V any] struct {
	key        string
	val        V
	prev, next *entry[V]
}

// New returns a map holding at most capacity entries.
func New[V any](capacity int) *Map[V] {
	if capacity < 1 {
		capacity = 1
	}
	l := &Map[V]{m: make(map[string]*entry[V]), cap: capacity}
	l.head.prev, l.head.next = &l.head, &l.head
	return l
}

// Len is the number of entries.
func (l *Map[V]) Len() int { return len(l.m) }

// Cap is the capacity.
func (l *Map[V]) Cap() int { return l.cap }

// Full reports whether adding a new key would need an eviction.
func (l *Map[V]) Full() bool { return len(l.m) >= l.cap }

// Get returns the value for key and marks it most recently used.
func (l *Map[V]) Get(key []byte) (V, bool) {
	e, ok := l.m[string(key)]
	if !ok {
		var zero V
		return zero, false
	}
	l.moveFront(e)
	return e.val, true
}

// GetString is Get with a string key.
func (l *Map[V]) GetString(key string) (V, bool) {
	e, ok := l.m[key]
	if !ok {
		var zero V
		return zero, false
	}
	l.moveFront(e)
	return e.val, true
}

// Put inserts or replaces key's value as most recently used. If the map is
// full, the least recently used entry is removed first and returned with
// evicted = true.
func (l *Map[V]) Put(key string, v V) (evictedKey string, evictedVal V, evicted bool) {
	if e, ok := l.m[key]; ok {
		e.val = v
		l.moveFront(e)
		return
	}
	if len(l.m) >= l.cap {
		old := l.head.prev
		l.unlink(old)
		delete(l.m, old.key)
		evictedKey, evictedVal, evicted = old.key, old.val, true
	}
	e := &entry[V]{key: key, val: v}
	l.m[key] = e
	l.pushFront(e)
	return
}

// Delete removes key.
func (l *Map[V]) Delete(key string) {
	if e, ok := l.m[key]; ok {
		l.unlink(e)
		delete(l.m, key)
	}
}

// Range calls fn from the least to the most recently used entry, the order
// in which re-inserting them reproduces the map's recency. fn must not
// modify the map.
func (l *Map[V]) Range(fn func(key string, v V) bool) {
	for e := l.head.prev; e != &l.head; e = e.prev {
		if !fn(e.key, e.val) {
			return
		}
	}
}

func (l *Map[V]) moveFront(e *entry[V]) {
	if l.head.next == e {
		return
	}
	l.unlink(e)
	l.pushFront(e)
}

func (l *Map[V]) unlink(e *entry[V]) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
}

func (l *Map[V]) pushFront(e *entry[V]) {
	e.prev = &l.head
	e.next = l.head.next
	l.head.next.prev = e
	l.head.next = e
}
