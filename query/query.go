// Package query reads back what tsrep wrote to InfluxDB: forecasts and
// their accuracy per series, embeddings (within one encoder version),
// similar series, imputed gaps, anomaly scores, training losses and the
// list of series.
//
// A Client reads through InfluxQL on the v1 /query endpoint by default,
// which InfluxDB 1.8, 2.x (through its DBRP mapping) and 3.x all serve, or
// through Flux (influxdb-client-go) when asked. The text of every query is
// exported in both languages, so the README, the influx CLI and Grafana
// can run the same thing; both are built with every name and value
// escaped, never by pasting user text into a query.
package query

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	"github.com/influxdata/influxdb-client-go/v2/api/query"

	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/sinks"
)

// Language is a query language a Client reads with.
type Language string

// The languages: InfluxQL (the default) or Flux.
const (
	InfluxQL Language = "influxql"
	Flux     Language = "flux"
)

// ParseLanguage reads influx.query_language; "" is InfluxQL.
func ParseLanguage(s string) (Language, error) {
	switch Language(s) {
	case "", InfluxQL:
		return InfluxQL, nil
	case Flux:
		return Flux, nil
	}
	return "", fmt.Errorf("query language %q: use \"influxql\" (InfluxDB 1.8, 2.x with a DBRP mapping, 3.x) or \"flux\" (1.8 with flux-enabled, 2.x)", s)
}

// Client runs tsrep's queries against one bucket.
type Client struct {
	lang   Language
	flux   api.QueryAPI
	iql    *iqlClient
	bucket string
	prefix string
	close  func()
}

// New returns a Client that reads with Flux through q; prefix is
// influx.measurement_prefix.
func New(q api.QueryAPI, bucket, prefix string) *Client {
	return &Client{lang: Flux, flux: q, bucket: bucket, prefix: prefix, close: func() {}}
}

// Options says where and how a Client opened with Open reads.
type Options struct {
	// URL is InfluxDB's base URL (influx.url).
	URL string
	// Token is the API token (2.x, 3.x) or "user:password" (1.8); empty
	// for none.
	Token string
	// Org is the organisation of Flux queries on 2.x (influx.org).
	Org string
	// Bucket is the bucket, or "database[/retention-policy]" (influx.bucket).
	Bucket string
	// Prefix is influx.measurement_prefix.
	Prefix string
	// Language is InfluxQL (the default, when empty) or Flux.
	Language Language
	// Timeout bounds each query; 0 is no bound beyond the context's.
	Timeout time.Duration
	// HTTPClient sends the InfluxQL requests (nil: a client of its own
	// with Timeout).
	HTTPClient *http.Client
}

// Open returns a Client for o. Close it when done.
func Open(o Options) (*Client, error) {
	lang, err := ParseLanguage(string(o.Language))
	if err != nil {
		return nil, err
	}
	if o.Bucket == "" {
		return nil, fmt.Errorf("bucket is empty: set influx.bucket")
	}
	if lang == Flux {
		opts := influxdb2.DefaultOptions().SetLogLevel(0)
		if o.Timeout > 0 {
			opts.SetHTTPRequestTimeout(uint(max(1, o.Timeout/time.Second)))
		}
		if o.HTTPClient != nil {
			opts.SetHTTPClient(o.HTTPClient)
		}
		cl := influxdb2.NewClientWithOptions(o.URL, o.Token, opts)
		c := New(cl.QueryAPI(o.Org), o.Bucket, o.Prefix)
		c.close = cl.Close
		return c, nil
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: o.Timeout}
	}
	iql, err := newIQLClient(hc, o.URL, o.Token, o.Bucket)
	if err != nil {
		return nil, err
	}
	return &Client{lang: InfluxQL, iql: iql, bucket: o.Bucket, prefix: o.Prefix, close: func() {}}, nil
}

// Close releases the client's connections.
func (c *Client) Close() { c.close() }

// Language is the language the client reads with.
func (c *Client) Language() Language { return c.lang }

// Bucket is the bucket (database on InfluxDB 1.8) the client reads.
func (c *Client) Bucket() string { return c.bucket }

// Prefix is the measurement prefix of the outputs the client reads.
func (c *Client) Prefix() string { return c.prefix }

// meas is a configured output measurement name.
func (c *Client) meas(m string) string { return c.prefix + m }

// row is one row of an answer in either language.
type row struct {
	result string            // Flux: the name of the yield
	tags   map[string]string // the output series' tags
	time   time.Time
	vals   map[string]any // by column: float64, int64, string or nil
}

// text is one query in both languages: the Flux, and the InfluxQL
// statements (sent in one request, each answer row tagged with its
// statement's index).
type text struct {
	flux string
	iql  []string
}

// run runs q in the client's language and calls fn for every row, with
// the index of the InfluxQL statement it answers (0 with Flux).
func (c *Client) run(ctx context.Context, q text, fn func(stmt int, r row) error) error {
	if c.lang == InfluxQL {
		if err := c.iql.run(ctx, q.iql, fn); err != nil {
			return fmt.Errorf("bucket %q: %w", c.bucket, err)
		}
		return nil
	}
	res, err := c.flux.Query(ctx, q.flux)
	if err != nil {
		return fmt.Errorf("flux query on bucket %q: %w", c.bucket, err)
	}
	defer res.Close()
	for res.Next() {
		if err := fn(0, fluxRow(res.Record())); err != nil {
			return err
		}
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("flux query on bucket %q: %w", c.bucket, err)
	}
	return nil
}

