package repartition

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/tsrep/tsrep/ingest"
)

// TestPartitionOf: the stage places a series where kafka-go's Hash
// balancer (tsrep produce, feed.Produce) puts a message keyed by it.
func TestPartitionOf(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		key := []byte(fmt.Sprintf("cpu,host=h%d,cpu=%d", rng.IntN(1e6), i))
		for _, n := range []int{1, 2, 3, 4, 7, 16, 100} {
			if got, want := partitionOf(key, n), ingest.PartitionOf(key, n); got != want {
				t.Fatalf("%q over %d partitions: %d, kafka-go %d", key, n, got, want)
			}
		}
	}
}

func TestCommitMeta(t *testing.T) {
	f := func(m commitMeta) {
		t.Helper()
		got, err := parseCommitMeta(m.String())
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		if got.wm != m.wm || got.skip != m.skip || !slices.Equal(got.ends, m.ends) {
			t.Fatalf("%+v round-trips to %+v", m, got)
		}
	}
	f(commitMeta{wm: math.MinInt64})
	f(commitMeta{wm: 1709251200000000000, skip: 3, ends: []int64{0, 17, 4, 99}})
	f(commitMeta{wm: -5, ends: []int64{}})
	// Too many partitions for Kafka's metadata limit: the ends are left
	// out (the next owner scans from the start).
	big := commitMeta{wm: 1, skip: 2, ends: make([]int64, 2000)}
	for i := range big.ends {
		big.ends[i] = 1 << 40
	}
	got, err := parseCommitMeta(big.String())
	if err != nil || got.ends != nil || got.wm != 1 || got.skip != 2 || len(big.String()) > maxMetadata {
		t.Fatalf("oversized metadata: %+v %v (%d bytes)", got, err, len(big.String()))
	}
	for _, bad := range []string{"", "r1", "r1 x 0", "r1 5 -1", "r2 5 0", "r1 5 0 1,x"} {
		if _, err := parseCommitMeta(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestSourcesHeader(t *testing.T) {
	in := []srcPos{
		{topic: "metrics", part: 3, pos: pos{eff: 12, key: []byte("cpu,host=a"), off: 77, idx: 2}},
		{topic: "other", part: 0, pos: pos{eff: math.MinInt64, key: nil, off: 0, idx: 0}},
	}
	out, err := decodeSources(appendSources(nil, in))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d sources back, want %d", len(out), len(in))
	}
	for i := range in {
		if out[i].topic != in[i].topic || out[i].part != in[i].part || comparePos(&out[i].pos, &in[i].pos) != 0 {
			t.Fatalf("source %d: %+v back, want %+v", i, out[i], in[i])
		}
	}
	b := appendSources(nil, in)
	for i := 0; i < len(b); i++ {
		if _, err := decodeSources(b[:i]); err == nil {
			t.Fatalf("a header cut to %d of %d bytes decoded", i, len(b))
		}
	}
}
