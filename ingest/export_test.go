package ingest

import (
	"context"
	"time"

	"github.com/segmentio/kafka-go"
)

// WriteTorn writes the first chunks of a checkpoint of body into the
// generation the next Save would use, and no manifest: what a writer that
// died halfway leaves behind.
func (s *KafkaStateStore) WriteTorn(ctx context.Context, topic string, partition int, body []byte, chunks int) error {
	name := stateName(topic, partition)
	s.mu.Lock()
	gen, ok := s.gen[name]
	s.mu.Unlock()
	next := uint8(0)
	if ok {
		next = 1 - gen
	}
	for i := 0; i < chunks; i++ {
		chunk := body[i*BlobChunk : min(len(body), (i+1)*BlobChunk)]
		if _, err := s.t.produce(ctx, s.part(partition), kafka.Record{Time: time.Now(), Key: kafka.NewBytes(chunkKey(name, next, i)), Value: kafka.NewBytes(chunk)}); err != nil {
			return err
		}
	}
	return nil
}

// Forget drops what the store knows of the generations written (a new
// process).
func (s *KafkaStateStore) Forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen = map[string]uint8{}
}
