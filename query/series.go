package query

import (
	"context"
	"errors"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/tsrep/tsrep/sinks"
)

// ErrNoData is wrapped by the errors of queries that found nothing to
// return (for instance no embedding of the series: the learner writes
// none, or the series or model name is wrong).
var ErrNoData = errors.New("no data")

// MeasAnomaly is the anomaly measurement's name, without the prefix:
// per point of a series, the tags of its other outputs and the fields
// score (in [0, 1]), surprise, z and novelty.
const MeasAnomaly = "anomaly"

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

// AnomalyPoint is the anomaly score of one point of a series, computed
// before the point was learnt from. Fields not written are NaN.
type AnomalyPoint struct {
	Time time.Time
	// Score is in [0, 1]: surprise/(surprise + a constant).
	Score float64
	// Surprise is −log10 of the probability of what the point shows.
	Surprise float64
	// Z is the forecast error in standard deviations of the series'
	// recent errors.
	Z float64
	// Novelty is the cosine distance of the window's embedding to the
	// nearest of the series' past ones.
	Novelty float64
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

// seriesRows runs a query of one series' points and calls fn with the
// rows of exactly that series (the filter also matches series with more
// tags), in the order they come.
func (c *Client) seriesRows(ctx context.Context, q text, key string, fn func(r row)) error {
	return c.run(ctx, q, func(_ int, r row) error {
		k, err := seriesKey(r.tags)
		if err != nil {
			return err
		}
		if k == key {
			fn(r)
		}
		return nil
	})
}

// Forecasts returns series' forecast steps in [from, to) (zero: unbounded)
// written by model, in time order.
func (c *Client) Forecasts(ctx context.Context, series string, from, to time.Time, model string) ([]ForecastPoint, error) {
	t, err := parseTarget(series, model)
	if err != nil {
		return nil, err
	}
	meas := c.meas(sinks.MeasForecast)
	flux, _ := ForecastsFlux(c.bucket, meas, series, from, to, model)
	iql, _ := ForecastsInfluxQL(meas, series, from, to, model)
	var out []ForecastPoint
	err = c.seriesRows(ctx, text{flux: flux, iql: []string{iql}}, t.key, func(r row) {
		p := ForecastPoint{
			Time:      r.time,
			Predicted: floatOrNaN(r.vals["predicted"]),
			Actual:    floatOrNaN(r.vals["actual"]),
			LastValue: floatOrNaN(r.vals["last_value"]),
		}
		p.AbsError = math.Abs(p.Actual - p.Predicted) // NaN if either is
		p.LastValueAbsError = math.Abs(p.Actual - p.LastValue)
		out = append(out, p)
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
	meas := c.meas(sinks.MeasImputed)
	flux, _ := ImputedFlux(c.bucket, meas, series, from, to, model)
	iql, _ := ImputedInfluxQL(meas, series, from, to, model)
	var out []ImputedPoint
	err = c.seriesRows(ctx, text{flux: flux, iql: []string{iql}}, t.key, func(r row) {
		if v, ok := toFloat(r.vals["value"]); ok {
			out = append(out, ImputedPoint{Time: r.time, Value: v})
		}
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, err
}

// Anomalies returns series' anomaly scores in [from, to) (zero:
// unbounded) written by model, those of at least minScore (in [0, 1]; 0:
// all), in time order.
func (c *Client) Anomalies(ctx context.Context, series string, from, to time.Time, model string, minScore float64) ([]AnomalyPoint, error) {
	t, err := parseTarget(series, model)
	if err != nil {
		return nil, err
	}
	meas := c.meas(MeasAnomaly)
	flux, err := AnomaliesFlux(c.bucket, meas, series, from, to, model, minScore)
	if err != nil {
		return nil, err
	}
	iql, _ := AnomaliesInfluxQL(meas, series, from, to, model, minScore)
	var out []AnomalyPoint
	err = c.seriesRows(ctx, text{flux: flux, iql: []string{iql}}, t.key, func(r row) {
		score, ok := toFloat(r.vals["score"])
		if !ok {
			return
		}
		out = append(out, AnomalyPoint{Time: r.time, Score: score, Surprise: floatOrNaN(r.vals["surprise"]),
			Z: floatOrNaN(r.vals["z"]), Novelty: floatOrNaN(r.vals["novelty"])})
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
	meas := c.meas(sinks.MeasTrain)
	q := text{flux: TrainLossesFlux(c.bucket, meas, model, from, to), iql: []string{TrainLossesInfluxQL(meas, model, from, to)}}
	var out []TrainLoss
	err := c.run(ctx, q, func(_ int, r row) error {
		v := r.vals
		step, _ := toFloat(v["step"])
		win, _ := toFloat(v["windows"])
		out = append(out, TrainLoss{
			Time: r.time, Topic: r.tags["topic"], Partition: r.tags["partition"],
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
