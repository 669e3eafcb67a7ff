package query_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/testenv"
	"github.com/tsrep/tsrep/query"
	"github.com/tsrep/tsrep/query/querytest"
	"github.com/tsrep/tsrep/sinks"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type env struct {
	fx *querytest.Fixture
	in testenv.Influx
	querytest.Env
}

// setup returns the fixture, written once into a fresh database; the tests
// only read.
func setup(t *testing.T) env {
	s := querytest.Shared(t)
	return env{fx: s.Fixture, in: s.Influx, Env: s}
}

// each runs f as a subtest with the client of each language.
func (e env) each(t *testing.T, f func(t *testing.T, c *query.Client)) {
	for _, c := range e.Clients() {
		t.Run(string(c.Language()), func(t *testing.T) { f(t, c) })
	}
}

func ctx(t *testing.T) context.Context { return testenv.Context(t, time.Minute) }

func sameVec(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sameEmbedding(a, b query.Embedding) bool {
	return a.Series == b.Series && a.Time.Equal(b.Time) && a.Version == b.Version && sameVec(a.Vector, b.Vector)
}

func TestEmbedding(t *testing.T) {
	e := setup(t)
	e.each(t, func(t *testing.T, c *query.Client) {
		for _, s := range e.fx.Series {
			want := e.fx.Embeddings[s]
			got, err := c.Embedding(ctx(t), s, time.Time{}, e.fx.Model)
			if err != nil {
				t.Fatalf("%s: %v", s, err)
			}
			if last := want[len(want)-1]; !sameEmbedding(got, last) {
				t.Errorf("latest of %s: got %+v, want %+v", s, got, last)
			}
			// at is inclusive: at an embedding's time, that embedding; one
			// nanosecond earlier, the one before.
			at := want[2].Time
			if got, err = c.Embedding(ctx(t), s, at, e.fx.Model); err != nil || !sameEmbedding(got, want[2]) {
				t.Errorf("%s at %v: got %+v, %v; want %+v", s, at, got, err, want[2])
			}
			if got, err = c.Embedding(ctx(t), s, at.Add(-time.Nanosecond), e.fx.Model); err != nil || !sameEmbedding(got, want[1]) {
				t.Errorf("%s before %v: got %+v, %v; want %+v", s, at, got, err, want[1])
			}
			if _, err = c.Embedding(ctx(t), s, want[0].Time.Add(-time.Nanosecond), e.fx.Model); !errors.Is(err, query.ErrNoData) {
				t.Errorf("%s before the first embedding: err %v, want ErrNoData", s, err)
			}
		}
		// The tags of a key may come in any order.
		got, err := c.Embedding(ctx(t), `cpu,region=eu,host=a#usage`, time.Time{}, e.fx.Model)
		want := e.fx.Embeddings[`cpu,host=a,region=eu#usage`]
		if err != nil || got.Series != `cpu,host=a,region=eu#usage` || !sameVec(got.Vector, want[len(want)-1].Vector) {
			t.Errorf("unsorted tags: %+v, %v", got, err)
		}
		for _, k := range []struct{ series, model string }{
			{`cpu,host=a#usage`, e.fx.Other}, // a learner that writes no embeddings
			{`cpu,host=zz#usage`, e.fx.Model},
			{`cpu#usage`, e.fx.Model}, // only series with more tags exist
		} {
			if _, err := c.Embedding(ctx(t), k.series, time.Time{}, k.model); !errors.Is(err, query.ErrNoData) || !strings.Contains(err.Error(), k.series) {
				t.Errorf("%s model %s: err %v, want ErrNoData naming the series", k.series, k.model, err)
			}
		}
		if _, err := c.Embedding(ctx(t), `cpu,host=a`, time.Time{}, e.fx.Model); err == nil || errors.Is(err, query.ErrNoData) {
			t.Errorf("bad key: %v", err)
		}
	})
}

// versions are the encoder versions the tests ask for: the fixture has 0
// (explicit, and embeddings without a version), 3 and 4.
var versions = []int64{query.NewestVersion, 0, 3, 4, 7}

// TestEmbeddingOfVersion: the latest embedding of each version, embeddings
// written without a version field counting as version 0.
func TestEmbeddingOfVersion(t *testing.T) {
	e := setup(t)
	e.each(t, func(t *testing.T, c *query.Client) {
		for _, s := range e.fx.Series {
			for _, at := range []time.Time{{}, e.fx.Embeddings[s][3].Time, e.fx.Embeddings[s][1].Time.Add(time.Nanosecond)} {
				for _, v := range versions {
					want, ok := e.fx.LatestEmbedding(s, at, v)
					got, err := c.EmbeddingOfVersion(ctx(t), s, at, e.fx.Model, v)
					switch {
					case !ok && !errors.Is(err, query.ErrNoData):
						t.Errorf("%s at %v version %d: got %+v, %v; want ErrNoData", s, at, v, got, err)
					case ok && (err != nil || !sameEmbedding(got, want)):
						t.Errorf("%s at %v version %d: got %+v, %v; want %+v", s, at, v, got, err, want)
					}
				}
			}
		}
		if _, err := c.EmbeddingOfVersion(ctx(t), `cpu,host=a#usage`, time.Time{}, e.fx.Model, 7); err == nil || !strings.Contains(err.Error(), "encoder version 7") {
			t.Errorf("missing version: %v", err)
		}
	})
}

func TestLatestEmbeddings(t *testing.T) {
	e := setup(t)
	e.each(t, func(t *testing.T, c *query.Client) {
		for _, at := range []time.Time{{}, e.fx.Embeddings[e.fx.Series[0]][3].Time} {
			for _, v := range versions {
				got, err := c.LatestEmbeddingsOfVersion(ctx(t), at, e.fx.Model, v)
				if err != nil {
					t.Fatal(err)
				}
				var want []query.Embedding
				for _, s := range e.fx.Series {
					if w, ok := e.fx.LatestEmbedding(s, at, v); ok {
						want = append(want, w)
					}
				}
				sort.Slice(want, func(i, j int) bool { return want[i].Series < want[j].Series })
				if len(got) != len(want) {
					t.Fatalf("at %v version %d: %d series, want %d: %+v", at, v, len(got), len(want), got)
				}
				for i := range got {
					if !sameEmbedding(got[i], want[i]) {
						t.Errorf("at %v version %d: got %+v, want %+v", at, v, got[i], want[i])
					}
				}
			}
		}
		got, err := c.LatestEmbeddings(ctx(t), time.Time{}, e.fx.Model)
		if err != nil || len(got) != len(e.fx.Series) || got[0].Measurement() != "cpu" {
			t.Errorf("latest of every version: %d series, %v", len(got), err)
		}
	})
}

func TestSimilar(t *testing.T) {
	e := setup(t)
	e.each(t, func(t *testing.T, c *query.Client) {
		for _, at := range []time.Time{{}, e.fx.Embeddings[e.fx.Series[0]][3].Time} {
			for _, s := range e.fx.Series {
				for _, v := range versions {
					for _, k := range []int{3, 100} {
						if k == 3 && v != query.NewestVersion {
							continue
						}
						wq, want, ok := e.fx.Similar(s, at, k, v)
						q, got, err := c.SimilarOfVersion(ctx(t), s, at, k, e.fx.Model, v)
						if !ok {
							if !errors.Is(err, query.ErrNoData) {
								t.Errorf("%s at %v version %d: %v, want ErrNoData", s, at, v, err)
							}
							continue
						}
						if err != nil {
							t.Fatalf("%s at %v version %d: %v", s, at, v, err)
						}
						if !sameEmbedding(q, wq) {
							t.Errorf("%s at %v version %d: compared %+v, want %+v", s, at, v, q, wq)
						}
						if len(got) != len(want) {
							t.Fatalf("%s at %v version %d k=%d: %d matches, want %d: %+v", s, at, v, k, len(got), len(want), got)
						}
						for i, g := range got {
							w := want[i]
							if g.Series != w.Series || math.Abs(g.Score-w.Score) > 1e-12 || math.Abs(g.Cosine-w.Cosine) > 1e-12 || !g.Time.Equal(w.Time) || g.Version != wq.Version {
								t.Errorf("%s at %v version %d, match %d: got %+v, want %+v", s, at, v, i, g, w)
							}
						}
					}
				}
			}
		}
		// A series whose newest version lags: compared within its version
		// (3), with every other series' latest embedding of version 3, not
		// their latest (of version 4).
		q, got, err := c.SimilarOfVersion(ctx(t), `mem,host=c#used`, time.Time{}, 10, e.fx.Model, query.NewestVersion)
		if err != nil || q.Version != 3 || len(got) == 0 {
			t.Fatalf("lagging series: %+v %v %v", q, got, err)
		}
		for _, m := range got {
			if latest := e.fx.Embeddings[m.Series]; m.Version != 3 || !m.Time.Before(latest[len(latest)-1].Time) {
				t.Errorf("match %+v is not the series' latest embedding of version 3", m)
			}
		}
		if ms, err := c.Similar(ctx(t), `cpu,host=a#usage`, time.Time{}, 3, e.fx.Model); err != nil || len(ms) != 3 || ms[0].Version != 4 {
			t.Errorf("Similar: %+v %v", ms, err)
		}
		if _, err := c.Similar(ctx(t), `cpu,host=a#usage`, time.Time{}, 0, e.fx.Model); err == nil {
			t.Error("k=0 accepted")
		}
		if _, err := c.Similar(ctx(t), `cpu,host=a#usage`, time.Time{}, 3, e.fx.Other); !errors.Is(err, query.ErrNoData) {
			t.Errorf("model without embeddings: %v", err)
		}
	})
}

func sameFloat(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

func sameForecast(a, b query.ForecastPoint) bool {
	return a.Time.Equal(b.Time) && sameFloat(a.Predicted, b.Predicted) && sameFloat(a.Actual, b.Actual) &&
		sameFloat(a.AbsError, b.AbsError) && sameFloat(a.LastValue, b.LastValue) && sameFloat(a.LastValueAbsError, b.LastValueAbsError)
}

func TestForecasts(t *testing.T) {
	e := setup(t)
	e.each(t, func(t *testing.T, c *query.Client) {
		for s, want := range e.fx.Forecasts {
			got, err := c.Forecasts(ctx(t), s, time.Time{}, time.Time{}, e.fx.Model)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%s: %d points, want %d", s, len(got), len(want))
			}
			for i := range got {
				if !sameForecast(got[i], want[i]) {
					t.Fatalf("%s point %d: got %+v, want %+v", s, i, got[i], want[i])
				}
			}
			// [from, to): from inclusive, to exclusive.
			from, to := want[10].Time, want[20].Time
			got, err = c.Forecasts(ctx(t), s, from, to, e.fx.Model)
			if err != nil || len(got) != 10 || !sameForecast(got[0], want[10]) || !sameForecast(got[9], want[19]) {
				t.Errorf("%s in [%v, %v): %d points, %v", s, from, to, len(got), err)
			}
			other, err := c.Forecasts(ctx(t), s, from, to, e.fx.Other)
			if err != nil || len(other) != 10 || !sameForecast(other[0], e.fx.OtherForecasts[s][10]) {
				t.Errorf("%s of model %s: %v %v", s, e.fx.Other, other, err)
			}
		}
		var unscored int
		for _, p := range e.fx.Forecasts[`cpu,host=a#usage`] {
			if math.IsNaN(p.Actual) {
				unscored++
			}
		}
		if unscored < 3 {
			t.Fatalf("fixture has %d forecasts without actual: the NaN case is not exercised", unscored)
		}
		if got, err := c.Forecasts(ctx(t), `cpu,host=zz#usage`, time.Time{}, time.Time{}, e.fx.Model); err != nil || len(got) != 0 {
			t.Errorf("unknown series: %v %v", got, err)
		}
	})
}

func TestImputed(t *testing.T) {
	e := setup(t)
	e.each(t, func(t *testing.T, c *query.Client) {
		for s, want := range e.fx.Imputed {
			got, err := c.Imputed(ctx(t), s, time.Time{}, time.Time{}, e.fx.Model)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) || len(want) == 0 {
				t.Fatalf("%s: %d points, want %d", s, len(got), len(want))
			}
			for i := range got {
				if !got[i].Time.Equal(want[i].Time) || got[i].Value != want[i].Value {
					t.Errorf("%s point %d: got %+v, want %+v", s, i, got[i], want[i])
				}
			}
			got, err = c.Imputed(ctx(t), s, want[1].Time, want[2].Time, e.fx.Model)
			if err != nil || len(got) != 1 || got[0].Value != want[1].Value {
				t.Errorf("%s in range: %v %v", s, got, err)
			}
			if got, err := c.Imputed(ctx(t), s, time.Time{}, time.Time{}, e.fx.Other); err != nil || len(got) != 0 {
				t.Errorf("%s of a model that does not impute: %v %v", s, got, err)
			}
		}
	})
}

