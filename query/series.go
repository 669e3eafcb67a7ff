package query

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/influxdata/influxdb-client-go/v2/api/query"

	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/sinks"
)

// ErrNoData is wrapped by the errors of queries that found nothing to
// return (for instance no embedding of the series: the learner writes
// none, or the series or model name is wrong).
var ErrNoData = errors.New("no data")

// Embedding is one series' embedding at one time.
type Embedding struct {
	Series string    // canonical series key, measurement,tags#field
	Time   time.Time // window end the embedding describes
	Vector []float64 // e0..e{D-1}
}

// Measurement is the input measurement of the embedding's series.
func (e Embedding) Measurement() string {
	id, err := ingest.ParseSeriesKey(e.Series)
	if err != nil {
		return ""
	}
	return id.Measurement
}

// Match is a series found by Similar.
type Match struct {
	Series string    // canonical series key
	Score  float64   // cosine similarity of the two embeddings, in [-1, 1]
	Time   time.Time // time of the matched series' embedding
}

// ForecastPoint is one forecast step of a series. Fields not (yet)
// written are NaN: actual and the errors arrive once the step's data does.
type ForecastPoint struct {
	Time      time.Time
	Predicted float64
	Actual    float64
	// AbsError is the forecast's error, |actual - predicted|, and
	// LastValueAbsError the last-value baseline's, |actual - last_value|:
	// both computed here from what tsrep stores.
	AbsError          float64
	LastValue         float64
	LastValueAbsError float64
}

// ImputedPoint is a value a learner filled into a series' gap.
type ImputedPoint struct {
	Time  time.Time
	Value float64
}

// TrainLoss is one training step of a model on one topic partition. The
// losses are prequential, in normalised units; NaN for objectives the
// learner lacks.
type TrainLoss struct {
	Time         time.Time // latest window end of the step
	Topic        string
	Partition    string
	Step         int64
	Windows      int64
	LossForecast float64
	LossImpute   float64
	LossContrast float64
}

// meas is a configured output measurement name.
func (c *Client) meas(m string) string { return c.prefix + m }

// Bucket is the bucket (database on InfluxDB 1.8) the client reads.
func (c *Client) Bucket() string { return c.bucket }

// run runs a Flux query and calls fn for every record.
func (c *Client) run(ctx context.Context, flux string, fn func(*query.FluxRecord) error) error {
	res, err := c.q.Query(ctx, flux)
	if err != nil {
		return fmt.Errorf("flux query on bucket %q: %w", c.bucket, err)
	}
	defer res.Close()
	for res.Next() {
		if err := fn(res.Record()); err != nil {
			return err
		}
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("flux query on bucket %q: %w", c.bucket, err)
	}
	return nil
}

// Embedding returns the latest embedding of series at or before at (zero:
// the latest there is) written by model. It wraps ErrNoData if there is none.
func (c *Client) Embedding(ctx context.Context, series string, at time.Time, model string) (Embedding, error) {
	t, err := parseTarget(series, model)
	if err != nil {
		return Embedding{}, err
	}
	flux, err := EmbeddingFlux(c.bucket, c.meas(sinks.MeasEmbedding), series, at, model)
	if err != nil {
		return Embedding{}, err
	}
	embs, err := c.embeddings(ctx, flux, t.key)
	if err != nil {
		return Embedding{}, err
	}
	if len(embs) == 0 {
		return Embedding{}, fmt.Errorf("embedding of series %q with model %q%s: %w (check the series key and the model; learners without an encoder write none)",
			t.key, model, atText(at), ErrNoData)
	}
	return embs[0], nil
}

func atText(at time.Time) string {
	if at.IsZero() {
		return ""
	}
	return " at or before " + at.UTC().Format(time.RFC3339Nano)
}

