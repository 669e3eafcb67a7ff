package models

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/tsrep/tsrep/internal/binenc"
)

// TestSharedEncoderCrashAll: every partition of the group crashes at a
// random batch and restarts, in a new process (a new GroupSync over the
// same log), from a checkpoint some batches before: the embeddings are
// those of the uninterrupted run.
func TestSharedEncoderCrashAll(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	init, err := InitialEncoder(sharedConfig("", nil))
	if err != nil {
		t.Fatal(err)
	}
	parts := []string{"t/0", "t/1", "t/2"}
	data := map[string][]arrow.RecordBatch{
		"t/0": ettPartition(t, "ett,p=0", 0, 300, 24, 20),
		"t/1": ettPartition(t, "ett,p=1", 30, 330, 24, 17),
		"t/2": ettPartition(t, "ett,p=2", 60, 300, 24, 23),
	}
	type phase struct {
		from, to int
		saveAt   int // save the state after this many batches (-1: none)
	}
	run := func(log *MemLog, phases map[string]phase, restored map[string][]byte) (map[string][]embRow, map[string][]byte) {
		g := NewGroupSync(log, parts, init, MergeRule{Rate: 1})
		res := map[string][]embRow{}
		saved := map[string][]byte{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, part := range parts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l, err := NewSSL(sharedConfig(part, g))
				if err != nil {
					t.Error(err)
					return
				}
				if st, ok := restored[part]; ok {
					if err := l.LoadState(binenc.NewReader(st)); err != nil {
						t.Error(err)
						return
					}
				}
				ph := phases[part]
				var rows []embRow
				for k := ph.from; k < ph.to; k++ {
					o, err := l.StepContext(ctx, data[part][k])
					if err != nil {
						t.Error(err)
						return
					}
					b, _ := View(data[part][k])
					for i := 0; i < b.Rows; i++ {
						if o.EmitEmbedding[i] {
							rows = append(rows, embRow{b.Key(i), int64(b.End[i]), o.Version[i], append([]float64(nil), o.Embedding[i*o.Dim:(i+1)*o.Dim]...)})
						}
					}
					rows = appendLate(rows, o)
					if k+1 == ph.saveAt {
						mu.Lock()
						saved[part] = state(l)
						mu.Unlock()
					}
				}
				if ph.to == len(data[part]) {
					if rows, err = idleRows(ctx, l, rows); err != nil {
						t.Error(err)
					}
				}
				mu.Lock()
				res[part] = rows
				mu.Unlock()
			}()
		}
		wg.Wait()
		return res, saved
	}
	full := map[string]phase{}
	for _, p := range parts {
		full[p] = phase{0, len(data[p]), -1}
	}
	want, _ := run(&MemLog{}, full, nil)

	r := rand.New(rand.NewPCG(7, 7))
	log := &MemLog{}
	first := map[string]phase{}
	for _, p := range parts {
		n := len(data[p])
		crash := n/3 + r.IntN(n/2)
		save := 1 + r.IntN(crash-1)
		first[p] = phase{0, crash, save}
	}
	got1, saved := run(log, first, nil)
	second := map[string]phase{}
	for _, p := range parts {
		second[p] = phase{first[p].saveAt, len(data[p]), -1}
	}
	got2, _ := run(log, second, saved)
	for _, p := range parts {
		// What the first process wrote up to its checkpoint, and all the
		// second wrote: overwrite by key, as InfluxDB does.
		byKey := map[[2]int64]embRow{}
		key := func(e embRow) [2]int64 { return [2]int64{int64(len(e.key)), e.end} }
		_ = key
		m := map[string]embRow{}
		for _, e := range got1[p] {
			m[e.key+"@"+itoa64(e.end)] = e
		}
		for _, e := range got2[p] {
			m[e.key+"@"+itoa64(e.end)] = e
		}
		_ = byKey
		for _, e := range want[p] {
			g, ok := m[e.key+"@"+itoa64(e.end)]
			if !ok {
				t.Fatalf("%s: %s at %d missing after the crash", p, e.key, e.end)
			}
			if g.version != e.version {
				t.Fatalf("%s: %s at %d: version %d, want %d", p, e.key, e.end, g.version, e.version)
			}
			for d := range e.emb {
				if math.Float64bits(g.emb[d]) != math.Float64bits(e.emb[d]) {
					t.Fatalf("%s: %s at %d (version %d): embedding differs after the crash", p, e.key, e.end, e.version)
				}
			}
		}
	}
}

func itoa64(v int64) string {
	b := make([]byte, 0, 20)
	if v == 0 {
		return "0"
	}
	neg := v < 0
	for v != 0 {
		d := v % 10
		if d < 0 {
			d = -d
		}
		b = append(b, byte('0'+d))
		v /= 10
	}
	if neg {
		b = append(b, '-')
	}
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}