// fluxRow is a Flux record as a row: its string columns other than
// Flux's own (_measurement, _start, result, table...) are the tags.
func fluxRow(r *query.FluxRecord) row {
	vals := r.Values()
	tags := make(map[string]string, len(vals))
	for k, v := range vals {
		if s, ok := v.(string); ok && !strings.HasPrefix(k, "_") && k != "result" && k != "table" {
			tags[k] = s
		}
	}
	var t time.Time
	if tv, ok := vals["_time"].(time.Time); ok {
		t = tv
	}
	return row{result: r.Result(), tags: tags, time: t, vals: vals}
}

// SeriesForecast summarises the forecasts of one series.
type SeriesForecast struct {
	Series    string // the input series key, measurement,tags#field
	Forecasts int64  // forecasts written
	Scored    int64  // forecasts whose actual value arrived
	// MAE is the prequential mean absolute error of the forecasts, in the
	// series' units; LastValueMAE that of repeating the last value.
	MAE          float64
	LastValueMAE float64
}

// ForecastSummaryFlux is the Flux of ForecastSummary: the default grouping
// of from() is one table per series and field, so count() gives the
// per-series forecasts; pivoted by time, a step's predicted, last_value and
// actual share a row once the step arrived, and the two errors are
// computed from them.
func ForecastSummaryFlux(bucket, measurement, model string) string {
	return fmt.Sprintf(`import "math"
data = from(bucket: %s)
  |> range(start: 0)
  |> filter(fn: (r) => r._measurement == %s and r.model == %s)
data |> filter(fn: (r) => r._field == "predicted") |> count() |> yield(name: "count")
scored = data
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
  |> filter(fn: (r) => exists r.actual and exists r.predicted and exists r.last_value)
err = scored |> map(fn: (r) => ({r with _value: math.abs(x: r.actual - r.predicted)}))
err |> mean() |> yield(name: "mean")
err |> count() |> yield(name: "scored")
scored
  |> map(fn: (r) => ({r with _value: math.abs(x: r.actual - r.last_value)}))
  |> mean() |> yield(name: "baseline")`, fluxString(bucket), fluxString(measurement), fluxString(model))
}

// ForecastSummaryInfluxQL is the InfluxQL of ForecastSummary: the
// forecasts per series, then the scored ones (a row whose actual,
// predicted and last_value are all written: an arithmetic expression with
// a missing operand is null, so "+ 0 * x" keeps only rows that have x)
// and the mean of both errors over them.
func ForecastSummaryInfluxQL(measurement, model string) string {
	return statements(forecastSummaryIQL(measurement, model))
}

func forecastSummaryIQL(measurement, model string) []string {
	where := iqlWhere(modelTag(model))
	return []string{
		fmt.Sprintf(`SELECT count("predicted") AS "forecasts" FROM %s %s GROUP BY *`, iqlIdent(measurement), where),
		fmt.Sprintf(`SELECT count("err") AS "scored", mean("err") AS "mae", mean("lv_err") AS "last_value_mae" FROM (SELECT abs("actual" - "predicted") + 0 * "last_value" AS "err", abs("actual" - "last_value") + 0 * "predicted" AS "lv_err" FROM %s %s GROUP BY *) GROUP BY *`,
			iqlIdent(measurement), where),
	}
}

// ForecastSummary returns per-series forecast counts and prequential MAE
// next to the last-value baseline, sorted by series.
func (c *Client) ForecastSummary(ctx context.Context, model string) ([]SeriesForecast, error) {
	if err := checkModel(model); err != nil {
		return nil, err
	}
	meas := c.meas(sinks.MeasForecast)
	q := text{flux: ForecastSummaryFlux(c.bucket, meas, model), iql: forecastSummaryIQL(meas, model)}
	by := map[string]*SeriesForecast{}
	err := c.run(ctx, q, func(stmt int, r row) error {
		key, err := seriesKey(r.tags)
		if err != nil {
			return err
		}
		s := by[key]
		if s == nil {
			s = &SeriesForecast{Series: key}
			by[key] = s
		}
		if c.lang == InfluxQL {
			switch stmt {
			case 0:
				s.Forecasts = toInt(r.vals["forecasts"])
			case 1:
				s.Scored = toInt(r.vals["scored"])
				s.MAE, _ = toFloat(r.vals["mae"])
				s.LastValueMAE, _ = toFloat(r.vals["last_value_mae"])
			}
			return nil
		}
		switch r.result {
		case "count":
			s.Forecasts = toInt(r.vals["_value"])
		case "scored":
			s.Scored = toInt(r.vals["_value"])
		case "mean":
			s.MAE, _ = toFloat(r.vals["_value"])
		case "baseline":
			s.LastValueMAE, _ = toFloat(r.vals["_value"])
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]SeriesForecast, 0, len(by))
	for _, s := range by {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Series < out[j].Series })
	return out, nil
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case uint64:
		return int64(x)
	case float64:
		return int64(x)
	}
	return 0
}

// SeriesKey rebuilds the input series key from a Flux record of an
// output point (see seriesKey).
func SeriesKey(r *query.FluxRecord) (string, error) {
	return seriesKey(fluxRow(r).tags)
}

// seriesKey rebuilds the input series key from an output point's tags,
// undoing sinks.OutputTagKey's renaming (the tags tsrep adds are not input
// tags).
func seriesKey(tags map[string]string) (string, error) {
	meas, field := tags["measurement"], tags["field"]
	if meas == "" || field == "" {
		return "", fmt.Errorf("a row without measurement/field tags (tags %v): not written by tsrep", tags)
	}
	id := ingest.SeriesID{Measurement: meas, Field: field}
	for k, v := range tags {
		if v == "" {
			continue
		}
		k, ok := sinks.InputTagKey(k)
		if !ok {
			continue
		}
		id.Tags = append(id.Tags, ingest.KV{Key: k, Value: v})
	}
	slices.SortFunc(id.Tags, func(a, b ingest.KV) int { return strings.Compare(a.Key, b.Key) })
	return id.String(), nil
}
