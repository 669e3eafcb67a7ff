package ingest_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/broker"
	"github.com/tsrep/tsrep/internal/testenv"
)

// TestBlobLogFollowAndScan: values of any size (several chunks included)
// come back in the order they were put, to a follower (those before it
// started and those after), and again from a scan from the log's start,
// however long ago the follower read them.
func TestBlobLogFollowAndScan(t *testing.T) {
	ctx := testenv.Context(t, time.Minute)
	c := testCluster(t, broker.Options{Partitions: 1})
	l, err := c.BlobLog(ctx, "g-log", slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	type kv struct {
		key   string
		value []byte
	}
	var put []kv
	add := func(n int) {
		v := kv{fmt.Sprintf("k%d", len(put)), randomBody(r, n)}
		if err := l.Put(ctx, v.key, v.value); err != nil {
			t.Fatal(err)
		}
		put = append(put, v)
	}
	for _, n := range []int{10, 2*ingest.BlobChunk + 7, 1} {
		add(n)
	}
	var mu sync.Mutex
	var followed []kv
	if err := l.Follow(ctx, func(key string, value []byte) {
		mu.Lock()
		followed = append(followed, kv{key, bytes.Clone(value)})
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, n := range []int{ingest.BlobChunk + 1, 5} {
		add(n)
	}
	check := func(what string, got []kv) {
		t.Helper()
		if len(got) != len(put) {
			t.Fatalf("%s: %d values of %d", what, len(got), len(put))
		}
		for i := range put {
			if got[i].key != put[i].key || !bytes.Equal(got[i].value, put[i].value) {
				t.Fatalf("%s: value %d is %s (%d bytes), want %s (%d bytes)", what, i, got[i].key, len(got[i].value), put[i].key, len(put[i].value))
			}
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n := len(followed)
		mu.Unlock()
		if n >= len(put) || time.Now().After(deadline) {
			break
		}
	}
	mu.Lock()
	check("follow", followed)
	mu.Unlock()
	for range 2 {
		var scanned []kv
		if err := l.Scan(ctx, func(key string, value []byte) {
			scanned = append(scanned, kv{key, bytes.Clone(value)})
		}); err != nil {
			t.Fatal(err)
		}
		check("scan", scanned)
	}
}
