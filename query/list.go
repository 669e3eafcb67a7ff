package query

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/sinks"
)

// SeriesFilter selects input series by measurement, field and tags; empty
// parts select everything.
type SeriesFilter struct {
	Measurement string
	Field       string
	// Tags are input tags (as in the series key) the series must have,
	// among others.
	Tags []ingest.KV
}

// SeriesInfo is a series tsrep wrote outputs for.
type SeriesInfo struct {
	Series string // canonical series key
	// Latest is the time of the newest point of each output the series
	// has, by measurement without the prefix (forecast, embedding,
	// anomaly, imputed).
	Latest map[string]time.Time
}

// seriesOutputs are the per-series outputs ListSeries looks in, each with
// a field every one of its points has.
var seriesOutputs = []struct{ meas, field string }{
	{sinks.MeasForecast, "predicted"},
	{sinks.MeasEmbedding, "e0"},
	{MeasAnomaly, "score"},
	{sinks.MeasImputed, "value"},
}

// outputTags is the filter as output tags (sinks.OutputTags' names).
func (f SeriesFilter) outputTags(model string) ([]ingest.KV, error) {
	if err := checkModel(model); err != nil {
		return nil, err
	}
	tags := modelTag(model)
	for _, p := range []struct{ k, v string }{{"measurement", f.Measurement}, {"field", f.Field}} {
		if p.v == "" {
			continue
		}
		if err := checkName(p.k, p.v); err != nil {
			return nil, invalid(err)
		}
		tags = append(tags, ingest.KV{Key: p.k, Value: p.v})
	}
	for _, t := range f.Tags {
		if err := checkName("tag key", t.Key); err != nil {
			return nil, invalid(err)
		}
		if err := checkName("tag value", t.Value); err != nil {
			return nil, invalid(fmt.Errorf("tag %q: %w", t.Key, err))
		}
		tags = append(tags, ingest.KV{Key: sinks.OutputTagKey(t.Key), Value: t.Value})
	}
	sort.SliceStable(tags, func(i, j int) bool { return tags[i].Key < tags[j].Key })
	return tags, nil
}

func seriesListText(bucket, prefix string, tags []ingest.KV) text {
	var q text
	var alts []string
	for _, o := range seriesOutputs {
		q.iql = append(q.iql, fmt.Sprintf(`SELECT %s FROM %s %s GROUP BY * ORDER BY time DESC LIMIT 1`,
			iqlIdent(o.field), iqlIdent(prefix+o.meas), iqlWhere(tags)))
		alts = append(alts, fmt.Sprintf("(r._measurement == %s and r._field == %s)", fluxString(prefix+o.meas), fluxString(o.field)))
	}
	var cond strings.Builder
	for _, t := range tags {
		cond.WriteString(" and ")
		cond.WriteString(fluxColumn(t.Key))
		cond.WriteString(" == ")
		cond.WriteString(fluxString(t.Value))
	}
	rng, _ := fluxRange(time.Time{}, time.Time{})
	q.flux = fmt.Sprintf(`from(bucket: %s)
  |> %s
  |> filter(fn: (r) => (%s)%s)
  |> last()`, fluxString(bucket), rng, strings.Join(alts, " or "), cond.String())
	return q
}

// SeriesListFlux is the Flux of ListSeries: the newest point of each
// output of every series of a model that passes the filter.
func SeriesListFlux(bucket, prefix, model string, f SeriesFilter) (string, error) {
	tags, err := f.outputTags(model)
	if err != nil {
		return "", err
	}
	return seriesListText(bucket, prefix, tags).flux, nil
}

// SeriesListInfluxQL is the InfluxQL of ListSeries: one statement per
// output.
func SeriesListInfluxQL(prefix, model string, f SeriesFilter) (string, error) {
	tags, err := f.outputTags(model)
	if err != nil {
		return "", err
	}
	return statements(seriesListText("", prefix, tags).iql), nil
}

// ListSeries returns the series model wrote forecasts, embeddings, anomaly
// scores or imputed values for that pass f, sorted by key, with the time
// of each output's newest point.
func (c *Client) ListSeries(ctx context.Context, model string, f SeriesFilter) ([]SeriesInfo, error) {
	tags, err := f.outputTags(model)
	if err != nil {
		return nil, err
	}
	by := map[string]*SeriesInfo{}
	err = c.run(ctx, seriesListText(c.bucket, c.prefix, tags), func(stmt int, r row) error {
		key, err := seriesKey(r.tags)
		if err != nil {
			return err
		}
		out := ""
		if c.lang == InfluxQL {
			if stmt < len(seriesOutputs) {
				out = seriesOutputs[stmt].meas
			}
		} else if m, ok := r.vals["_measurement"].(string); ok {
			out = strings.TrimPrefix(m, c.prefix)
		}
		s := by[key]
		if s == nil {
			s = &SeriesInfo{Series: key, Latest: map[string]time.Time{}}
			by[key] = s
		}
		if t, ok := s.Latest[out]; !ok || r.time.After(t) {
			s.Latest[out] = r.time
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]SeriesInfo, 0, len(by))
	for _, s := range by {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Series < out[j].Series })
	return out, nil
}
