package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/query"
	"github.com/tsrep/tsrep/sinks"
)

func init() { registry = append(registry, newQueryCmd) }

// queryInfluxFlags are the flags shared by query, report and serve: the
// configuration (--config, --set, --influx-url), where to read and which
// model's output.
type queryInfluxFlags struct {
	cf                   configFlags
	model, bucket, langF string
}

func (f *queryInfluxFlags) register(fs *pflag.FlagSet) {
	f.cf.register(fs, flagInfluxURL, true)
	fs.StringVar(&f.model, "model", "", "model tag to read (default: model.name of the configuration)")
	fs.StringVar(&f.bucket, "bucket", "", "bucket, or database[/retention-policy] on InfluxDB 1.8 (default: influx.bucket of the configuration)")
	fs.StringVar(&f.langF, "query-language", "", `"influxql" or "flux" (default: influx.query_language of the configuration, "influxql")`)
}

// queryReader is an open query client and what it reads.
type queryReader struct {
	q     *query.Client
	model string
	cfg   config.Config
	close func()
}

// open loads the configuration and connects (InfluxQL needs no
// connection until the first query). A missing config.toml is fine unless
// --config or $TSREP_CONFIG names it.
func (f *queryInfluxFlags) open(cmd *cobra.Command) (*queryReader, error) {
	cfg, _, err := f.cf.load(cmd)
	if err != nil {
		return nil, err
	}
	if f.bucket != "" {
		cfg.Influx.Bucket = f.bucket
	}
	lang := cfg.Influx.QueryLanguage
	if f.langF != "" {
		lang = f.langF
	}
	l, err := query.ParseLanguage(lang)
	if err != nil {
		return nil, fmt.Errorf("--query-language: %w", err)
	}
	model := cfg.Model.Name
	if f.model != "" {
		model = f.model
	}
	token := ""
	if cfg.Influx.TokenEnv != "" {
		token = os.Getenv(cfg.Influx.TokenEnv)
	}
	q, err := query.Open(query.Options{
		URL: cfg.Influx.URL, Token: token, Org: cfg.Influx.Org, Bucket: cfg.Influx.Bucket,
		Prefix: cfg.Influx.MeasurementPrefix, Language: l, Timeout: cfg.Influx.Timeout.Duration,
	})
	if err != nil {
		return nil, err
	}
	return &queryReader{q: q, model: model, cfg: cfg, close: q.Close}, nil
}

// meas is an output measurement's name with the configured prefix.
func (r *queryReader) meas(m string) string { return r.q.Prefix() + m }

// queryOpts are the flags of every query subcommand.
type queryOpts struct {
	queryInfluxFlags
	format  string
	explain bool
}

func newQueryCmd() *cobra.Command {
	o := &queryOpts{}
	cmd := &cobra.Command{
		Use:   "query",
		Short: "Read back what tsrep wrote to InfluxDB: embeddings, similar series, forecasts, imputed gaps, anomaly scores, training losses, series",
		Long: `Read back what tsrep wrote to InfluxDB, with InfluxQL on the v1 /query
endpoint (InfluxDB 1.8, 2.x with a DBRP mapping, 3.x) or with Flux
(influx.query_language, or --query-language).

SERIES is a series key as tsrep writes it: measurement,tag=value...#field,
escaping ',', ' ', '=', '#' and '\' inside names with a backslash, e.g.
'etth1,source=demo#OT'. Times are RFC 3339 (2016-07-01T00:00:00Z), a date
(2016-07-01, UTC), now, or an offset from now (-24h, -7d). Ranges are
[--from, --to); --at is inclusive.

Embeddings are compared only within one encoder version: by default the
version of the series' newest embedding (at or before --at), or --version;
embeddings written before versions were recorded are version 0.

--explain prints the queries the command runs, in the configured language
first, instead of running them.`,
	}
	pf := cmd.PersistentFlags()
	o.register(pf)
	pf.StringVar(&o.format, "format", "table", "output format: table, csv or json")
	pf.BoolVar(&o.explain, "explain", false, "print the queries (InfluxQL and Flux) instead of running them")
	cmd.AddCommand(newQueryEmbeddingCmd(o), newQuerySimilarCmd(o), newQueryForecastCmd(o), newQueryImputedCmd(o),
		newQueryAnomalyCmd(o), newQueryTrainCmd(o), newQuerySeriesCmd(o))
	return cmd
}

