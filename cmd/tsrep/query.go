package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/query"
	"github.com/tsrep/tsrep/sinks"
)

func init() { registry = append(registry, newQueryCmd) }

// queryInfluxFlags are the flags shared by query and report: where to read
// and which model's output.
type queryInfluxFlags struct {
	cfgPath, model, bucket, url string
}

func (f *queryInfluxFlags) register(fs *pflag.FlagSet) {
	fs.StringVarP(&f.cfgPath, "config", "c", "config.toml", "configuration file; its [influx] section and model.name are used (defaults if the default file is missing)")
	fs.StringVar(&f.model, "model", "", "model tag to read (default: model.name of the config)")
	fs.StringVar(&f.bucket, "bucket", "", "bucket, or database on InfluxDB 1.8 (default: influx.bucket of the config)")
	fs.StringVar(&f.url, "influx-url", "", "InfluxDB URL (default: influx.url of the config)")
}

// queryReader is an open query client and what it reads.
type queryReader struct {
	q      *query.Client
	model  string
	prefix string
	close  func()
}

// open loads the configuration and connects. A missing config file is
// fine only if --config was not given.
func (f *queryInfluxFlags) open(cmd *cobra.Command) (*queryReader, error) {
	cfg := config.Default()
	if _, err := os.Stat(f.cfgPath); err == nil || cmd.Flags().Changed("config") {
		if cfg, err = config.Load(f.cfgPath); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("config %s: %w", f.cfgPath, err)
	}
	if f.url != "" {
		cfg.Influx.URL = f.url
	}
	if f.bucket != "" {
		cfg.Influx.Bucket = f.bucket
	}
	model := cfg.Model.Name
	if f.model != "" {
		model = f.model
	}
	token := ""
	if cfg.Influx.TokenEnv != "" {
		token = os.Getenv(cfg.Influx.TokenEnv)
	}
	opts := influxdb2.DefaultOptions().SetHTTPRequestTimeout(uint(max(1, cfg.Influx.Timeout.Duration/time.Second))).SetLogLevel(0)
	client := influxdb2.NewClientWithOptions(cfg.Influx.URL, token, opts)
	return &queryReader{
		q:      query.New(client.QueryAPI(cfg.Influx.Org), cfg.Influx.Bucket, cfg.Influx.MeasurementPrefix),
		model:  model,
		prefix: cfg.Influx.MeasurementPrefix,
		close:  client.Close,
	}, nil
}

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
		Short: "Read back what tsrep wrote to InfluxDB: embeddings, similar series, forecasts, imputed gaps, training losses",
		Long: `Read back what tsrep wrote to InfluxDB.

SERIES is a series key as tsrep writes it: measurement,tag=value...#field,
escaping ',', ' ', '=', '#' and '\' inside names with a backslash, e.g.
'etth1,source=demo#OT'. Times are RFC 3339 (2016-07-01T00:00:00Z), a date
(2016-07-01, UTC), now, or an offset from now (-24h, -7d). Ranges are
[--from, --to); --at is inclusive. --explain prints the Flux the command
runs and an equivalent InfluxQL statement instead of running it.`,
	}
	pf := cmd.PersistentFlags()
	o.register(pf)
	pf.StringVar(&o.format, "format", "table", "output format: table, csv or json")
	pf.BoolVar(&o.explain, "explain", false, "print the Flux and InfluxQL of the query instead of running it")
	cmd.AddCommand(newQueryEmbeddingCmd(o), newQuerySimilarCmd(o), newQueryForecastCmd(o), newQueryImputedCmd(o), newQueryTrainCmd(o))
	return cmd
}

func (o *queryOpts) check() error {
	switch o.format {
	case "table", "csv", "json":
		return nil
	}
	return fmt.Errorf("--format %q: use table, csv or json", o.format)
}

// queryExplain prints a query's Flux and InfluxQL.
func queryExplain(w io.Writer, flux, influxQL string, note string) error {
	if note != "" {
		note = "\n" + note
	}
	_, err := fmt.Fprintf(w, "// Flux\n%s\n\n-- InfluxQL\n%s\n%s", flux, influxQL, note)
	return err
}

func queryTimeFlag(name, v string) (time.Time, error) {
	t, err := query.ParseTime(v, time.Now())
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s: %w", name, err)
	}
	return t, nil
}

