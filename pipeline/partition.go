package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/models"
)

// partition runs one topic-partition as a chain of stages, each owning its
// state and joined by bounded channels:
//
//	fetch → window (decode, windows, Arrow batches) ─items─▶ learn (learner,
//	forecast scoring, line protocol) ─jobs─▶ write (InfluxDB, dead letters,
//	checkpoint, commit)
//
// The windowing stage runs ahead of the learning stage by at most
// pipeline.max_inflight_batches items. When any stage fails, abort is
// closed and the others stop without committing further.
type partition struct {
	id    partitionID
	env   *stageEnv
	win   *windowStage
	learn *learnStage
	write *writeStage
	marks *marks
	// items joins the windowing and learning stages.
	items chan *item

	abort     chan struct{}
	abortOnce sync.Once
}

// marks are offsets the stages share: the newest high watermark the
// windowing stage saw and the offset the writing stage last committed,
// for the lag gauge.
type marks struct {
	hwm, committed atomic.Int64
}

// newPartition builds the stages of a topic-partition. With a store, the
// windowing stage snapshots its state for checkpoints and the writing stage
// saves them (and commits through commit, if set); without, nothing is
// persisted (replays).
func (p *Pipeline) newPartition(id partitionID, store StateStore, commit ingest.Committer) (*partition, error) {
	cfg := p.cfg
	learner, err := p.newLearner(id.topic, id.part)
	if err != nil {
		return nil, err
	}
	items := make(chan *item, cfg.Pipeline.MaxInflightBatches)
	jobs := make(chan *writeJob, 2)
	bufs := make(chan []byte, 4)
	ckpts := make(chan []byte, 1)
	pt := &partition{id: id, env: p.env, abort: make(chan struct{}), marks: &marks{}, items: items}
	pt.win, err = newWindowStage(p.env, id, pt.marks, items, pt.abort)
	if err != nil {
		return nil, err
	}
	pt.win.persist = store != nil
	_, shared := learner.(models.Shared)
	pt.win.idleMarkers = shared && p.se != nil
	pt.learn = newLearnStage(p.env, id, learner, items, jobs, bufs, ckpts, pt.abort)
	pt.write = &writeStage{
		env: p.env, id: id, sink: p.o.Sink, dlq: p.o.DeadLetters, store: store, commit: commit,
		marks: pt.marks, in: jobs, bufs: bufs, ckpts: ckpts,
	}
	return pt, nil
}

// close releases what the stages hold.
func (pt *partition) close() { pt.win.close() }

// fail stops the partition's stages after an error (once).
func (pt *partition) fail(err error) {
	pt.abortOnce.Do(func() {
		close(pt.abort)
		pt.env.log(pt.id).Error("partition stopped without committing further", "err", err)
		pt.env.health.set(pt.id, stateStopped, err.Error())
	})
}

// run runs the stages over src from offset start until ctx ends, src is
// exhausted, or (end >= 0) the offset reaches end; the learning and
// writing stages drain with dctx, which outlives ctx by the shutdown
// timeout.
func (pt *partition) run(ctx, dctx context.Context, src ingest.Source, start, end int64) error {
	pt.marks.committed.Store(start)
	pt.env.health.set(pt.id, stateRunning, "")
	defer pt.env.health.set(pt.id, stateStopped, "")
	learnDone := make(chan error, 1)
	writeDone := make(chan error, 1)
	pt.learn.waitCtx = ctx
	go func() { learnDone <- pt.learn.run(dctx, pt.fail) }()
	go func() { writeDone <- pt.write.run(dctx, pt.fail) }()
	fetchErr := pt.win.run(ctx, src, start, end)
	return errors.Join(fetchErr, <-learnDone, <-writeDone)
}

