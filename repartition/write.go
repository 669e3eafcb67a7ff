package repartition

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/tsrep/tsrep/ingest"
)

// step is what one cut hands to the writer: the records for each internal
// partition, in write order, the dead letters of the messages cut, and
// the offsets to commit once they are all stored.
type step struct {
	recs    [][]ingest.Record // by internal partition
	points  int
	dedup   int
	dls     []ingest.DeadLetter
	commits []commitPos
	// final is the last step of an UntilEnd generation: commit at once.
	final bool
	// commitNow: commit before writing any later step (a source's running
	// maximum was raised, see merger.cut).
	commitNow bool
}

// commitPos is an input partition's next offset to read once a step is
// stored, with the running maximum of its effective times before it.
type commitPos struct {
	topic   string
	part    int
	off, wm int64
	// skip is how many points of the message at off (in effective time
	// order) are written.
	skip int
	hwm  int64
	// pending are the internal partitions where points the previous
	// owner wrote after its last commit are still to be skipped: the
	// next owner must scan them from where this one did.
	pending []int
}

// writer stores steps in order: records to the internal topic (each
// internal partition's in one or more produce requests, acks=all), dead
// letters to the dead-letter topic, then commits the input offsets.
type writer struct {
	s    *Stage
	g    *ingest.Generation
	srcs []*source
	// ends[q] is the offset after the last record this generation stored
	// in internal partition q (its end when the generation started);
	// scanFrom[q] where the generation's scan for the previous owners'
	// records began.
	ends, scanFrom []int64
	pending        []commitPos
	lastCommit     time.Time
}

// run stores the steps until the channel closes, then commits. It returns
// early, without error, when ctx ends (the drain timed out).
func (w *writer) run(ctx context.Context, steps <-chan *step) error {
	w.lastCommit = w.s.clk.Now()
	for st := range steps {
		if err := w.write(ctx, st); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if st.commits != nil {
			w.pending = st.commits
		}
		switch now := w.s.clk.Now(); {
		case st.commitNow:
			// Nothing after this step may be written before its commit.
			if err := w.s.retry(ctx, "committing the repartition stage's offsets", func() error { return w.commit(ctx) }); err != nil {
				return nil
			}
		case st.final || now.Sub(w.lastCommit) >= commitEvery:
			if err := w.commit(ctx); err != nil {
				w.s.log.Warn("committing the repartition stage's offsets failed (the next commit covers them)", "err", err)
			}
		}
	}
	if err := w.commit(ctx); err != nil {
		w.s.log.Warn("committing the repartition stage's offsets failed", "err", err)
	}
	return nil
}

