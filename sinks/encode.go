// Package sinks writes what the learners produce. Results are encoded as
// InfluxDB line protocol (the schema below) and written through a Writer:
// the InfluxDB writer blocks until the server has the points, and that
// success is what lets the pipeline commit Kafka offsets.
//
// Schema (every output point's measurement, tags and timestamp are a pure
// function of the input, so a replay overwrites instead of duplicating):
//
//	<prefix>forecast   tags: the input series' tags + measurement, field, model
//	                   at window end + interval: predicted, last_value
//	                   once that slot arrives:   actual
//	                   (one line with all three when the slot arrives before
//	                   the forecast is sent, as when catching up: see Encoder;
//	                   the errors, |actual - predicted| and the last-value
//	                   baseline's |actual - last_value|, are computed when
//	                   queried rather than stored)
//	<prefix>embedding  same tags; e0..e{D-1} and version (the encoder version, an integer) at the window end
//	<prefix>imputed    same tags; value at each filled gap
//	<prefix>train      tags model, topic, partition; step, windows,
//	                   loss_forecast, loss_impute, loss_contrast at the step's latest window end
//
// Output series are injective: no two input series (measurement + tag set
// + field) share an output series. The input tags are written under
// OutputTagKey's names, which never collide with the tags tsrep adds nor
// with each other, and the decoders refuse empty tag values (which InfluxDB
// would drop). Every output timestamp is checked against InfluxDB's range:
// a window whose outputs would fall outside it is reported (Errors), not
// written.
package sinks

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/lru"
	"github.com/tsrep/tsrep/models"
)

// Result is everything one window batch produced.
type Result struct {
	Topic     string
	Partition int
	Model     string
	Batch     *models.Batch
	Out       *models.Output
	Resolved  []models.Resolved
	// Anomalies are the batch's anomaly scores; AnomalyDetails writes
	// their parts (surprise, z, novelty) beside the score.
	Anomalies      []models.AnomalyScore
	AnomalyDetails bool
}

// Measurement names, without the configured prefix.
const (
	MeasForecast  = "forecast"
	MeasEmbedding = "embedding"
	MeasImputed   = "imputed"
	MeasTrain     = "train"
	MeasAnomaly   = "anomaly"
)

// Encoder turns Results into line protocol. It caches each series' output
// tags as line protocol (escaped and checked by the line-protocol library
// once per series), bounded like the series themselves; a line is then the
// measurement (escaped once), those tags, its fields and its timestamp. Not
// safe for concurrent use.
//
// Forecast lines are held back until the text is taken (Take, Bytes), so
// that a forecast whose slot arrives within the same request, as happens
// whenever tsrep is catching up (a backfill, a lagging consumer), goes out
// as one line with its actual value instead of two: the same point in
// InfluxDB, and up to half the lines it has to parse and index.
type Encoder struct {
	meas       [5]string
	measText   [5][]byte // forecast, embedding, imputed, (train), anomaly: escaped by the library
	measErr    error     // a measurement name line protocol cannot carry
	buf        []byte
	enc        lineprotocol.Encoder // the train lines, into buf
	check      lineprotocol.Encoder // escapes and checks a new series' tags
	series     *lru.Map[*seriesOut]
	extra      []ingest.KV
	train      []ingest.KV // tags of the train measurement, sorted
	trainModel string
	fields     []string // "e0".."e{D-1}"
	lines      int
	errs       []EncodeError
	fc         []heldForecast
	fcAt       map[forecastKey]int32 // index into fc
	lineStart  int                   // of the line being written
	nfields    int                   // fields written on it
}

// seriesOut is what the encoder keeps of a series: its output tags as they
// follow the measurement on each of its lines (",k=v,k=v "). It is a struct
// so that its address can identify the series (see forecastKey).
type seriesOut struct {
	tags []byte
}

// heldForecast is a forecast line not yet written, with its resolution if
// the slot has arrived since.
type heldForecast struct {
	s                    *seriesOut
	time                 int64
	predicted, lastValue float64
	resolved             bool
	actual               float64
}

// forecastKey identifies a held forecast: its series, by the identity of
// the series' cache entry, and its time. A series evicted from the cache
// and seen again gets a new entry; its resolution is then written as a
// line of its own, which InfluxDB merges into the same point.
type forecastKey struct {
	s    *seriesOut
	time int64
}

// EncodeError is a result the encoder could not write as line protocol
// (for instance a tag value that is not valid UTF-8).
type EncodeError struct {
	Series string
	Err    error
}

