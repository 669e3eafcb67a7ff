// Package repartition is tsrep's first stage for input that is not keyed
// by series (Telegraf's Kafka output without routing_tag, producers that
// batch several series into one message): it reads the input topics as
// consumer group <group>-repartition, decodes every message, and writes
// each point to the internal topic <group>-repartition, in the partition
// its measurement + tag set hashes to, so that the learning pipeline,
// which reads that topic, finds every point of a series in one partition.
// This is Kafka Streams' repartition topic.
//
// # Order
//
// Windowing orders a series by event time, and by default drops a point
// older than its series' newest (window.lateness = 0). Reading the input
// partitions independently would interleave a series' points by how fast
// each partition is read, not by time. The stage therefore merges its
// input partitions on event time, as a k-way merge does: each message gets
// an effective time, the running maximum of its partition's point times
// (so a partition's messages never go back in effective time), and a
// point is written only once every input partition the stage reads has
// read past its effective time (the frontier: the smallest running
// maximum). Points of one frontier step are written in (effective time,
// series key, input partition, offset, index) order. For input whose
// partitions are each in time order, a series' points reach the internal
// topic in time order, and each internal partition holds its series' points
// in one order that depends on the data alone: the order a producer keyed
// by series would have written them in, with points of equal timestamps
// ordered by series key. A point that was already late in its own input
// partition is at most as late in the internal topic.
//
// An input partition that has been read to its end and stays quiet for
// kafka.repartition_idle stops holding the frontier back (Flink's
// watermark idleness); when it gets data again, points older than the
// frontier are written at once, late by at most how far the others moved
// on. The merge needs every input partition: the stage's group gives all
// of them to one member (the one that had them, while it lives), and the
// other instances stand by for it; the learning pipeline behind it is what
// scales out. A group split between members, if only while a killed
// member's session runs out, would order each member's share alone.
//
// # Nothing lost, nothing duplicated
//
// Input offsets are committed only after every point of the messages
// before them is acknowledged by every in-sync replica of the internal
// topic (and every dead letter by the dead-letter topic). Commits are
// made between frontier steps only, so a commit never splits messages of
// one effective time, and they carry metadata: the running maximum at the
// offset, and for each internal partition the offset from which this
// input partition's later records may be found. Each internal record
// names, per input partition, its last point's place in the order above
// (header tsrep-src), and points of one input partition go to one internal
// partition in increasing order. A new owner of an input partition (after
// a crash, a rebalance, a restart) scans the internal partitions from the
// committed offsets for what the previous owner wrote after its last
// commit, and skips exactly those points; a write whose outcome is unknown
// is checked the same way before it is retried. Two owners of one input
// partition at once (a member the group has already replaced still
// writing) are not fenced, as Kafka transactions would: that is the one
// case that can duplicate points.
package repartition

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/clock"
)

// DeadLetterer stores dead-letter records (ingest.DeadLetterWriter).
type DeadLetterer interface {
	Write(ctx context.Context, dls []ingest.DeadLetter) error
}

// Options configure a Stage.
type Options struct {
	// Config is the service's configuration: kafka.topics are the input,
	// kafka.group names the stage's group and topic.
	Config  config.Config
	Cluster *ingest.Cluster
	Log     *slog.Logger
	Metrics *Metrics
	// DeadLetters may be nil: bad input is then only counted.
	DeadLetters DeadLetterer
	// BadInput and DeadLettered, if set, count bad input and dead letters
	// by reason (the pipeline's tsrep_bad_input_total and
	// tsrep_dead_letters_total).
	BadInput, DeadLettered *prometheus.CounterVec
	// Clock paces the linger, idle, commit and retry timers; nil is the
	// system clock. Record timestamps of the internal topic (what its
	// retention counts from) are its Now.
	Clock clock.Clock
	// UntilEnd stops once the group has committed, on every input
	// partition, the end offset it had when Run started.
	UntilEnd bool
	// WarmupFrom starts input partitions without a committed offset (of
	// this stage, or of the learning pipeline's group before it
	// repartitioned) at this time instead of kafka.start.
	WarmupFrom time.Time
	// OnAssigned is called when the stage starts reading a partition;
	// OnCommit after each commit.
	OnAssigned, OnCommit func()
}

