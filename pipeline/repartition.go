package pipeline

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/repartition"
)

// The wiring of kafka.repartition: the repartition stage (package
// repartition, consumer group <group>-repartition) reads kafka.topics and
// writes every point to the internal topic <group>-repartition, keyed by
// series; the learning pipeline (group <group>) reads that topic as it
// would read keyed input.

// LearningConfig is the configuration of the learning pipeline behind the
// repartition stage: it reads the internal topic (from its start, as
// everything written there is to be learnt), whose records are line
// protocol with nanosecond timestamps that the stage has already checked
// (precision, future) against their input messages' times.
func LearningConfig(cfg config.Config) config.Config {
	c := cfg
	c.Kafka.Topics = []string{cfg.RepartitionTopic()}
	c.Kafka.Format = "influx"
	c.Kafka.Precision = "ns"
	c.Kafka.Start = "earliest"
	c.Kafka.MaxFuture = config.Duration{}
	c.Kafka.PrecisionTolerance = config.Duration{}
	c.Kafka.Repartition = "off"
	return c
}

// decide applies kafka.repartition, retrying while the brokers cannot be
// asked; ok is false when ctx ended first.
func decide(ctx context.Context, cfg config.Config, o ServiceOptions, cluster *ingest.Cluster) (d repartition.Decision, ok bool) {
	bo := backoff.NewExponentialBackOff()
	bo.MaxInterval, bo.MaxElapsedTime = 30*time.Second, 0
	for {
		var err error
		d, err = repartition.Decide(ctx, cluster, cfg, o.UntilEnd, o.Log, nil)
		if err == nil {
			return d, true
		}
		if ctx.Err() != nil {
			return d, false
		}
		wait := bo.NextBackOff()
		o.Log.Warn("deciding kafka.repartition failed; retrying", "in", wait.Round(time.Millisecond), "err", err)
		select {
		case <-ctx.Done():
			return d, false
		case <-time.After(wait):
		}
	}
}

// runRepartitioned runs the repartition stage and the learning pipeline
// on its internal topic: side by side, or with UntilEnd one after the
// other (the stage to the end of the input, then the pipeline to the end
// of the internal topic).
func runRepartitioned(ctx context.Context, cfg config.Config, o ServiceOptions, rm *repartition.Metrics) error {
	log := o.Log
	lo := o
	lo.WarmupFrom = time.Time{} // applies to the input, read by the stage
	p, closeAll, err := Connect(ctx, LearningConfig(cfg), lo)
	if err != nil {
		return err
	}
	defer closeAll()
	cluster, err := ingest.NewCluster(cfg.Kafka)
	if err != nil {
		return err
	}
	st, err := repartition.New(repartition.Options{
		Config: cfg, Cluster: cluster, Log: log, Metrics: rm, DeadLetters: p.o.DeadLetters,
		BadInput: p.m.BadInput, DeadLettered: p.m.DeadLetters, UntilEnd: o.UntilEnd, WarmupFrom: o.WarmupFrom,
		OnAssigned: func() { p.o.Timing.assigned(p.env.clock.Now()) },
	})
	if err != nil {
		return err
	}
	// The internal topic must exist before the learning group joins it.
	bo := backoff.NewExponentialBackOff()
	bo.MaxInterval, bo.MaxElapsedTime = 30*time.Second, 0
	for {
		n, err := st.Prepare(ctx)
		if err == nil {
			log.Info("repartitioning the input by series", "topics", cfg.Kafka.Topics, "internal_topic", st.Topic(), "partitions", n,
				"group", cfg.RepartitionGroup(), "learning_group", cfg.Kafka.Group)
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		wait := bo.NextBackOff()
		log.Warn("creating the internal topic of kafka.repartition failed; retrying", "in", wait.Round(time.Millisecond), "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
	p.o.Health.SetConnected()
	if o.Ready != nil {
		o.Ready()
	}
	pctx, stopProbe := context.WithCancel(ctx)
	probed := make(chan struct{})
	go func() { defer close(probed); p.probeSink(pctx) }()
	defer func() { stopProbe(); <-probed }()
	t0 := time.Now()
	if o.UntilEnd {
		if err := st.Run(ctx); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		log.Info("repartition stage caught up; learning from the internal topic to its end", "after", time.Since(t0).Round(time.Millisecond))
		err := p.Run(ctx)
		log.Info("pipeline stopped", "after", time.Since(t0).Round(time.Millisecond), "err", err)
		return err
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	var stageErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		if stageErr = st.Run(rctx); stageErr != nil {
			log.Error("repartition stage stopped", "err", stageErr)
			stop()
		}
	}()
	err = p.Run(rctx)
	stop()
	wg.Wait()
	log.Info("pipeline stopped", "after", time.Since(t0).Round(time.Millisecond), "err", err)
	return errors.Join(err, stageErr)
}