// errNoFields is a per-series line none of whose values line protocol can
// carry (NaN, ±Inf); the line is left out.
var errNoFields = errors.New("no finite field value")

// NewEncoder returns an encoder whose measurements start with prefix and
// whose points all carry the extra tags (e.g. a replay's run tag).
func NewEncoder(prefix string, maxSeries int, extra ...ingest.KV) *Encoder {
	e := &Encoder{series: lru.New[*seriesOut](maxSeries), extra: extra}
	for i, m := range []string{MeasForecast, MeasEmbedding, MeasImputed, MeasTrain, MeasAnomaly} {
		e.meas[i] = prefix + m
	}
	e.enc.SetPrecision(lineprotocol.Nanosecond)
	for m := range e.measText {
		head, err := e.checkedHead(e.meas[m], nil)
		if err != nil && e.measErr == nil {
			e.measErr = fmt.Errorf("measurement %q: %w", e.meas[m], err)
		}
		e.measText[m] = head
	}
	e.fcAt = make(map[forecastKey]int32)
	return e
}

// Reset empties the output buffer, held forecasts included, keeping its
// storage.
func (e *Encoder) Reset() {
	e.buf = e.buf[:0]
	e.lines = 0
	e.errs = e.errs[:0]
	e.fc = e.fc[:0]
	clear(e.fcAt)
}

// Take writes the held forecasts, returns the encoded text and continues
// into next (emptied): a writer can send the returned buffer while encoding
// goes on.
func (e *Encoder) Take(next []byte) []byte {
	b := e.Bytes()
	e.buf = next[:0]
	e.lines = 0
	e.errs = e.errs[:0]
	return b
}

// Bytes writes the held forecasts and returns the encoded text since the
// last Reset or Take.
func (e *Encoder) Bytes() []byte {
	for i := range e.fc {
		f := &e.fc[i]
		e.startLine(0, f.s)
		e.field("predicted", f.predicted)
		e.field("last_value", f.lastValue)
		if f.resolved {
			e.field("actual", f.actual)
		}
		e.endLine(f.time, "")
	}
	e.fc = e.fc[:0]
	clear(e.fcAt)
	return e.buf
}

// Lines is the number of lines encoded since the last Reset or Take, held
// forecasts included.
func (e *Encoder) Lines() int { return e.lines + len(e.fc) }

// Errors lists the results that could not be encoded since the last Reset.
func (e *Encoder) Errors() []EncodeError { return e.errs }

