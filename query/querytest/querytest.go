// Package querytest writes a known set of tsrep output points to InfluxDB
// for the tests of query, report and the query commands. The points follow
// the schema of package sinks exactly: per-series tags from
// sinks.OutputTags, train steps through sinks.Encoder. The series keys
// include the awkward characters (spaces, commas, quotes, backslashes,
// "${", input tags named model) that the queries must escape.
package querytest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/models"
	"github.com/tsrep/tsrep/query"
	"github.com/tsrep/tsrep/sinks"
)

// Fixture is the data written, as the query package should read it back.
type Fixture struct {
	Prefix string
	// Model writes everything; Other writes only forecasts (with other
	// values) and forecast-only train steps: a learner without an encoder.
	Model, Other string
	Start        time.Time
	Interval     time.Duration
	// Series are canonical series keys of Model's embeddings.
	Series []string
	// Embeddings per series, in time order (Model only). Series i's
	// embeddings are at Start + (64 + 8k + i) intervals, k = 0..5. Their
	// encoder versions vary by series (see New): versions 3 and 4, a
	// series that lags at 3, explicit version 0, and embeddings written
	// without a version field, which read back as version 0.
	Embeddings map[string][]query.Embedding
	// Unversioned is, per series, how many of its first embeddings are
	// written without a version field (as before versions were recorded).
	Unversioned map[string]int
	// Forecasts, Imputed and Anomalies per series, in time order, of
	// Model.
	Forecasts map[string][]query.ForecastPoint
	Imputed   map[string][]query.ImputedPoint
	Anomalies map[string][]query.AnomalyPoint
	// OtherForecasts are Other's forecasts of the same series.
	OtherForecasts map[string][]query.ForecastPoint
	// Train holds Model's steps, then Other's (TrainLoss.Topic "metrics").
	Train, OtherTrain []query.TrainLoss
}

// Forecast series of the fixture (a subset of Series).
var forecastSeries = []string{
	`cpu,host=a,region=eu#usage`,
	`cpu,host=a#usage`,
	`disk,model=x,path=C:\\data#free`,
}

// New builds the fixture's data (deterministic).
func New() *Fixture {
	f := &Fixture{
		Prefix: "tsrep_", Model: "ssl", Other: "rls",
		Start:    time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC),
		Interval: time.Hour,
		Series: []string{
			`cpu,host=a#usage`,                  // a subset of the next one's tags
			`cpu,host=a,region=eu#usage`,        //
			`cpu,host=a,region=eu,zone=1#usage`, // a superset
			`cpu,host=b\ 2,region=eu#usage`,     // space in a tag value
			`disk,model=x,path=C:\\data#free`,   // tag called model, backslash
			`mem,host=a,note="q'#used`,          // double and single quote
			`mem,host=b,note=a\,b${x}#used`,     // comma and ${
			`mem,host=c#used`,
		},
		Embeddings:     map[string][]query.Embedding{},
		Unversioned:    map[string]int{},
		Forecasts:      map[string][]query.ForecastPoint{},
		Imputed:        map[string][]query.ImputedPoint{},
		Anomalies:      map[string][]query.AnomalyPoint{},
		OtherForecasts: map[string][]query.ForecastPoint{},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const dim, embeddings = 8, 6
	// Encoder versions of the six embeddings of each series; -1 is an
	// embedding written without a version (read back as 0). Most series
	// moved from unversioned embeddings to versions 3 then 4.
	versions := map[string][]int64{
		`cpu,host=b\ 2,region=eu#usage`:   {-1, -1, -1, -1, -1, -1}, // never versioned: version 0
		`disk,model=x,path=C:\\data#free`: {-1, 0, 0, 3, 4, 4},      // unversioned, explicit 0, then shared
		`mem,host=a,note="q'#used`:        {0, 0, 0, 0, 0, 0},       // a learner of its own: 0 throughout
		`mem,host=c#used`:                 {-1, -1, 3, 3, 3, 3},     // lags behind at version 3
	}
	// Each measurement has its own centre, so the embeddings cluster by
	// measurement (what the PCA plot shows).
	centre := map[string][]float64{}
	for si, s := range f.Series {
		id, _ := ingest.ParseSeriesKey(s)
		c := centre[id.Measurement]
		if c == nil {
			c = make([]float64, dim)
			for j := range c {
				c[j] = 3 * rng.NormFloat64()
			}
			centre[id.Measurement] = c
		}
		vs := versions[s]
		if vs == nil {
			vs = []int64{-1, -1, 3, 3, 4, 4}
		}
		for i := 0; i < embeddings; i++ {
			v := make([]float64, dim)
			for j := range v {
				v[j] = round(c[j] + rng.NormFloat64())
			}
			if vs[i] < 0 {
				f.Unversioned[s]++
			}
			f.Embeddings[s] = append(f.Embeddings[s], query.Embedding{
				Series: s, Time: f.Start.Add(time.Duration(64+8*i+si) * f.Interval), Version: max(0, vs[i]), Vector: v,
			})
		}
	}
	const steps = 96
	for si, s := range forecastSeries {
		level := 10 * float64(si+1)
		last := level
		for k := 0; k < steps; k++ {
			t := f.Start.Add(time.Duration(64+k) * f.Interval)
			actual := round(level + 3*math.Sin(float64(k)/6) + 0.3*rng.NormFloat64())
			pred := round(actual + 0.5*rng.NormFloat64())
			p := query.ForecastPoint{Time: t, Predicted: pred, LastValue: last,
				Actual: math.NaN(), AbsError: math.NaN(), LastValueAbsError: math.NaN()}
			o := p
			o.Predicted = pred + 100
			switch {
			case k >= steps-2: // not arrived yet
			case k%10 == 3: // a gap, filled by Model
				f.Imputed[s] = append(f.Imputed[s], query.ImputedPoint{Time: t, Value: round(actual + 0.1)})
			default:
				p.Actual, p.AbsError, p.LastValueAbsError = actual, math.Abs(actual-pred), math.Abs(actual-last)
				o.Actual, o.AbsError, o.LastValueAbsError = actual, math.Abs(actual-o.Predicted), p.LastValueAbsError
				last = actual
			}
			f.Forecasts[s] = append(f.Forecasts[s], p)
			f.OtherForecasts[s] = append(f.OtherForecasts[s], o)
			if k >= 8 {
				// Anomaly scores from the ninth step on: mostly low, a
				// spike every 29 steps; novelty only every other point.
				surprise := round(0.5 * rng.ExpFloat64())
				if (k+si)%29 == 0 {
					surprise = round(8 + 4*rng.Float64())
				}
				a := query.AnomalyPoint{Time: t, Score: round(surprise / (surprise + 4)), Surprise: surprise,
					Z: round(rng.NormFloat64()), Novelty: math.NaN()}
				if k%2 == 0 {
					a.Novelty = round(0.2 * rng.Float64())
				}
				f.Anomalies[s] = append(f.Anomalies[s], a)
			}
		}
	}
	for step := 1; step <= 12; step++ {
		for part := 0; part < 2; part++ {
			t := f.Start.Add(time.Duration(64+8*step+part) * f.Interval)
			decay := math.Exp(-float64(step) / 5)
			f.Train = append(f.Train, query.TrainLoss{
				Time: t, Topic: "metrics", Partition: fmt.Sprint(part), Step: int64(step), Windows: 64,
				LossForecast: round(0.2 + decay + 0.05*rng.Float64()),
				LossImpute:   round(0.4 + 0.8*decay + 0.05*rng.Float64()),
				LossContrast: round(1.5 + 2*decay + 0.05*rng.Float64()),
			})
			f.OtherTrain = append(f.OtherTrain, query.TrainLoss{
				Time: t, Topic: "metrics", Partition: fmt.Sprint(part), Step: int64(step), Windows: 64,
				LossForecast: round(0.3 + decay), LossImpute: math.NaN(), LossContrast: math.NaN(),
			})
		}
	}
	return f
}