// Stage is the repartition stage. Prepare, then Run.
type Stage struct {
	o      Options
	cfg    config.Config
	log    *slog.Logger
	m      *Metrics
	clk    clock.Clock
	topic  string // the internal topic
	group  string
	parts  int // partitions of the internal topic
	inputs []string
	ends   map[string]map[int]int64
}

// Tuning of the stage.
const (
	// fetchSlice messages are handed from a fetcher to the merge at once,
	// or what came within fetchLinger.
	fetchSlice  = 256
	fetchLinger = 5 * time.Millisecond
	// A step is written stepLinger after the last step when fewer than
	// stepPoints points can be.
	stepLinger = 20 * time.Millisecond
	// An input partition ahead of the frontier stops being read while it
	// holds creditPoints points or creditBytes bytes; the partition that
	// holds the frontier is always read, up to hardBytes (then a forced
	// cut writes what it holds).
	creditPoints = 1 << 16
	creditBytes  = 16 << 20
	hardBytes    = 256 << 20
	// Records of the internal topic hold up to recordBytes of points; a
	// produce request to one partition up to batchBytes, under the
	// brokers' default message.max.bytes (1 MiB).
	recordBytes = 256 << 10
	batchBytes  = 900 << 10
)

// A step is written once stepPoints points can be; commits are at most
// commitEvery apart (the last step is always committed). Variables for
// tests.
var (
	stepPoints  = 16384
	commitEvery = 200 * time.Millisecond
)

// New checks the options.
func New(o Options) (*Stage, error) {
	if o.Cluster == nil {
		return nil, errors.New("repartition: no cluster")
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	cfg := o.Config
	if _, err := ingest.NewDecoder(cfg.Kafka.Format, ingest.DecoderOptions(cfg.Kafka)); err != nil {
		return nil, err
	}
	return &Stage{
		o: o, cfg: cfg, log: o.Log.With("stage", "repartition"), m: o.Metrics, clk: o.Clock,
		topic: cfg.RepartitionTopic(), group: cfg.RepartitionGroup(), inputs: slices.Clone(cfg.Kafka.Topics),
	}, nil
}

// Topic is the internal topic.
func (s *Stage) Topic() string { return s.topic }

// Prepare creates the internal topic if it does not exist, with as many
// partitions as the input topic that has the most, and returns its
// partition count.
func (s *Stage) Prepare(ctx context.Context) (int, error) {
	want := 0
	for _, t := range s.inputs {
		n, err := s.o.Cluster.Partitions(ctx, t)
		if err != nil {
			return 0, err
		}
		want = max(want, n)
	}
	n, err := s.o.Cluster.EnsureRepartitionTopic(ctx, s.topic, want, s.cfg.Kafka.RepartitionRetention.Duration)
	if err != nil {
		return 0, fmt.Errorf("internal topic of kafka.repartition: %w", err)
	}
	if n != want {
		s.log.Warn("the internal topic's partition count differs from the input's; its own count is used (a change of count moves series between partitions once)",
			"topic", s.topic, "partitions", n, "input_partitions", want)
	}
	s.parts = n
	return n, nil
}

// Run consumes the input topics as the stage's group until ctx ends, or
// with UntilEnd until the group has committed every input partition's end.
// A generation that ends (rebalance, stop) writes and commits what it can
// within pipeline.shutdown_timeout.
func (s *Stage) Run(ctx context.Context) error {
	if s.parts == 0 {
		if _, err := s.Prepare(ctx); err != nil {
			return err
		}
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	if s.o.UntilEnd {
		s.ends = map[string]map[int]int64{}
		for _, t := range s.inputs {
			e, err := s.o.Cluster.Ends(ctx, t)
			if err != nil {
				return err
			}
			s.ends[t] = e
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := s.clk.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C():
				}
				done, err := s.allCommitted(ctx)
				if err != nil && ctx.Err() == nil {
					s.log.Warn("checking the repartition group's committed offsets", "err", err)
				}
				if done {
					s.log.Info("every input partition is repartitioned to its end")
					stop()
					return
				}
			}
		}()
	}
	var runErr error
	var once sync.Once
	err := s.o.Cluster.RunSingleGroup(ctx, s.log, s.group, s.inputs, func(gctx context.Context, g *ingest.Generation) {
		if err := s.runGeneration(gctx, g); err != nil {
			once.Do(func() { runErr = err })
			stop()
		}
	})
	return errors.Join(runErr, err)
}

