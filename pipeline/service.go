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
	"github.com/tsrep/tsrep/sinks"
)

// ServiceOptions are what RunService takes besides the Config.
type ServiceOptions struct {
	Log      *slog.Logger
	Registry prometheus.Registerer
	// UntilEnd stops once every assigned partition is caught up.
	UntilEnd bool
	// NewLearner overrides the learner built from the config.
	NewLearner func() (models.Learner, error)
	// Ready is called once the sink is connected and the group is about to
	// be joined.
	Ready func()
}

// InfluxConfig maps the [influx] section to the writer's config, reading
// the secret from the environment variable it names.
func InfluxConfig(c config.Config) sinks.InfluxConfig {
	in := c.Influx
	return sinks.InfluxConfig{
		URL:              in.URL,
		Bucket:           in.Bucket,
		Org:              in.Org,
		Token:            os.Getenv(in.TokenEnv),
		CreateBucket:     in.CreateBucket,
		BatchPoints:      in.BatchPoints,
		Gzip:             in.Gzip,
		Timeout:          in.Timeout.Duration,
		RetryMaxInterval: in.RetryMaxInterval.Duration,
	}
}

// RunService connects the sink and the dead-letter writer, then runs the
// pipeline until ctx ends (or, with UntilEnd, it is caught up) and drains.
func RunService(ctx context.Context, cfg config.Config, o ServiceOptions) error {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	m := NewMetrics(o.Registry)
	dialer, err := ingest.NewDialer(cfg.Kafka)
	if err != nil {
		return err
	}
	influx, err := sinks.NewInflux(ctx, InfluxConfig(cfg), log, m)
	if err != nil {
		return fmt.Errorf("influxdb: %w", err)
	}
	defer influx.Close()
	var dlq DeadLetterer
	if cfg.Kafka.DeadLetterTopic != "" {
		w := ingest.NewDeadLetterWriter(cfg.Kafka.Brokers, dialer, cfg.Kafka.DeadLetterTopic, log)
		defer w.Close()
		dlq = w
	}
	p, err := New(Options{
		Config: cfg, Log: log, Metrics: m, Sink: influx, DeadLetters: dlq, Dialer: dialer,
		UntilEnd: o.UntilEnd, NewLearner: o.NewLearner,
	})
	if err != nil {
		return err
	}
	if o.Ready != nil {
		o.Ready()
	}
	t0 := time.Now()
	err = p.Run(ctx)
	log.Info("pipeline stopped", "after", time.Since(t0).Round(time.Millisecond), "err", err)
	return err
}