func (o *queryOpts) check() error {
	switch o.format {
	case "table", "csv", "json":
		return nil
	}
	return fmt.Errorf("--format %q: use table, csv or json", o.format)
}

// queryExplain prints a query in both languages, the client's first.
func queryExplain(w io.Writer, lang query.Language, e query.Explain, note string) error {
	iql := fmt.Sprintf("-- InfluxQL%s\n%s\n", runsNote(lang == query.InfluxQL), e.InfluxQL)
	flux := fmt.Sprintf("// Flux%s\n%s\n", runsNote(lang == query.Flux), e.Flux)
	first, second := iql, flux
	if lang == query.Flux {
		first, second = flux, iql
	}
	if note != "" {
		note = "\n" + note + "\n"
	}
	_, err := fmt.Fprintf(w, "%s\n%s%s", first, second, note)
	return err
}

func runsNote(runs bool) string {
	if runs {
		return " (what tsrep runs)"
	}
	return ""
}

func queryTimeFlag(name, v string) (time.Time, error) {
	t, err := query.ParseTime(v, time.Now())
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s: %w", name, err)
	}
	return t, nil
}

// queryVersionFlag parses --version: "" is the newest.
func queryVersionFlag(v string) (int64, error) {
	if v == "" {
		return query.NewestVersion, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n == query.NewestVersion {
		return 0, fmt.Errorf("--version %q: give an encoder version, an integer (see the version column of query embedding)", v)
	}
	return n, nil
}

// versionNote says which version a comparison used.
func versionNote(version int64, e query.Embedding) string {
	if version == query.NewestVersion {
		return fmt.Sprintf("encoder version %d: that of the newest embedding of %s (%s)", e.Version, e.Series, queryTime(e.Time))
	}
	return fmt.Sprintf("encoder version %d (--version)", version)
}

func newQueryEmbeddingCmd(o *queryOpts) *cobra.Command {
	var at, version string
	cmd := &cobra.Command{
		Use:   "embedding SERIES",
		Short: "The latest embedding of a series at or before --at, of the newest encoder version or --version",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			atT, err := queryTimeFlag("at", at)
			if err != nil {
				return err
			}
			v, err := queryVersionFlag(version)
			if err != nil {
				return err
			}
			r, err := o.open(cmd)
			if err != nil {
				return err
			}
			defer r.close()
			if o.explain {
				e, err := query.EmbeddingExplain(r.q.Bucket(), r.meas(sinks.MeasEmbedding), args[0], atT, r.model, v)
				if err != nil {
					return err
				}
				return queryExplain(cmd.OutOrStdout(), r.q.Language(), e, "")
			}
			e, err := r.q.EmbeddingOfVersion(cmd.Context(), args[0], atT, r.model, v)
			if err != nil {
				return err
			}
			return queryWriteEmbedding(cmd.OutOrStdout(), o.format, e, r.model)
		},
	}
	cmd.Flags().StringVar(&at, "at", "", "latest embedding at or before this time (default: the latest)")
	cmd.Flags().StringVar(&version, "version", "", "encoder version (default: whatever the latest embedding's is)")
	return cmd
}

