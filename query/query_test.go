package query_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
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
	fx     *querytest.Fixture
	in     testenv.Influx
	client *query.Client
}

// setup returns the fixture, written once into a fresh database; the tests
// only read.
func setup(t *testing.T) env {
	s := querytest.Shared(t)
	return env{fx: s.Fixture, in: s.Influx, client: s.Client}
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

func TestEmbedding(t *testing.T) {
	e := setup(t)
	for _, s := range e.fx.Series {
		want := e.fx.Embeddings[s]
		got, err := e.client.Embedding(ctx(t), s, time.Time{}, e.fx.Model)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		last := want[len(want)-1]
		if got.Series != s || !got.Time.Equal(last.Time) || !sameVec(got.Vector, last.Vector) {
			t.Errorf("latest of %s: got %+v, want %+v", s, got, last)
		}
		// at is inclusive: at an embedding's time, that embedding; one
		// nanosecond earlier, the one before.
		at := want[2].Time
		if got, err = e.client.Embedding(ctx(t), s, at, e.fx.Model); err != nil || !got.Time.Equal(at) || !sameVec(got.Vector, want[2].Vector) {
			t.Errorf("%s at %v: got %+v, %v; want %+v", s, at, got, err, want[2])
		}
		if got, err = e.client.Embedding(ctx(t), s, at.Add(-time.Nanosecond), e.fx.Model); err != nil || !got.Time.Equal(want[1].Time) || !sameVec(got.Vector, want[1].Vector) {
			t.Errorf("%s before %v: got %+v, %v; want %+v", s, at, got, err, want[1])
		}
		if _, err = e.client.Embedding(ctx(t), s, want[0].Time.Add(-time.Nanosecond), e.fx.Model); !errors.Is(err, query.ErrNoData) {
			t.Errorf("%s before the first embedding: err %v, want ErrNoData", s, err)
		}
	}
	// The tags of a key may come in any order.
	got, err := e.client.Embedding(ctx(t), `cpu,region=eu,host=a#usage`, time.Time{}, e.fx.Model)
	want := e.fx.Embeddings[`cpu,host=a,region=eu#usage`]
	if err != nil || got.Series != `cpu,host=a,region=eu#usage` || !sameVec(got.Vector, want[len(want)-1].Vector) {
		t.Errorf("unsorted tags: %+v, %v", got, err)
	}
	for _, c := range []struct{ series, model string }{
		{`cpu,host=a#usage`, e.fx.Other}, // a learner that writes no embeddings
		{`cpu,host=zz#usage`, e.fx.Model},
		{`cpu#usage`, e.fx.Model}, // only series with more tags exist
	} {
		if _, err := e.client.Embedding(ctx(t), c.series, time.Time{}, c.model); !errors.Is(err, query.ErrNoData) || !strings.Contains(err.Error(), c.series) {
			t.Errorf("%s model %s: err %v, want ErrNoData naming the series", c.series, c.model, err)
		}
	}
	if _, err := e.client.Embedding(ctx(t), `cpu,host=a`, time.Time{}, e.fx.Model); err == nil || errors.Is(err, query.ErrNoData) {
		t.Errorf("bad key: %v", err)
	}
}

// latestAt is what the fixture says each series' embedding is at at.
func latestAt(fx *querytest.Fixture, at time.Time) map[string]query.Embedding {
	out := map[string]query.Embedding{}
	for s, es := range fx.Embeddings {
		for _, e := range es {
			if at.IsZero() || !e.Time.After(at) {
				out[s] = e
			}
		}
	}
	return out
}

func testCosine(a, b []float64) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += a[i] * b[i]
		na += a[i] * a[i]
		nb += b[i] * b[i]
	}
	return dot / math.Sqrt(na*nb)
}

func TestLatestEmbeddings(t *testing.T) {
	e := setup(t)
	at := e.fx.Embeddings[e.fx.Series[0]][3].Time
	got, err := e.client.LatestEmbeddings(ctx(t), at, e.fx.Model)
	if err != nil {
		t.Fatal(err)
	}
	want := latestAt(e.fx, at)
	if len(got) != len(want) {
		t.Fatalf("got %d series, want %d", len(got), len(want))
	}
	for _, g := range got {
		w := want[g.Series]
		if !g.Time.Equal(w.Time) || !sameVec(g.Vector, w.Vector) {
			t.Errorf("%s: got %v %v, want %v %v", g.Series, g.Time, g.Vector, w.Time, w.Vector)
		}
	}
	if got[0].Measurement() != "cpu" {
		t.Errorf("measurement of %s: %q", got[0].Series, got[0].Measurement())
	}
}

