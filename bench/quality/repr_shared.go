package quality

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/tsrep/tsrep/dataset"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/models"
)

// The representation protocol with the learning split over partitions,
// as a consumer group splits it: every UCR series belongs to the
// partition its id hashes to (ingest.PartitionOf, as the producer keys
// it), each partition has a learner of its own, run in a goroutine of its
// own, and the learners share one encoder through models.GroupSync over
// an in-memory log, exactly as the pipeline's partitions do through the
// encoder topic: the windows of event-time epoch r are embedded with
// version r, the merge of what every partition learnt up to epoch r-1.
//
// Each pass over the series (the training passes, then embedding the train
// and the test series with training off) is a stretch of event time after
// the previous one, one second per point; a pass spans about four epochs
// (or EpochPoints points an epoch), so that the encoder is merged several
// times a pass.

// sharedWindow is a window embedding of an embedding pass.
type sharedWindow struct {
	end int64
	emb []float64
}

// embedShared trains mcfg's learner on the train series over o.Partitions
// partitions for the given number of passes, then embeds the train and
// test series with the group's final encoder.
func embedShared(o ReprOptions, train, test *dataset.UCR, mcfg models.SSLConfig, L, nSeries, passes int) (*reprEmbedding, error) {
	N := o.Partitions
	longest := 0
	for _, u := range []*dataset.UCR{train, test} {
		for _, x := range u.Series {
			longest = max(longest, len(x))
		}
	}
	const second = int64(time.Second)
	span := int64(longest+2*L) * second // one pass, and a gap after it
	mcfg.Epoch = max(int64(L)*second, (span+3)/4)
	if o.EpochPoints > 0 {
		mcfg.Epoch = int64(o.EpochPoints) * second
	}
	rule := o.Merge
	if rule.Rate == 0 {
		rule.Rate = 1
	}
	// The step of each partition, as the pipeline sets it.
	mcfg.TrainBatch = rule.PartitionBatch(mcfg.TrainBatch, N)
	mcfg.MaxSeries = max(mcfg.MaxSeries, nSeries*(passes+2))
	members := make([]string, N)
	for p := range members {
		members[p] = fmt.Sprintf("ucr/%d", p)
	}
	init, err := models.InitialEncoder(mcfg)
	if err != nil {
		return nil, err
	}
	g := models.NewGroupSync(&models.MemLog{}, members, init, rule)

	partOf := func(i int) int { return ingest.PartitionOf(fmt.Appendf(nil, "ucr,id=%d", i), N) }
	type pass struct {
		name  string
		set   *dataset.UCR
		embed int // 0: training; 1: embed the train set; 2: the test set
	}
	var plan []pass
	for ep := 0; ep < passes; ep++ {
		plan = append(plan, pass{fmt.Sprintf("train%d", ep), train, 0})
	}
	plan = append(plan, pass{"embed-train", train, 1}, pass{"embed-test", test, 2})
	key := func(pass string, i int) string { return fmt.Sprintf("ucr,pass=%s,id=%d#value", pass, i) }
	index := map[string][2]int{} // the embedding passes' keys: set, series
	for _, ps := range plan[passes:] {
		for i := range ps.set.Series {
			index[key(ps.name, i)] = [2]int{ps.embed, i}
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	wins := [3]map[int][]sharedWindow{{}, {}, {}}
	steps := uint64(0) // optimiser steps, over all partitions
	keep := func(k string, end int64, emb []float64) error {
		at, ok := index[k]
		if !ok {
			return nil // a training window
		}
		mu.Lock()
		defer mu.Unlock()
		wins[at[0]][at[1]] = append(wins[at[0]][at[1]], sharedWindow{end, slices.Clone(emb)})
		return nil
	}
	collect := func(b *models.Batch, out *models.Output) error {
		if out == nil {
			return nil
		}
		mu.Lock()
		steps += uint64(len(out.Train))
		mu.Unlock()
		if b != nil {
			for r := 0; r < b.Rows; r++ {
				if out.EmitEmbedding[r] {
					if err := keep(b.Key(r), int64(b.End[r]), out.Embedding[r*out.Dim:(r+1)*out.Dim]); err != nil {
						return err
					}
				}
			}
		}
		for _, e := range out.Late {
			if err := keep(e.Key, e.End, e.Embedding); err != nil {
				return err
			}
		}
		return nil
	}

	errs := make(chan error, N)
	var wg sync.WaitGroup
	for p := 0; p < N; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := func() error {
				cfg := mcfg
				cfg.Sync, cfg.Partition = g, members[p]
				l, err := models.NewSSL(cfg)
				if err != nil {
					return err
				}
				s := newStream(L, o.Stride, o.BatchSize, cfg.MaxSeries, func(b *models.Batch, rec arrow.RecordBatch) error {
					out, err := l.StepContext(ctx, rec)
					if err != nil {
						return err
					}
					return collect(b, out)
				})
				defer s.close()
				for n, ps := range plan {
					if ps.embed > 0 && n == passes {
						// The training passes' windows that wait for the
						// group's versions are learnt from before
						// training stops.
						out, err := l.CatchUp(ctx)
						if err != nil {
							return err
						}
						if err := collect(nil, out); err != nil {
							return err
						}
						l.SetTraining(false)
					}
					base := int64(n) * span
					k := make([][]byte, len(ps.set.Series))
					for i := range k {
						k[i] = []byte(key(ps.name, i))
					}
					for t := 0; t < longest; t++ {
						for i, x := range ps.set.Series {
							if t < len(x) && !math.IsNaN(x[t]) && partOf(i) == p {
								s.w.Add(k[i], base+int64(t)*second, x[t])
							}
						}
						if s.err != nil {
							return s.err
						}
					}
					if err := s.flush(); err != nil {
						return err
					}
				}
				// The end of this partition's input: it catches up on what
				// waited for the group and goes idle, so none waits for it.
				out, err := l.Idle(ctx)
				if err != nil {
					return err
				}
				if err := collect(nil, out); err != nil {
					return err
				}
				return nil
			}()
			if err != nil {
				errs <- fmt.Errorf("partition %d: %w", p, err)
				cancel() // the others may wait for this one
			}
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		if !errors.Is(err, context.Canceled) || len(all) == 0 {
			all = append(all, err)
		}
	}
	if err := errors.Join(all...); err != nil {
		return nil, err
	}
	pooled := func(set int, u *dataset.UCR) ([][]float64, error) {
		out := make([][]float64, len(u.Series))
		for i := range out {
			ws := wins[set][i]
			if len(ws) == 0 {
				return nil, fmt.Errorf("series %d of the %s set has no window embedding", i, strings.Fields("- train test")[set])
			}
			sort.Slice(ws, func(a, b int) bool { return ws[a].end < ws[b].end })
			e := make([][]float64, len(ws))
			for j, w := range ws {
				e[j] = w.emb
			}
			out[i] = pool(e, o.Pyramid)
		}
		return out, nil
	}
	embTrain, err := pooled(1, train)
	if err != nil {
		return nil, err
	}
	embTest, err := pooled(2, test)
	if err != nil {
		return nil, err
	}
	return &reprEmbedding{embTrain: embTrain, embTest: embTest, window: L, epochs: passes, steps: steps}, nil
}