// Encode appends the lines of r.
func (e *Encoder) Encode(r *Result) {
	b, out := r.Batch, r.Out
	for _, l := range out.Late {
		s, err := e.seriesOf(l.Key, r.Model)
		if err != nil {
			e.errs = append(e.errs, EncodeError{Series: l.Key, Err: err})
			continue
		}
		e.embeddingLine(s, l.Embedding, true, l.Version, l.End, l.Key)
	}
	for i := 0; i < out.Rows; i++ {
		key := b.Key(i)
		s, err := e.seriesOf(key, r.Model)
		if err != nil {
			e.errs = append(e.errs, EncodeError{Series: key, Err: err})
			continue
		}
		end := int64(b.End[i])
		if err := windowTimes(end, int64(b.Interval[i]), b.Length); err != nil {
			e.errs = append(e.errs, EncodeError{Series: key, Err: err})
			continue
		}
		if f := out.Forecast[i]; !math.IsNaN(f) {
			t := end + int64(b.Interval[i])
			e.fcAt[forecastKey{s, t}] = int32(len(e.fc))
			e.fc = append(e.fc, heldForecast{s: s, time: t, predicted: f, lastValue: b.LastObserved(i)})
		}
		if out.Dim > 0 && out.EmitEmbedding[i] {
			var version int64
			if out.Version != nil {
				version = out.Version[i]
			}
			e.embeddingLine(s, out.Embedding[i*out.Dim:(i+1)*out.Dim], out.Version != nil, version, end, key)
		}
		if out.Imputed != nil {
			imp := out.Imputed[i*out.Length : (i+1)*out.Length]
			for j, v := range imp {
				if math.IsNaN(v) {
					continue
				}
				e.startLine(2, s)
				e.field("value", v)
				e.endLine(b.SlotTime(i, j), key)
			}
		}
	}
	for _, a := range r.Anomalies {
		key := b.Key(a.Row)
		s, err := e.seriesOf(key, r.Model)
		if err != nil || !ingest.InTimeRange(a.Time) {
			continue // reported for the row
		}
		e.startLine(4, s)
		e.field("score", a.Score)
		if r.AnomalyDetails {
			e.field("surprise", a.Surprise)
			e.field("z", a.Z)
			e.field("novelty", a.Novelty)
		}
		e.endLine(a.Time, key)
	}
	for _, rs := range r.Resolved {
		key := b.Key(rs.Row)
		s, err := e.seriesOf(key, r.Model)
		if err != nil || !resolvedInWindow(b, rs) {
			continue // already reported for the row
		}
		if k, ok := e.fcAt[forecastKey{s, rs.Time}]; ok {
			f := &e.fc[k]
			f.resolved, f.actual = true, rs.Actual
			continue
		}
		e.startLine(0, s)
		e.field("actual", rs.Actual)
		e.endLine(rs.Time, key)
	}
	if len(out.Train) == 0 {
		return
	}
	// Train lines go through the library's checks: their topic and model
	// are not checked beforehand.
	e.enc.SetBuffer(e.buf)
	tags := e.trainTags(r)
	for _, st := range out.Train {
		if !ingest.InTimeRange(st.Time) {
			e.errs = append(e.errs, EncodeError{Series: "train", Err: fmt.Errorf("train step %d: %w", st.Step, errTimeRange)})
			continue
		}
		e.enc.StartLine(e.meas[3])
		for _, t := range tags {
			e.enc.AddTag(t.Key, t.Value)
		}
		e.enc.AddField("step", lineprotocol.IntValue(int64(st.Step))) // 1.8 has no unsigned fields
		e.enc.AddField("windows", lineprotocol.IntValue(int64(st.Windows)))
		for _, f := range []struct {
			k string
			v float64
		}{{"loss_forecast", st.LossForecast}, {"loss_impute", st.LossImpute}, {"loss_contrast", st.LossContrast}} {
			if fv, ok := lineprotocol.FloatValue(f.v); ok {
				e.enc.AddField(f.k, fv)
			}
		}
		e.enc.EndLine(time.Unix(0, st.Time))
		if err := e.enc.Err(); err != nil {
			e.errs = append(e.errs, EncodeError{Series: "train", Err: err})
			e.enc.ClearErr()
			continue
		}
		e.lines++
	}
	e.buf = e.enc.Bytes()
}

// startLine begins a line of measurement m (forecast, embedding, imputed)
// for series s.
func (e *Encoder) startLine(m int, s *seriesOut) {
	e.lineStart, e.nfields = len(e.buf), 0
	e.buf = append(e.buf, e.measText[m]...)
	e.buf = append(e.buf, s.tags...)
}

// field adds a float field, skipping NaN and ±Inf (line protocol has
// neither). Keys are the encoder's own, which need no escaping; the value
// is formatted by the line-protocol library.
func (e *Encoder) field(k string, v float64) {
	fv, ok := lineprotocol.FloatValue(v)
	if !ok {
		return
	}
	if e.nfields > 0 {
		e.buf = append(e.buf, ',')
	}
	e.nfields++
	e.buf = append(e.buf, k...)
	e.buf = append(e.buf, '=')
	e.buf = fv.AppendBytes(e.buf)
}

// embeddingLine writes an embedding (with its encoder version if given)
// at time t.
func (e *Encoder) embeddingLine(s *seriesOut, emb []float64, versioned bool, version, t int64, key string) {
	e.startLine(1, s)
	scale := embeddingScale(emb)
	for j, v := range emb {
		if scale > 0 {
			v = math.Round(v*scale) / scale
		}
		e.field(e.embField(j), v)
	}
	if versioned {
		e.intField("version", version)
	}
	e.endLine(t, key)
}

// intField appends an integer field (a field with a finite value must
// come first: a line is taken back if it has none).
func (e *Encoder) intField(k string, v int64) {
	if e.nfields == 0 {
		return
	}
	e.buf = append(e.buf, ',')
	e.nfields++
	e.buf = append(e.buf, k...)
	e.buf = append(e.buf, '=')
	e.buf = strconv.AppendInt(e.buf, v, 10)
	e.buf = append(e.buf, 'i')
}