func newQuerySimilarCmd(o *queryOpts) *cobra.Command {
	var at, version string
	var k int
	cmd := &cobra.Command{
		Use:   "similar SERIES",
		Short: "The k series whose embeddings are the most similar to the series', within one encoder version",
		Long: `The k series whose embeddings are the most similar to the series'.

Similarity (score) is the cosine of the two embeddings with each dimension
divided by its standard deviation across the series compared, so that the
dimensions which tell series apart count, not those every series shares;
the plain cosine is printed beside it (cosine).

Only embeddings of one encoder version are compared: --version, or by
default the version of the series' newest embedding at or before --at. Each
other series contributes its latest embedding of that version at or before
--at (not its latest overall). The version used is printed (a column, and
on stderr with --format table).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			atT, err := queryTimeFlag("at", at)
			if err != nil {
				return err
			}
			v, err := queryVersionFlag(version)
			if err != nil {
				return err
			}
			r, err := o.open(cmd)
			if err != nil {
				return err
			}
			defer r.close()
			if o.explain {
				e, err := query.SimilarExplain(r.q.Bucket(), r.meas(sinks.MeasEmbedding), args[0], atT, r.model, v)
				if err != nil {
					return err
				}
				return queryExplain(cmd.OutOrStdout(), r.q.Language(), e, "The similarity of the series' vector (e0..eN) to every other series' (the cosine with each dimension scaled by 1 over its standard deviation across them) is computed by tsrep.")
			}
			q, ms, err := r.q.SimilarOfVersion(cmd.Context(), args[0], atT, k, r.model, v)
			if err != nil {
				return err
			}
			if o.format == "table" {
				fmt.Fprintf(cmd.ErrOrStderr(), "compared within %s\n", versionNote(v, q))
			}
			t := queryTable{header: []string{"rank", "series", "score", "cosine", "time", "version"}}
			for i, m := range ms {
				t.rows = append(t.rows, []queryCell{queryInt(int64(i + 1)), {s: m.Series}, queryNum(m.Score), queryNum(m.Cosine), {s: queryTime(m.Time)}, queryInt(m.Version)})
			}
			return t.write(cmd.OutOrStdout(), o.format)
		},
	}
	cmd.Flags().StringVar(&at, "at", "", "compare the latest embeddings at or before this time (default: the latest)")
	cmd.Flags().StringVar(&version, "version", "", "encoder version to compare within (default: that of the series' newest embedding)")
	cmd.Flags().IntVarP(&k, "k", "k", 10, "number of similar series")
	return cmd
}

func newQueryForecastCmd(o *queryOpts) *cobra.Command {
	return o.rangeCmd(&cobra.Command{
		Use:   "forecast SERIES",
		Short: "A series' forecasts next to the actual values and errors in [--from, --to)",
		Args:  cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string, from, to time.Time, r *queryReader) error {
		if o.explain {
			return r.explainRange(cmd, sinks.MeasForecast, args[0], from, to, query.ForecastsFlux, query.ForecastsInfluxQL)
		}
		pts, err := r.q.Forecasts(cmd.Context(), args[0], from, to, r.model)
		if err != nil {
			return err
		}
		t := queryTable{header: []string{"time", "predicted", "actual", "abs_error", "last_value", "last_value_abs_error"}}
		for _, p := range pts {
			t.rows = append(t.rows, []queryCell{{s: queryTime(p.Time)}, queryNum(p.Predicted), queryNum(p.Actual), queryNum(p.AbsError), queryNum(p.LastValue), queryNum(p.LastValueAbsError)})
		}
		o.noteEmpty(cmd, len(pts), "forecasts", args[0], r.model)
		return t.write(cmd.OutOrStdout(), o.format)
	})
}

func newQueryImputedCmd(o *queryOpts) *cobra.Command {
	return o.rangeCmd(&cobra.Command{
		Use:   "imputed SERIES",
		Short: "The values filled into a series' gaps in [--from, --to)",
		Args:  cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string, from, to time.Time, r *queryReader) error {
		if o.explain {
			return r.explainRange(cmd, sinks.MeasImputed, args[0], from, to, query.ImputedFlux, query.ImputedInfluxQL)
		}
		pts, err := r.q.Imputed(cmd.Context(), args[0], from, to, r.model)
		if err != nil {
			return err
		}
		t := queryTable{header: []string{"time", "value"}}
		for _, p := range pts {
			t.rows = append(t.rows, []queryCell{{s: queryTime(p.Time)}, queryNum(p.Value)})
		}
		o.noteEmpty(cmd, len(pts), "imputed points", args[0], r.model)
		return t.write(cmd.OutOrStdout(), o.format)
	})
}

func newQueryAnomalyCmd(o *queryOpts) *cobra.Command {
	var minScore float64
	cmd := o.rangeCmd(&cobra.Command{
		Use:   "anomaly SERIES",
		Short: "A series' anomaly scores (tsrep_anomaly) in [--from, --to), those of at least --min-score",
		Long: `A series' anomaly scores in [--from, --to): per point, score in [0, 1]
(computed before the point was learnt from), surprise (−log10 of the
probability of what the point shows), z (the forecast error in standard
deviations of the series' recent errors) and novelty (the embedding's
cosine distance to the series' past ones), empty where not written.`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string, from, to time.Time, r *queryReader) error {
		if o.explain {
			return r.explainRange(cmd, query.MeasAnomaly, args[0], from, to,
				func(bucket, meas, series string, from, to time.Time, model string) (string, error) {
					return query.AnomaliesFlux(bucket, meas, series, from, to, model, minScore)
				},
				func(meas, series string, from, to time.Time, model string) (string, error) {
					return query.AnomaliesInfluxQL(meas, series, from, to, model, minScore)
				})
		}
		pts, err := r.q.Anomalies(cmd.Context(), args[0], from, to, r.model, minScore)
		if err != nil {
			return err
		}
		t := queryTable{header: []string{"time", "score", "surprise", "z", "novelty"}}
		for _, p := range pts {
			t.rows = append(t.rows, []queryCell{{s: queryTime(p.Time)}, queryNum(p.Score), queryNum(p.Surprise), queryNum(p.Z), queryNum(p.Novelty)})
		}
		o.noteEmpty(cmd, len(pts), "anomaly scores", args[0], r.model)
		return t.write(cmd.OutOrStdout(), o.format)
	})
	cmd.Flags().Float64Var(&minScore, "min-score", 0, "only points whose score is at least this, in [0, 1]")
	return cmd
}

