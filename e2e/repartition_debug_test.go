package e2e

import (
	"context"
	"fmt"
	"sort"
	"testing"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/feed"
	"github.com/tsrep/tsrep/ingest"
)

type dbgCol struct {
	out  []string
	ts   map[string][]int64
	key  []byte
	part int
	off  int64
}

func (c *dbgCol) Point(p *ingest.Point) {
	c.key = ingest.AppendSeriesPrefix(c.key[:0], p)
	k := string(c.key)
	c.ts[k] = append(c.ts[k], p.Time)
	c.out = append(c.out, fmt.Sprintf("%s %d", k, p.Time))
}
func (c *dbgCol) Bad([]byte, ingest.Reason, error) {}

func debugInternal(ctx context.Context, t *testing.T, c config.Config, ref []feed.Message) {
	wantPoints := len(ref)
	want := make([][]string, 4)
	dec0 := ingest.NewLineProtocol(ingest.Options{Precision: 1})
	for _, m := range ref {
		col := &dbgCol{ts: map[string][]int64{}}
		dec0.Decode(m.Value, m.Time, col)
		for _, s := range col.out {
			q := ingest.PartitionOf(col.key, 4)
			want[q] = append(want[q], s)
		}
	}
	got := make([][]string, 4)
	cl, _ := ingest.NewCluster(c.Kafka)
	ends, err := cl.Ends(ctx, c.RepartitionTopic())
	if err != nil {
		t.Fatal(err)
	}
	dec := ingest.NewLineProtocol(ingest.Options{Precision: 1})
	col := &dbgCol{ts: map[string][]int64{}}
	for p := 0; p < len(ends); p++ {
		n0 := len(col.out)
		cl.Scan(ctx, c.RepartitionTopic(), p, 0, ends[p], 0, func(r *ingest.ScannedRecord) bool {
			dec.Decode(r.Value, r.Time.UnixNano(), col)
			return true
		})
		got[p] = col.out[n0:]
		for i := range got[p] {
			if i >= len(want[p]) || got[p][i] != want[p][i] {
				t.Logf("partition %d: first difference at %d of %d/%d: got %v want %v", p, i, len(got[p]), len(want[p]), got[p][max(0, i-2):min(len(got[p]), i+3)], want[p][max(0, i-2):min(len(want[p]), i+3)])
				break
			}
		}
	}
	seen := map[string]int{}
	dups := 0
	for _, s := range col.out {
		seen[s]++
		if seen[s] == 2 {
			dups++
		}
	}
	t.Logf("internal topic: %d points (%d distinct, %d duplicated), want %d", len(col.out), len(seen), dups, wantPoints)
	for k, ts := range col.ts {
		bad := 0
		first := -1
		for i := 1; i < len(ts); i++ {
			if ts[i] <= ts[i-1] {
				bad++
				if first < 0 {
					first = i
				}
			}
		}
		if bad > 0 {
			t.Logf("series %s: %d of %d points not after the previous; first at %d: %v", k, bad, len(ts), first, ts[max(0, first-3):min(len(ts), first+3)])
		}
	}
	_ = sort.Strings
}