// round keeps 6 decimals, so the values read well in example output.
func round(v float64) float64 { return math.Round(v*1e6) / 1e6 }

// LineProtocol is the fixture as tsrep writes it.
func (f *Fixture) LineProtocol() ([]byte, error) {
	var enc lineprotocol.Encoder
	enc.SetPrecision(lineprotocol.Nanosecond)
	start := func(meas, series, model string) error {
		id, err := ingest.ParseSeriesKey(series)
		if err != nil {
			return fmt.Errorf("fixture series %q: %w", series, err)
		}
		enc.StartLine(f.Prefix + meas)
		for _, t := range sinks.OutputTags(id, model) {
			enc.AddTag(t.Key, t.Value)
		}
		return nil
	}
	float := func(k string, v float64) {
		if fv, ok := lineprotocol.FloatValue(v); ok {
			enc.AddField(k, fv)
		}
	}
	for _, s := range f.Series {
		for i, e := range f.Embeddings[s] {
			if err := start(sinks.MeasEmbedding, s, f.Model); err != nil {
				return nil, err
			}
			for j, v := range e.Vector {
				float(fmt.Sprintf("e%d", j), v)
			}
			if i >= f.Unversioned[s] {
				enc.AddField("version", lineprotocol.IntValue(e.Version))
			}
			enc.EndLine(e.Time)
		}
	}
	for _, s := range forecastSeries {
		for model, pts := range map[string][]query.ForecastPoint{f.Model: f.Forecasts[s], f.Other: f.OtherForecasts[s]} {
			for _, p := range pts {
				// As the pipeline does: the forecast when it is made, the
				// actual in a second point once the step arrives.
				if err := start(sinks.MeasForecast, s, model); err != nil {
					return nil, err
				}
				float("predicted", p.Predicted)
				float("last_value", p.LastValue)
				enc.EndLine(p.Time)
				if !math.IsNaN(p.Actual) {
					_ = start(sinks.MeasForecast, s, model)
					float("actual", p.Actual)
					enc.EndLine(p.Time)
				}
			}
		}
		for _, p := range f.Imputed[s] {
			_ = start(sinks.MeasImputed, s, f.Model)
			float("value", p.Value)
			enc.EndLine(p.Time)
		}
		for _, a := range f.Anomalies[s] {
			_ = start(query.MeasAnomaly, s, f.Model)
			float("score", a.Score)
			float("surprise", a.Surprise)
			float("z", a.Z)
			float("novelty", a.Novelty) // left out when NaN
			enc.EndLine(a.Time)
		}
	}
	if err := enc.Err(); err != nil {
		return nil, fmt.Errorf("encode fixture: %w", err)
	}
	out := bytes.Clone(enc.Bytes())
	// Train steps through the pipeline's own encoder.
	for model, steps := range map[string][]query.TrainLoss{f.Model: f.Train, f.Other: f.OtherTrain} {
		for part := 0; part < 2; part++ {
			var ts []models.TrainStep
			for _, s := range steps {
				if s.Partition == fmt.Sprint(part) {
					ts = append(ts, models.TrainStep{Step: uint64(s.Step), Time: s.Time.UnixNano(), Windows: int(s.Windows),
						LossForecast: s.LossForecast, LossImpute: s.LossImpute, LossContrast: s.LossContrast})
				}
			}
			e := sinks.NewEncoder(f.Prefix, 16)
			e.Encode(&sinks.Result{Topic: "metrics", Partition: part, Model: model, Batch: &models.Batch{}, Out: &models.Output{Train: ts}})
			if errs := e.Errors(); len(errs) > 0 {
				return nil, fmt.Errorf("encode fixture train steps: %v", errs[0].Err)
			}
			out = append(out, e.Bytes()...)
		}
	}
	return out, nil
}