// allCommitted reports whether the group has committed the end of every
// input partition (UntilEnd).
func (s *Stage) allCommitted(ctx context.Context) (bool, error) {
	for topic, ends := range s.ends {
		parts := make([]int, 0, len(ends))
		for p := range ends {
			parts = append(parts, p)
		}
		c, err := s.o.Cluster.Committed(ctx, s.group, topic, parts)
		if err != nil {
			return false, err
		}
		for p, e := range ends {
			if e > 0 && c[p] < e {
				return false, nil
			}
		}
	}
	return true, nil
}

// retry runs f until it succeeds or ctx ends, with backoff, logging each
// failure as what.
func (s *Stage) retry(ctx context.Context, what string, f func() error) error {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval, bo.MaxElapsedTime = 100*time.Millisecond, 10*time.Second, 0
	for {
		err := f()
		if err == nil || ctx.Err() != nil {
			if err != nil {
				return ctx.Err()
			}
			return nil
		}
		wait := bo.NextBackOff()
		s.log.Warn(what+" failed; retrying", "in", wait.Round(time.Millisecond), "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.clk.After(wait):
		}
	}
}

// runGeneration repartitions the generation's input partitions until gctx
// ends, then writes and commits what the frontier allows within
// pipeline.shutdown_timeout.
func (s *Stage) runGeneration(gctx context.Context, g *ingest.Generation) error {
	if len(g.Assignments) == 0 {
		<-gctx.Done()
		return nil
	}
	dctx, cancelDrain := context.WithCancel(context.WithoutCancel(gctx))
	defer cancelDrain()
	stopTimer := context.AfterFunc(gctx, func() {
		select {
		case <-s.clk.After(s.cfg.Pipeline.ShutdownTimeout.Duration):
		case <-dctx.Done():
		}
		cancelDrain()
	})
	defer stopTimer()

	as := slices.Clone(g.Assignments)
	slices.SortFunc(as, func(a, b ingest.Assignment) int {
		if a.Topic != b.Topic {
			if a.Topic < b.Topic {
				return -1
			}
			return 1
		}
		return a.Partition - b.Partition
	})
	srcs := make([]*source, len(as))
	for i, a := range as {
		srcs[i] = &source{i: i, topic: a.Topic, part: a.Partition, wm: math.MinInt64, end: -1}
	}
	var metas []commitMeta
	if err := s.retry(gctx, "reading the repartition group's offsets", func() (err error) {
		metas, err = s.startOffsets(gctx, srcs)
		return err
	}); err != nil {
		return nil // the generation ended
	}
	w := &writer{s: s, g: g, srcs: srcs, ends: make([]int64, s.parts), scanFrom: make([]int64, s.parts)}
	if err := s.retry(gctx, "scanning the internal topic for points already written", func() error {
		return s.scan(gctx, srcs, metas, w)
	}); err != nil {
		return nil
	}
	for _, src := range srcs {
		s.log.Info("input partition assigned", "topic", src.topic, "partition", src.part, "start_offset", src.start, "end_offset", src.end)
	}
	if s.o.OnAssigned != nil {
		s.o.OnAssigned()
	}
	return s.merge(gctx, dctx, srcs, w)
}

