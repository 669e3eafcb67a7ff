package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/models"
	"github.com/tsrep/tsrep/repartition"
	"github.com/tsrep/tsrep/sinks"
)

// ServiceOptions are what RunService takes besides the Config.
type ServiceOptions struct {
	Log      *slog.Logger
	Registry prometheus.Registerer
	// UntilEnd stops once every assigned partition is caught up.
	UntilEnd bool
	// NewLearner overrides the learner built from the config.
	NewLearner func(topic string, partition int) (models.Learner, error)
	// Health, if set, receives the partitions' states and the sink's
	// probes (for /readyz); nil makes one registered on Registry.
	Health *Health
	// Ready is called once the sink is connected and the group is about to
	// be joined.
	Ready func()
	// WarmupFrom starts partitions without a checkpoint at this time.
	WarmupFrom time.Time
	// ExtraTags are added to every output point.
	ExtraTags []ingest.KV
	// Progress, if set, counts the messages and points read.
	Progress *Progress
	// Timing, if set, records the span of the run.
	Timing *Timing
}

// InfluxConfig maps the [influx] section to the writer's config, reading
// the secret from the environment variable it names.
func InfluxConfig(c config.Config) sinks.InfluxConfig {
	in := c.Influx
	gz, _ := in.GzipOn() // Validate reported a bad mode
	return sinks.InfluxConfig{
		URL:              in.URL,
		Bucket:           in.Bucket,
		Org:              in.Org,
		Token:            os.Getenv(in.TokenEnv),
		CreateBucket:     in.CreateBucket,
		BatchPoints:      in.BatchPoints,
		Gzip:             gz,
		Timeout:          in.Timeout.Duration,
		RetryMaxInterval: in.RetryMaxInterval.Duration,
	}
}

// DropBucket deletes the configured bucket (database on 1.8) and what it
// holds, if it exists: for the demo and the benchmarks, which must read
// back or measure only what they wrote.
func DropBucket(ctx context.Context, c config.Config, log *slog.Logger) error {
	ic := InfluxConfig(c)
	ic.CreateBucket = false
	s, err := sinks.NewInflux(ctx, ic, log, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.DropBucket(ctx)
}

// RunService connects the sink and the dead-letter writer, then runs the
// pipeline until ctx ends (or, with UntilEnd, it is caught up) and drains.
// kafka.repartition decides first whether the input is read directly or
// repartitioned by series through the internal topic (see
// runRepartitioned); either way the input is sampled now and then for
// series found in more than one partition (tsrep_unkeyed_series).
func RunService(ctx context.Context, cfg config.Config, o ServiceOptions) error {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	cluster, err := ingest.NewCluster(cfg.Kafka)
	if err != nil {
		return err
	}
	d, ok := decide(ctx, cfg, o, cluster)
	if !ok {
		return nil
	}
	o.Log.Info("kafka.repartition", "repartition", d.Repartition, "why", d.Why)
	if d.Warning != "" {
		o.Log.Warn(d.Warning)
	}
	rm := repartition.NewMetrics(o.Registry)
	dctx, stopDetect := context.WithCancel(ctx)
	detected := make(chan struct{})
	det := &repartition.Detector{Cluster: cluster, Config: cfg, Log: o.Log, Metrics: rm, Direct: !d.Repartition}
	go func() { defer close(detected); det.Run(dctx, d.Report) }()
	defer func() { stopDetect(); <-detected }()
	if d.Repartition {
		return runRepartitioned(ctx, cfg, o, rm)
	}
	p, closeAll, err := Connect(ctx, cfg, o)
	if err != nil {
		return err
	}
	defer closeAll()
	p.o.Health.SetConnected()
	if o.Ready != nil {
		o.Ready()
	}
	pctx, stopProbe := context.WithCancel(ctx)
	probed := make(chan struct{})
	go func() { defer close(probed); p.probeSink(pctx) }()
	defer func() { stopProbe(); <-probed }()
	t0 := time.Now()
	err = p.Run(ctx)
	p.log.Info("pipeline stopped", "after", time.Since(t0).Round(time.Millisecond), "err", err)
	return err
}

// Connect builds a Pipeline from cfg with its InfluxDB writer and
// dead-letter writer; the returned func closes them.
func Connect(ctx context.Context, cfg config.Config, o ServiceOptions) (*Pipeline, func(), error) {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	m := NewMetrics(o.Registry)
	if o.Health == nil {
		o.Health = NewHealth(o.Registry, nil)
	}
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	cluster, err := ingest.NewCluster(cfg.Kafka)
	if err != nil {
		return nil, nil, err
	}
	influx, err := sinks.NewInflux(ctx, InfluxConfig(cfg), log, m)
	if err != nil {
		return nil, nil, fmt.Errorf("influxdb: %w", err)
	}
	closers := []func(){func() { influx.Close() }}
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	var dlq DeadLetterer
	if w := cluster.DeadLetters(log); w != nil {
		w.OnSkipped = func(n int) { m.DeadLettersSkipped.Add(float64(n)) }
		closers = append(closers, func() { w.Close() })
		dlq = w
	}
	p, err := New(Options{
		Config: cfg, Log: log, Metrics: m, Health: o.Health, Sink: influx, DeadLetters: dlq, Kafka: cluster,
		UntilEnd: o.UntilEnd, NewLearner: o.NewLearner, ExtraTags: o.ExtraTags, Progress: o.Progress,
		WarmupFrom: o.WarmupFrom, Timing: o.Timing,
	})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	p.checker = influx
	return p, closeAll, nil
}

// SinkChecker probes the sink (sinks.Influx).
type SinkChecker interface {
	Check(ctx context.Context) error
}

// sinkProbeEvery is how often the sink is probed for /readyz.
const sinkProbeEvery = 5 * time.Second

// probeSink probes the sink every sinkProbeEvery until ctx ends, and
// records each outcome in the health (and logs a change).
func (p *Pipeline) probeSink(ctx context.Context) {
	if p.checker == nil {
		return
	}
	t := p.env.clock.NewTicker(sinkProbeEvery)
	defer t.Stop()
	last := ""
	for {
		cctx, cancel := context.WithTimeout(ctx, sinkProbeEvery)
		err := p.checker.Check(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		p.o.Health.SinkChecked(err)
		now := ""
		if err != nil {
			now = err.Error()
		}
		if now != last {
			if err != nil {
				p.log.Error("influxdb check failed: not ready", "err", err)
			} else if last != "" {
				p.log.Info("influxdb check passes again")
			}
			last = now
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}

// Health is the pipeline's health, for /readyz.
func (p *Pipeline) Health() *Health { return p.o.Health }