// Write writes the fixture to database db of the InfluxDB at baseURL.
func (f *Fixture) Write(ctx context.Context, baseURL, db string) error {
	lp, err := f.LineProtocol()
	if err != nil {
		return err
	}
	u := baseURL + "/write?" + url.Values{"db": {db}, "precision": {"ns"}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(lp))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("write fixture: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("write fixture: %s: %s", resp.Status, b)
	}
	return nil
}

// LatestEmbedding is series' latest embedding at or before at (zero: the
// latest) of the encoder version (query.NewestVersion: any), as the
// fixture wrote it; ok is false if there is none.
func (f *Fixture) LatestEmbedding(series string, at time.Time, version int64) (e query.Embedding, ok bool) {
	for _, x := range f.Embeddings[series] {
		if (at.IsZero() || !x.Time.After(at)) && (version == query.NewestVersion || x.Version == version) {
			e, ok = x, true
		}
	}
	return e, ok
}

// Similar is what Client.SimilarOfVersion must answer, computed from the
// fixture: the embedding of series compared (its latest of the version,
// or its latest) and every other series' latest embedding of that
// version, ranked by ScaledCosines, best first.
func (f *Fixture) Similar(series string, at time.Time, k int, version int64) (query.Embedding, []query.Match, bool) {
	q, ok := f.LatestEmbedding(series, at, version)
	if !ok {
		return q, nil, false
	}
	var others []query.Embedding
	var vecs [][]float64
	for _, s := range f.Series {
		if s == series {
			continue
		}
		if e, ok := f.LatestEmbedding(s, at, q.Version); ok {
			others = append(others, e)
			vecs = append(vecs, e.Vector)
		}
	}
	scaled, plain := ScaledCosines(q.Vector, vecs)
	var out []query.Match
	for i, e := range others {
		out = append(out, query.Match{Series: e.Series, Score: scaled[i], Cosine: plain[i], Time: e.Time, Version: q.Version})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Score > out[j].Score })
	if len(out) > k {
		out = out[:k]
	}
	return q, out, true
}

// ScaledCosines is the reference for the similarity query.Rank ranks by:
// for each of others, the cosine of it and q after dividing every
// dimension by its population standard deviation over q and others
// (dimensions that do not vary dropped), and the plain cosine.
func ScaledCosines(q []float64, others [][]float64) (scaled, plain []float64) {
	all := append([][]float64{q}, others...)
	D, n := len(q), float64(len(all))
	sd := make([]float64, D)
	for j := range D {
		var sum, sq float64
		for _, v := range all {
			sum += v[j]
		}
		for _, v := range all {
			sq += (v[j] - sum/n) * (v[j] - sum/n)
		}
		sd[j] = math.Sqrt(sq / n)
	}
	top := 0.0
	for _, x := range sd {
		top = math.Max(top, x)
	}
	cos := func(a, b []float64, scale bool) float64 {
		var ab, aa, bb float64
		for j := range a {
			x, y := a[j], b[j]
			if scale {
				if sd[j] <= 1e-9*top || sd[j] == 0 {
					continue
				}
				x, y = x/sd[j], y/sd[j]
			}
			ab += x * y
			aa += x * x
			bb += y * y
		}
		return ab / math.Sqrt(aa*bb)
	}
	for _, e := range others {
		plain = append(plain, cos(q, e, false))
		s := cos(q, e, true)
		if math.IsNaN(s) { // no dimension varies: the plain cosine, as query.ScaledCosine
			s = plain[len(plain)-1]
		}
		scaled = append(scaled, s)
	}
	return scaled, plain
}
