package models

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestSharedEncoderTimingIndependent: the same partitions' data, batched
// differently and scheduled with random pauses, give the same embeddings.
func TestSharedEncoderTimingIndependent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	init, err := InitialEncoder(sharedConfig("", nil))
	if err != nil {
		t.Fatal(err)
	}
	run := func(seed uint64, batches []int) map[string][]embRow {
		g := NewGroupSync(&MemLog{}, []string{"t/0", "t/1", "t/2", "t/3"}, init, MergeRule{Rate: 1})
		data := map[string][2]int{"t/0": {0, 300}, "t/1": {100, 400}, "t/2": {150, 260}, "t/3": {0, 0}}
		res := map[string][]embRow{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		k := 0
		for part, rg := range data {
			bs := batches[k%len(batches)]
			k++
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(seed, uint64(len(part))))
				l, err := NewSSL(sharedConfig(part, g))
				if err != nil {
					t.Error(err)
					return
				}
				var rows []embRow
				if rg[1] > rg[0] {
					recs := ettPartition(t, "ett,p="+part, rg[0], rg[1], 24, bs)
					for _, rec := range recs {
						if r.IntN(3) == 0 {
							time.Sleep(time.Duration(r.IntN(3)) * time.Millisecond)
						}
						o, err := l.StepContext(ctx, rec)
						if err != nil {
							t.Error(err)
							return
						}
						b, _ := View(rec)
						for i := 0; i < b.Rows; i++ {
							if o.EmitEmbedding[i] {
								rows = append(rows, embRow{b.Key(i), int64(b.End[i]), o.Version[i], append([]float64(nil), o.Embedding[i*o.Dim:(i+1)*o.Dim]...)})
							}
						}
						rows = appendLate(rows, o)
						if r.IntN(2) == 0 {
							p, _ := l.Poll(ctx)
							rows = appendLate(rows, p)
						}
					}
				}
				rows, err = idleRows(ctx, l, rows)
				if err != nil {
					t.Error(err)
				}
				sortRows(rows)
				mu.Lock()
				res[part] = rows
				mu.Unlock()
			}()
		}
		wg.Wait()
		return res
	}
	a := run(1, []int{7, 50, 13, 100})
	b := run(2, []int{64, 3, 29, 11})
	for part, ra := range a {
		rb := b[part]
		if len(ra) != len(rb) {
			t.Fatalf("%s: %d against %d embeddings", part, len(ra), len(rb))
		}
		for i := range ra {
			if ra[i].key != rb[i].key || ra[i].end != rb[i].end || ra[i].version != rb[i].version {
				t.Fatalf("%s row %d: %s %d v%d against %s %d v%d", part, i, ra[i].key, ra[i].end, ra[i].version, rb[i].key, rb[i].end, rb[i].version)
			}
			for d := range ra[i].emb {
				if math.Float64bits(ra[i].emb[d]) != math.Float64bits(rb[i].emb[d]) {
					t.Fatalf("%s row %d (%s %d, version %d): embeddings differ", part, i, ra[i].key, ra[i].end, ra[i].version)
				}
			}
		}
	}
}