// LatestEmbeddings returns every series' latest embedding at or before at
// (zero: the latest) written by model, sorted by series. Series whose
// latest vector is incomplete (a missing e<i>) are left out.
func (c *Client) LatestEmbeddings(ctx context.Context, at time.Time, model string) ([]Embedding, error) {
	if err := checkModel(model); err != nil {
		return nil, err
	}
	return c.embeddings(ctx, LatestEmbeddingsFlux(c.bucket, c.meas(sinks.MeasEmbedding), at, model), "")
}

// embeddings reads pivoted embedding rows and keeps each series' newest
// complete row, of the series only if it is set.
func (c *Client) embeddings(ctx context.Context, flux, only string) ([]Embedding, error) {
	by := map[string]Embedding{}
	err := c.run(ctx, flux, func(r *query.FluxRecord) error {
		key, err := SeriesKey(r)
		if err != nil {
			return err
		}
		if only != "" && key != only {
			return nil
		}
		vec, ok := vector(r.Values())
		if !ok {
			return nil
		}
		if prev, seen := by[key]; seen && !r.Time().After(prev.Time) {
			return nil
		}
		by[key] = Embedding{Series: key, Time: r.Time(), Vector: vec}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]Embedding, 0, len(by))
	for _, e := range by {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Series < out[j].Series })
	return out, nil
}

// vector collects the e<i> columns of a pivoted row; ok is false if the
// row is empty or has a gap in the numbering (a component that was not
// written at this time).
func vector(vals map[string]any) ([]float64, bool) {
	comp := map[int]float64{}
	maxI := -1
	for k, v := range vals {
		if len(k) < 2 || k[0] != 'e' {
			continue
		}
		i, err := strconv.Atoi(k[1:])
		if err != nil || i < 0 || strconv.Itoa(i) != k[1:] {
			continue
		}
		f, ok := toFloat(v)
		if !ok {
			continue // null: not written at this time
		}
		comp[i] = f
		maxI = max(maxI, i)
	}
	if maxI < 0 || len(comp) != maxI+1 {
		return nil, false
	}
	vec := make([]float64, maxI+1)
	for i, f := range comp {
		vec[i] = f
	}
	return vec, true
}

// Similar returns the k series whose latest embeddings at or before at
// (zero: the latest) are the most cosine-similar to series' own latest
// embedding then, best first (ties by series key). Series with a zero
// vector or another dimension are not compared. It wraps ErrNoData if
// series has no embedding.
func (c *Client) Similar(ctx context.Context, series string, at time.Time, k int, model string) ([]Match, error) {
	t, err := parseTarget(series, model)
	if err != nil {
		return nil, err
	}
	if k < 1 {
		return nil, fmt.Errorf("k is %d: ask for at least 1 similar series", k)
	}
	all, err := c.LatestEmbeddings(ctx, at, model)
	if err != nil {
		return nil, err
	}
	var q *Embedding
	for i := range all {
		if all[i].Series == t.key {
			q = &all[i]
		}
	}
	if q == nil {
		return nil, fmt.Errorf("embedding of series %q with model %q%s: %w (check the series key and the model; learners without an encoder write none)",
			t.key, model, atText(at), ErrNoData)
	}
	if norm(q.Vector) == 0 {
		return nil, fmt.Errorf("embedding of series %q at %s is the zero vector: its cosine similarity is undefined", t.key, q.Time.UTC().Format(time.RFC3339Nano))
	}
	var out []Match
	for _, e := range all {
		if e.Series == t.key || len(e.Vector) != len(q.Vector) || norm(e.Vector) == 0 {
			continue
		}
		out = append(out, Match{Series: e.Series, Score: cosine(q.Vector, e.Vector), Time: e.Time})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Score != out[j].Score {
			return out[i].Score > out[j].Score
		}
		return out[i].Series < out[j].Series
	})
	if len(out) > k {
		out = out[:k]
	}
	return out, nil
}

func norm(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}

func cosine(a, b []float64) float64 {
	var dot float64
	for i := range a {
		dot += a[i] * b[i]
	}
	return dot / (norm(a) * norm(b))
}