func TestSimilar(t *testing.T) {
	e := setup(t)
	for _, at := range []time.Time{{}, e.fx.Embeddings[e.fx.Series[0]][3].Time} {
		latest := latestAt(e.fx, at)
		for _, s := range e.fx.Series {
			type sc struct {
				series string
				score  float64
			}
			var want []sc
			for o, emb := range latest {
				if o != s {
					want = append(want, sc{o, testCosine(latest[s].Vector, emb.Vector)})
				}
			}
			sort.Slice(want, func(i, j int) bool { return want[i].score > want[j].score })
			for _, k := range []int{3, 100} {
				got, err := e.client.Similar(ctx(t), s, at, k, e.fx.Model)
				if err != nil {
					t.Fatalf("%s: %v", s, err)
				}
				if n := min(k, len(want)); len(got) != n {
					t.Fatalf("%s k=%d: %d matches, want %d", s, k, len(got), n)
				}
				for i, g := range got {
					if g.Series != want[i].series || math.Abs(g.Score-want[i].score) > 1e-12 || !g.Time.Equal(latest[g.Series].Time) {
						t.Errorf("%s at %v, match %d: got %s %.15f %v, want %s %.15f", s, at, i, g.Series, g.Score, g.Time, want[i].series, want[i].score)
					}
				}
			}
		}
	}
	if _, err := e.client.Similar(ctx(t), `cpu,host=a#usage`, time.Time{}, 0, e.fx.Model); err == nil {
		t.Error("k=0 accepted")
	}
	if _, err := e.client.Similar(ctx(t), `cpu,host=a#usage`, time.Time{}, 3, e.fx.Other); !errors.Is(err, query.ErrNoData) {
		t.Errorf("model without embeddings: %v", err)
	}
}