func newQueryTrainCmd(o *queryOpts) *cobra.Command {
	return o.rangeCmd(&cobra.Command{
		Use:   "train",
		Short: "The model's training steps and losses in [--from, --to)",
		Args:  cobra.NoArgs,
	}, func(cmd *cobra.Command, _ []string, from, to time.Time, r *queryReader) error {
		if o.explain {
			meas := r.meas(sinks.MeasTrain)
			return queryExplain(cmd.OutOrStdout(), r.q.Language(), query.Explain{
				Flux: query.TrainLossesFlux(r.q.Bucket(), meas, r.model, from, to), InfluxQL: query.TrainLossesInfluxQL(meas, r.model, from, to)}, "")
		}
		steps, err := r.q.TrainLosses(cmd.Context(), r.model, from, to)
		if err != nil {
			return err
		}
		t := queryTable{header: []string{"time", "topic", "partition", "step", "windows", "loss_forecast", "loss_impute", "loss_contrast"}}
		for _, s := range steps {
			t.rows = append(t.rows, []queryCell{{s: queryTime(s.Time)}, {s: s.Topic}, {s: s.Partition}, queryInt(s.Step),
				queryInt(s.Windows), queryNum(s.LossForecast), queryNum(s.LossImpute), queryNum(s.LossContrast)})
		}
		if len(steps) == 0 && o.format == "table" {
			fmt.Fprintf(cmd.ErrOrStderr(), "no training steps of model %q in the range\n", r.model)
		}
		return t.write(cmd.OutOrStdout(), o.format)
	})
}

// seriesOutputs are the outputs query series lists, in its columns' order.
var seriesOutputs = []string{sinks.MeasForecast, sinks.MeasEmbedding, query.MeasAnomaly, sinks.MeasImputed}