func sameAnomaly(a, b query.AnomalyPoint) bool {
	return a.Time.Equal(b.Time) && a.Score == b.Score && sameFloat(a.Surprise, b.Surprise) && sameFloat(a.Z, b.Z) && sameFloat(a.Novelty, b.Novelty)
}

func TestAnomalies(t *testing.T) {
	e := setup(t)
	e.each(t, func(t *testing.T, c *query.Client) {
		for s, all := range e.fx.Anomalies {
			for _, k := range []struct {
				from, to time.Time
				min      float64
			}{
				{min: 0}, {min: 0.5}, {min: 1}, {from: all[3].Time, to: all[40].Time, min: 0}, {from: all[3].Time, min: 0.5},
			} {
				var want []query.AnomalyPoint
				for _, a := range all {
					if a.Score >= k.min && (k.from.IsZero() || !a.Time.Before(k.from)) && (k.to.IsZero() || a.Time.Before(k.to)) {
						want = append(want, a)
					}
				}
				got, err := c.Anomalies(ctx(t), s, k.from, k.to, e.fx.Model, k.min)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(want) {
					t.Fatalf("%s %+v: %d points, want %d", s, k, len(got), len(want))
				}
				for i := range got {
					if !sameAnomaly(got[i], want[i]) {
						t.Errorf("%s %+v point %d: got %+v, want %+v", s, k, i, got[i], want[i])
					}
				}
				if k.min == 0.5 && len(want) == 0 {
					t.Errorf("%s: no score >= 0.5 in the fixture", s)
				}
			}
		}
		for _, bad := range []float64{-0.1, 1.5, math.NaN()} {
			if _, err := c.Anomalies(ctx(t), `cpu,host=a#usage`, time.Time{}, time.Time{}, e.fx.Model, bad); err == nil {
				t.Errorf("min score %v accepted", bad)
			}
		}
		if got, err := c.Anomalies(ctx(t), `cpu,host=a#usage`, time.Time{}, time.Time{}, e.fx.Other, 0); err != nil || len(got) != 0 {
			t.Errorf("a model without anomaly scores: %v %v", got, err)
		}
	})
}

