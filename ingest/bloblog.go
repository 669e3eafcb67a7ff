package ingest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// BlobLog is an ordered log of keyed values of any size in one partition
// of a compacted topic (see blob.go for the layout): every instance of a
// consumer group appends to it and reads all of it, in the same order.
// tsrep keeps its shared encoder's rounds there.
type BlobLog struct {
	t   blobTopic
	log *slog.Logger

	mu     sync.Mutex
	next   int64             // offset of the next record to read
	chunks map[string][]byte // chunks read whose manifest has not come yet
	cancel context.CancelFunc
	done   chan struct{}
}

// BlobLog opens (creating if missing, compacted, one partition) topic.
func (c *Cluster) BlobLog(ctx context.Context, topic string, log *slog.Logger) (*BlobLog, error) {
	if _, err := c.ensureTopic(ctx, topic, 1); err != nil {
		return nil, err
	}
	return &BlobLog{t: blobTopic{c: c, topic: topic}, log: log, chunks: map[string][]byte{}}, nil
}

// Topic is the log's topic.
func (l *BlobLog) Topic() string { return l.t.topic }

// Put appends value under key; it returns once it is acknowledged.
func (l *BlobLog) Put(ctx context.Context, key string, value []byte) error {
	return l.t.put(ctx, 0, key, 0, value)
}

// Follow reads the log from its start up to its current end, calling fn
// with each value in log order, then returns and goes on calling fn with
// the values appended later, from a goroutine, until Close. fn must not
// block for long.
func (l *BlobLog) Follow(ctx context.Context, fn func(key string, value []byte)) error {
	end, err := l.t.c.End(ctx, l.t.topic, 0)
	if err != nil {
		return err
	}
	if err := l.read(ctx, end, fn); err != nil {
		return err
	}
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel, l.done = cancel, make(chan struct{})
	go func() {
		defer close(l.done)
		bo := backoff.NewExponentialBackOff()
		bo.MaxInterval, bo.MaxElapsedTime = 5*time.Second, 0
		for fctx.Err() == nil {
			// A fetch past the end waits (on the broker, fetch's MaxWait)
			// for new records: a long poll.
			err := l.read(fctx, math.MaxInt64, fn)
			if err == nil || fctx.Err() != nil {
				bo.Reset()
				continue
			}
			wait := bo.NextBackOff()
			l.log.Warn("reading the log failed; retrying", "topic", l.t.topic, "in", wait.Round(time.Millisecond), "err", err)
			select {
			case <-fctx.Done():
			case <-time.After(wait):
			}
		}
	}()
	return nil
}

// read delivers the records in [l.next, end).
func (l *BlobLog) read(ctx context.Context, end int64, fn func(key string, value []byte)) error {
	l.mu.Lock()
	from := l.next
	l.mu.Unlock()
	if from >= end {
		return nil
	}
	var ferr error
	err := l.t.fetch(ctx, 0, from, end, func(r record) bool {
		if ferr = l.take(r, l.chunks, fn); ferr != nil {
			return false
		}
		l.mu.Lock()
		l.next = r.offset + 1
		l.mu.Unlock()
		return true
	})
	if err != nil {
		return err
	}
	return ferr
}

// Scan reads the log from its start to its current end, calling fn with
// each value in log order; it is apart from Follow, for a reader that
// needs again what Follow delivered long ago.
func (l *BlobLog) Scan(ctx context.Context, fn func(key string, value []byte)) error {
	end, err := l.t.c.End(ctx, l.t.topic, 0)
	if err != nil {
		return err
	}
	chunks := map[string][]byte{}
	var ferr error
	err = l.t.fetch(ctx, 0, 0, end, func(r record) bool {
		ferr = l.take(r, chunks, fn)
		return ferr == nil
	})
	if err != nil {
		return err
	}
	return ferr
}

// take keeps a chunk in chunks until its manifest comes, and delivers a
// manifest's value, assembled from its chunks.
func (l *BlobLog) take(r record, chunks map[string][]byte, fn func(key string, value []byte)) error {
	if isChunk(r.key) {
		chunks[string(r.key)] = r.value
		return nil
	}
	if len(r.value) == 0 {
		return nil
	}
	v, err := l.assemble(string(r.key), r.value, chunks)
	if err != nil {
		return err
	}
	fn(string(r.key), v)
	return nil
}

// assemble joins the chunks of the blob whose manifest is m.
func (l *BlobLog) assemble(name string, m []byte, chunks map[string][]byte) ([]byte, error) {
	man, err := decodeManifest(m)
	if err != nil {
		return nil, fmt.Errorf("%s in %s: %w", name, l.t.topic, err)
	}
	var buf bytes.Buffer
	for i := range man.offsets {
		k := string(chunkKey(name, man.gen, i))
		c, ok := chunks[k]
		if !ok {
			return nil, fmt.Errorf("%w: %s in %s: chunk %d missing", ErrCorruptBlob, name, l.t.topic, i)
		}
		buf.Write(c)
		delete(chunks, k)
	}
	b := buf.Bytes()
	if uint64(len(b)) != man.length || crc(b) != man.crc {
		return nil, fmt.Errorf("%w: %s in %s: length or checksum mismatch", ErrCorruptBlob, name, l.t.topic)
	}
	return b, nil
}

// Close stops following.
func (l *BlobLog) Close() {
	if l.cancel != nil {
		l.cancel()
		<-l.done
	}
}
