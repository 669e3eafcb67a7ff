// Package pipeline wires tsrep's stages for each Kafka partition this
// instance owns:
//
//	fetch → decode → window (Arrow batches) ─bounded channel─▶ learn → encode ─▶ write → dead-letter → checkpoint → commit
//
// The windowing stage runs ahead of the learning stage by at most
// pipeline.max_inflight_batches batches. Offsets are committed only after
// the checkpoint that covers them is durable, and a checkpoint is written
// only after every result derived from the messages before it is in
// InfluxDB and every dead letter in Kafka. A crash therefore restarts from
// the last checkpoint, recomputes the same results (learning is
// deterministic) and overwrites them: nothing is lost and nothing is
// duplicated.
//
// Everything that speaks Kafka lives in package ingest, behind its Source,
// Committer and Offsets interfaces; this package reads no wall clock but
// the injected one (internal/clock).
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/clock"
	"github.com/tsrep/tsrep/models"
	"github.com/tsrep/tsrep/sinks"
)

// Writer stores encoded results durably (sinks.Influx).
type Writer interface {
	// Write returns once every line is stored or rejected as bad data; the
	// error is non-nil only if ctx ended first.
	Write(ctx context.Context, lines []byte) ([]sinks.Rejected, error)
}

// DeadLetterer stores dead-letter records (ingest.DeadLetterWriter).
type DeadLetterer interface {
	// Write returns once the records are stored, or with the error that
	// kept them from being stored (the caller retries).
	Write(ctx context.Context, dls []ingest.DeadLetter) error
}

// Options are the collaborators of a Pipeline.
type Options struct {
	Config  config.Config
	Log     *slog.Logger
	Metrics *Metrics
	// Health receives each partition's state; nil makes one unregistered.
	Health *Health
	Sink   Writer
	// DeadLetters may be nil: bad input is then only counted and logged.
	DeadLetters DeadLetterer
	// Kafka is the cluster; nil makes one from Config.Kafka.
	Kafka *ingest.Cluster
	// State keeps the checkpoints; nil makes the store pipeline.state_store
	// names (on first use, as the Kafka store needs the cluster).
	State StateStore
	// UntilEnd stops once every assigned partition has reached the end
	// offset it had when it was assigned (demo, tests, backfill).
	UntilEnd bool
	// NewLearner makes a partition's learner; nil means from Config.Model.
	NewLearner func(topic string, partition int) (models.Learner, error)
	// Clock paces the flush, checkpoint, idle and retry timers (not any
	// data); nil is the system clock.
	Clock clock.Clock
	// WarmupFrom, if set, starts partitions that have no checkpoint at the
	// first record at or after it, so the learner warms up on history
	// before reaching the live end.
	WarmupFrom time.Time
	// ExtraTags are added to every output point (e.g. a replay's run tag).
	ExtraTags []ingest.KV
	// Progress, if set, counts the messages and points read.
	Progress *Progress
	// Timing, if set, records when consumption started and the last commit.
	Timing *Timing
}

// Pipeline runs the stages for the partitions the group assigns.
type Pipeline struct {
	o   Options
	cfg config.Config
	log *slog.Logger
	m   *Metrics
	env *stageEnv
	// ends are the topics' end offsets when an UntilEnd run started.
	ends map[string]map[int]int64

	storeMu sync.Mutex
	store   StateStore
	// checker probes the sink for /readyz (RunService sets it).
	checker SinkChecker
}

