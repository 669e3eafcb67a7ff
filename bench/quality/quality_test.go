package quality

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/tsrep/tsrep/dataset"
	"github.com/tsrep/tsrep/models"
	"github.com/tsrep/tsrep/query"
)

const (
	etth1 = "../../data/ETT/ETTh1.csv"
	ucr   = "../../data/UCR/"
)

// small is a learner configuration small enough for quick tests.
func small() Common {
	cfg := models.DefaultSSLConfig("ssl", 3, 1)
	cfg.Dim, cfg.Hidden, cfg.TrainBatch, cfg.MaxSeries, cfg.ARLags = 8, 16, 16, 64, 8
	return Common{Model: cfg, Epochs: 1, BatchSize: 50}
}

func TestParseSplit(t *testing.T) {
	for _, tc := range []struct {
		train, val, test string
		total            int
		want             Split
		err              bool
	}{
		{"2880", "720", "10800", 17420, Split{2880, 720, 10800}, false},
		{"0.6", "0.2", "0.2", 1000, Split{600, 200, 200}, false},
		{"100", "0", "0.5", 1000, Split{100, 0, 500}, false},
		{"900", "100", "100", 1000, Split{}, true},
		{"abc", "1", "1", 10, Split{}, true},
		{"1.5", "1", "1", 10, Split{}, true},
		{"0", "1", "1", 10, Split{}, true},
	} {
		got, err := ParseSplit(tc.train, tc.val, tc.test, tc.total)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("ParseSplit(%s, %s, %s, %d) = %v, %v", tc.train, tc.val, tc.test, tc.total, got, err)
		}
	}
}

func TestInterpolationBaselines(t *testing.T) {
	nan := math.NaN()
	vals := []float64{nan, 2, nan, nan, 8, nan}
	obs := []bool{false, true, false, false, true, false}
	lin := make([]float64, 6)
	locf := make([]float64, 6)
	linInterp(vals, obs, lin)
	carryForward(vals, obs, locf)
	wantLin := []float64{2, 2, 4, 6, 8, 8}
	wantLOCF := []float64{2, 2, 2, 2, 8, 8}
	for i := range lin {
		if lin[i] != wantLin[i] || locf[i] != wantLOCF[i] {
			t.Fatalf("linear %v, locf %v; want %v, %v", lin, locf, wantLin, wantLOCF)
		}
	}
}

func TestProbesSeparable(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	gen := func(n int) ([][]float64, []string) {
		var x [][]float64
		var y []string
		for i := 0; i < n; i++ {
			c := i % 3
			v := make([]float64, 10)
			for j := range v {
				v[j] = r.NormFloat64()
			}
			v[c] += 4
			x = append(x, v)
			y = append(y, string(rune('a'+c)))
		}
		return x, y
	}
	xtr, ytr := gen(60)
	xte, yte := gen(90)
	if acc := ridgeAccuracy(xtr, ytr, xte, yte); acc < 0.95 {
		t.Fatalf("ridge accuracy %.3f on separable classes", acc)
	}
	if acc := logregAccuracy(xtr, ytr, xte, yte); acc < 0.95 {
		t.Fatalf("logistic accuracy %.3f on separable classes", acc)
	}
	if acc := nnAccuracy(xtr, ytr, xte, yte, cosineDist); acc < 0.9 {
		t.Fatalf("1-NN accuracy %.3f on separable classes", acc)
	}
}

func TestPool(t *testing.T) {
	wins := [][]float64{{1, 0}, {3, 0}, {5, 4}, {7, 0}}
	got := pool(wins, 2)
	want := []float64{4, 1, 2, 0, 6, 2, 7, 4} // mean; two half means; max
	if len(got) != len(want) {
		t.Fatalf("pool = %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("pool = %v, want %v", got, want)
		}
	}
}