// write stores a step's records and dead letters.
func (w *writer) write(ctx context.Context, st *step) error {
	var wg sync.WaitGroup
	errs := make([]error, len(st.recs))
	records := 0
	for q, recs := range st.recs {
		if len(recs) == 0 {
			continue
		}
		records += len(recs)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[q] = w.writePartition(ctx, q, recs)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	m := w.s.m
	m.Points.Add(float64(st.points))
	m.Records.Add(float64(records))
	m.Deduplicated.Add(float64(st.dedup))
	if len(st.dls) > 0 && w.s.o.DeadLetters != nil {
		if err := w.s.retry(ctx, "writing dead letters", func() error { return w.s.o.DeadLetters.Write(ctx, st.dls) }); err != nil {
			return err
		}
		if c := w.s.o.DeadLettered; c != nil {
			for _, d := range st.dls {
				c.WithLabelValues(string(d.Reason)).Inc()
			}
		}
	}
	return nil
}

// writePartition stores recs in internal partition q, in order, in
// produce requests of at most batchBytes. A request that fails is
// checked against the partition before it is sent again: if its records
// are there, it is not.
func (w *writer) writePartition(ctx context.Context, q int, recs []ingest.Record) error {
	for len(recs) > 0 {
		n, size := 0, 0
		for n < len(recs) && (n == 0 || size+len(recs[n].Value)+len(recs[n].Key) <= batchBytes) {
			size += len(recs[n].Value) + len(recs[n].Key)
			n++
		}
		batch := recs[:n]
		bo := backoff.NewExponentialBackOff()
		bo.InitialInterval, bo.MaxInterval, bo.MaxElapsedTime = 100*time.Millisecond, 10*time.Second, 0
		for {
			base, err := w.s.o.Cluster.Produce(ctx, w.s.topic, q, batch)
			if err == nil {
				w.ends[q] = base + int64(len(batch))
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			w.s.m.WriteErrors.Inc()
			// The request may have been stored before it failed: look.
			landed, next, lerr := w.landed(ctx, q)
			if lerr != nil {
				err = errors.Join(err, lerr)
			} else if landed > 0 {
				w.ends[q] = next
				if landed >= len(batch) {
					w.s.log.Info("a write to the internal topic reported a failure but was stored; not writing it again", "partition", q, "records", landed)
					break
				}
				batch = batch[landed:] // one request is one record batch: all or nothing, but be sure
			}
			wait := bo.NextBackOff()
			w.s.log.Warn("writing to the internal topic failed; retrying", "partition", q, "records", len(batch), "in", wait.Round(time.Millisecond), "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-w.s.clk.After(wait):
			}
		}
		recs = recs[n:]
	}
	return nil
}

// landed counts the records of this generation's sources stored in
// internal partition q after ends[q] (what a failed request may have
// stored), and the offset after the last of them.
func (w *writer) landed(ctx context.Context, q int) (int, int64, error) {
	end, err := w.s.o.Cluster.End(ctx, w.s.topic, q)
	if err != nil {
		return 0, 0, err
	}
	ours := map[string]bool{}
	for _, src := range w.srcs {
		ours[src.topic+"/"+strconv.Itoa(src.part)] = true
	}
	n, next := 0, w.ends[q]
	err = w.s.o.Cluster.Scan(ctx, w.s.topic, q, w.ends[q], end, 0, func(r *ingest.ScannedRecord) bool {
		for _, h := range r.Headers {
			if h.Key != HeaderSource {
				continue
			}
			sps, err := decodeSources(h.Value)
			if err != nil {
				continue
			}
			for _, sp := range sps {
				if ours[sp.topic+"/"+strconv.Itoa(sp.part)] {
					n, next = n+1, r.Offset+1
					return true
				}
			}
		}
		return true
	})
	return n, next, err
}

// commit commits the pending offsets, with their metadata.
func (w *writer) commit(ctx context.Context) error {
	if len(w.pending) == 0 || ctx.Err() != nil {
		return ctx.Err()
	}
	offs := map[string]map[int]ingest.OffsetMeta{}
	for _, c := range w.pending {
		if offs[c.topic] == nil {
			offs[c.topic] = map[int]ingest.OffsetMeta{}
		}
		// The next owner scans each internal partition from here for
		// what was written past this commit: after this generation's
		// last record, or where this generation's own scan began while
		// the previous owner's records there are still ahead of it.
		ends := append([]int64(nil), w.ends...)
		for _, q := range c.pending {
			ends[q] = w.scanFrom[q]
		}
		offs[c.topic][c.part] = ingest.OffsetMeta{Offset: c.off, Metadata: commitMeta{wm: c.wm, skip: c.skip, ends: ends}.String()}
	}
	if testHookCommit != nil && !testHookCommit() {
		return nil
	}
	if err := w.g.CommitMeta(ctx, w.s.o.Cluster, offs); err != nil {
		return err
	}
	w.lastCommit = w.s.clk.Now()
	w.s.m.Commits.Inc()
	for _, c := range w.pending {
		w.s.m.Lag.WithLabelValues(c.topic, strconv.Itoa(c.part)).Set(float64(max(0, c.hwm-c.off)))
	}
	w.pending = nil
	if w.s.o.OnCommit != nil {
		w.s.o.OnCommit()
	}
	return nil
}

// testHookCommit, if set (tests), is asked before each commit; false
// skips it, as a crash just before it would.
var testHookCommit func() bool