// New checks the options. Nothing is connected until Run or Replay.
func New(o Options) (*Pipeline, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Sink == nil {
		return nil, errors.New("pipeline: no sink")
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Health == nil {
		o.Health = NewHealth(nil, o.Clock)
	}
	if o.Kafka == nil {
		k, err := ingest.NewCluster(o.Config.Kafka)
		if err != nil {
			return nil, err
		}
		o.Kafka = k
	}
	if o.NewLearner == nil {
		cfg := o.Config
		o.NewLearner = func(string, int) (models.Learner, error) { return NewLearner(cfg) }
		if _, err := NewLearner(cfg); err != nil {
			return nil, fmt.Errorf("model %s: %w", cfg.Model.Kind, err)
		}
	}
	p := &Pipeline{o: o, cfg: o.Config, log: o.Log, m: o.Metrics, store: o.State}
	p.env = &stageEnv{
		cfg: o.Config, m: o.Metrics, health: o.Health, clock: o.Clock,
		progress: o.Progress, timing: o.Timing, extraTags: o.ExtraTags, baseLog: o.Log,
	}
	return p, nil
}

// stateStore returns the checkpoint store, opening it on first use.
func (p *Pipeline) stateStore(ctx context.Context) (StateStore, error) {
	p.storeMu.Lock()
	defer p.storeMu.Unlock()
	if p.store != nil {
		return p.store, nil
	}
	var err error
	switch p.cfg.Pipeline.StateStore {
	case "kafka":
		parts := 1
		for _, t := range p.cfg.Kafka.Topics {
			ends, err := p.o.Kafka.Ends(ctx, t)
			if err != nil {
				return nil, err
			}
			parts = max(parts, len(ends))
		}
		p.store, err = p.o.Kafka.StateStore(ctx, p.cfg.StateTopicName(), parts)
	default:
		p.store, err = NewDirStore(p.cfg.Pipeline.CheckpointDir, p.cfg.Kafka.Group)
	}
	if err != nil {
		return nil, err
	}
	return p.store, nil
}

// SSLConfig is the ssl learner's configuration from cfg's [model] and
// [window] sections (without a Sync: the caller sets it).
func SSLConfig(cfg config.Config) models.SSLConfig {
	m := cfg.Model
	c := models.DefaultSSLConfig(m.Name, cfg.Window.Length, cfg.Window.Stride)
	c.Dim, c.Hidden, c.TrainBatch = m.Dim, m.Hidden, m.TrainBatch
	c.MaxSeries = cfg.Window.MaxSeries
	c.LearningRate, c.Temperature = m.LearningRate, m.Temperature
	c.ARLags = min(m.Order, cfg.Window.Length-2)
	c.EmbedEvery, c.TrainEvery = m.EmbedEvery, m.TrainEvery
	c.Multichannel = cfg.Window.Multichannel
	c.Epoch = int64(m.Epoch.Duration)
	c.Seed = uint64(m.Seed)
	return c
}

// NewLearner builds the learner configured in cfg.Model.
func NewLearner(cfg config.Config) (models.Learner, error) {
	switch cfg.Model.Kind {
	case "ssl":
		return models.NewSSL(SSLConfig(cfg))
	case "none":
		return models.NewNull(cfg.Model.Name, 64), nil
	case "rls":
		return models.NewForecaster(models.ForecasterConfig{
			Name:       cfg.Model.Name,
			Order:      cfg.Model.Order,
			Forgetting: cfg.Model.Forgetting,
			MaxSeries:  cfg.Window.MaxSeries,
		}), nil
	}
	return nil, fmt.Errorf("unknown model.kind %q", cfg.Model.Kind)
}

// Run consumes until ctx ends (or, with UntilEnd, until every assigned
// partition is caught up), then drains: in-flight batches are written,
// checkpointed and committed within pipeline.shutdown_timeout.
func (p *Pipeline) Run(ctx context.Context) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	if p.o.UntilEnd {
		p.ends = map[string]map[int]int64{}
		for _, t := range p.cfg.Kafka.Topics {
			e, err := p.o.Kafka.Ends(ctx, t)
			if err != nil {
				return err
			}
			p.ends[t] = e
		}
	}
	var runErr error
	var errOnce sync.Once
	err := p.o.Kafka.RunGroup(ctx, p.log, func(gctx context.Context, g *ingest.Generation) {
		caughtUp, err := p.runGeneration(gctx, g)
		if err != nil {
			errOnce.Do(func() { runErr = err })
			stop()
			return
		}
		// A generation can end early (a rebalance), and other members,
		// even dead ones until their sessions expire, may hold partitions:
		// stop only once the group has committed every partition's end.
		if p.o.UntilEnd && caughtUp && ctx.Err() == nil {
			done, err := p.allCommitted(ctx)
			if err != nil {
				p.log.Warn("checking the group's committed offsets", "err", err)
			}
			if done {
				stop()
			} else {
				p.log.Info("my partitions are caught up; waiting for the group's others")
			}
		}
	})
	if runErr != nil {
		return runErr
	}
	return err
}