func TestTrainLosses(t *testing.T) {
	e := setup(t)
	e.each(t, func(t *testing.T, c *query.Client) {
		for model, want := range map[string][]query.TrainLoss{e.fx.Model: e.fx.Train, e.fx.Other: e.fx.OtherTrain} {
			got, err := c.TrainLosses(ctx(t), model, time.Time{}, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%s: %d steps, want %d", model, len(got), len(want))
			}
			for i := range got {
				g, w := got[i], want[i]
				if !g.Time.Equal(w.Time) || g.Topic != w.Topic || g.Partition != w.Partition || g.Step != w.Step || g.Windows != w.Windows ||
					!sameFloat(g.LossForecast, w.LossForecast) || !sameFloat(g.LossImpute, w.LossImpute) || !sameFloat(g.LossContrast, w.LossContrast) {
					t.Errorf("%s step %d: got %+v, want %+v", model, i, g, w)
				}
			}
		}
		got, err := c.TrainLosses(ctx(t), e.fx.Model, e.fx.Train[2].Time, e.fx.Train[6].Time)
		if err != nil || len(got) != 4 || got[0].Step != e.fx.Train[2].Step {
			t.Errorf("range: %+v %v", got, err)
		}
	})
}

// TestForecastSummary: the summary over the fixture, the last-value
// baseline's MAE computed in the query from actual and last_value.
func TestForecastSummary(t *testing.T) {
	e := setup(t)
	e.each(t, func(t *testing.T, c *query.Client) {
		rows, err := c.ForecastSummary(ctx(t), e.fx.Model)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != len(e.fx.Forecasts) {
			t.Fatalf("%d series, want %d", len(rows), len(e.fx.Forecasts))
		}
		for _, r := range rows {
			var n, scored, based int64
			var sum, base float64
			for _, p := range e.fx.Forecasts[r.Series] {
				n++
				if !math.IsNaN(p.AbsError) {
					scored++
					sum += p.AbsError
				}
				if v := math.Abs(p.Actual - p.LastValue); !math.IsNaN(v) {
					based++
					base += v
				}
			}
			if r.Forecasts != n || r.Scored != scored || math.Abs(r.MAE-sum/float64(scored)) > 1e-9 ||
				based == 0 || math.Abs(r.LastValueMAE-base/float64(based)) > 1e-9 {
				t.Errorf("%+v: want %d forecasts, %d scored, MAE %v, last-value MAE %v", r, n, scored, sum/float64(scored), base/float64(based))
			}
		}
	})
}