// runPartition restores the partition's state, then runs its stages until
// ctx ends, draining with dctx. With UntilEnd the partition stops reading
// at the end offset the topic had when the run started, and stays, idle,
// until ctx ends (the group is caught up).
func (p *Pipeline) runPartition(ctx, dctx context.Context, g *ingest.Generation, a ingest.Assignment) error {
	id := partitionID{a.Topic, a.Partition}
	var store StateStore
	bo := backoff.NewExponentialBackOff()
	bo.MaxElapsedTime = 0
	for {
		s, err := p.stateStore(ctx)
		if err == nil {
			store = s
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		wait := bo.NextBackOff()
		p.env.log(id).Warn("opening the state store failed; retrying", "in", wait.Round(time.Millisecond), "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-p.env.clock.After(wait):
		}
	}
	pt, err := p.newPartition(id, store, g)
	if err != nil {
		return err
	}
	defer pt.close()
	log := p.env.log(id)
	// A generation that ends (a rebalance, a stop) while the partition
	// starts is not an error of the partition's.
	stopped := func(err error) error {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	var start int64
	bo.Reset()
	for {
		start, err = pt.restore(ctx, p, a)
		if err == nil {
			break
		}
		if errors.Is(err, errBadState) || errors.Is(err, ErrCorruptCheckpoint) || ingest.IsCorrupt(err) || ctx.Err() != nil {
			return stopped(err)
		}
		// The state store or the brokers cannot be read now (a restart):
		// wait, as a fetch would.
		wait := bo.NextBackOff()
		log.Warn("restoring the partition failed; retrying", "in", wait.Round(time.Millisecond), "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-p.env.clock.After(wait):
		}
	}
	start = p.inLog(ctx, id, start)
	if e, err := p.o.Kafka.End(ctx, id.topic, id.part); err == nil {
		pt.win.caughtUp = start >= e // an empty partition is idle from the start
	}
	end := int64(-1)
	if p.o.UntilEnd {
		if end, err = p.endOffset(ctx, a.Topic, a.Partition); err != nil {
			return stopped(err)
		}
		pt.win.hold = true
	}
	defer p.track(id)()
	log.Info("partition assigned", "start_offset", start, "committed", a.Committed, "end_offset", end)
	p.o.Timing.assigned(p.env.clock.Now())
	src := p.newReader(id, start)
	defer src.Close()
	return pt.run(ctx, dctx, src, start, end)
}

// newReader reads a partition from offset start, counting fetch errors
// and resets, and resolving kafka.start when its offset is found past the
// log's end.
func (p *Pipeline) newReader(id partitionID, start int64) *ingest.PartitionReader {
	r := p.o.Kafka.Reader(id.topic, id.part, start, p.env.log(id), ingest.ReaderHooks{
		FetchError: func(error) { p.env.m.FetchErrors.Inc() },
		Reset: func(from, to int64, pastEnd bool) {
			reason := "before_log_start"
			if pastEnd {
				reason = "past_log_end"
			}
			p.env.m.OffsetResets.WithLabelValues(reason).Inc()
		},
	})
	r.PastEnd = func(ctx context.Context) (int64, error) { return p.startOffset(ctx, id) }
	return r
}

// inLog checks a partition's start offset against its log before reading:
// an offset past the log's end (the topic was recreated, or the broker
// replaced, after the checkpoint or commit was made) is never read from
// silently. It is logged, counted, and replaced by where kafka.start says a
// partition without an offset begins. The partition's learnt state is
// kept: it describes the series, not the log.
//
// If the brokers cannot be asked now (a restart), the check is left to the
// reader, which makes it (with retries) when it opens.
func (p *Pipeline) inLog(ctx context.Context, id partitionID, start int64) int64 {
	end, err := p.o.Kafka.End(ctx, id.topic, id.part)
	if err != nil || start <= end {
		return start
	}
	to, err := p.startOffset(ctx, id)
	if err != nil {
		return start
	}
	p.env.log(id).Error("the partition's offset is past the end of its log (topic recreated or broker replaced?): "+
		"starting where kafka.start says instead", "offset", start, "log_end", end, "kafka.start", p.cfg.Kafka.Start, "start_offset", to)
	p.env.m.OffsetResets.WithLabelValues("past_log_end").Inc()
	return to
}

// startOffset is where kafka.start puts a partition without an offset.
func (p *Pipeline) startOffset(ctx context.Context, id partitionID) (int64, error) {
	kind, t := startKind(p.cfg.Kafka.Start)
	return p.o.Kafka.Resolve(ctx, id.topic, id.part, kind, t)
}

// errBadState marks a checkpoint that was read but cannot be restored
// (corrupt, or of another model): retrying does not help.
var errBadState = errors.New("checkpoint cannot be restored")

// restore loads the partition's checkpoint, if any, and returns the offset
// to start reading at.
func (pt *partition) restore(ctx context.Context, p *Pipeline, a ingest.Assignment) (int64, error) {
	log := pt.env.log(pt.id)
	store := pt.write.store
	body, ok, err := store.Load(ctx, a.Topic, a.Partition)
	if err != nil {
		return 0, err
	}
	if ok {
		next, err := pt.learn.loadCheckpoint(body, pt.win)
		if err != nil {
			return 0, fmt.Errorf("%w: %s: %w (move it away to start this partition from its committed offset with empty state)", errBadState, store.Where(a.Topic, a.Partition), err)
		}
		if a.Committed >= 0 && a.Committed != next {
			log.Info("resuming from the checkpoint, not the committed offset", "checkpoint_offset", next, "committed", a.Committed)
		}
		return next, nil
	}
	if w := p.o.WarmupFrom; !w.IsZero() {
		// No state yet: learn from history first. The same run then
		// continues on the live stream, so what it writes has neither a
		// gap nor an overlap.
		off, err := p.o.Kafka.At(ctx, a.Topic, a.Partition, w)
		if err != nil {
			return 0, err
		}
		end, err := p.o.Kafka.End(ctx, a.Topic, a.Partition)
		if err != nil {
			return 0, err
		}
		log.Info("warming up from history", "from", w, "start_offset", off, "live_end_offset", end, "messages", max(0, end-off))
		return off, nil
	}
	if a.Committed >= 0 {
		log.Warn("no checkpoint for a partition with a committed offset: starting there with empty state "+
			"(with several instances, use pipeline.state_store = \"kafka\", or share pipeline.checkpoint_dir)",
			"committed", a.Committed, "state_store", store.Where(a.Topic, a.Partition))
		return a.Committed, nil
	}
	return p.startOffset(ctx, pt.id)
}