// runGeneration runs one partition per assignment until gctx ends
// (rebalance or shutdown), or with UntilEnd until all are caught up, which
// it reports (false for a generation without partitions). A partition
// that fails (a corrupt checkpoint, on_failure = "exit") fails the run.
func (p *Pipeline) runGeneration(gctx context.Context, g *ingest.Generation) (bool, error) {
	// The drain context outlives gctx by the shutdown timeout, so in-flight
	// work can still be written and committed after a stop is requested.
	dctx, cancelDrain := context.WithCancel(context.WithoutCancel(gctx))
	defer cancelDrain()
	stopTimer := context.AfterFunc(gctx, func() {
		select {
		case <-p.env.clock.After(p.cfg.Pipeline.ShutdownTimeout.Duration):
		case <-dctx.Done():
		}
		cancelDrain()
	})
	defer stopTimer()

	var wg sync.WaitGroup
	errs := make(chan error, len(g.Assignments))
	var behind atomic.Int32
	for _, a := range g.Assignments {
		wg.Add(1)
		go func() {
			defer wg.Done()
			caughtUp, err := p.runPartition(gctx, dctx, g, a)
			if err != nil {
				errs <- fmt.Errorf("partition %s/%d: %w", a.Topic, a.Partition, err)
			}
			if !caughtUp {
				behind.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return len(g.Assignments) > 0 && behind.Load() == 0, errors.Join(all...)
}

// startKind maps kafka.start to ingest's start positions.
func startKind(s string) (ingest.StartKind, time.Time) {
	k, t, _ := config.ParseStart(s) // validated by config
	switch k {
	case config.StartLatest:
		return ingest.StartLatest, t
	case config.StartTime:
		return ingest.StartTime, t
	}
	return ingest.StartEarliest, t
}

// Progress counts what the windowing stages have read, for progress
// displays; safe for concurrent use.
type Progress struct {
	Messages atomic.Int64
	Points   atomic.Int64
}

// Timing records the span of a run for benchmarks: the first partition
// assignment and the last successful commit, in Unix nanoseconds.
type Timing struct {
	FirstAssigned atomic.Int64
	LastCommit    atomic.Int64
}

func (t *Timing) assigned(now time.Time) {
	if t != nil {
		t.FirstAssigned.CompareAndSwap(0, now.UnixNano())
	}
}

func (t *Timing) committed(now time.Time) {
	if t != nil {
		t.LastCommit.Store(now.UnixNano())
	}
}

// allCommitted reports whether the group's committed offset of every
// partition of the topics has reached the end it had when the run started.
func (p *Pipeline) allCommitted(ctx context.Context) (bool, error) {
	for topic, ends := range p.ends {
		parts := make([]int, 0, len(ends))
		for part := range ends {
			parts = append(parts, part)
		}
		committed, err := p.o.Kafka.Committed(ctx, p.cfg.Kafka.Group, topic, parts)
		if err != nil {
			return false, err
		}
		for part, end := range ends {
			if end > 0 && committed[part] < end {
				return false, nil
			}
		}
	}
	return true, nil
}

// endOffset is the offset an UntilEnd run stops a partition at.
func (p *Pipeline) endOffset(ctx context.Context, topic string, part int) (int64, error) {
	if e, ok := p.ends[topic][part]; ok {
		return e, nil
	}
	ends, err := p.o.Kafka.Ends(ctx, topic) // a partition added since the start
	if err != nil {
		return 0, err
	}
	return ends[part], nil
}
