package ingest_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/broker"
	"github.com/tsrep/tsrep/internal/testenv"
)

// TestReaderOffsetPastEnd (#13 item 7): a reader started past the end of
// its partition's log (a checkpoint or committed offset from a topic that
// was recreated) is not left waiting for offsets that will never come: it
// reports the reset and moves to where PastEnd says (kafka.start), or to
// the log's end without a PastEnd, and reads the records from there.
func TestReaderOffsetPastEnd(t *testing.T) {
	ctx := testenv.Context(t, time.Minute)
	c := testCluster(t, broker.Options{Partitions: 1, Topics: []string{"in"}})
	produce := func(from, n int) {
		recs := make([]ingest.Record, n)
		for i := range recs {
			recs[i] = ingest.Record{Value: fmt.Appendf(nil, "m v=%d %d", from+i, from+i), Time: time.Now()}
		}
		if _, err := c.Produce(ctx, "in", 0, recs); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, 10)

	type reset struct {
		from, to int64
		pastEnd  bool
	}
	for _, tc := range []struct {
		name      string
		pastEnd   func(context.Context) (int64, error)
		wantTo    int64
		produceAt int // records produced after the reader started, to read at the end
	}{
		{"kafka.start earliest", func(context.Context) (int64, error) { return 0, nil }, 0, 0},
		{"no policy: the end", nil, 10, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var resets []reset
			r := c.Reader("in", 0, 50, slog.New(slog.DiscardHandler), ingest.ReaderHooks{Reset: func(from, to int64, pastEnd bool) {
				mu.Lock()
				defer mu.Unlock()
				resets = append(resets, reset{from, to, pastEnd})
			}})
			r.PastEnd = tc.pastEnd
			r.StallCheck = 200 * time.Millisecond
			defer r.Close()
			if tc.produceAt > 0 {
				go func() {
					time.Sleep(time.Second)
					produce(10, tc.produceAt)
				}()
			}
			fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			m, err := r.Fetch(fctx)
			if err != nil {
				t.Fatalf("no record after starting past the end: %v", err)
			}
			if m.Offset != tc.wantTo {
				t.Fatalf("first record at offset %d, want %d", m.Offset, tc.wantTo)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(resets) != 1 || resets[0] != (reset{50, tc.wantTo, true}) {
				t.Fatalf("resets %+v, want one from 50 to %d past the end", resets, tc.wantTo)
			}
		})
	}
}