func sameFloat(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

func sameForecast(a, b query.ForecastPoint) bool {
	return a.Time.Equal(b.Time) && sameFloat(a.Predicted, b.Predicted) && sameFloat(a.Actual, b.Actual) &&
		sameFloat(a.AbsError, b.AbsError) && sameFloat(a.LastValue, b.LastValue) && sameFloat(a.LastValueAbsError, b.LastValueAbsError)
}

func TestForecasts(t *testing.T) {
	e := setup(t)
	for s, want := range e.fx.Forecasts {
		got, err := e.client.Forecasts(ctx(t), s, time.Time{}, time.Time{}, e.fx.Model)
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
		got, err = e.client.Forecasts(ctx(t), s, from, to, e.fx.Model)
		if err != nil || len(got) != 10 || !sameForecast(got[0], want[10]) || !sameForecast(got[9], want[19]) {
			t.Errorf("%s in [%v, %v): %d points, %v", s, from, to, len(got), err)
		}
		other, err := e.client.Forecasts(ctx(t), s, from, to, e.fx.Other)
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
	if got, err := e.client.Forecasts(ctx(t), `cpu,host=zz#usage`, time.Time{}, time.Time{}, e.fx.Model); err != nil || len(got) != 0 {
		t.Errorf("unknown series: %v %v", got, err)
	}
}

func TestImputed(t *testing.T) {
	e := setup(t)
	for s, want := range e.fx.Imputed {
		got, err := e.client.Imputed(ctx(t), s, time.Time{}, time.Time{}, e.fx.Model)
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
		got, err = e.client.Imputed(ctx(t), s, want[1].Time, want[2].Time, e.fx.Model)
		if err != nil || len(got) != 1 || got[0].Value != want[1].Value {
			t.Errorf("%s in range: %v %v", s, got, err)
		}
		if got, err := e.client.Imputed(ctx(t), s, time.Time{}, time.Time{}, e.fx.Other); err != nil || len(got) != 0 {
			t.Errorf("%s of a model that does not impute: %v %v", s, got, err)
		}
	}
}

func TestTrainLosses(t *testing.T) {
	e := setup(t)
	for model, want := range map[string][]query.TrainLoss{e.fx.Model: e.fx.Train, e.fx.Other: e.fx.OtherTrain} {
		got, err := e.client.TrainLosses(ctx(t), model, time.Time{}, time.Time{})
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
	got, err := e.client.TrainLosses(ctx(t), e.fx.Model, e.fx.Train[2].Time, e.fx.Train[6].Time)
	if err != nil || len(got) != 4 || got[0].Step != e.fx.Train[2].Step {
		t.Errorf("range: %+v %v", got, err)
	}
}

// TestForecastSummaryStillWorks: the summary over the fixture, the
// last-value baseline's MAE computed in Flux from actual and last_value.
func TestForecastSummaryStillWorks(t *testing.T) {
	e := setup(t)
	rows, err := e.client.ForecastSummary(ctx(t), e.fx.Model)
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
}

// iqlSeries is one series of an InfluxQL answer.
type iqlSeries struct {
	Tags    map[string]string
	Columns []string
	Values  [][]any
}

// influxQL runs an InfluxQL statement over HTTP with epoch=ns.
func influxQL(t *testing.T, in testenv.Influx, q string) []iqlSeries {
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
	if body.Error != "" || len(body.Results) != 1 || body.Results[0].Error != "" {
		t.Fatalf("%s: %+v", q, body)
	}
	return body.Results[0].Series
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

// TestInfluxQLEquivalent runs each ...InfluxQL statement on the server and
// checks it returns what the Flux-based method does.
func TestInfluxQLEquivalent(t *testing.T) {
	e := setup(t)
	meas := func(m string) string { return e.fx.Prefix + m }
	at := e.fx.Embeddings[e.fx.Series[0]][3].Time

	for _, s := range e.fx.Series {
		q, err := query.EmbeddingInfluxQL(meas(sinks.MeasEmbedding), s, at, e.fx.Model)
		if err != nil {
			t.Fatal(err)
		}
		want, err := e.client.Embedding(ctx(t), s, at, e.fx.Model)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range influxQL(t, e.in, q) {
			if seriesOf(r.Tags) != s {
				continue // the WHERE clause also matches series with more tags
			}
			found = true
			row := r.Values[0]
			if got := time.Unix(0, int64(num(t, row[0]))); !got.Equal(want.Time) {
				t.Errorf("%s: InfluxQL time %v, Flux %v", s, got, want.Time)
			}
			for i, v := range want.Vector {
				if r.Columns[i+1] != fmt.Sprintf("e%d", i) || num(t, row[i+1]) != v {
					t.Errorf("%s: InfluxQL %s=%v, Flux e%d=%v", s, r.Columns[i+1], row[i+1], i, v)
				}
			}
		}
		if !found {
			t.Errorf("%s: InfluxQL %s returned no row of the series", s, q)
		}
	}

	latest, err := e.client.LatestEmbeddings(ctx(t), at, e.fx.Model)
	if err != nil {
		t.Fatal(err)
	}
	rows := influxQL(t, e.in, query.SimilarInfluxQL(meas(sinks.MeasEmbedding), at, e.fx.Model))
	if len(rows) != len(latest) {
		t.Errorf("InfluxQL: %d series, Flux %d", len(rows), len(latest))
	}
	for _, r := range rows {
		s := seriesOf(r.Tags)
		for _, l := range latest {
			if l.Series == s && (num(t, r.Values[0][1]) != l.Vector[0] || int64(num(t, r.Values[0][0])) != l.Time.UnixNano()) {
				t.Errorf("%s: InfluxQL %v, Flux %v", s, r.Values[0], l)
			}
		}
	}

	for s := range e.fx.Forecasts {
		from, to := e.fx.Forecasts[s][5].Time, e.fx.Forecasts[s][60].Time
		want, err := e.client.Forecasts(ctx(t), s, from, to, e.fx.Model)
		if err != nil {
			t.Fatal(err)
		}
		q, _ := query.ForecastsInfluxQL(meas(sinks.MeasForecast), s, from, to, e.fx.Model)
		var got []query.ForecastPoint
		for _, r := range influxQL(t, e.in, q) {
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

		imp, _ := e.client.Imputed(ctx(t), s, time.Time{}, time.Time{}, e.fx.Model)
		q, _ = query.ImputedInfluxQL(meas(sinks.MeasImputed), s, time.Time{}, time.Time{}, e.fx.Model)
		n := 0
		for _, r := range influxQL(t, e.in, q) {
			if seriesOf(r.Tags) != s {
				continue
			}
			for i, v := range r.Values {
				n++
				if int64(num(t, v[0])) != imp[i].Time.UnixNano() || num(t, v[1]) != imp[i].Value {
					t.Errorf("%s imputed: InfluxQL %v, Flux %+v", s, v, imp[i])
				}
			}
		}
		if n != len(imp) {
			t.Errorf("%s: InfluxQL %d imputed, Flux %d", s, n, len(imp))
		}
	}

	train, _ := e.client.TrainLosses(ctx(t), e.fx.Model, time.Time{}, time.Time{})
	n := 0
	for _, r := range influxQL(t, e.in, query.TrainLossesInfluxQL(meas(sinks.MeasTrain), e.fx.Model, time.Time{}, time.Time{})) {
		for _, v := range r.Values {
			n++
			ok := false
			for _, w := range train {
				if w.Partition == r.Tags["partition"] && w.Time.UnixNano() == int64(num(t, v[0])) && float64(w.Step) == num(t, v[1]) &&
					w.LossForecast == num(t, v[3]) && w.LossImpute == num(t, v[4]) && w.LossContrast == num(t, v[5]) {
					ok = true
				}
			}
			if !ok {
				t.Errorf("InfluxQL train row %v (partition %s) not in Flux's", v, r.Tags["partition"])
			}
		}
	}
	if n != len(train) {
		t.Errorf("InfluxQL %d train rows, Flux %d", n, len(train))
	}
}