// startOffsets sets where each source starts: the stage's committed
// offset, else the learning pipeline group's (which read the input
// directly before the group repartitioned), else --warmup-from or
// kafka.start. It returns each source's commit metadata.
func (s *Stage) startOffsets(ctx context.Context, srcs []*source) ([]commitMeta, error) {
	byTopic := map[string][]int{}
	for _, src := range srcs {
		byTopic[src.topic] = append(byTopic[src.topic], src.part)
	}
	metas := make([]commitMeta, len(srcs))
	for topic, parts := range byTopic {
		own, err := s.o.Cluster.CommittedMeta(ctx, s.group, topic, parts)
		if err != nil {
			return nil, err
		}
		main, err := s.o.Cluster.Committed(ctx, s.cfg.Kafka.Group, topic, parts)
		if err != nil {
			return nil, err
		}
		for i, src := range srcs {
			if src.topic != topic {
				continue
			}
			metas[i] = commitMeta{wm: math.MinInt64}
			om, ok := own[src.part]
			switch {
			case ok && om.Offset >= 0:
				src.start = om.Offset
				m, err := parseCommitMeta(om.Metadata)
				if err != nil {
					s.log.Warn("the committed offset has no repartition metadata: the internal topic is scanned from its start for points already written",
						"topic", topic, "partition", src.part, "err", err)
				} else {
					metas[i] = m
					src.wm, src.skip, src.skipAt = m.wm, m.skip, src.start
				}
			case main[src.part] >= 0:
				src.start = main[src.part]
				s.log.Info("input partition handed over from the group that read it directly", "topic", topic, "partition", src.part,
					"group", s.cfg.Kafka.Group, "offset", src.start)
			default:
				off, err := s.firstOffset(ctx, topic, src.part)
				if err != nil {
					return nil, err
				}
				src.start = off
			}
			src.next = src.start
			end, err := s.o.Cluster.End(ctx, topic, src.part)
			if err != nil {
				return nil, err
			}
			src.hwm = end
			src.caughtUp = src.start >= end
			if s.ends != nil {
				src.end = s.ends[topic][src.part]
				if src.end == 0 && !src.caughtUp {
					src.end = end // a partition added since the start
				}
			}
		}
	}
	return metas, nil
}

// firstOffset is where a partition nobody has read starts.
func (s *Stage) firstOffset(ctx context.Context, topic string, part int) (int64, error) {
	if w := s.o.WarmupFrom; !w.IsZero() {
		return s.o.Cluster.At(ctx, topic, part, w)
	}
	k, t, _ := config.ParseStart(s.cfg.Kafka.Start)
	switch k {
	case config.StartLatest:
		return s.o.Cluster.Resolve(ctx, topic, part, ingest.StartLatest, t)
	case config.StartTime:
		return s.o.Cluster.Resolve(ctx, topic, part, ingest.StartTime, t)
	}
	return s.o.Cluster.Resolve(ctx, topic, part, ingest.StartEarliest, t)
}

// scan reads the internal topic from the offsets the sources' commit
// metadata give (the log's start for a source without) to its end, and
// records, per internal partition and source, the last point written:
// what the previous owner wrote after its last commit. It sets w's
// starting ends.
func (s *Stage) scan(ctx context.Context, srcs []*source, metas []commitMeta, w *writer) error {
	idx := map[string]map[int]*source{}
	for _, src := range srcs {
		if idx[src.topic] == nil {
			idx[src.topic] = map[int]*source{}
		}
		idx[src.topic][src.part] = src
		src.dedup = nil
	}
	ends, err := s.o.Cluster.Ends(ctx, s.topic)
	if err != nil {
		return err
	}
	scanned := 0
	for q := 0; q < s.parts; q++ {
		end := ends[q]
		w.ends[q] = end
		from := end
		for i := range srcs {
			m := metas[i]
			if m.ends != nil && q < len(m.ends) && m.ends[q] <= end {
				from = min(from, m.ends[q])
			} else {
				from = 0 // no metadata: from the log's start
			}
		}
		w.scanFrom[q] = min(from, end)
		if from >= end {
			continue
		}
		err := s.o.Cluster.Scan(ctx, s.topic, q, from, end, 0, func(r *ingest.ScannedRecord) bool {
			scanned++
			for _, h := range r.Headers {
				if h.Key != HeaderSource {
					continue
				}
				sps, err := decodeSources(h.Value)
				if err != nil {
					s.log.Warn("skipping an unreadable header of the internal topic", "partition", q, "offset", r.Offset, "err", err)
					continue
				}
				for _, sp := range sps {
					if src := idx[sp.topic][sp.part]; src != nil {
						if src.dedup == nil {
							src.dedup = map[int]*pos{}
						}
						p := sp.pos
						src.dedup[q] = &p
					}
				}
			}
			return true
		})
		if err != nil {
			return err
		}
	}
	if scanned > 0 {
		s.log.Info("scanned the internal topic for points written after the last commit", "records", scanned)
	}
	return nil
}