// TestPoolWeights checks that poolWeights lines up with pool's blocks: the
// mean over all windows weighs 1, each run of level k (2^k runs)
// (2^k)^-decay, the max maxWeight.
func TestPoolWeights(t *testing.T) {
	wins := [][]float64{{1, 0, 2}, {3, 0, 1}, {5, 4, 0}, {7, 0, 3}, {2, 2, 2}}
	const d, decay, maxW = 3, 0.25, 0.5
	for levels := 1; levels <= 4; levels++ {
		v := pool(wins, levels)
		w := poolWeights(levels, d, decay, maxW)
		if len(w) != len(v) || len(v) != poolBlocks(levels)*d {
			t.Fatalf("levels %d: %d weights, %d pooled values, %d blocks of %d", levels, len(w), len(v), poolBlocks(levels), d)
		}
		off := 0
		for k := 0; k < levels; k++ {
			want := math.Pow(float64(int(1)<<k), -decay)
			for j := 0; j < (1<<k)*d; j++ {
				if w[off+j] != want {
					t.Fatalf("levels %d: level %d weight %g at %d, want %g", levels, k, w[off+j], off+j, want)
				}
			}
			off += (1 << k) * d
		}
		mx := []float64{7, 4, 3}
		for j := 0; j < d; j++ {
			if w[off+j] != maxW || v[off+j] != mx[j] {
				t.Fatalf("levels %d: max block (%g, weight %g) at %d, want (%g, %g)", levels, v[off+j], w[off+j], off+j, mx[j], maxW)
			}
		}
	}
	if w := poolWeights(2, 1, 0, 1); !slices.Equal(w, []float64{1, 1, 1, 1}) {
		t.Fatalf("decay 0, max weight 1: %v, want every weight 1", w)
	}
}

// TestReprDistanceWeighs: the repr table's 1-NN distance applies the block
// weights after the scaling. Two train series that differ in both the mean
// and the max block; the test series is nearer the first in its mean and
// nearer the second in its max, so the max weight decides its neighbour.
func TestReprDistanceWeighs(t *testing.T) {
	// Pyramid 1: [mean (2 values), max (2 values)].
	train := [][]float64{{1, 1, 1, 1}, {-1, -1, -1, -1}, {0, 2, 0, 2}, {2, 0, 2, 0}}
	test := []float64{0.9, 1.1, -1, -1}
	nearest := func(o ReprOptions) int {
		d := reprDistance(o, train)
		best := 0
		for j := range train {
			if d(test, train[j]) < d(test, train[best]) {
				best = j
			}
		}
		return best
	}
	o := ReprOptions{Pyramid: 1}
	if o.LevelDecay, o.MaxWeight = 0, 0.1; nearest(o) != 0 {
		t.Fatalf("max weight 0.1: nearest train series %d, want 0 (the mean decides)", nearest(o))
	}
	if o.MaxWeight = 10; nearest(o) != 1 {
		t.Fatalf("max weight 10: nearest train series %d, want 1 (the max decides)", nearest(o))
	}
	// Decay 0 and max weight 1 is query similar's scaled cosine as is.
	o.MaxWeight = 1
	w := query.Scales(train)
	for _, y := range train {
		if got, want := reprDistance(o, train)(test, y), 1-query.ScaledCosine(test, y, w); math.Abs(got-want) > 1e-15 {
			t.Fatalf("unweighted distance %g, query.ScaledCosine gives %g", got, want)
		}
	}
}

