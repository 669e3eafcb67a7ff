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
	"github.com/cenkalti/backoff/v4"
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
	// shared says the learners share the group's encoder; se is it, while
	// a run or replay lasts.
	shared bool
	se     *sharedEncoder
	// running holds, with UntilEnd, this instance's partitions and whether
	// each has written everything up to its end.
	runMu   sync.Mutex
	running map[partitionID]bool
	// joined says a generation of the group has started here: before it,
	// an instance does not know its partitions and is not done.
	joined bool
}

// localDone reports whether every partition running here has written
// everything up to its end.
func (p *Pipeline) localDone() bool {
	p.runMu.Lock()
	defer p.runMu.Unlock()
	if !p.joined {
		return false
	}
	for _, done := range p.running {
		if !done {
			return false
		}
	}
	return true
}

// track records that partition id runs here (until the returned func).
func (p *Pipeline) track(id partitionID) func() {
	p.runMu.Lock()
	defer p.runMu.Unlock()
	if p.running == nil {
		return func() {}
	}
	p.running[id] = false
	return func() { p.untrack(id) }
}

// untrack records that partition id no longer runs here.
func (p *Pipeline) untrack(id partitionID) {
	p.runMu.Lock()
	defer p.runMu.Unlock()
	if p.running != nil {
		delete(p.running, id)
	}
}

// newLearner makes partition (topic, part)'s learner.
func (p *Pipeline) newLearner(topic string, part int) (models.Learner, error) {
	if p.se != nil {
		return p.sharedLearner(p.se, topic, part)
	}
	return p.o.NewLearner(topic, part)
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
	shared := false
	if o.NewLearner == nil {
		cfg := o.Config
		o.NewLearner = func(string, int) (models.Learner, error) { return NewLearner(cfg) }
		if _, err := NewLearner(cfg); err != nil {
			return nil, fmt.Errorf("model %s: %w", cfg.Model.Kind, err)
		}
		shared = cfg.Model.Kind == "ssl"
	}
	p := &Pipeline{o: o, cfg: o.Config, log: o.Log, m: o.Metrics, store: o.State, shared: shared}
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
	c.WeightHier, c.WeightInstance = m.WeightHier, m.WeightContrast
	c.ARLags = min(m.Order, cfg.Window.Length-2)
	c.EmbedEvery, c.TrainEvery = m.EmbedEvery, m.TrainEvery
	c.Multichannel = cfg.Window.Multichannel
	c.Epoch = int64(m.Epoch.Duration)
	c.Seed = uint64(m.Seed)
	return c
}

// AnomalyConfig is the anomaly scorer's configuration from cfg.
func AnomalyConfig(cfg config.Config) models.AnomalyConfig {
	a := models.DefaultAnomalyConfig()
	a.MaxSeries = cfg.Window.MaxSeries
	a.RangeTolerance = cfg.Anomaly.RangeTolerance
	a.TailHorizon = cfg.Anomaly.TailHorizon
	a.NoveltyK = cfg.Anomaly.NoveltyK
	return a
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
		// Partitions that reach their end stay (idle, for the shared
		// encoder) until the whole group has committed every end and this
		// instance's partitions have written everything (the embeddings
		// that waited for the group's encoder included).
		p.running = map[partitionID]bool{}
		p.env.onFinal = func(id partitionID) {
			p.runMu.Lock()
			defer p.runMu.Unlock()
			if _, ok := p.running[id]; ok {
				p.running[id] = true
			}
		}
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			t := p.env.clock.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C():
				}
				if !p.localDone() {
					continue
				}
				all, err := p.allCommitted(ctx)
				if err != nil && ctx.Err() == nil {
					p.log.Warn("checking the group's committed offsets", "err", err)
				}
				if all {
					p.log.Info("every partition of the group is caught up")
					stop()
					return
				}
			}
		}()
	}
	if p.shared {
		// The brokers may not answer yet (or refuse the credentials): wait,
		// saying why, as joining the group would.
		bo := backoff.NewExponentialBackOff()
		bo.MaxInterval, bo.MaxElapsedTime = 30*time.Second, 0
		for {
			se, err := p.openSharedEncoder(ctx)
			if err == nil {
				defer se.close()
				p.se = se
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			wait := bo.NextBackOff()
			p.log.Warn("opening the shared encoder's topic failed; retrying", "in", wait.Round(time.Millisecond), "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-p.env.clock.After(wait):
			}
		}
	}
	var runErr error
	var errOnce sync.Once
	err := p.o.Kafka.RunGroup(ctx, p.log, func(gctx context.Context, g *ingest.Generation) {
		if err := p.runGeneration(gctx, g); err != nil {
			errOnce.Do(func() { runErr = err })
			stop()
		}
	})
	if runErr != nil {
		return runErr
	}
	return err
}

// runGeneration runs one partition per assignment until gctx ends
// (rebalance, shutdown, or with UntilEnd the group caught up). A partition
// that fails (a corrupt checkpoint, on_failure = "exit") fails the run.
func (p *Pipeline) runGeneration(gctx context.Context, g *ingest.Generation) error {
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

	// With UntilEnd, every partition of the generation counts from now:
	// one still restoring its state (its embeddings waiting for the
	// group's encoder included) is not done.
	p.runMu.Lock()
	if p.running != nil {
		p.joined = true
		for _, a := range g.Assignments {
			p.running[partitionID{a.Topic, a.Partition}] = false
		}
	}
	p.runMu.Unlock()
	var wg sync.WaitGroup
	errs := make(chan error, len(g.Assignments))
	for _, a := range g.Assignments {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.untrack(partitionID{a.Topic, a.Partition})
			if err := p.runPartition(gctx, dctx, g, a); err != nil {
				errs <- fmt.Errorf("partition %s/%d: %w", a.Topic, a.Partition, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
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
