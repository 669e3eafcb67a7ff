// Package query reads back what tsrep wrote to InfluxDB, with Flux through
// influxdb-client-go: forecast accuracy per series, embeddings, similar
// series, imputed gaps and training losses. The Flux text of each query is
// exported (and an equivalent InfluxQL statement) so the README and users
// of Grafana or the influx CLI can run the same thing.
package query

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/influxdata/influxdb-client-go/v2/api"
	"github.com/influxdata/influxdb-client-go/v2/api/query"

	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/sinks"
)

// Client runs tsrep's queries against one bucket.
type Client struct {
	q      api.QueryAPI
	bucket string
	prefix string
}

// New returns a Client; prefix is influx.measurement_prefix.
func New(q api.QueryAPI, bucket, prefix string) *Client {
	return &Client{q: q, bucket: bucket, prefix: prefix}
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

// ForecastSummary returns per-series forecast counts and prequential MAE
// next to the last-value baseline, sorted by series.
func (c *Client) ForecastSummary(ctx context.Context, model string) ([]SeriesForecast, error) {
	res, err := c.q.Query(ctx, ForecastSummaryFlux(c.bucket, c.prefix+sinks.MeasForecast, model))
	if err != nil {
		return nil, fmt.Errorf("flux query: %w", err)
	}
	defer res.Close()
	by := map[string]*SeriesForecast{}
	for res.Next() {
		r := res.Record()
		key, err := SeriesKey(r)
		if err != nil {
			return nil, err
		}
		s := by[key]
		if s == nil {
			s = &SeriesForecast{Series: key}
			by[key] = s
		}
		switch r.Result() {
		case "count":
			s.Forecasts = toInt(r.Value())
		case "scored":
			s.Scored = toInt(r.Value())
		case "mean":
			s.MAE, _ = r.Value().(float64)
		case "baseline":
			s.LastValueMAE, _ = r.Value().(float64)
		}
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("flux query: %w", err)
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

// SeriesKey rebuilds the input series key from an output record's tags,
// undoing sinks.OutputTagKey's renaming (Flux's own columns and the tags
// tsrep adds are not input tags).
func SeriesKey(r *query.FluxRecord) (string, error) {
	vals := r.Values()
	meas, _ := vals["measurement"].(string)
	field, _ := vals["field"].(string)
	if meas == "" || field == "" {
		return "", fmt.Errorf("record of %s has no measurement/field tags: not written by tsrep", r.Measurement())
	}
	id := ingest.SeriesID{Measurement: meas, Field: field}
	for k, v := range vals {
		s, ok := v.(string)
		if !ok || s == "" {
			continue
		}
		k, ok := sinks.InputTagKey(k)
		if !ok {
			continue
		}
		id.Tags = append(id.Tags, ingest.KV{Key: k, Value: s})
	}
	slices.SortFunc(id.Tags, func(a, b ingest.KV) int { return strings.Compare(a.Key, b.Key) })
	return id.String(), nil
}