func newQueryEmbeddingCmd(o *queryOpts) *cobra.Command {
	var at string
	cmd := &cobra.Command{
		Use:   "embedding SERIES",
		Short: "The latest embedding of a series at or before --at",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			atT, err := queryTimeFlag("at", at)
			if err != nil {
				return err
			}
			r, err := o.open(cmd)
			if err != nil {
				return err
			}
			defer r.close()
			if o.explain {
				meas := r.prefix + sinks.MeasEmbedding
				flux, err := query.EmbeddingFlux(r.q.Bucket(), meas, args[0], atT, r.model)
				if err != nil {
					return err
				}
				iql, _ := query.EmbeddingInfluxQL(meas, args[0], atT, r.model)
				return queryExplain(cmd.OutOrStdout(), flux, iql, "")
			}
			e, err := r.q.Embedding(cmd.Context(), args[0], atT, r.model)
			if err != nil {
				return err
			}
			return queryWriteEmbedding(cmd.OutOrStdout(), o.format, e, r.model)
		},
	}
	cmd.Flags().StringVar(&at, "at", "", "latest embedding at or before this time (default: the latest)")
	return cmd
}

func newQuerySimilarCmd(o *queryOpts) *cobra.Command {
	var at string
	var k int
	cmd := &cobra.Command{
		Use:   "similar SERIES",
		Short: "The k series whose latest embeddings are the most cosine-similar to the series'",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			atT, err := queryTimeFlag("at", at)
			if err != nil {
				return err
			}
			r, err := o.open(cmd)
			if err != nil {
				return err
			}
			defer r.close()
			if o.explain {
				if _, err := query.CanonicalSeries(args[0]); err != nil {
					return err
				}
				meas := r.prefix + sinks.MeasEmbedding
				return queryExplain(cmd.OutOrStdout(), query.SimilarFlux(r.q.Bucket(), meas, atT, r.model), query.SimilarInfluxQL(meas, atT, r.model),
					"The cosine similarity of the series' vector (e0..eN) to every other row is computed by tsrep.\n")
			}
			ms, err := r.q.Similar(cmd.Context(), args[0], atT, k, r.model)
			if err != nil {
				return err
			}
			t := queryTable{header: []string{"rank", "series", "score", "time"}}
			for i, m := range ms {
				t.rows = append(t.rows, []queryCell{queryInt(int64(i + 1)), {s: m.Series}, queryNum(m.Score), {s: queryTime(m.Time)}})
			}
			return t.write(cmd.OutOrStdout(), o.format)
		},
	}
	cmd.Flags().StringVar(&at, "at", "", "compare the latest embeddings at or before this time (default: the latest)")
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

func newQueryTrainCmd(o *queryOpts) *cobra.Command {
	return o.rangeCmd(&cobra.Command{
		Use:   "train",
		Short: "The model's training steps and losses in [--from, --to)",
		Args:  cobra.NoArgs,
	}, func(cmd *cobra.Command, _ []string, from, to time.Time, r *queryReader) error {
		if o.explain {
			meas := r.prefix + sinks.MeasTrain
			return queryExplain(cmd.OutOrStdout(), query.TrainLossesFlux(r.q.Bucket(), meas, r.model, from, to), query.TrainLossesInfluxQL(meas, r.model, from, to), "")
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

// explainRange prints the Flux and InfluxQL of a query of one series'
// points of measurement meas in [from, to).
func (r *queryReader) explainRange(cmd *cobra.Command, meas, series string, from, to time.Time,
	flux func(bucket, meas, series string, from, to time.Time, model string) (string, error),
	influxQL func(meas, series string, from, to time.Time, model string) (string, error)) error {
	meas = r.prefix + meas
	f, err := flux(r.q.Bucket(), meas, series, from, to, r.model)
	if err != nil {
		return err
	}
	iql, _ := influxQL(meas, series, from, to, r.model)
	return queryExplain(cmd.OutOrStdout(), f, iql, "")
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
		return queryWriteJSON(w, queryJSONEmbedding{Series: e.Series, Model: model, Time: queryTime(e.Time), Embedding: v})
	case "csv":
		t := queryTable{header: []string{"series", "model", "time"}}
		r := []queryCell{{s: e.Series}, {s: model}, {s: queryTime(e.Time)}}
		for i, x := range e.Vector {
			t.header = append(t.header, "e"+strconv.Itoa(i))
			r = append(r, queryNum(x))
		}
		t.rows = [][]queryCell{r}
		return t.write(w, format)
	}
	// A table of one row would be as wide as the embedding: one line per
	// component instead, after the series, model and time.
	t := queryTable{header: []string{"series", e.Series}, rows: [][]queryCell{
		{{s: "model"}, {s: model}},
		{{s: "time"}, {s: queryTime(e.Time)}},
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
	Embedding []queryJSONFloat `json:"embedding"`
}

// queryWriteJSON writes v as indented JSON.
func queryWriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
