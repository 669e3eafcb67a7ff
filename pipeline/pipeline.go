// Package pipeline wires tsrep's stages for each Kafka partition this
// instance owns:
//
//	fetch → decode → window (Arrow batches) ─bounded channel─▶ learn → encode → write → dead-letter → checkpoint → commit
//
// The first stage runs ahead of the second by at most
// pipeline.max_inflight_batches batches. Offsets are committed only after
// the checkpoint that covers them is durable, and a checkpoint is written
// only after every result derived from the messages before it is in
// InfluxDB and every dead letter in Kafka. A crash therefore restarts from
// the last checkpoint, recomputes the same results (learning is
// deterministic) and overwrites them: nothing is lost and nothing is
// duplicated.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/ingest"
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
	Write(ctx context.Context, dls []ingest.DeadLetter) error
}

// Options are the collaborators of a Pipeline.
type Options struct {
	Config  config.Config
	Log     *slog.Logger
	Metrics *Metrics
	Sink    Writer
	// DeadLetters may be nil: bad input is then only counted and logged.
	DeadLetters DeadLetterer
	Dialer      *kafka.Dialer
	// UntilEnd stops once every assigned partition has reached the end
	// offset it had when it was assigned (demo, tests, backfill).
	UntilEnd bool
	// NewLearner makes a partition's learner; nil means from Config.Model.
	NewLearner func() (models.Learner, error)
	// Now is the clock of the flush and checkpoint timers (not of any data).
	Now func() time.Time
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
	o      Options
	cfg    config.Config
	log    *slog.Logger
	m      *Metrics
	ckpt   *CheckpointStore
	client *kafka.Client
	// ends are the topics' end offsets when an UntilEnd run started.
	ends map[string]map[int]int64
}

// New checks the options and opens the checkpoint store.
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
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NewLearner == nil {
		mc := o.Config.Model
		o.NewLearner = func() (models.Learner, error) { return NewLearner(o.Config) }
		if _, err := NewLearner(o.Config); err != nil {
			return nil, fmt.Errorf("model %s: %w", mc.Kind, err)
		}
	}
	ckpt, err := NewCheckpointStore(o.Config.Pipeline.CheckpointDir, o.Config.Kafka.Group)
	if err != nil {
		return nil, err
	}
	return &Pipeline{
		o: o, cfg: o.Config, log: o.Log, m: o.Metrics, ckpt: ckpt,
		client: ingest.NewClient(o.Config.Kafka.Brokers, o.Dialer),
	}, nil
}

// NewLearner builds the learner configured in cfg.Model.
func NewLearner(cfg config.Config) (models.Learner, error) {
	switch cfg.Model.Kind {
	case "ssl":
		m := cfg.Model
		c := models.DefaultSSLConfig(m.Name, cfg.Window.Length, cfg.Window.Stride)
		c.Dim, c.Hidden, c.TrainBatch = m.Dim, m.Hidden, m.TrainBatch
		c.MaxSeries = cfg.Window.MaxSeries
		c.LearningRate, c.Temperature = m.LearningRate, m.Temperature
		c.WeightForecast, c.WeightImpute, c.WeightContrast = m.WeightForecast, m.WeightImpute, m.WeightContrast
		c.ARLags, c.Forgetting = m.Order, m.Forgetting
		c.EmbedEvery, c.TrainEvery = m.EmbedEvery, m.TrainEvery
		c.Seed = uint64(m.Seed)
		return models.NewSSL(c)
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
			e, err := ingest.EndOffsets(ctx, p.client, t)
			if err != nil {
				return err
			}
			p.ends[t] = e
		}
	}
	var runErr error
	var errOnce sync.Once
	err := ingest.RunGroup(ctx, ingest.GroupConfig{
		Brokers:        p.cfg.Kafka.Brokers,
		Topics:         p.cfg.Kafka.Topics,
		Group:          p.cfg.Kafka.Group,
		SessionTimeout: p.cfg.Kafka.SessionTimeout.Duration,
		Dialer:         p.o.Dialer,
		Log:            p.log,
	}, func(gctx context.Context, g *ingest.Generation) {
		caughtUp, err := p.runGeneration(gctx, ctx, g)
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

// runGeneration runs one partition worker per assignment until gctx ends
// (rebalance or shutdown), or with UntilEnd until all are caught up, which
// it reports (false for a generation without partitions). A
// partition that fails to start (corrupt checkpoint) fails the run.
func (p *Pipeline) runGeneration(gctx, runCtx context.Context, g *ingest.Generation) (bool, error) {
	// The drain context outlives gctx by the shutdown timeout, so in-flight
	// work can still be written and committed after a stop is requested.
	dctx, cancelDrain := context.WithCancel(context.WithoutCancel(gctx))
	defer cancelDrain()
	stopTimer := context.AfterFunc(gctx, func() {
		time.AfterFunc(p.cfg.Pipeline.ShutdownTimeout.Duration, cancelDrain)
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
		resp, err := p.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: p.cfg.Kafka.Group, Topics: map[string][]int{topic: parts}})
		if err != nil {
			return false, err
		}
		committed := map[int]int64{}
		for _, po := range resp.Topics[topic] {
			committed[po.Partition] = po.CommittedOffset
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
	ends, err := ingest.EndOffsets(ctx, p.client, topic) // a partition added since the start
	if err != nil {
		return 0, err
	}
	return ends[part], nil
}
