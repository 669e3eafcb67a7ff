package query

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/sinks"
)

// This file builds the text of every query: Flux (what the Client runs)
// and an equivalent InfluxQL statement (for the influx CLI, Grafana and the
// README). Every name and value that comes from data is escaped, so a
// series key with quotes, backslashes, spaces, commas or "${" gives a
// query that matches exactly that key.
//
// Time bounds are [from, to): from inclusive, to exclusive; a zero from
// means the start of time and a zero to means no upper bound (forecasts
// are written one interval ahead of the data, possibly after now). "at" is
// inclusive: the latest point at or before it.

// farFuture is the stop of a range with no upper bound. range() defaults
// to now(), which would hide the newest forecasts: they are stamped one
// interval after the last data point, which may be later than now.
var farFuture = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)

// fluxString quotes s as a Flux string literal. Flux strings interpolate
// "${...}" and know only the escapes \\ \" \n \r \t \$ (Flux 0.65 in
// InfluxDB 1.8 rejects \u and \x); other bytes, UTF-8 included, are
// written as they are.
func fluxString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '$':
			if i+1 < len(s) && s[i+1] == '{' {
				b.WriteByte('\\')
			}
			b.WriteByte('$')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

var fluxKeywords = map[string]bool{
	"and": true, "or": true, "not": true, "empty": true, "in": true, "import": true,
	"package": true, "return": true, "option": true, "builtin": true, "test": true,
	"if": true, "then": true, "else": true, "exists": true,
}

