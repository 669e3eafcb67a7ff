package ingest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
)

// KafkaStateStore keeps each input partition's checkpoint in a compacted
// topic, the changelog idea of Kafka Streams: any instance of the group
// can restore any partition's state, with no shared disk. Input partition
// p of every topic is stored in partition p mod N of the state topic (N:
// its partition count, the largest input topic's when tsrep creates it),
// as a blob named "<topic>/<p>" (see blob.go: chunks, then a manifest
// listing their offsets, double-buffered).
//
// Load reads only the tail of one state partition to find the newest
// manifest, then the chunks it lists: its cost is the size of the state,
// not of the topic's history, whether or not the broker has compacted it.
type KafkaStateStore struct {
	t     blobTopic
	parts int
	mu    sync.Mutex
	gen   map[string]uint8 // generation of each blob's newest manifest
}

// StateStore opens (creating if missing, compacted, with partitions
// partitions) the state topic.
func (c *Cluster) StateStore(ctx context.Context, topic string, partitions int) (*KafkaStateStore, error) {
	n, err := c.ensureTopic(ctx, topic, max(1, partitions))
	if err != nil {
		return nil, fmt.Errorf("state topic (pipeline.state_topic): %w", err)
	}
	return &KafkaStateStore{t: blobTopic{c: c, topic: topic}, parts: n, gen: map[string]uint8{}}, nil
}

func stateName(topic string, partition int) string { return topic + "/" + strconv.Itoa(partition) }

func (s *KafkaStateStore) part(partition int) int { return partition % s.parts }

// Where names a partition's checkpoint.
func (s *KafkaStateStore) Where(topic string, partition int) string {
	return fmt.Sprintf("%s (key %q in partition %d)", s.t.topic, stateName(topic, partition), s.part(partition))
}

// Save writes body as the partition's checkpoint; it returns once the
// manifest is acknowledged.
func (s *KafkaStateStore) Save(ctx context.Context, topic string, partition int, body []byte) error {
	name := stateName(topic, partition)
	s.mu.Lock()
	gen, ok := s.gen[name]
	s.mu.Unlock()
	next := uint8(0)
	if ok {
		next = 1 - gen
	}
	if err := s.t.put(ctx, s.part(partition), name, next, body); err != nil {
		return fmt.Errorf("checkpoint %s: %w", s.Where(topic, partition), err)
	}
	s.mu.Lock()
	s.gen[name] = next
	s.mu.Unlock()
	return nil
}

// Load returns the partition's newest complete checkpoint; ok is false if
// there is none.
func (s *KafkaStateStore) Load(ctx context.Context, topic string, partition int) ([]byte, bool, error) {
	name := stateName(topic, partition)
	part := s.part(partition)
	m, found, err := s.newestManifest(ctx, part, name)
	if err != nil || !found {
		return nil, false, err
	}
	body, err := s.t.get(ctx, part, name, m)
	if err != nil {
		return nil, false, fmt.Errorf("checkpoint %s: %w", s.Where(topic, partition), err)
	}
	s.mu.Lock()
	s.gen[name] = m.gen
	s.mu.Unlock()
	return body, true, nil
}

// newestManifest scans the state partition backwards from its end, in
// windows that double, for the last manifest of blob name.
func (s *KafkaStateStore) newestManifest(ctx context.Context, part int, name string) (blobManifest, bool, error) {
	first, err := s.t.c.First(ctx, s.t.topic, part)
	if err != nil {
		return blobManifest{}, false, err
	}
	end, err := s.t.c.End(ctx, s.t.topic, part)
	if err != nil {
		return blobManifest{}, false, err
	}
	hi := end
	for step := int64(4); hi > first; step *= 2 {
		lo := max(first, hi-step)
		var last []byte
		err := s.t.fetch(ctx, part, lo, hi, func(r record) bool {
			if !isChunk(r.key) && string(r.key) == name {
				last = r.value
			}
			return true
		})
		if err != nil {
			return blobManifest{}, false, err
		}
		if last != nil {
			m, err := decodeManifest(last)
			if err != nil {
				return m, false, fmt.Errorf("checkpoint %s in %s/%d: %w", name, s.t.topic, part, err)
			}
			return m, true, nil
		}
		hi = lo
	}
	return blobManifest{}, false, nil
}

// IsCorrupt reports whether err says a stored value could not be read back
// whole.
func IsCorrupt(err error) bool { return errors.Is(err, ErrCorruptBlob) }