func TestEmbeddingCount(t *testing.T) {
	e := setup(t)
	want := int64(0)
	for _, es := range e.fx.Embeddings {
		want += int64(len(es))
	}
	e.each(t, func(t *testing.T, c *query.Client) {
		if n, err := c.EmbeddingCount(ctx(t), e.fx.Model); err != nil || n != want {
			t.Errorf("%d embeddings, %v; want %d", n, err, want)
		}
		if n, err := c.EmbeddingCount(ctx(t), e.fx.Other); err != nil || n != 0 {
			t.Errorf("other model: %d, %v", n, err)
		}
	})
}

func TestListSeries(t *testing.T) {
	e := setup(t)
	e.each(t, func(t *testing.T, c *query.Client) {
		all, err := c.ListSeries(ctx(t), e.fx.Model, query.SeriesFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, s := range all {
			keys = append(keys, s.Series)
			wantOut := []string{"embedding"}
			if f := e.fx.Forecasts[s.Series]; f != nil {
				wantOut = []string{"anomaly", "embedding", "forecast", "imputed"}
				if !s.Latest["forecast"].Equal(f[len(f)-1].Time) {
					t.Errorf("%s: latest forecast %v, want %v", s.Series, s.Latest["forecast"], f[len(f)-1].Time)
				}
			}
			var outs []string
			for o := range s.Latest {
				outs = append(outs, o)
			}
			sort.Strings(outs)
			if !reflect.DeepEqual(outs, wantOut) {
				t.Errorf("%s: outputs %v, want %v", s.Series, outs, wantOut)
			}
			es := e.fx.Embeddings[s.Series]
			if !s.Latest["embedding"].Equal(es[len(es)-1].Time) {
				t.Errorf("%s: latest embedding %v", s.Series, s.Latest["embedding"])
			}
		}
		want := append([]string(nil), e.fx.Series...)
		sort.Strings(want)
		if !reflect.DeepEqual(keys, want) {
			t.Errorf("series %q, want %q", keys, want)
		}
		for _, k := range []struct {
			f    query.SeriesFilter
			want []string
		}{
			{query.SeriesFilter{Measurement: "cpu", Tags: []ingest.KV{{Key: "region", Value: "eu"}}},
				[]string{`cpu,host=a,region=eu#usage`, `cpu,host=a,region=eu,zone=1#usage`, `cpu,host=b\ 2,region=eu#usage`}},
			{query.SeriesFilter{Tags: []ingest.KV{{Key: "host", Value: "b 2"}}}, []string{`cpu,host=b\ 2,region=eu#usage`}},
			{query.SeriesFilter{Tags: []ingest.KV{{Key: "note", Value: `a,b${x}`}}}, []string{`mem,host=b,note=a\,b${x}#used`}},
			{query.SeriesFilter{Tags: []ingest.KV{{Key: "model", Value: "x"}}}, []string{`disk,model=x,path=C:\\data#free`}}, // stored as tag_model
			{query.SeriesFilter{Field: "used", Tags: []ingest.KV{{Key: "note", Value: `"q'`}}}, []string{`mem,host=a,note="q'#used`}},
			{query.SeriesFilter{Measurement: `cpu" OR "a" = 'b`}, nil},
			{query.SeriesFilter{Tags: []ingest.KV{{Key: `host") |> drop(columns: ["x`, Value: "a"}}}, nil},
		} {
			got, err := c.ListSeries(ctx(t), e.fx.Model, k.f)
			if err != nil {
				t.Fatalf("%+v: %v", k.f, err)
			}
			var keys []string
			for _, s := range got {
				keys = append(keys, s.Series)
			}
			if !reflect.DeepEqual(keys, k.want) {
				t.Errorf("%+v: %q, want %q", k.f, keys, k.want)
			}
		}
		other, err := c.ListSeries(ctx(t), e.fx.Other, query.SeriesFilter{})
		if err != nil || len(other) != len(e.fx.Forecasts) || len(other[0].Latest) != 1 {
			t.Errorf("other model: %+v %v", other, err)
		}
		if _, err := c.ListSeries(ctx(t), e.fx.Model, query.SeriesFilter{Tags: []ingest.KV{{Key: "host", Value: "a\nb"}}}); err == nil {
			t.Error("a control character in a filter accepted")
		}
	})
}

// TestLanguagesAgree runs the same calls in both languages and compares
// the answers whole.
func TestLanguagesAgree(t *testing.T) {
	e := setup(t)
	calls := map[string]func(c *query.Client) (any, error){
		"similar": func(c *query.Client) (any, error) {
			var out []any
			for _, s := range e.fx.Series {
				q, m, err := c.SimilarOfVersion(ctx(t), s, time.Time{}, 100, e.fx.Model, query.NewestVersion)
				if err != nil {
					return nil, err
				}
				out = append(out, q, m)
			}
			return out, nil
		},
		"latest v0": func(c *query.Client) (any, error) {
			return c.LatestEmbeddingsOfVersion(ctx(t), time.Time{}, e.fx.Model, 0)
		},
		"summary": func(c *query.Client) (any, error) { return c.ForecastSummary(ctx(t), e.fx.Model) },
		"series":  func(c *query.Client) (any, error) { return c.ListSeries(ctx(t), e.fx.Model, query.SeriesFilter{}) },
		"train":   func(c *query.Client) (any, error) { return c.TrainLosses(ctx(t), e.fx.Other, time.Time{}, time.Time{}) },
		"forecasts": func(c *query.Client) (any, error) {
			return c.Forecasts(ctx(t), `disk,model=x,path=C:\\data#free`, time.Time{}, time.Time{}, e.fx.Model)
		},
		"anomalies": func(c *query.Client) (any, error) {
			return c.Anomalies(ctx(t), `cpu,host=a#usage`, time.Time{}, time.Time{}, e.fx.Model, 0)
		},
	}
	for name, call := range calls {
		a, err := call(e.Client)
		if err != nil {
			t.Fatalf("%s: InfluxQL: %v", name, err)
		}
		b, err := call(e.Flux)
		if err != nil {
			t.Fatalf("%s: Flux: %v", name, err)
		}
		// NaN != NaN: compare the JSON of both, NaN written as null.
		if ja, jb := jsonOf(t, a), jsonOf(t, b); ja != jb {
			t.Errorf("%s: InfluxQL and Flux differ:\n%s\n%s", name, ja, jb)
		}
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(nanToNull(reflect.ValueOf(v)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// nanToNull copies v into plain maps and slices with NaN as nil.
func nanToNull(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return nanToNull(v.Elem())
	case reflect.Float64:
		// 13 significant digits: the languages sum means in other orders.
		if f := v.Float(); !math.IsNaN(f) {
			return strconv.FormatFloat(f, 'g', 13, 64)
		}
		return nil
	case reflect.Slice, reflect.Array:
		out := make([]any, v.Len())
		for i := range out {
			out[i] = nanToNull(v.Index(i))
		}
		return out
	case reflect.Map:
		out := map[string]any{}
		for _, k := range v.MapKeys() {
			out[k.String()] = nanToNull(v.MapIndex(k))
		}
		return out
	case reflect.Struct:
		if tm, ok := v.Interface().(time.Time); ok {
			return tm.UTC().Format(time.RFC3339Nano)
		}
		out := map[string]any{}
		for i := 0; i < v.NumField(); i++ {
			out[v.Type().Field(i).Name] = nanToNull(v.Field(i))
		}
		return out
	}
	return v.Interface()
}

// TestHostileSeriesKeys: keys built to break out of the quoting of either
// language are refused before a query, or match nothing; no query fails.
func TestHostileSeriesKeys(t *testing.T) {
	e := setup(t)
	hostile := []string{
		`cpu,host=a' OR 'a'='a#usage`,
		`cpu,host=a" OR "a"="a#usage`,
		`cpu,host=a") |> drop(columns: ["host#usage`,
		`cpu,host=a"\ or\ true\ or\ r.host\ ==\ "#usage`,
		`cpu,host=a'; DROP DATABASE x; SELECT '#usage`,
		`cpu,host=a; DROP MEASUREMENT tsrep_forecast#usage`,
		`cpu,host=C:\\\\data\\'#usage`,
		`cpu,host=a\\#usage`, // a value ending in a backslash
		"cpu,host=a\nb#usage",
		"cpu,host=a\rb#usage",
		"cpu,host=a\x00#usage",
		`cpu,ho"st\ \=x=a#u${x}`,
		`c"p'u\,x,host=a#usage`,
		"cpu,host=\xff#usage",
	}
	// ok: no error, no data, or refused before any query ran.
	ok := func(err error) bool {
		return err == nil || errors.Is(err, query.ErrNoData) || errors.Is(err, query.ErrInvalid)
	}
	e.each(t, func(t *testing.T, c *query.Client) {
		for _, s := range hostile {
			if _, err := c.Embedding(ctx(t), s, time.Time{}, e.fx.Model); !ok(err) {
				t.Errorf("embedding of %q: %v", s, err)
			}
			for _, v := range []int64{query.NewestVersion, 0, 4} {
				if _, _, err := c.SimilarOfVersion(ctx(t), s, time.Time{}, 3, e.fx.Model, v); !ok(err) {
					t.Errorf("similar to %q: %v", s, err)
				}
			}
			if fc, err := c.Forecasts(ctx(t), s, time.Time{}, time.Time{}, e.fx.Model); !ok(err) || len(fc) != 0 {
				t.Errorf("forecasts of %q: %d, %v", s, len(fc), err)
			}
			if an, err := c.Anomalies(ctx(t), s, time.Time{}, time.Time{}, e.fx.Model, 0.5); !ok(err) || len(an) != 0 {
				t.Errorf("anomalies of %q: %d, %v", s, len(an), err)
			}
			if _, err := c.Similar(ctx(t), `cpu,host=a#usage`, time.Time{}, 3, s); !ok(err) {
				t.Errorf("model %q: %v", s, err)
			}
			if l, err := c.ListSeries(ctx(t), e.fx.Model, query.SeriesFilter{Measurement: s, Tags: []ingest.KV{{Key: s, Value: s}}}); !ok(err) || len(l) != 0 {
				t.Errorf("series with tag %q: %v %v", s, l, err)
			}
		}
		// The database is still there.
		if rows, err := c.ForecastSummary(ctx(t), e.fx.Model); err != nil || len(rows) != len(e.fx.Forecasts) {
			t.Errorf("after the hostile keys: %v %v", rows, err)
		}
	})
}

func TestInfluxQLErrors(t *testing.T) {
	e := setup(t)
	for _, err := range []error{
		func() error { _, err := e.Client.Embedding(ctx(t), "cpu", time.Time{}, "m"); return err }(),
		func() error { _, err := e.Client.Embedding(ctx(t), "cpu#u", time.Time{}, ""); return err }(),
		func() error { _, err := e.Client.Similar(ctx(t), "cpu#u", time.Time{}, 0, "m"); return err }(),
		func() error {
			_, err := e.Client.Anomalies(ctx(t), "cpu#u", time.Time{}, time.Time{}, "m", -1)
			return err
		}(),
	} {
		if !errors.Is(err, query.ErrInvalid) {
			t.Errorf("%v: not ErrInvalid", err)
		}
	}
	c, err := query.Open(query.Options{URL: e.in.URL, Bucket: "no_such_db", Prefix: "tsrep_"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ForecastSummary(ctx(t), "m")
	if err == nil || errors.Is(err, query.ErrInvalid) || !strings.Contains(err.Error(), "database not found") || !strings.Contains(err.Error(), "DBRP") {
		t.Errorf("unknown database: %v", err)
	}
	c, _ = query.Open(query.Options{URL: "http://127.0.0.1:1", Bucket: "x"})
	if _, err := c.ForecastSummary(ctx(t), "m"); err == nil {
		t.Error("nothing listening: no error")
	}
	if _, err := query.Open(query.Options{URL: "127.0.0.1:8086", Bucket: "x"}); err == nil {
		t.Error("a URL without a scheme accepted")
	}
	if _, err := query.Open(query.Options{URL: e.in.URL, Bucket: "x", Language: "sql"}); err == nil {
		t.Error("language sql accepted")
	}
	// A retention policy after the database.
	c, _ = query.Open(query.Options{URL: e.in.URL, Bucket: e.in.Database + "/autogen", Prefix: e.fx.Prefix})
	if rows, err := c.ForecastSummary(ctx(t), e.fx.Model); err != nil || len(rows) != len(e.fx.Forecasts) {
		t.Errorf("database/rp: %v %v", rows, err)
	}
	c, _ = query.Open(query.Options{URL: e.in.URL, Bucket: e.in.Database + "/nope", Prefix: e.fx.Prefix})
	if _, err := c.ForecastSummary(ctx(t), e.fx.Model); err == nil || !strings.Contains(err.Error(), "retention policy") {
		t.Errorf("unknown retention policy: %v", err)
	}
}

// iqlSeries is one series of an InfluxQL answer.
type iqlSeries struct {
	Tags    map[string]string
	Columns []string
	Values  [][]any
}

// influxQL runs InfluxQL statements over HTTP with epoch=ns and returns
// the series of each.
func influxQL(t *testing.T, in testenv.Influx, q string) [][]iqlSeries {
	t.Helper()
	u := in.URL + "/query?" + url.Values{"db": {in.Database}, "q": {q}, "epoch": {"ns"}}.Encode()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error   string
		Results []struct {
			Error  string
			Series []iqlSeries
		}
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		t.Fatal(err)
	}
	if body.Error != "" {
		t.Fatalf("%s: %+v", q, body)
	}
	var out [][]iqlSeries
	for _, r := range body.Results {
		if r.Error != "" {
			t.Fatalf("%s: %+v", q, body)
		}
		out = append(out, r.Series)
	}
	return out
}

// seriesOf rebuilds the series key from InfluxQL's tags (GROUP BY *).
func seriesOf(tags map[string]string) string {
	id := ingest.SeriesID{Measurement: tags["measurement"], Field: tags["field"]}
	for k, v := range tags {
		k, ok := sinks.InputTagKey(k)
		if v == "" || !ok {
			continue
		}
		id.Tags = append(id.Tags, ingest.KV{Key: k, Value: v})
	}
	sort.Slice(id.Tags, func(i, j int) bool { return id.Tags[i].Key < id.Tags[j].Key })
	return id.String()
}

func num(t *testing.T, v any) float64 {
	t.Helper()
	if v == nil {
		return math.NaN()
	}
	f, err := strconv.ParseFloat(string(v.(json.Number)), 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// column is the value of a column of an InfluxQL row.
func column(t *testing.T, s iqlSeries, row []any, name string) float64 {
	t.Helper()
	for i, c := range s.Columns {
		if c == name {
			return num(t, row[i])
		}
	}
	return math.NaN()
}

// TestExportedInfluxQL runs each exported ...InfluxQL text, as the README
// and --explain show it, straight on the server, and checks it returns
// what the Flux client does.
func TestExportedInfluxQL(t *testing.T) {
	e := setup(t)
	meas := func(m string) string { return e.fx.Prefix + m }
	at := e.fx.Embeddings[e.fx.Series[0]][3].Time

	for _, s := range e.fx.Series {
		for _, v := range []int64{query.NewestVersion, 3} {
			q, err := query.EmbeddingInfluxQL(meas(sinks.MeasEmbedding), s, at, e.fx.Model, v)
			if err != nil {
				t.Fatal(err)
			}
			want, err := e.Flux.EmbeddingOfVersion(ctx(t), s, at, e.fx.Model, v)
			if errors.Is(err, query.ErrNoData) {
				continue
			} else if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, r := range influxQL(t, e.in, q)[0] {
				if seriesOf(r.Tags) != s {
					continue // the WHERE clause also matches series with more tags
				}
				found = true
				row := r.Values[0]
				if got := time.Unix(0, int64(num(t, row[0]))); !got.Equal(want.Time) {
					t.Errorf("%s: InfluxQL time %v, Flux %v", s, got, want.Time)
				}
				for i, x := range want.Vector {
					if got := column(t, r, row, "e"+strconv.Itoa(i)); got != x {
						t.Errorf("%s: InfluxQL e%d=%v, Flux %v", s, i, got, x)
					}
				}
				if got := column(t, r, row, "version"); !(got == float64(want.Version) || math.IsNaN(got) && want.Version == 0) {
					t.Errorf("%s: InfluxQL version %v, Flux %v", s, got, want.Version)
				}
			}
			if !found {
				t.Errorf("%s: InfluxQL %s returned no row of the series", s, q)
			}
		}
	}

	latest, err := e.Flux.LatestEmbeddingsOfVersion(ctx(t), at, e.fx.Model, 3)
	if err != nil {
		t.Fatal(err)
	}
	rows := influxQL(t, e.in, query.SimilarInfluxQL(meas(sinks.MeasEmbedding), at, e.fx.Model, 3))[0]
	if len(rows) != len(latest) || len(rows) == 0 {
		t.Errorf("InfluxQL: %d series, Flux %d", len(rows), len(latest))
	}
	for _, r := range rows {
		s := seriesOf(r.Tags)
		for _, l := range latest {
			if l.Series == s && (column(t, r, r.Values[0], "e0") != l.Vector[0] || int64(num(t, r.Values[0][0])) != l.Time.UnixNano()) {
				t.Errorf("%s: InfluxQL %v, Flux %v", s, r.Values[0], l)
			}
		}
	}
	// Version 0 is three statements; they run as the README shows them.
	if got := influxQL(t, e.in, query.SimilarInfluxQL(meas(sinks.MeasEmbedding), time.Time{}, e.fx.Model, 0)); len(got) != 3 || len(got[0]) == 0 || len(got[1]) != len(e.fx.Series) {
		t.Errorf("version 0: %d statements answered, %d and %d series", len(got), len(got[0]), len(got[1]))
	}

	for s := range e.fx.Forecasts {
		from, to := e.fx.Forecasts[s][5].Time, e.fx.Forecasts[s][60].Time
		want, err := e.Flux.Forecasts(ctx(t), s, from, to, e.fx.Model)
		if err != nil {
			t.Fatal(err)
		}
		q, _ := query.ForecastsInfluxQL(meas(sinks.MeasForecast), s, from, to, e.fx.Model)
		var got []query.ForecastPoint
		for _, r := range influxQL(t, e.in, q)[0] {
			if seriesOf(r.Tags) != s {
				continue
			}
			for _, v := range r.Values {
				p := query.ForecastPoint{Time: time.Unix(0, int64(num(t, v[0]))).UTC(), Predicted: num(t, v[1]),
					Actual: num(t, v[2]), AbsError: num(t, v[3]), LastValue: num(t, v[4]), LastValueAbsError: num(t, v[5])}
				got = append(got, p)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%s: InfluxQL %d forecasts, Flux %d", s, len(got), len(want))
		}
		for i := range got {
			if !sameForecast(got[i], want[i]) {
				t.Errorf("%s: InfluxQL %+v, Flux %+v", s, got[i], want[i])
			}
		}

		an, _ := e.Flux.Anomalies(ctx(t), s, time.Time{}, time.Time{}, e.fx.Model, 0.5)
		q, _ = query.AnomaliesInfluxQL(meas(query.MeasAnomaly), s, time.Time{}, time.Time{}, e.fx.Model, 0.5)
		n := 0
		for _, r := range influxQL(t, e.in, q)[0] {
			if seriesOf(r.Tags) != s {
				continue
			}
			for i, v := range r.Values {
				n++
				if int64(num(t, v[0])) != an[i].Time.UnixNano() || num(t, v[1]) != an[i].Score {
					t.Errorf("%s anomaly: InfluxQL %v, Flux %+v", s, v, an[i])
				}
			}
		}
		if n != len(an) || n == 0 {
			t.Errorf("%s: InfluxQL %d anomalies, Flux %d", s, n, len(an))
		}
	}

	train, _ := e.Flux.TrainLosses(ctx(t), e.fx.Model, time.Time{}, time.Time{})
	n := 0
	for _, r := range influxQL(t, e.in, query.TrainLossesInfluxQL(meas(sinks.MeasTrain), e.fx.Model, time.Time{}, time.Time{}))[0] {
		n += len(r.Values)
	}
	if n != len(train) {
		t.Errorf("InfluxQL %d train rows, Flux %d", n, len(train))
	}
	sum := influxQL(t, e.in, query.ForecastSummaryInfluxQL(meas(sinks.MeasForecast), e.fx.Model))
	if len(sum) != 2 || len(sum[0]) != len(e.fx.Forecasts) || len(sum[1]) != len(e.fx.Forecasts) {
		t.Errorf("summary: %+v", sum)
	}
	list, err := query.SeriesListInfluxQL(e.fx.Prefix, e.fx.Model, query.SeriesFilter{Measurement: "mem"})
	if err != nil {
		t.Fatal(err)
	}
	if got := influxQL(t, e.in, list); len(got) != 4 || len(got[1]) != 3 || len(got[0]) != 0 {
		t.Errorf("series list: %+v", got)
	}
}