// endLine ends a per-series line with its timestamp (nanoseconds), or
// takes it back if it has no field.
func (e *Encoder) endLine(t int64, series string) {
	if e.nfields == 0 {
		e.buf = e.buf[:e.lineStart]
		e.errs = append(e.errs, EncodeError{Series: series, Err: errNoFields})
		return
	}
	e.buf = append(e.buf, ' ')
	e.buf = strconv.AppendInt(e.buf, t, 10)
	e.buf = append(e.buf, '\n')
	e.lines++
}

// windowTimes checks that every output of a window ending at end (ns)
// with the given interval and length has a timestamp InfluxDB stores: its
// slots (embedding, imputed values) and its forecast, one interval after
// its end. The arithmetic cannot overflow.
func windowTimes(end, interval int64, length int) error {
	if interval <= 0 || length < 1 || !ingest.InTimeRange(end) {
		return fmt.Errorf("window ending at %d: %w", end, errTimeRange)
	}
	if end > ingest.MaxTime-interval {
		return fmt.Errorf("forecast one interval (%d ns) after the window end %d: %w", interval, end, errTimeRange)
	}
	if span := int64(length - 1); span > 0 && (interval > math.MaxInt64/span || end < ingest.MinTime+span*interval) {
		return fmt.Errorf("first slot of the window of %d × %d ns ending at %d: %w", length, interval, end, errTimeRange)
	}
	return nil
}

// resolvedInWindow reports whether a resolved forecast can be written: the
// window that brought its actual value (whose slots its time is one of) is
// within InfluxDB's range (else it was reported), and so is its time.
func resolvedInWindow(b *models.Batch, rs models.Resolved) bool {
	return windowTimes(int64(b.End[rs.Row]), int64(b.Interval[rs.Row]), b.Length) == nil && ingest.InTimeRange(rs.Time)
}

// errTimeRange is the error of an output timestamp outside InfluxDB's
// range.
var errTimeRange = fmt.Errorf("timestamp outside InfluxDB's range [%d, %d] (input timestamps near the years 1677 or 2262)", ingest.MinTime, ingest.MaxTime)

// EmbeddingDigits is the number of significant digits an embedding's
// largest component is written with; the others are rounded to the same
// absolute step. Cosine similarities then move by less than 1e-6·√D, while
// each value is half as long to format, send and parse as the 17 digits
// that round-trip a float64.
const EmbeddingDigits = 7

// embeddingScale returns the power of ten whose reciprocal is the rounding
// step of emb's components, or 0 to write them unrounded.
func embeddingScale(emb []float64) float64 {
	m := 0.0
	for _, v := range emb {
		m = math.Max(m, math.Abs(v))
	}
	if !(m > 0) || math.IsInf(m, 0) {
		return 0
	}
	k := EmbeddingDigits - 1 - int(math.Floor(math.Log10(m)))
	if k < 0 || k >= len(pow10) {
		return 0
	}
	return pow10[k]
}

// pow10 holds the powers of ten that float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// trainTags returns the sorted tags of r's train points.
func (e *Encoder) trainTags(r *Result) []ingest.KV {
	part := strconv.Itoa(r.Partition)
	if len(e.train) == 0 || e.trainModel != r.Model {
		e.trainModel = r.Model
		e.train = append(e.train[:0], ingest.KV{Key: "model", Value: r.Model}, ingest.KV{Key: "partition"}, ingest.KV{Key: "topic"})
		e.train = append(e.train, e.extra...)
		slices.SortFunc(e.train, func(a, b ingest.KV) int { return strings.Compare(a.Key, b.Key) })
	}
	for i := range e.train {
		switch e.train[i].Key {
		case "partition":
			e.train[i].Value = part
		case "topic":
			e.train[i].Value = r.Topic
		}
	}
	return e.train
}

func (e *Encoder) embField(j int) string {
	for len(e.fields) <= j {
		e.fields = append(e.fields, "e"+strconv.Itoa(len(e.fields)))
	}
	return e.fields[j]
}

