package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"text/tabwriter"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/spf13/cobra"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/dataset"
	"github.com/tsrep/tsrep/feed"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/broker"
	"github.com/tsrep/tsrep/pipeline"
	"github.com/tsrep/tsrep/query"
)

func init() { registry = append(registry, newDemoCmd) }

func newDemoCmd() *cobra.Command {
	var cfgPath, data, influxURL, bucket string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole path once: embedded broker, bundled ETTh1, the pipeline into InfluxDB, then a Flux query of what was learned",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := config.Default()
			if _, err := os.Stat(cfgPath); err == nil {
				if cfg, err = config.Load(cfgPath); err != nil {
					return err
				}
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			if influxURL != "" {
				cfg.Influx.URL = influxURL
			}
			return runDemo(cmd.Context(), cfg, data, bucket)
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "config.toml", "configuration file (its kafka and checkpoint settings are replaced by the demo's)")
	cmd.Flags().StringVar(&data, "data", "data/ETT/ETTh1.csv", "CSV file to stream")
	cmd.Flags().StringVar(&influxURL, "influx-url", "", "InfluxDB URL (default: influx.url of the config)")
	cmd.Flags().StringVar(&bucket, "bucket", "tsrep_demo", "bucket (database) the demo writes to")
	return cmd
}

func runDemo(ctx context.Context, cfg config.Config, data, bucket string) error {
	t0 := time.Now()
	log := newLogger(config.Log{Level: "warn", Format: "text"})
	b, err := broker.Start(broker.Options{Partitions: 4})
	if err != nil {
		return err
	}
	defer b.Close()
	tmp, err := os.MkdirTemp("", "tsrep-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	const topic = "ett"
	cfg.Kafka.Brokers = []string{b.Addr()}
	cfg.Kafka.Topics = []string{topic}
	cfg.Kafka.Group = "tsrep-demo"
	cfg.Kafka.Start = "earliest"
	cfg.Influx.Bucket = bucket
	cfg.Pipeline.CheckpointDir = tmp
	if err := cfg.Validate(); err != nil {
		return err
	}

	fr, err := dataset.ReadCSV(data, dataset.CSVOptions{})
	if err != nil {
		return err
	}
	msgs, err := feed.CSVMessages(fr, baseName(data), map[string]string{"source": "demo"})
	if err != nil {
		return err
	}
	// Three malformed messages among the good ones, to show they are
	// dead-lettered and counted while every good point still lands.
	bad := []feed.Message{
		{Value: []byte("etth1,source=demo OT=oops 1467331200000000000"), Time: fr.Time[0]},
		{Value: []byte("not line protocol at all"), Time: fr.Time[0]},
		{Value: []byte{}, Time: fr.Time[0]},
	}
	msgs = append(msgs[:100:100], append(bad, msgs[100:]...)...)
	d, _ := ingest.NewDialer(cfg.Kafka)
	if err := feed.Produce(ctx, feed.ProduceOptions{Brokers: cfg.Kafka.Brokers, Dialer: d, Topic: topic, Partitions: 4}, msgs); err != nil {
		return err
	}
	fmt.Printf("produced %d rows of %s (%d series, %s .. %s) and 3 malformed messages to the embedded broker at %s\n",
		fr.Rows(), data, len(fr.Names), time.Unix(0, fr.Time[0]).UTC().Format(time.DateOnly),
		time.Unix(0, fr.Time[fr.Rows()-1]).UTC().Format(time.DateOnly), b.Addr())

	t1 := time.Now()
	if err := pipeline.RunService(ctx, cfg, pipeline.ServiceOptions{Log: log, UntilEnd: true}); err != nil {
		return err
	}
	fmt.Printf("pipeline (window %d, stride %d, model %s) caught up in %s\n",
		cfg.Window.Length, cfg.Window.Stride, cfg.Model.Name, time.Since(t1).Round(time.Millisecond))

	client := influxdb2.NewClient(cfg.Influx.URL, os.Getenv(cfg.Influx.TokenEnv))
	defer client.Close()
	q := query.New(client.QueryAPI(cfg.Influx.Org), bucket, cfg.Influx.MeasurementPrefix)
	rows, err := q.ForecastSummary(ctx, cfg.Model.Name)
	if err != nil {
		return err
	}
	dls, err := ingest.ReadDeadLetters(ctx, cfg.Kafka.Brokers, d, cfg.Kafka.DeadLetterTopic)
	if err != nil {
		return err
	}
	fmt.Printf("\nread back from InfluxDB (%s, bucket %s) with Flux:\n\n", cfg.Influx.URL, bucket)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "series\tforecasts\tscored\tMAE (tsrep)\tMAE (last value)\tratio\t")
	var sum, sumBase float64
	var n int64
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.4f\t%.4f\t%.3f\t\n", r.Series, r.Forecasts, r.Scored, r.MAE, r.LastValueMAE, r.MAE/r.LastValueMAE)
		sum += r.MAE * float64(r.Scored)
		sumBase += r.LastValueMAE * float64(r.Scored)
		n += r.Scored
	}
	if n > 0 {
		fmt.Fprintf(tw, "all\t\t%d\t%.4f\t%.4f\t%.3f\t\n", n, sum/float64(n), sumBase/float64(n), sum/sumBase)
	}
	tw.Flush()
	fmt.Printf("\ndead-letter topic %s holds %d records:\n", cfg.Kafka.DeadLetterTopic, len(dls))
	for _, dl := range dls {
		fmt.Printf("  offset %d  reason %-14s %q: %s\n", dl.Offset, dl.Reason, dl.Value, dl.Err)
	}
	fmt.Printf("demo took %s\n", time.Since(t0).Round(time.Millisecond))
	fmt.Printf("\nThe same numbers in Flux:\n\n%s\n", query.ForecastSummaryFlux(bucket, cfg.Influx.MeasurementPrefix+"forecast", cfg.Model.Name))
	return nil
}
