package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/dataset"
	"github.com/tsrep/tsrep/feed"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/broker"
	"github.com/tsrep/tsrep/pipeline"
	"github.com/tsrep/tsrep/query"
	"github.com/tsrep/tsrep/sinks"
)

func init() { registry = append(registry, newDemoCmd) }

func newDemoCmd() *cobra.Command {
	var cf configFlags
	var data, bucket string
	var hide float64
	var stride int
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole path once: embedded broker, bundled ETTh1, the pipeline into InfluxDB, then queries of what was learned (InfluxQL by default)",
		Long: `demo starts an embedded broker, produces --data to it, runs the
configuration until it has caught up, and reads back what was learned. Its
kafka settings, influx.bucket and pipeline.checkpoint_dir are the demo's;
the window stride is --stride, the learner learns from every 8th window,
and a row's columns are windowed together (window.multichannel), unless
--set says otherwise.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The demo's own settings come first, so that --set can change them.
			// A short stream: learn from every 8th window (not the
			// deployed 128th); ETTh1's columns are one point's fields,
			// windowed together so that imputation reads the others.
			cfg, _, err := cf.load(cmd, fmt.Sprintf("window.stride=%d", stride),
				"model.train_every=8", "window.multichannel=true")
			if err != nil {
				return err
			}
			return runDemo(cmd.Context(), cfg, data, bucket, hide)
		},
	}
	cf.register(cmd.Flags(), flagInfluxURL, true)
	cmd.Flags().StringVar(&data, "data", "data/ETT/ETTh1.csv", "CSV file to stream")
	cmd.Flags().StringVar(&bucket, "bucket", "tsrep_demo", "bucket (database) the demo writes to")
	cmd.Flags().IntVar(&stride, "stride", 1, "window stride of the demo (1: a forecast, and a training example, at every step)")
	cmd.Flags().Float64Var(&hide, "hide", 0.02, "share of the values removed before producing, for the learner to fill (and be scored on)")
	return cmd
}

func runDemo(ctx context.Context, cfg config.Config, data, bucket string, hide float64) error {
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
	hidden := hideValues(fr, hide)
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
	fmt.Printf("produced %d rows of %s (%d series, %s .. %s; %d values (%.0f%%) left out as gaps) and 3 malformed messages to the embedded broker at %s\n",
		fr.Rows(), data, len(fr.Names), time.Unix(0, fr.Time[0]).UTC().Format(time.DateOnly),
		time.Unix(0, fr.Time[fr.Rows()-1]).UTC().Format(time.DateOnly), len(hidden), 100*hide, b.Addr())

	// The demo's bucket is its own: empty it, so that what is read back is
	// this run's and not a mix with points an earlier run (with other
	// settings) wrote at times this one does not.
	if err := pipeline.DropBucket(ctx, cfg, log); err != nil {
		return fmt.Errorf("empty bucket %s: %w", bucket, err)
	}
	t1 := time.Now()
	if err := pipeline.RunService(ctx, cfg, pipeline.ServiceOptions{Log: log, UntilEnd: true}); err != nil {
		return err
	}
	fmt.Printf("pipeline (window %d, stride %d, model %s) caught up in %s\n",
		cfg.Window.Length, cfg.Window.Stride, cfg.Model.Name, time.Since(t1).Round(time.Millisecond))

	q, err := query.Open(query.Options{
		URL: cfg.Influx.URL, Token: os.Getenv(cfg.Influx.TokenEnv), Org: cfg.Influx.Org, Bucket: bucket,
		Prefix: cfg.Influx.MeasurementPrefix, Language: query.Language(cfg.Influx.QueryLanguage), Timeout: cfg.Influx.Timeout.Duration,
	})
	if err != nil {
		return err
	}
	defer q.Close()
	rows, err := q.ForecastSummary(ctx, cfg.Model.Name)
	if err != nil {
		return err
	}
	dls, err := ingest.ReadDeadLetters(ctx, cfg.Kafka.Brokers, d, cfg.Kafka.DeadLetterTopic)
	if err != nil {
		return err
	}
	fmt.Printf("\nread back from InfluxDB (%s, bucket %s) with %s:\n\n", sinks.RedactURL(cfg.Influx.URL), bucket, q.Language())
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
	if cfg.Model.Kind == "ssl" {
		if err := demoLearned(ctx, q, cfg, fr, hidden); err != nil {
			return err
		}
	}
	fmt.Printf("\ndemo took %s\n", time.Since(t0).Round(time.Millisecond))
	fmt.Printf("\nThe same numbers in InfluxQL:\n\n%s\n\nand in Flux:\n\n%s\n",
		query.ForecastSummaryInfluxQL(cfg.Influx.MeasurementPrefix+"forecast", cfg.Model.Name),
		query.ForecastSummaryFlux(bucket, cfg.Influx.MeasurementPrefix+"forecast", cfg.Model.Name))
	return nil
}

// hidden is a value left out of the produced data.
type hidden struct {
	col, row int
	value    float64
}

// hideValues replaces a share of the frame's values (not near its ends)
// with NaN, which the producer leaves out: gaps with a known truth.
func hideValues(fr *dataset.Frame, share float64) []hidden {
	rng := rand.New(rand.NewPCG(2026, 11))
	var out []hidden
	for c := range fr.Cols {
		for r := 100; r < fr.Rows()-100; r++ {
			if rng.Float64() < share {
				out = append(out, hidden{c, r, fr.Cols[c][r]})
				fr.Cols[c][r] = math.NaN()
			}
		}
	}
	return out
}

// demoLearned prints what the self-supervised learner wrote: embeddings,
// filled gaps scored against the values left out, similar series, losses.
func demoLearned(ctx context.Context, q *query.Client, cfg config.Config, fr *dataset.Frame, hid []hidden) error {
	fmt.Printf("\nwhat the self-supervised learner wrote (embeddings of %d):\n", cfg.Model.Dim)
	embeddings, err := q.EmbeddingCount(ctx, cfg.Model.Name)
	if err != nil {
		return err
	}
	fmt.Printf("  %d embeddings in %s\n", embeddings, cfg.Influx.MeasurementPrefix+"embedding")

	// Filled gaps against the truth, next to linear interpolation.
	filled := map[[2]int64]float64{}
	for c, name := range fr.Names {
		pts, err := q.Imputed(ctx, "etth1,source=demo#"+name, time.Time{}, time.Time{}, cfg.Model.Name)
		if err != nil && !errors.Is(err, query.ErrNoData) {
			return err
		}
		for _, p := range pts {
			filled[[2]int64{int64(c), p.Time.UnixNano()}] = p.Value
		}
	}
	var n int
	var eT, eL, sT, sL float64

	for _, h := range hid {
		v, ok := filled[[2]int64{int64(h.col), fr.Time[h.row]}]
		if !ok {
			continue
		}
		li := interpolate(fr.Cols[h.col], h.row)
		n++
		eT += math.Abs(v - h.value)
		eL += math.Abs(li - h.value)
		sT += (v - h.value) * (v - h.value)
		sL += (li - h.value) * (li - h.value)

	}
	if n > 0 {
		fmt.Printf("  %d of the %d values left out were filled (%s): MAE %.4f, MSE %.4f; linear interpolation: MAE %.4f, MSE %.4f\n",
			n, len(hid), cfg.Influx.MeasurementPrefix+"imputed", eT/float64(n), sT/float64(n), eL/float64(n), sL/float64(n))
	}
	qe, sim, err := q.SimilarOfVersion(ctx, "etth1,source=demo#OT", time.Time{}, 3, cfg.Model.Name, query.NewestVersion)
	if err == nil && len(sim) > 0 {
		fmt.Printf("  series whose latest embeddings are most similar to OT's, within encoder version %d:", qe.Version)
		for _, m := range sim {
			fmt.Printf(" %s (%.3f)", strings.TrimPrefix(m.Series, "etth1,source=demo#"), m.Score)
		}
		fmt.Println()
	}
	var scored, high int
	for _, name := range fr.Names {
		pts, err := q.Anomalies(ctx, "etth1,source=demo#"+name, time.Time{}, time.Time{}, cfg.Model.Name, 0)
		if err != nil && !errors.Is(err, query.ErrNoData) {
			return err
		}
		scored += len(pts)
		for _, p := range pts {
			if p.Score >= 0.5 {
				high++
			}
		}
	}
	if scored > 0 {
		fmt.Printf("  %d points scored for anomalies (%s), %d of them at 0.5 or more\n", scored, cfg.Influx.MeasurementPrefix+"anomaly", high)
	}
	tl, err := q.TrainLosses(ctx, cfg.Model.Name, time.Time{}, time.Time{})
	if err == nil && len(tl) > 1 {
		a, z := tl[0], tl[len(tl)-1]
		fmt.Printf("  %d training steps; losses forecast/impute/contrast: first %.3f/%.3f/%.3f, last %.3f/%.3f/%.3f\n",
			len(tl), a.LossForecast, a.LossImpute, a.LossContrast, z.LossForecast, z.LossImpute, z.LossContrast)
	}
	return nil
}

// interpolate is the linear interpolation of col at row from its nearest
// observed neighbours.
func interpolate(col []float64, row int) float64 {
	i, j := row-1, row+1
	for i >= 0 && math.IsNaN(col[i]) {
		i--
	}
	for j < len(col) && math.IsNaN(col[j]) {
		j++
	}
	switch {
	case i < 0 && j >= len(col):
		return math.NaN()
	case i < 0:
		return col[j]
	case j >= len(col):
		return col[i]
	}
	return col[i] + (col[j]-col[i])*float64(row-i)/float64(j-i)
}
