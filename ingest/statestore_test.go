package ingest_test

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/broker"
	"github.com/tsrep/tsrep/internal/testenv"
)

// testCluster starts a broker with options o and returns a cluster
// client of it with the default Kafka settings.
func testCluster(t *testing.T, o broker.Options) *ingest.Cluster {
	t.Helper()
	b := testenv.StartBroker(t, o)
	cfg := config.Default().Kafka
	cfg.Brokers = []string{b.Addr()}
	c, err := ingest.NewCluster(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func randomBody(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return b
}

// TestKafkaStateStore: checkpoints larger than a Kafka record round-trip
// through the compacted state topic; a checkpoint whose writer died before
// its manifest is never restored (the previous one is); two input topics
// sharing a state partition keep their own checkpoints; a fresh process
// finds the newest.
func TestKafkaStateStore(t *testing.T) {
	ctx := testenv.Context(t, time.Minute)
	c := testCluster(t, broker.Options{Partitions: 2})
	s, err := c.StateStore(ctx, "g-state", 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Load(ctx, "in", 0); ok || err != nil {
		t.Fatalf("empty store: ok %v err %v", ok, err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	bodies := [][]byte{
		randomBody(r, 3*ingest.BlobChunk+12345), // several chunks
		{},                                      // an empty state
		randomBody(r, 100),
		randomBody(r, ingest.BlobChunk), // exactly one chunk
	}
	for i, body := range bodies {
		if err := s.Save(ctx, "in", 0, body); err != nil {
			t.Fatal(err)
		}
		// Another topic's partition 2 shares state partition 0.
		other := append([]byte("other"), byte(i))
		if err := s.Save(ctx, "in2", 2, other); err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.Load(ctx, "in", 0)
		if err != nil || !ok || !bytes.Equal(got, body) {
			t.Fatalf("save %d: ok %v err %v, %d bytes back of %d", i, ok, err, len(got), len(body))
		}
		got, ok, err = s.Load(ctx, "in2", 2)
		if err != nil || !ok || !bytes.Equal(got, other) {
			t.Fatalf("save %d of the other topic: %q %v %v", i, got, ok, err)
		}
	}
	last := bodies[len(bodies)-1]

	// A torn write: chunks of the next generation, no manifest.
	if err := s.WriteTorn(ctx, "in", 0, randomBody(r, 2*ingest.BlobChunk), 1); err != nil {
		t.Fatal(err)
	}
	fresh, err := c.StateStore(ctx, "g-state", 2)
	if err != nil {
		t.Fatal(err)
	}
	got, ok, err := fresh.Load(ctx, "in", 0)
	if err != nil || !ok || !bytes.Equal(got, last) {
		t.Fatalf("after a torn write: ok %v err %v, %d bytes", ok, err, len(got))
	}
	// The next save after a restart overwrites the torn generation, and
	// its predecessor stays readable until it completes.
	next := randomBody(r, 2*ingest.BlobChunk+1)
	if err := fresh.Save(ctx, "in", 0, next); err != nil {
		t.Fatal(err)
	}
	fresh.Forget()
	if got, ok, err := fresh.Load(ctx, "in", 0); err != nil || !ok || !bytes.Equal(got, next) {
		t.Fatalf("after the save that followed a torn write: ok %v err %v", ok, err)
	}
	if _, ok, err := fresh.Load(ctx, "in", 1); ok || err != nil {
		t.Fatalf("a partition never saved: ok %v err %v", ok, err)
	}
}