// Forecasts returns series' forecast steps in [from, to) (zero: unbounded)
// written by model, in time order.
func (c *Client) Forecasts(ctx context.Context, series string, from, to time.Time, model string) ([]ForecastPoint, error) {
	t, err := parseTarget(series, model)
	if err != nil {
		return nil, err
	}
	flux, err := ForecastsFlux(c.bucket, c.meas(sinks.MeasForecast), series, from, to, model)
	if err != nil {
		return nil, err
	}
	var out []ForecastPoint
	err = c.run(ctx, flux, func(r *query.FluxRecord) error {
		if ok, err := isSeries(r, t.key); !ok {
			return err
		}
		v := r.Values()
		p := ForecastPoint{
			Time:      r.Time(),
			Predicted: floatOrNaN(v["predicted"]),
			Actual:    floatOrNaN(v["actual"]),
			LastValue: floatOrNaN(v["last_value"]),
		}
		p.AbsError = math.Abs(p.Actual - p.Predicted) // NaN if either is
		p.LastValueAbsError = math.Abs(p.Actual - p.LastValue)
		out = append(out, p)
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, err
}

// Imputed returns the values model filled into series' gaps in [from, to)
// (zero: unbounded), in time order.
func (c *Client) Imputed(ctx context.Context, series string, from, to time.Time, model string) ([]ImputedPoint, error) {
	t, err := parseTarget(series, model)
	if err != nil {
		return nil, err
	}
	flux, err := ImputedFlux(c.bucket, c.meas(sinks.MeasImputed), series, from, to, model)
	if err != nil {
		return nil, err
	}
	var out []ImputedPoint
	err = c.run(ctx, flux, func(r *query.FluxRecord) error {
		if ok, err := isSeries(r, t.key); !ok {
			return err
		}
		if v, ok := toFloat(r.Values()["value"]); ok {
			out = append(out, ImputedPoint{Time: r.Time(), Value: v})
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, err
}

// TrainLosses returns model's training steps in [from, to) (zero:
// unbounded), ordered by time, then topic and partition.
func (c *Client) TrainLosses(ctx context.Context, model string, from, to time.Time) ([]TrainLoss, error) {
	if err := checkModel(model); err != nil {
		return nil, err
	}
	var out []TrainLoss
	err := c.run(ctx, TrainLossesFlux(c.bucket, c.meas(sinks.MeasTrain), model, from, to), func(r *query.FluxRecord) error {
		v := r.Values()
		topic, _ := v["topic"].(string)
		part, _ := v["partition"].(string)
		step, _ := toFloat(v["step"])
		win, _ := toFloat(v["windows"])
		out = append(out, TrainLoss{
			Time: r.Time(), Topic: topic, Partition: part,
			Step: int64(step), Windows: int64(win),
			LossForecast: floatOrNaN(v["loss_forecast"]),
			LossImpute:   floatOrNaN(v["loss_impute"]),
			LossContrast: floatOrNaN(v["loss_contrast"]),
		})
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.Time.Equal(b.Time) {
			return a.Time.Before(b.Time)
		}
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		return partitionLess(a.Partition, b.Partition)
	})
	return out, err
}

func partitionLess(a, b string) bool {
	x, errA := strconv.Atoi(a)
	y, errB := strconv.Atoi(b)
	if errA == nil && errB == nil {
		return x < y
	}
	return a < b
}

// isSeries reports whether r belongs to exactly the series key (the Flux
// filter also matches series with more tags).
func isSeries(r *query.FluxRecord, key string) (bool, error) {
	k, err := SeriesKey(r)
	if err != nil {
		return false, err
	}
	return k == key, nil
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	}
	return 0, false
}

func floatOrNaN(v any) float64 {
	if f, ok := toFloat(v); ok {
		return f
	}
	return math.NaN()
}