// seriesOf returns what the encoder keeps of a series key, making and
// checking its tags the first time.
func (e *Encoder) seriesOf(key, model string) (*seriesOut, error) {
	if s, ok := e.series.GetString(key); ok {
		return s, nil
	}
	if e.measErr != nil {
		return nil, e.measErr
	}
	id, err := ingest.ParseSeriesKey(key)
	if err != nil {
		return nil, fmt.Errorf("series %q: %w", key, err)
	}
	// The library escapes the tags and checks keys, values and their order
	// here, once for all the series' lines; so a held forecast line cannot
	// fail when it is written, away from the result it came from.
	head, err := e.checkedHead(e.meas[0], OutputTags(id, model, e.extra...))
	if err != nil {
		return nil, fmt.Errorf("series %q: %w", key, err)
	}
	tags := head[len(e.measText[0]):]
	if n := len(e.meas[0]) + len(tags); n > ingest.MaxSeriesKeyBytes {
		return nil, fmt.Errorf("series %q: its output series key of %d bytes is longer than InfluxDB's limit of %d", key, n, ingest.MaxSeriesKeyBytes)
	}
	s := &seriesOut{tags: append(append(make([]byte, 0, len(tags)+1), tags...), ' ')} // not keeping the measurement's bytes
	e.series.Put(strings.Clone(key), s)
	return s, nil
}

// checkedHead returns a line's measurement and tags as the line-protocol
// library escapes them, after the library has checked a whole line with
// them.
func (e *Encoder) checkedHead(meas string, tags []ingest.KV) ([]byte, error) {
	e.check.Reset()
	e.check.StartLine(meas)
	for _, t := range tags {
		e.check.AddTag(t.Key, t.Value)
	}
	head := slices.Clone(e.check.Bytes()) // emptied if the library refused a name
	e.check.AddField("f", lineprotocol.IntValue(0))
	e.check.EndLine(time.Unix(0, 0))
	return head, e.check.Err()
}

// OutputTags is the tag set tsrep writes for a series, sorted by key: the
// input tags under OutputTagKey's names, then measurement, field, model and
// the extra tags (whose keys must not start with TagKeyPrefix or '_').
func OutputTags(id ingest.SeriesID, model string, extra ...ingest.KV) []ingest.KV {
	tags := make([]ingest.KV, 0, len(id.Tags)+3+len(extra))
	for _, t := range id.Tags {
		tags = append(tags, ingest.KV{Key: OutputTagKey(t.Key, extra...), Value: t.Value})
	}
	tags = append(tags,
		ingest.KV{Key: "measurement", Value: id.Measurement},
		ingest.KV{Key: "field", Value: id.Field},
		ingest.KV{Key: "model", Value: model})
	tags = append(tags, extra...)
	slices.SortFunc(tags, func(a, b ingest.KV) int { return strings.Compare(a.Key, b.Key) })
	return tags
}

// TagKeyPrefix is what OutputTagKey puts before an input tag key that
// would collide.
const TagKeyPrefix = "tag_"

// OutputTagKey is the key an input tag is written under. It is k itself,
// unless k
//   - is one of the tags tsrep adds: measurement, field, model, or the key
//     of an extra tag (run, for a replay with --run);
//   - is a name InfluxDB or Flux keeps for itself: time (InfluxDB refuses
//     the point), result and table (Flux's own columns), or starts with
//     '_' (_measurement, _field, _value: a tag _value fails every Flux
//     query of the bucket);
//   - or already starts with TagKeyPrefix;
//
// in which case it is TagKeyPrefix + k. The rule is injective and
// reversible (InputTagKey): an output key that starts with TagKeyPrefix
// stands for the input key after the prefix, any other output key is the
// input key itself, and no output key of an input tag is one of the tags
// tsrep adds (those do not start with TagKeyPrefix, and are escaped when
// they are input keys). So no two input series map to one output series.
func OutputTagKey(k string, extra ...ingest.KV) string {
	if escapedTagKey(k, extra) {
		return TagKeyPrefix + k
	}
	return k
}

func escapedTagKey(k string, extra []ingest.KV) bool {
	switch k {
	case "measurement", "field", "model", "time", "result", "table":
		return true
	}
	if strings.HasPrefix(k, TagKeyPrefix) || strings.HasPrefix(k, "_") {
		return true
	}
	for _, x := range extra {
		if x.Key == k {
			return true
		}
	}
	return false
}

// InputTagKey is OutputTagKey's inverse: the input tag key an output tag
// key stands for, and false for keys no input tag is written under (the
// tags tsrep adds, and the names OutputTagKey escapes, such as Flux's
// columns).
func InputTagKey(out string, extra ...ingest.KV) (string, bool) {
	if strings.HasPrefix(out, TagKeyPrefix) {
		if k := out[len(TagKeyPrefix):]; escapedTagKey(k, extra) {
			return k, true
		}
		return "", false // tag_host: no input tag is written so
	}
	if escapedTagKey(out, extra) {
		return "", false
	}
	return out, true
}