// fluxColumn is the Flux expression for column k of record r: r.k when k
// is an identifier, r["k"] otherwise.
func fluxColumn(k string) string {
	if isIdent(k) && !fluxKeywords[k] {
		return "r." + k
	}
	return "r[" + fluxString(k) + "]"
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// fluxTime is a Flux time literal; the zero time is the Unix epoch, 0.
func fluxTime(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// fluxRange is the range() call of [from, to) and the extra condition on
// _time its filter needs: InfluxDB 1.8 returns points at range's stop,
// which Flux documents as exclusive (influxdata/influxdb#19966), so the
// bound is checked again in the filter; on 2.x that is a no-op.
func fluxRange(from, to time.Time) (rng, cond string) {
	if to.IsZero() {
		return fmt.Sprintf("range(start: %s, stop: %s)", fluxTime(from), fluxTime(farFuture)), ""
	}
	return fmt.Sprintf("range(start: %s, stop: %s)", fluxTime(from), fluxTime(to)), " and r._time < " + fluxTime(to)
}

// fluxUpTo is the range() call of everything at or before at, and its
// filter condition (see fluxRange).
func fluxUpTo(at time.Time) (rng, cond string) {
	if at.IsZero() {
		return fluxRange(time.Time{}, time.Time{})
	}
	rng, _ = fluxRange(time.Time{}, at.Add(time.Nanosecond))
	return rng, " and r._time <= " + fluxTime(at)
}

// fluxPredicate is the body of a filter() function: the measurement, then
// each tag equal to its value.
func fluxPredicate(measurement string, tags []ingest.KV) string {
	var b strings.Builder
	b.WriteString("r._measurement == ")
	b.WriteString(fluxString(measurement))
	for _, t := range tags {
		b.WriteString(" and ")
		b.WriteString(fluxColumn(t.Key))
		b.WriteString(" == ")
		b.WriteString(fluxString(t.Value))
	}
	return b.String()
}

const fluxPivot = `pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")`

// iqlIdent quotes s as an InfluxQL identifier.
func iqlIdent(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// iqlString quotes s as an InfluxQL string literal.
func iqlString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`)
	return `'` + r.Replace(s) + `'`
}

func iqlTime(t time.Time) string { return "'" + t.UTC().Format(time.RFC3339Nano) + "'" }

// iqlWhere is a WHERE clause: each tag equal to its value, then the time
// conditions (empty strings are left out).
func iqlWhere(tags []ingest.KV, times ...string) string {
	var conds []string
	for _, t := range tags {
		conds = append(conds, iqlIdent(t.Key)+" = "+iqlString(t.Value))
	}
	for _, c := range times {
		if c != "" {
			conds = append(conds, c)
		}
	}
	return "WHERE " + strings.Join(conds, " AND ")
}

func iqlFrom(from time.Time) string {
	if from.IsZero() {
		return ""
	}
	return "time >= " + iqlTime(from)
}

func iqlTo(to time.Time) string {
	if to.IsZero() {
		return ""
	}
	return "time < " + iqlTime(to)
}

func iqlAt(at time.Time) string {
	if at.IsZero() {
		return ""
	}
	return "time <= " + iqlTime(at)
}

// target is a parsed series: its canonical key and the tags of its output
// points (sinks.OutputTags: the input tags under sinks.OutputTagKey's
// names, tag_<name> where they would collide).
type target struct {
	key  string
	tags []ingest.KV
}

func parseTarget(series, model string) (target, error) {
	if err := checkModel(model); err != nil {
		return target{}, err
	}
	id, err := ingest.ParseSeriesKey(series)
	if err != nil {
		return target{}, fmt.Errorf("series %q: %w (escape ',', ' ', '=', '#' and '\\' inside names with a backslash)", series, err)
	}
	slices.SortStableFunc(id.Tags, func(a, b ingest.KV) int { return strings.Compare(a.Key, b.Key) })
	return target{key: id.String(), tags: sinks.OutputTags(id, model)}, nil
}

// CanonicalSeries returns the canonical form of a series key: tags sorted
// by key, escaping as tsrep writes it. It is how query results name series.
func CanonicalSeries(series string) (string, error) {
	id, err := ingest.ParseSeriesKey(series)
	if err != nil {
		return "", fmt.Errorf("series %q: %w", series, err)
	}
	slices.SortStableFunc(id.Tags, func(a, b ingest.KV) int { return strings.Compare(a.Key, b.Key) })
	return id.String(), nil
}

func checkModel(model string) error {
	if model == "" {
		return fmt.Errorf("model is empty: set model.name in the config or pass --model (the value of the model tag)")
	}
	return nil
}

func modelTag(model string) []ingest.KV { return []ingest.KV{{Key: "model", Value: model}} }

// EmbeddingFlux is the Flux of Embedding: the latest embedding of one
// series at or before at (zero: the latest), e0..e{D-1} pivoted into one
// row. The filter also matches series whose tags are a superset of the
// key's; Client.Embedding keeps only the exact series.
func EmbeddingFlux(bucket, measurement, series string, at time.Time, model string) (string, error) {
	t, err := parseTarget(series, model)
	if err != nil {
		return "", err
	}
	rng, cond := fluxUpTo(at)
	return fmt.Sprintf(`from(bucket: %s)
  |> %s
  |> filter(fn: (r) => %s%s)
  |> last()
  |> %s`, fluxString(bucket), rng, fluxPredicate(measurement, t.tags), cond, fluxPivot), nil
}

// EmbeddingInfluxQL is the InfluxQL of Embedding, run against the
// database (the bucket of InfluxDB 1.8).
func EmbeddingInfluxQL(measurement, series string, at time.Time, model string) (string, error) {
	t, err := parseTarget(series, model)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(`SELECT /^e[0-9]+$/ FROM %s %s GROUP BY * ORDER BY time DESC LIMIT 1`,
		iqlIdent(measurement), iqlWhere(t.tags, iqlAt(at))), nil
}

// LatestEmbeddingsFlux is the Flux of LatestEmbeddings (and of Similar):
// the latest embedding at or before at of every series of a model.
func LatestEmbeddingsFlux(bucket, measurement string, at time.Time, model string) string {
	rng, cond := fluxUpTo(at)
	return fmt.Sprintf(`from(bucket: %s)
  |> %s
  |> filter(fn: (r) => %s%s)
  |> last()
  |> %s`, fluxString(bucket), rng, fluxPredicate(measurement, modelTag(model)), cond, fluxPivot)
}

// LatestEmbeddingsInfluxQL is the InfluxQL of LatestEmbeddings.
func LatestEmbeddingsInfluxQL(measurement string, at time.Time, model string) string {
	return fmt.Sprintf(`SELECT /^e[0-9]+$/ FROM %s %s GROUP BY * ORDER BY time DESC LIMIT 1`,
		iqlIdent(measurement), iqlWhere(modelTag(model), iqlAt(at)))
}

// SimilarFlux is the Flux of Similar: every series' latest embedding at or
// before at. The cosine similarities are computed from its rows.
func SimilarFlux(bucket, measurement string, at time.Time, model string) string {
	return LatestEmbeddingsFlux(bucket, measurement, at, model)
}

// SimilarInfluxQL is the InfluxQL of Similar (the latest embedding of
// every series; the cosine similarities are computed from its rows).
func SimilarInfluxQL(measurement string, at time.Time, model string) string {
	return LatestEmbeddingsInfluxQL(measurement, at, model)
}

// ForecastsFlux is the Flux of Forecasts: one series' forecast points in
// [from, to) with predicted, actual and last_value pivoted into columns
// (null where not written yet); Forecasts computes the errors.
func ForecastsFlux(bucket, measurement, series string, from, to time.Time, model string) (string, error) {
	return seriesRangeFlux(bucket, measurement, series, from, to, model)
}

// ForecastsInfluxQL is the InfluxQL of Forecasts.
func ForecastsInfluxQL(measurement, series string, from, to time.Time, model string) (string, error) {
	return seriesRangeInfluxQL(`"predicted", "actual", abs("actual" - "predicted") AS "abs_error", "last_value", abs("actual" - "last_value") AS "last_value_abs_error"`, measurement, series, from, to, model)
}

// ImputedFlux is the Flux of Imputed: the values filled into one series'
// gaps in [from, to).
func ImputedFlux(bucket, measurement, series string, from, to time.Time, model string) (string, error) {
	return seriesRangeFlux(bucket, measurement, series, from, to, model)
}

// ImputedInfluxQL is the InfluxQL of Imputed.
func ImputedInfluxQL(measurement, series string, from, to time.Time, model string) (string, error) {
	return seriesRangeInfluxQL(`"value"`, measurement, series, from, to, model)
}

func seriesRangeFlux(bucket, measurement, series string, from, to time.Time, model string) (string, error) {
	t, err := parseTarget(series, model)
	if err != nil {
		return "", err
	}
	rng, cond := fluxRange(from, to)
	return fmt.Sprintf(`from(bucket: %s)
  |> %s
  |> filter(fn: (r) => %s%s)
  |> %s`, fluxString(bucket), rng, fluxPredicate(measurement, t.tags), cond, fluxPivot), nil
}

func seriesRangeInfluxQL(fields, measurement, series string, from, to time.Time, model string) (string, error) {
	t, err := parseTarget(series, model)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(`SELECT %s FROM %s %s GROUP BY *`,
		fields, iqlIdent(measurement), iqlWhere(t.tags, iqlFrom(from), iqlTo(to))), nil
}

// TrainLossesFlux is the Flux of TrainLosses: the training steps of a
// model in [from, to), one row per step and partition.
func TrainLossesFlux(bucket, measurement, model string, from, to time.Time) string {
	rng, cond := fluxRange(from, to)
	return fmt.Sprintf(`from(bucket: %s)
  |> %s
  |> filter(fn: (r) => %s%s)
  |> %s`, fluxString(bucket), rng, fluxPredicate(measurement, modelTag(model)), cond, fluxPivot)
}

// TrainLossesInfluxQL is the InfluxQL of TrainLosses.
func TrainLossesInfluxQL(measurement, model string, from, to time.Time) string {
	return fmt.Sprintf(`SELECT "step", "windows", "loss_forecast", "loss_impute", "loss_contrast" FROM %s %s GROUP BY "topic", "partition"`,
		iqlIdent(measurement), iqlWhere(modelTag(model), iqlFrom(from), iqlTo(to)))
}
