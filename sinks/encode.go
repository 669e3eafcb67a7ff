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
//	                   once that slot arrives:   actual, abs_error
//	                   (one line with all four when the slot arrives before
//	                   the forecast is sent, as when catching up: see Encoder;
//	                   the last-value baseline's error is |actual - last_value|,
//	                   computed when queried rather than stored)
//	<prefix>embedding  same tags; e0..e{D-1} at the window end
//	<prefix>imputed    same tags; value at each filled gap
//	<prefix>train      tags model, topic, partition; step, windows,
//	                   loss_forecast, loss_impute, loss_contrast at the step's latest window end
//
// An input tag called measurement, field or model is renamed tag_<name> so
// it does not collide with the tags tsrep adds.
package sinks

import (
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
}

// Measurement names, without the configured prefix.
const (
	MeasForecast  = "forecast"
	MeasEmbedding = "embedding"
	MeasImputed   = "imputed"
	MeasTrain     = "train"
)

// Encoder turns Results into line protocol. It caches each series' output
// tag set, bounded like the series themselves. Not safe for concurrent use.
//
// Forecast lines are held back until the text is taken (Take, Bytes), so
// that a forecast whose slot arrives within the same request, as happens
// whenever tsrep is catching up (a backfill, a lagging consumer), goes out
// as one line with its actual value instead of two: the same point in
// InfluxDB, and up to half the lines it has to parse and index.
type Encoder struct {
	prefix     string
	meas       [4]string
	enc        lineprotocol.Encoder
	check      lineprotocol.Encoder // validates a new series' tags
	tags       *lru.Map[[]ingest.KV]
	extra      []ingest.KV
	train      []ingest.KV // tags of the train measurement, sorted
	trainModel string
	fields     []string // "e0".."e{D-1}"
	lines      int
	errs       []EncodeError
	fc         []heldForecast
	fcAt       map[forecastKey]int32 // index into fc
	lax        bool                  // per-series lines skip the library's checks
}

// heldForecast is a forecast line not yet written, with its resolution if
// the slot has arrived since.
type heldForecast struct {
	tags                 []ingest.KV
	time                 int64
	predicted, lastValue float64
	resolved             bool
	actual               float64
	scored               float64 // the prediction as the prequential scorer kept it
}

// forecastKey identifies a held forecast: its series, by the identity of
// the series' cached tag set, and its time. A series evicted from the tag
// cache and seen again gets a new tag set; its resolution is then written
// as a line of its own, which InfluxDB merges into the same point.
type forecastKey struct {
	tags *ingest.KV
	time int64
}

// EncodeError is a result the encoder could not write as line protocol
// (for instance a tag value that is not valid UTF-8).
type EncodeError struct {
	Series string
	Err    error
}

// NewEncoder returns an encoder whose measurements start with prefix and
// whose points all carry the extra tags (e.g. a replay's run tag).
func NewEncoder(prefix string, maxSeries int, extra ...ingest.KV) *Encoder {
	e := &Encoder{prefix: prefix, tags: lru.New[[]ingest.KV](maxSeries), extra: extra}
	for i, m := range []string{MeasForecast, MeasEmbedding, MeasImputed, MeasTrain} {
		e.meas[i] = prefix + m
	}
	e.enc.SetPrecision(lineprotocol.Nanosecond)
	// A series' tags are checked once, when its tag set is cached (see
	// seriesTags), and the measurement names and field keys here: the
	// per-series lines can then skip the library's per-line checks, a
	// fifth of the encoding time. Train lines keep them (see Encode).
	e.check.StartLine(e.meas[0])
	for i, m := range e.meas[1:] {
		e.check.AddTag("m"+strconv.Itoa(i), m) // the other names, checked as tag values (the same rules)
	}
	e.check.AddField("f", lineprotocol.IntValue(0))
	e.check.EndLine(time.Unix(0, 0))
	e.lax = e.check.Err() == nil
	e.enc.SetLax(e.lax)
	e.fcAt = make(map[forecastKey]int32)
	return e
}

// Reset empties the output buffer, held forecasts included, keeping its
// storage.
func (e *Encoder) Reset() {
	e.enc.Reset()
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
	e.enc.SetBuffer(next[:0])
	e.lines = 0
	e.errs = e.errs[:0]
	return b
}

// Bytes writes the held forecasts and returns the encoded text since the
// last Reset or Take.
func (e *Encoder) Bytes() []byte {
	for i := range e.fc {
		f := &e.fc[i]
		e.start(e.meas[0], f.tags)
		e.float("predicted", f.predicted)
		e.float("last_value", f.lastValue)
		if f.resolved {
			e.resolution(f.actual, f.scored)
		}
		e.end(f.time, "")
	}
	e.fc = e.fc[:0]
	clear(e.fcAt)
	return e.enc.Bytes()
}

// Lines is the number of lines encoded since the last Reset or Take, held
// forecasts included.
func (e *Encoder) Lines() int { return e.lines + len(e.fc) }

// Errors lists the results that could not be encoded since the last Reset.
func (e *Encoder) Errors() []EncodeError { return e.errs }