// TestRunForecast runs the protocol on a short slice of ETTh1 and checks
// the repeat-last-value baseline against a direct computation.
func TestRunForecast(t *testing.T) {
	o := ForecastOptions{
		Common: small(), Path: etth1, Train: "200", Val: "50", Test: "150", Length: 24,
		AROrder: 8, ARForgetting: []float64{0.99, 0.999}, Seeds: 2,
	}
	res, err := RunForecast(o)
	if err != nil {
		t.Fatal(err)
	}
	fr, err := dataset.ReadCSV(etth1, dataset.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fr = fr.Slice(0, 400)
	zscore(fr, 200)
	var naive acc
	for _, col := range fr.Cols {
		for i := 250; i < 400; i++ {
			naive.add(col[i-1], col[i])
		}
	}
	byName := map[string]Figure{}
	for _, f := range res.Figures {
		byName[f.Method] = f
	}
	got := byName["repeat last value"]
	if got.N != naive.n || math.Abs(got.MSE-naive.mse()) > 1e-12 || math.Abs(got.MAE-naive.mae()) > 1e-12 {
		t.Fatalf("repeat-last baseline %+v, direct computation MSE %.6f MAE %.6f over %d", got, naive.mse(), naive.mae(), naive.n)
	}
	l := byName["ssl"]
	if l.N != naive.n || !(l.MSE > 0) || math.IsInf(l.MSE, 0) {
		t.Fatalf("learner figure %+v", l)
	}
	// Two seeds: the learner's figure is their mean; four RLS baselines.
	if l.Seeds == nil || len(l.Seeds.PerSeed) != 2 || math.Abs(l.MSE-(l.Seeds.PerSeed[0]+l.Seeds.PerSeed[1])/2) > 1e-12 {
		t.Fatalf("learner over seeds %+v", l.Seeds)
	}
	rls := 0
	for _, f := range res.Figures {
		if strings.HasPrefix(f.Method, "RLS") {
			rls++
			if res.LearnerOverBestRLS*f.MSE < l.MSE-1e-12 {
				t.Errorf("%s MSE %.4f below the best RLS baseline's", f.Method, f.MSE)
			}
		}
	}
	if rls != 4 || res.BestRLS == "" {
		t.Fatalf("%d RLS baselines, best %q", rls, res.BestRLS)
	}
	// The learner's linear path beats repeating the last value even here.
	if !(l.MSE < got.MSE) {
		t.Errorf("learner MSE %.4f not below repeat-last %.4f", l.MSE, got.MSE)
	}
	var buf bytes.Buffer
	if err := res.WriteTable(&buf); err != nil || !strings.Contains(buf.String(), "RLS AR(8)") {
		t.Fatalf("table: %v\n%s", err, buf.String())
	}
	if _, err := json.Marshal(res); err != nil {
		t.Fatal(err)
	}
}

// TestRunImpute runs the protocol on a short slice of ETTh1 and checks the
// linear interpolation baseline against a direct computation on the same
// points: hidden test points in the middle slot of a window inside the test
// rows.
func TestRunImpute(t *testing.T) {
	const L = 24
	o := ImputeOptions{
		Common: small(), Path: etth1, Train: "300", Val: "50", Test: "200", Length: L,
		Ratios: []float64{0.25}, MaskSeed: 5,
	}
	o.Epochs = 2
	res, err := RunImpute(o)
	if err != nil {
		t.Fatal(err)
	}
	fr, err := dataset.ReadCSV(etth1, dataset.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fr = fr.Slice(0, 550)
	zscore(fr, 300)
	C := len(fr.Cols)
	rng := rand.New(rand.NewPCG(5, 0))
	hidden := make([]bool, 200*C)
	for i := range hidden {
		hidden[i] = rng.Float64() < 0.25
	}
	mid := (L - 1) / 2
	var lin acc
	vals := make([]float64, L)
	obs := make([]bool, L)
	out := make([]float64, L)
	for r := 350 + mid; r+(L-1-mid) < 550; r++ {
		for c := 0; c < C; c++ {
			if !hidden[(r-350)*C+c] {
				continue
			}
			start := r - mid
			for j := 0; j < L; j++ {
				obs[j] = !hidden[(start+j-350)*C+c]
				vals[j] = fr.Cols[c][start+j]
			}
			linInterp(vals, obs, out)
			lin.add(out[mid], fr.Cols[c][r])
		}
	}
	ir := res.Ratios[0]
	var got Figure
	for _, f := range ir.Figures {
		if f.Method == "linear interpolation" {
			got = f
		}
	}
	if got.N != lin.n || math.Abs(got.MSE-lin.mse()) > 1e-12 {
		t.Fatalf("linear interpolation %+v, direct computation MSE %.6f over %d", got, lin.mse(), lin.n)
	}
	if ir.Scored != lin.n || ir.Figures[0].N != lin.n {
		t.Fatalf("scored %d, want %d", ir.Scored, lin.n)
	}
	if m := ir.Figures[0].MSE; !(m > 0) || m > 2*got.MSE {
		t.Fatalf("learner imputation MSE %.4f against linear %.4f", m, got.MSE)
	}
}

// TestReprMeans checks the means over sets (each over the sets that have
// the method), the per-seed means and the count at or above raw 1-NN.
func TestReprMeans(t *testing.T) {
	set := func(cos []float64, raw float64, pub ...ReprFigure) ReprSet {
		return ReprSet{Figures: append([]ReprFigure{
			{Method: methodNNCos, Kind: "learner", Accuracy: (cos[0] + cos[1]) / 2, Seeds: newSeedSpread(cos)},
			{Method: methodNNRaw, Kind: "baseline", Accuracy: raw},
		}, pub...)}
	}
	pub := ReprFigure{Method: anchorColumns[0].method, Kind: "published", Accuracy: 0.9}
	m := reprMeans([]ReprSet{set([]float64{0.8, 0.6}, 0.7, pub), set([]float64{0.5, 0.5}, 0.6)})
	if len(m) != 3 || m[0].Method != methodNNCos || m[2].Sets != 1 || m[2].Accuracy != 0.9 {
		t.Fatalf("means %+v", m)
	}
	if math.Abs(m[0].Accuracy-0.6) > 1e-12 || *m[0].AtOrAboveRaw != 1 || m[1].AtOrAboveRaw != nil {
		t.Fatalf("learner mean %+v", m[0])
	}
	if s := m[0].Seeds; math.Abs(s.PerSeed[0]-0.65) > 1e-12 || math.Abs(s.PerSeed[1]-0.55) > 1e-12 || s.Min != s.PerSeed[1] {
		t.Fatalf("per-seed means %+v", s)
	}
}

// TestRunRepr runs the protocol on ItalyPowerDemand with a short training
// and checks the raw 1-NN Euclidean baseline against the UCR archive's
// published figure for it (0.955).
func TestRunRepr(t *testing.T) {
	o := ReprOptions{Common: small(), Length: 12, Stride: 3, Pyramid: 2, MinSteps: 10}
	sets, err := UCRArgs([]string{ucr + "ItalyPowerDemand"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := RunRepr(o, sets)
	if err != nil {
		t.Fatal(err)
	}
	s := res.Sets[0]
	if s.Steps < 10 || s.Classes != 2 || s.Test != 1029 {
		t.Fatalf("set %+v", s)
	}
	kinds := map[string]int{}
	for _, f := range s.Figures {
		kinds[f.Kind]++
		switch f.Method {
		case methodNNRaw:
			if math.Abs(f.Accuracy-0.955) > 0.001 {
				t.Fatalf("1-NN Euclidean %.4f, the archive says 0.955", f.Accuracy)
			}
		case methodMiniRocket: // published: 0.969
			if f.Accuracy < 0.94 {
				t.Fatalf("MiniRocket accuracy %.3f", f.Accuracy)
			}
		}
		if f.Kind == "learner" && !(f.Accuracy > 0.6 && f.Accuracy <= 1) {
			t.Fatalf("%s accuracy %.3f", f.Method, f.Accuracy)
		}
	}
	if kinds["learner"] != 5 || kinds["baseline"] != 2 || kinds["published"] != len(anchorColumns) {
		t.Fatalf("figures by kind %v", kinds)
	}
	var buf bytes.Buffer
	if err := res.WriteTable(&buf); err != nil || !strings.Contains(buf.String(), "TS2Vec") {
		t.Fatalf("table: %v\n%s", err, buf.String())
	}
	var js bytes.Buffer
	if err := json.NewEncoder(&js).Encode(res); err != nil || !strings.Contains(js.String(), `"accuracy":`) || strings.Contains(js.String(), `"mse"`) {
		t.Fatalf("json: %v\n%s", err, js.String())
	}
	// A file pair works as well as a folder.
	pair, err := UCRArgs([]string{ucr + "Coffee/Coffee_TRAIN.tsv", ucr + "Coffee/Coffee_TEST.tsv"})
	if err != nil || len(pair) != 1 || pair[0].Name != "Coffee" {
		t.Fatalf("file pair: %+v, %v", pair, err)
	}
}

// TestRunReprPartitions: with the learning split over partitions that
// share their encoder (--partitions), every train window is still learnt
// from: under the mean merge each of 3 partitions steps on a third of
// train_batch, so they take 3 times one learner's steps (up to the
// partly filled last batches), under the sum as many as one
// learner; and two runs give the same figures: the merge is a function of
// the data, not of goroutine timing.
func TestRunReprPartitions(t *testing.T) {
	sets, err := UCRArgs([]string{ucr + "ItalyPowerDemand"})
	if err != nil {
		t.Fatal(err)
	}
	run := func(parts int, merge models.MergeRule) ReprSet {
		o := ReprOptions{Common: small(), Length: 12, Stride: 3, Pyramid: 2, MinSteps: 10, Partitions: parts, Merge: merge}
		o.Model.TrainBatch = 96
		res, err := RunRepr(o, sets)
		if err != nil {
			t.Fatal(err)
		}
		return res.Sets[0]
	}
	mean := models.MergeRule{Rate: 1}
	one, a, b, sum := run(1, mean), run(3, mean), run(3, mean), run(3, models.MergeRule{Sum: true, Rate: 1})
	if a.Steps+3 < 3*one.Steps || a.Steps > 3*(one.Steps+1) {
		t.Fatalf("mean merge: %d optimiser steps of 32 windows over 3 partitions, %d of 96 in one learner", a.Steps, one.Steps)
	}
	if sum.Steps+3 < one.Steps || sum.Steps > one.Steps {
		t.Fatalf("sum merge: %d optimiser steps over 3 partitions, %d in one learner", sum.Steps, one.Steps)
	}
	for i := range a.Figures {
		if a.Figures[i].Kind == "learner" && a.Figures[i].Accuracy != b.Figures[i].Accuracy {
			t.Fatalf("%s: %.4f then %.4f", a.Figures[i].Method, a.Figures[i].Accuracy, b.Figures[i].Accuracy)
		}
	}
}