func newQuerySeriesCmd(o *queryOpts) *cobra.Command {
	var f query.SeriesFilter
	var tags []string
	cmd := &cobra.Command{
		Use:   "series",
		Short: "The series the model wrote output for, with the time of each output's newest point",
		Long: `The series the model wrote forecasts, embeddings, anomaly scores or
imputed values for, and the time of each output's newest point (empty: the
series has none of that output). --measurement, --field and --tag KEY:VALUE
(repeatable; split at the first ':') keep the series that have them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			for _, t := range tags {
				k, v, ok := strings.Cut(t, ":")
				if !ok || k == "" {
					return fmt.Errorf("--tag %q: write KEY:VALUE, e.g. --tag host:a", t)
				}
				f.Tags = append(f.Tags, ingest.KV{Key: k, Value: v})
			}
			r, err := o.open(cmd)
			if err != nil {
				return err
			}
			defer r.close()
			if o.explain {
				fl, err := query.SeriesListFlux(r.q.Bucket(), r.q.Prefix(), r.model, f)
				if err != nil {
					return err
				}
				iql, _ := query.SeriesListInfluxQL(r.q.Prefix(), r.model, f)
				return queryExplain(cmd.OutOrStdout(), r.q.Language(), query.Explain{Flux: fl, InfluxQL: iql}, "")
			}
			list, err := r.q.ListSeries(cmd.Context(), r.model, f)
			if err != nil {
				return err
			}
			t := queryTable{header: []string{"series"}}
			for _, o := range seriesOutputs {
				t.header = append(t.header, o)
			}
			for _, s := range list {
				row := []queryCell{{s: s.Series}}
				for _, o := range seriesOutputs {
					c := queryCell{}
					if tm, ok := s.Latest[o]; ok {
						c.s = queryTime(tm)
					}
					row = append(row, c)
				}
				t.rows = append(t.rows, row)
			}
			if len(list) == 0 && o.format == "table" {
				fmt.Fprintf(cmd.ErrOrStderr(), "no series of model %q pass the filter\n", r.model)
			}
			return t.write(cmd.OutOrStdout(), o.format)
		},
	}
	cmd.Flags().StringVar(&f.Measurement, "measurement", "", "only series of this input measurement")
	cmd.Flags().StringVar(&f.Field, "field", "", "only series of this field")
	cmd.Flags().StringArrayVar(&tags, "tag", nil, "only series with this input tag, KEY:VALUE (repeatable)")
	return cmd
}

// rangeCmd completes c, a query over [--from, --to): its flags, and a RunE
// that parses them, connects, and calls run.
func (o *queryOpts) rangeCmd(c *cobra.Command, run func(cmd *cobra.Command, args []string, from, to time.Time, r *queryReader) error) *cobra.Command {
	var from, to string
	c.RunE = func(cmd *cobra.Command, args []string) error {
		fromT, toT, r, err := o.rangeArgs(cmd, from, to)
		if err != nil {
			return err
		}
		defer r.close()
		return run(cmd, args, fromT, toT, r)
	}
	c.Flags().StringVar(&from, "from", "", "start of the range, inclusive (default: the beginning)")
	c.Flags().StringVar(&to, "to", "", "end of the range, exclusive (default: no end)")
	return c
}

// explainRange prints the queries of one series' points of measurement
// meas in [from, to).
func (r *queryReader) explainRange(cmd *cobra.Command, meas, series string, from, to time.Time,
	flux func(bucket, meas, series string, from, to time.Time, model string) (string, error),
	influxQL func(meas, series string, from, to time.Time, model string) (string, error)) error {
	meas = r.meas(meas)
	f, err := flux(r.q.Bucket(), meas, series, from, to, r.model)
	if err != nil {
		return err
	}
	iql, _ := influxQL(meas, series, from, to, r.model)
	return queryExplain(cmd.OutOrStdout(), r.q.Language(), query.Explain{Flux: f, InfluxQL: iql}, "")
}

// rangeArgs checks the format, parses --from/--to and connects.
func (o *queryOpts) rangeArgs(cmd *cobra.Command, from, to string) (time.Time, time.Time, *queryReader, error) {
	if err := o.check(); err != nil {
		return time.Time{}, time.Time{}, nil, err
	}
	fromT, err := queryTimeFlag("from", from)
	if err != nil {
		return time.Time{}, time.Time{}, nil, err
	}
	toT, err := queryTimeFlag("to", to)
	if err != nil {
		return time.Time{}, time.Time{}, nil, err
	}
	if !fromT.IsZero() && !toT.IsZero() && !toT.After(fromT) {
		return time.Time{}, time.Time{}, nil, fmt.Errorf("--to %s is not after --from %s", queryTime(toT), queryTime(fromT))
	}
	r, err := o.open(cmd)
	return fromT, toT, r, err
}

// noteEmpty tells a person reading a table why it is empty.
func (o *queryOpts) noteEmpty(cmd *cobra.Command, n int, what, series, model string) {
	if n == 0 && o.format == "table" {
		fmt.Fprintf(cmd.ErrOrStderr(), "no %s of series %q with model %q in the range (check the series key, the model and the range)\n", what, series, model)
	}
}

func queryTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// queryCell is a table cell: a string, a float (NaN: empty) or an integer.
type queryCell struct {
	s    string
	f    float64
	n    int64
	kind cellKind
}

type cellKind uint8

const (
	cellString cellKind = iota
	cellFloat
	cellInt
)

func queryNum(f float64) queryCell { return queryCell{f: f, kind: cellFloat} }

func queryInt(n int64) queryCell { return queryCell{n: n, kind: cellInt} }

// text is the cell as the format writes it: full precision in csv,
// 6 significant digits in a table.
func (c queryCell) text(format string) string {
	switch {
	case c.kind == cellInt:
		return strconv.FormatInt(c.n, 10)
	case c.kind != cellFloat:
		return c.s
	case math.IsNaN(c.f):
		return ""
	case format == "table":
		return strconv.FormatFloat(c.f, 'g', 6, 64)
	}
	return strconv.FormatFloat(c.f, 'g', -1, 64)
}

// appendJSON appends the cell as a JSON value (a float that is not finite:
// null).
func (c queryCell) appendJSON(b []byte) []byte {
	switch c.kind {
	case cellInt:
		return strconv.AppendInt(b, c.n, 10)
	case cellFloat:
		v, _ := queryJSONFloat(c.f).MarshalJSON()
		return append(b, v...)
	}
	v, _ := json.Marshal(c.s)
	return append(b, v...)
}

// queryJSONRows writes a table as a JSON array of objects, one per row,
// keyed by the header in its order.
type queryJSONRows queryTable

// MarshalJSON implements json.Marshaler.
func (t queryJSONRows) MarshalJSON() ([]byte, error) {
	b := []byte{'['}
	for i, r := range t.rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		for j, c := range r {
			if j > 0 {
				b = append(b, ',')
			}
			k, _ := json.Marshal(t.header[j])
			b = append(append(b, k...), ':')
			b = c.appendJSON(b)
		}
		b = append(b, '}')
	}
	return append(b, ']'), nil
}

type queryTable struct {
	header []string
	rows   [][]queryCell
}

// write writes t as an aligned table, CSV, or JSON (an object per row).
func (t queryTable) write(w io.Writer, format string) error {
	switch format {
	case "json":
		return queryWriteJSON(w, queryJSONRows(t))
	case "csv":
		cw := csv.NewWriter(w)
		_ = cw.Write(t.header)
		for _, r := range t.rows {
			rec := make([]string, len(r))
			for i, c := range r {
				rec[i] = c.text(format)
			}
			_ = cw.Write(rec)
		}
		cw.Flush()
		return cw.Error()
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	for i, h := range t.header {
		if i > 0 {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprint(tw, h)
	}
	fmt.Fprintln(tw)
	for _, r := range t.rows {
		for i, c := range r {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, c.text(format))
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Empty last cells leave the padding of the column before them.
	for _, l := range strings.SplitAfter(buf.String(), "\n") {
		if l == "" {
			continue
		}
		if _, err := io.WriteString(w, strings.TrimRight(l, " \n")+"\n"); err != nil {
			return err
		}
	}
	return nil
}

func queryWriteEmbedding(w io.Writer, format string, e query.Embedding, model string) error {
	switch format {
	case "json":
		v := make([]queryJSONFloat, len(e.Vector))
		for i, x := range e.Vector {
			v[i] = queryJSONFloat(x)
		}
		return queryWriteJSON(w, queryJSONEmbedding{Series: e.Series, Model: model, Time: queryTime(e.Time), Version: e.Version, Embedding: v})
	case "csv":
		t := queryTable{header: []string{"series", "model", "time", "version"}}
		r := []queryCell{{s: e.Series}, {s: model}, {s: queryTime(e.Time)}, queryInt(e.Version)}
		for i, x := range e.Vector {
			t.header = append(t.header, "e"+strconv.Itoa(i))
			r = append(r, queryNum(x))
		}
		t.rows = [][]queryCell{r}
		return t.write(w, format)
	}
	// A table of one row would be as wide as the embedding: one line per
	// component instead, after the series, model, time and version.
	t := queryTable{header: []string{"series", e.Series}, rows: [][]queryCell{
		{{s: "model"}, {s: model}},
		{{s: "time"}, {s: queryTime(e.Time)}},
		{{s: "version"}, queryInt(e.Version)},
		{{s: "dim"}, {s: strconv.Itoa(len(e.Vector))}},
	}}
	for i, x := range e.Vector {
		t.rows = append(t.rows, []queryCell{{s: "e" + strconv.Itoa(i)}, queryNum(x)})
	}
	return t.write(w, format)
}

// queryJSONFloat writes NaN and infinities as null.
type queryJSONFloat float64

// MarshalJSON implements json.Marshaler.
func (f queryJSONFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

type queryJSONEmbedding struct {
	Series    string           `json:"series"`
	Model     string           `json:"model"`
	Time      string           `json:"time"`
	Version   int64            `json:"version"`
	Embedding []queryJSONFloat `json:"embedding"`
}

// queryWriteJSON writes v as indented JSON.
func queryWriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