// Encode appends the lines of r.
func (e *Encoder) Encode(r *Result) {
	b, out := r.Batch, r.Out
	for i := 0; i < out.Rows; i++ {
		key := b.Key(i)
		tags, err := e.seriesTags(key, r.Model)
		if err != nil {
			e.errs = append(e.errs, EncodeError{Series: key, Err: err})
			continue
		}
		end := int64(b.End[i])
		if f := out.Forecast[i]; !math.IsNaN(f) {
			t := end + int64(b.Interval[i])
			e.fcAt[forecastKey{&tags[0], t}] = int32(len(e.fc))
			e.fc = append(e.fc, heldForecast{tags: tags, time: t, predicted: f, lastValue: b.LastObserved(i)})
		}
		if out.Dim > 0 && out.EmitEmbedding[i] {
			e.start(e.meas[1], tags)
			emb := out.Embedding[i*out.Dim : (i+1)*out.Dim]
			scale := embeddingScale(emb)
			for j, v := range emb {
				if scale > 0 {
					v = math.Round(v*scale) / scale
				}
				e.float(e.embField(j), v)
			}
			e.end(end, key)
		}
		if out.Imputed != nil {
			imp := out.Imputed[i*out.Length : (i+1)*out.Length]
			for j, v := range imp {
				if math.IsNaN(v) {
					continue
				}
				e.start(e.meas[2], tags)
				e.float("value", v)
				e.end(b.SlotTime(i, j), key)
			}
		}
	}
	for _, rs := range r.Resolved {
		key := b.Key(rs.Row)
		tags, err := e.seriesTags(key, r.Model)
		if err != nil {
			continue // already reported for the row
		}
		if k, ok := e.fcAt[forecastKey{&tags[0], rs.Time}]; ok {
			f := &e.fc[k]
			f.resolved, f.actual, f.scored = true, rs.Actual, rs.Predicted
			continue
		}
		e.start(e.meas[0], tags)
		e.resolution(rs.Actual, rs.Predicted)
		e.end(rs.Time, key)
	}
	e.enc.SetLax(false) // topic, partition and model are not checked beforehand
	defer e.enc.SetLax(e.lax)
	for _, st := range out.Train {
		e.start(e.meas[3], e.trainTags(r))
		e.enc.AddField("step", lineprotocol.IntValue(int64(st.Step))) // 1.8 has no unsigned fields
		e.enc.AddField("windows", lineprotocol.IntValue(int64(st.Windows)))
		e.float("loss_forecast", st.LossForecast)
		e.float("loss_impute", st.LossImpute)
		e.float("loss_contrast", st.LossContrast)
		e.end(st.Time, "train")
	}
}

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

// resolution adds the fields of a forecast whose slot has arrived.
func (e *Encoder) resolution(actual, predicted float64) {
	e.float("actual", actual)
	e.float("abs_error", math.Abs(actual-predicted))
}

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

func (e *Encoder) start(meas string, tags []ingest.KV) { e.start2(&e.enc, meas, tags) }

func (e *Encoder) start2(enc *lineprotocol.Encoder, meas string, tags []ingest.KV) {
	enc.StartLine(meas)
	for _, t := range tags {
		enc.AddTag(t.Key, t.Value)
	}
}

// float adds a field, skipping NaN (line protocol has no NaN).
func (e *Encoder) float(k string, v float64) {
	if fv, ok := lineprotocol.FloatValue(v); ok {
		e.enc.AddField(k, fv)
	}
}

func (e *Encoder) end(t int64, series string) {
	e.enc.EndLine(time.Unix(0, t))
	if err := e.enc.Err(); err != nil {
		e.errs = append(e.errs, EncodeError{Series: series, Err: err})
		e.enc.ClearErr()
		return
	}
	e.lines++
}

func (e *Encoder) embField(j int) string {
	for len(e.fields) <= j {
		e.fields = append(e.fields, "e"+strconv.Itoa(len(e.fields)))
	}
	return e.fields[j]
}

// seriesTags returns the sorted output tags of a series key.
func (e *Encoder) seriesTags(key, model string) ([]ingest.KV, error) {
	if t, ok := e.tags.GetString(key); ok {
		return t, nil
	}
	id, err := ingest.ParseSeriesKey(key)
	if err != nil {
		return nil, fmt.Errorf("series %q: %w", key, err)
	}
	tags := OutputTags(id, model, e.extra...)
	// Check the tags once here, so that a held forecast line cannot fail
	// when it is written, away from the result it came from.
	e.check.Reset()
	e.start2(&e.check, "m", tags)
	e.check.AddField("f", lineprotocol.IntValue(0))
	e.check.EndLine(time.Unix(0, 0))
	if err := e.check.Err(); err != nil {
		return nil, fmt.Errorf("series %q: %w", key, err)
	}
	e.tags.Put(strings.Clone(key), tags)
	return tags, nil
}

// OutputTags is the tag set tsrep writes for a series, sorted by key.
func OutputTags(id ingest.SeriesID, model string, extra ...ingest.KV) []ingest.KV {
	tags := make([]ingest.KV, 0, len(id.Tags)+3+len(extra))
	for _, t := range id.Tags {
		k := t.Key
		switch k {
		case "measurement", "field", "model":
			k = "tag_" + k
		}
		tags = append(tags, ingest.KV{Key: k, Value: t.Value})
	}
	tags = append(tags,
		ingest.KV{Key: "measurement", Value: id.Measurement},
		ingest.KV{Key: "field", Value: id.Field},
		ingest.KV{Key: "model", Value: model})
	tags = append(tags, extra...)
	slices.SortFunc(tags, func(a, b ingest.KV) int { return strings.Compare(a.Key, b.Key) })
	return tags
}
