package query

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/sinks"
)

// This file builds the text of every query in both languages: InfluxQL
// (what the Client runs by default) and Flux; the exported builders give
// the same text to --explain, the README, the influx CLI and Grafana.
// Every name and value that comes from data is escaped (identifiers in
// double quotes, string literals in single quotes, Flux strings with
// "${" escaped), and a name tsrep could not have written (a control
// character, invalid UTF-8, a trailing backslash) is refused before any
// query: a series key with quotes, backslashes, spaces, commas, ";", "|>"
// or "${" gives a query that matches exactly that key.
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

// iqlString quotes s as an InfluxQL string literal. InfluxQL has no
// escape for a carriage return (its scanner reads one as a newline): the
// names tsrep writes have no control characters (checkName), so none
// reaches a query.
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
	if len(conds) == 0 {
		return ""
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

// iqlFloat is a number literal of InfluxQL and Flux (neither reads
// exponents): decimal digits with a point.
func iqlFloat(f float64) string {
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
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
	id, err := parseSeries(series)
	if err != nil {
		return target{}, err
	}
	return target{key: id.String(), tags: sinks.OutputTags(id, model)}, nil
}

// parseSeries parses and checks a series key, tags sorted by key.
func parseSeries(series string) (ingest.SeriesID, error) {
	id, err := ingest.ParseSeriesKey(series)
	if err != nil {
		return id, invalid(fmt.Errorf("series %q: %w (escape ',', ' ', '=', '#' and '\\' inside names with a backslash)", series, err))
	}
	names := []struct{ what, s string }{{"measurement", id.Measurement}, {"field", id.Field}}
	for _, t := range id.Tags {
		names = append(names, struct{ what, s string }{"tag key", t.Key}, struct{ what, s string }{"tag value", t.Value})
	}
	for _, n := range names {
		if err := checkName(n.what, n.s); err != nil {
			return id, invalid(fmt.Errorf("series %q: %w", series, err))
		}
	}
	slices.SortStableFunc(id.Tags, func(a, b ingest.KV) int { return strings.Compare(a.Key, b.Key) })
	return id, nil
}

// checkName refuses a name no tsrep output carries: the decoders let
// through no empty name, invalid UTF-8, control character or trailing
// backslash (they could not be written to InfluxDB), so a key with one
// is a mistake, and a query for it could only come back empty.
func checkName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s is empty", what)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s %q is not valid UTF-8", what, s)
	case strings.HasSuffix(s, `\`):
		return fmt.Errorf("%s %q ends with a backslash: tsrep writes no such name", what, s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("%s %q holds the control character %q: tsrep writes no such name", what, s, c)
		}
	}
	return nil
}

// CanonicalSeries returns the canonical form of a series key: tags sorted
// by key, escaping as tsrep writes it. It is how query results name series.
func CanonicalSeries(series string) (string, error) {
	id, err := parseSeries(series)
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// ErrInvalid is wrapped by the errors of calls refused before any query
// ran: a malformed series key, a name tsrep never writes, an empty
// model, k < 1, a score out of [0, 1].
var ErrInvalid = errors.New("invalid argument")

// invalidError is an error that wraps ErrInvalid without saying so.
type invalidError struct{ err error }

func (e invalidError) Error() string   { return e.err.Error() }
func (e invalidError) Unwrap() []error { return []error{e.err, ErrInvalid} }

func invalid(err error) error { return invalidError{err} }

func checkModel(model string) error {
	if model == "" {
		return invalid(errors.New("model is empty: set model.name in the config or pass --model (the value of the model tag)"))
	}
	if err := checkName("model", model); err != nil {
		return invalid(fmt.Errorf("model: %w", err))
	}
	return nil
}

func modelTag(model string) []ingest.KV { return []ingest.KV{{Key: "model", Value: model}} }

// NewestVersion, passed as a version, asks for the newest embedding
// whatever its encoder version.
const NewestVersion int64 = math.MinInt64

// Embedding fields: e0..e{D-1} and the encoder version.
const (
	fluxEmbeddingFields = `(r._field =~ /^e[0-9]+$/ or r._field == "version")`
	iqlEmbeddingFields  = `/^(e[0-9]+|version)$/`
)

// Reading embeddings of one encoder version takes up to two steps (see
// Client.latestEmbeddings). First, newestEmbeddingText: every series'
// newest embedding, cheap in both languages (last(); ORDER BY time DESC
// LIMIT 1). A series whose newest embedding is of the version is done;
// embeddings without a version field are version 0, and come before the
// first one with a version (tsrep has written versions since; only an
// older tsrep writing after a newer one would mix them). Only if a series'
// newest embedding has another version does versionEmbeddingText look
// further back.

// newestEmbeddingText is the query of the newest embedding at or before at
// of every series whose output tags include tags, whatever its version.
func newestEmbeddingText(bucket, measurement string, tags []ingest.KV, at time.Time) text {
	rng, cond := fluxUpTo(at)
	return text{
		flux: fmt.Sprintf(`from(bucket: %s)
  |> %s
  |> filter(fn: (r) => %s and %s%s)
  |> last()
  |> %s`, fluxString(bucket), rng, fluxPredicate(measurement, tags), fluxEmbeddingFields, cond, fluxPivot),
		iql: []string{fmt.Sprintf(`SELECT %s FROM %s %s GROUP BY * ORDER BY time DESC LIMIT 1`,
			iqlEmbeddingFields, iqlIdent(measurement), iqlWhere(tags, iqlAt(at)))},
	}
}

// versionEmbeddingText is the query of the embeddings of one version
// (not NewestVersion) at or before at of every series whose output tags
// include tags.
//
// Flux pivots the fields into rows, gathers them into one table (Flux 0.65
// of InfluxDB 1.8 cannot name a column that a table lacks, and series with
// no version field lack one) and keeps the rows of the version: every
// such embedding, of which the reader keeps each series' newest.
//
// InfluxQL selects each series' newest row whose version field equals the
// version. A missing field matches no InfluxQL condition, so for version 0
// a second statement finds each series' first row with a version: its
// rows before that have none, and embeddingBeforeIQL reads the newest of
// them.
func versionEmbeddingText(bucket, measurement string, tags []ingest.KV, at time.Time, version int64) text {
	return versionQuery(bucket, measurement, tags, at, strconv.FormatInt(version, 10), version == 0)
}

// versionQuery is versionEmbeddingText with the version as text (a number,
// or a placeholder in Explain) and whether it is 0.
func versionQuery(bucket, measurement string, tags []ingest.KV, at time.Time, v string, zero bool) text {
	rng, cond := fluxUpTo(at)
	q := text{
		flux: fmt.Sprintf(`from(bucket: %s)
  |> %s
  |> filter(fn: (r) => %s and %s%s)
  |> %s
  |> group()
  |> filter(fn: (r) => (if exists r.version then r.version else 0) == %s)`,
			fluxString(bucket), rng, fluxPredicate(measurement, tags), fluxEmbeddingFields, cond, fluxPivot, v),
		iql: []string{fmt.Sprintf(`SELECT %s FROM %s %s GROUP BY * ORDER BY time DESC LIMIT 1`,
			iqlEmbeddingFields, iqlIdent(measurement), iqlWhere(tags, `"version" = `+v, iqlAt(at)))},
	}
	if zero {
		q.iql = append(q.iql, fmt.Sprintf(`SELECT "version" FROM %s %s GROUP BY * ORDER BY time ASC LIMIT 1`,
			iqlIdent(measurement), iqlWhere(tags, iqlAt(at))))
	}
	return q
}

// embeddingBeforeIQL is the InfluxQL of one series' newest embedding
// before t (for version 0: see versionEmbeddingText).
func embeddingBeforeIQL(measurement string, tags []ingest.KV, t time.Time) string {
	return fmt.Sprintf(`SELECT %s FROM %s %s GROUP BY * ORDER BY time DESC LIMIT 1`,
		iqlEmbeddingFields, iqlIdent(measurement), iqlWhere(tags, "time < "+iqlTime(t)))
}

// embeddingText is the query text shown for a version: the newest
// embeddings for NewestVersion, else the embeddings of the version, with
// for version 0 in InfluxQL the newest embeddings (those without a
// version) between its two statements.
func embeddingText(bucket, measurement string, tags []ingest.KV, at time.Time, version int64) text {
	newest := newestEmbeddingText(bucket, measurement, tags, at)
	if version == NewestVersion {
		return newest
	}
	q := versionEmbeddingText(bucket, measurement, tags, at, version)
	if version == 0 {
		q.iql = []string{q.iql[0], newest.iql[0], q.iql[1]}
	}
	return q
}

// EmbeddingFlux is the Flux of EmbeddingOfVersion: with NewestVersion,
// the latest embedding of one series at or before at (zero: the latest),
// e0..e{D-1} and version pivoted into one row; with a version, every
// embedding of that version at or before at, of which the newest is the
// answer. The filter also matches series whose tags are a superset of the
// key's; the Client keeps only the exact series.
func EmbeddingFlux(bucket, measurement, series string, at time.Time, model string, version int64) (string, error) {
	t, err := parseTarget(series, model)
	if err != nil {
		return "", err
	}
	return embeddingText(bucket, measurement, t.tags, at, version).flux, nil
}

// EmbeddingInfluxQL is the InfluxQL of EmbeddingOfVersion, run against
// the database (the bucket of InfluxDB 1.8): one statement, or three for
// version 0 (see LatestEmbeddingsInfluxQL).
func EmbeddingInfluxQL(measurement, series string, at time.Time, model string, version int64) (string, error) {
	t, err := parseTarget(series, model)
	if err != nil {
		return "", err
	}
	return statements(embeddingText("", measurement, t.tags, at, version).iql), nil
}

// LatestEmbeddingsFlux is the Flux of LatestEmbeddingsOfVersion (and of
// Similar): with NewestVersion, the latest embedding at or before at of
// every series of a model; with a version, every embedding of that
// version at or before at, of which each series' newest is the answer.
func LatestEmbeddingsFlux(bucket, measurement string, at time.Time, model string, version int64) string {
	return embeddingText(bucket, measurement, modelTag(model), at, version).flux
}

// LatestEmbeddingsInfluxQL is the InfluxQL of LatestEmbeddingsOfVersion:
// each series' latest embedding of the version at or before at. For
// version 0, which embeddings without a version field count as, it is
// three statements: each series' newest row with version = 0, its newest
// row (which counts if it has no version), and its first row with a
// version (the rows before it have none: for a series with no row of
// version 0, tsrep then reads its newest row before that time).
func LatestEmbeddingsInfluxQL(measurement string, at time.Time, model string, version int64) string {
	return statements(embeddingText("", measurement, modelTag(model), at, version).iql)
}

// SimilarFlux is the Flux of Similar: every series' latest embedding of
// one version at or before at. The cosine similarities are computed from
// its rows.
func SimilarFlux(bucket, measurement string, at time.Time, model string, version int64) string {
	return LatestEmbeddingsFlux(bucket, measurement, at, model, version)
}

// SimilarInfluxQL is the InfluxQL of Similar (see SimilarFlux).
func SimilarInfluxQL(measurement string, at time.Time, model string, version int64) string {
	return LatestEmbeddingsInfluxQL(measurement, at, model, version)
}

// ForecastsFlux is the Flux of Forecasts: one series' forecast points in
// [from, to) with predicted, actual and last_value pivoted into columns
// (null where not written yet); Forecasts computes the errors.
func ForecastsFlux(bucket, measurement, series string, from, to time.Time, model string) (string, error) {
	return seriesRangeFlux(bucket, measurement, series, from, to, model, "")
}

// ForecastsInfluxQL is the InfluxQL of Forecasts.
func ForecastsInfluxQL(measurement, series string, from, to time.Time, model string) (string, error) {
	return seriesRangeInfluxQL(forecastFields, measurement, series, from, to, model, "")
}

const forecastFields = `"predicted", "actual", abs("actual" - "predicted") AS "abs_error", "last_value", abs("actual" - "last_value") AS "last_value_abs_error"`

// ImputedFlux is the Flux of Imputed: the values filled into one series'
// gaps in [from, to).
func ImputedFlux(bucket, measurement, series string, from, to time.Time, model string) (string, error) {
	return seriesRangeFlux(bucket, measurement, series, from, to, model, "")
}

// ImputedInfluxQL is the InfluxQL of Imputed.
func ImputedInfluxQL(measurement, series string, from, to time.Time, model string) (string, error) {
	return seriesRangeInfluxQL(`"value"`, measurement, series, from, to, model, "")
}

// AnomaliesFlux is the Flux of Anomalies: one series' anomaly scores in
// [from, to), with score at least minScore (0: every point).
func AnomaliesFlux(bucket, measurement, series string, from, to time.Time, model string, minScore float64) (string, error) {
	if err := checkMinScore(minScore); err != nil {
		return "", err
	}
	after := ""
	if minScore > 0 {
		after = "\n  |> filter(fn: (r) => r.score >= " + iqlFloat(minScore) + ")"
	}
	return seriesRangeFlux(bucket, measurement, series, from, to, model, after)
}

// AnomaliesInfluxQL is the InfluxQL of Anomalies.
func AnomaliesInfluxQL(measurement, series string, from, to time.Time, model string, minScore float64) (string, error) {
	if err := checkMinScore(minScore); err != nil {
		return "", err
	}
	cond := ""
	if minScore > 0 {
		cond = `"score" >= ` + iqlFloat(minScore)
	}
	return seriesRangeInfluxQL(anomalyFields, measurement, series, from, to, model, cond)
}

const anomalyFields = `"score", "surprise", "z", "novelty"`

func checkMinScore(s float64) error {
	if !(s >= 0 && s <= 1) {
		return invalid(fmt.Errorf("minimum score %v: anomaly scores are in [0, 1]", s))
	}
	return nil
}

func seriesRangeFlux(bucket, measurement, series string, from, to time.Time, model, after string) (string, error) {
	t, err := parseTarget(series, model)
	if err != nil {
		return "", err
	}
	rng, cond := fluxRange(from, to)
	return fmt.Sprintf(`from(bucket: %s)
  |> %s
  |> filter(fn: (r) => %s%s)
  |> %s%s`, fluxString(bucket), rng, fluxPredicate(measurement, t.tags), cond, fluxPivot, after), nil
}

func seriesRangeInfluxQL(fields, measurement, series string, from, to time.Time, model, cond string) (string, error) {
	t, err := parseTarget(series, model)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(`SELECT %s FROM %s %s GROUP BY *`,
		fields, iqlIdent(measurement), iqlWhere(t.tags, cond, iqlFrom(from), iqlTo(to))), nil
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

// EmbeddingCountFlux is the Flux of EmbeddingCount: the embeddings a
// model wrote, all series together.
func EmbeddingCountFlux(bucket, measurement, model string) string {
	return fmt.Sprintf(`from(bucket: %s)
  |> range(start: 0, stop: %s)
  |> filter(fn: (r) => %s and r._field == "e0")
  |> group()
  |> count()`, fluxString(bucket), fluxTime(farFuture), fluxPredicate(measurement, modelTag(model)))
}

// EmbeddingCountInfluxQL is the InfluxQL of EmbeddingCount.
func EmbeddingCountInfluxQL(measurement, model string) string {
	return fmt.Sprintf(`SELECT count("e0") FROM %s %s`, iqlIdent(measurement), iqlWhere(modelTag(model)))
}
