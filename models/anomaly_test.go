package models

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tsrep/tsrep/internal/binenc"
	"github.com/tsrep/tsrep/windowing"
)

func newTestAnomaly(t testing.TB, edit func(*AnomalyConfig)) *Anomaly {
	t.Helper()
	c := DefaultAnomalyConfig()
	if edit != nil {
		edit(&c)
	}
	a, err := NewAnomaly(c)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// noisyPoints is a sine with Gaussian noise, forecast by the noiseless sine
// (a learner that knows the pattern): the errors are the noise.
func noisyPoints(n int, seed uint64) []AnomalyPoint {
	r := rand.New(rand.NewPCG(seed, 1))
	pts := make([]AnomalyPoint, n)
	for i := range pts {
		clean := 10 + 3*math.Sin(2*math.Pi*float64(i)/50)
		pts[i] = AnomalyPoint{Time: int64(i) * int64(time.Minute), Actual: clean + 0.2*r.NormFloat64(), Predicted: clean, Baseline: clean}
	}
	return pts
}

// TestAnomalyFlagsAnErrorSpike: a forecast error far beyond the series'
// usual ones scores far above every ordinary point, and the first Warmup
// points score 0.
func TestAnomalyFlagsAnErrorSpike(t *testing.T) {
	a := newTestAnomaly(t, func(c *AnomalyConfig) { c.RangeTolerance = 0 })
	pts := noisyPoints(3000, 1)
	pts[2500].Actual += 3 // 15 standard deviations of the noise, well inside the range
	var maxNormal float64
	for i := range pts {
		sc := a.Point("s", &pts[i])
		switch {
		case i < a.Config().Warmup:
			if sc.Score != 0 {
				t.Fatalf("point %d in the warm-up scores %v", i, sc.Score)
			}
		case i == 2500:
			// Three times the largest error in some 2000 points: rarer than
			// 1/2000 by 3² (surprise ≈ 3.3 + 0.95), score ≈ 0.5.
			if sc.Score < 0.45 || math.Abs(sc.Z) < 10 {
				t.Errorf("the spike scores %.3f (z %.1f), want at least 0.45", sc.Score, sc.Z)
			}
			if sc.Score <= maxNormal+0.1 {
				t.Errorf("the spike scores %.3f, an ordinary point up to %.3f", sc.Score, maxNormal)
			}
			t.Logf("spike: z %.1f, surprise %.2f, score %.3f; ordinary points up to %.3f", sc.Z, sc.Surprise, sc.Score, maxNormal)
		case i > 500 && i < 2500:
			maxNormal = math.Max(maxNormal, sc.Score)
			if !(sc.Score >= 0 && sc.Score < 1) {
				t.Fatalf("point %d: score %v outside [0, 1)", i, sc.Score)
			}
		}
	}
}

// TestAnomalyCalibratesHeavyTails: a series whose errors are heavy-tailed
// (Student t, 2 degrees of freedom) raises no more alarms at a fixed
// threshold than a Gaussian one: the error's rarity is judged against the
// series' own history, not a Gaussian tail.
func TestAnomalyCalibratesHeavyTails(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	student2 := func() float64 { // z / sqrt(χ²₂/2)
		z, u, v := r.NormFloat64(), r.NormFloat64(), r.NormFloat64()
		return z / math.Sqrt((u*u+v*v)/2+1e-12)
	}
	alarms := func(noise func() float64) int {
		a := newTestAnomaly(t, func(c *AnomalyConfig) { c.RangeTolerance = 0 })
		n := 0
		for i := 0; i < 20000; i++ {
			p := AnomalyPoint{Time: int64(i), Actual: noise(), Predicted: 0}
			if i > 2000 && a.Point("s", &p).Score > 0.5 {
				n++
			}
		}
		return n
	}
	gauss, heavy := alarms(r.NormFloat64), alarms(student2)
	if heavy > 10 || gauss > 10 {
		t.Errorf("alarms above 0.5 in 18,000 ordinary points: %d Gaussian, %d heavy-tailed; want a handful at most", gauss, heavy)
	}
}

// TestAnomalyRange: a value beyond the series' range by more than the
// tolerance is flagged even when its forecast error is ordinary.
func TestAnomalyRange(t *testing.T) {
	a := newTestAnomaly(t, nil)
	for i := 0; i < 2000; i++ {
		v := float64(i % 100) // a sawtooth, forecast perfectly
		p := AnomalyPoint{Time: int64(i), Actual: v, Predicted: v}
		a.Point("s", &p)
	}
	p := AnomalyPoint{Time: 2000, Actual: 150, Predicted: 150}
	if sc := a.Point("s", &p); sc.Score < 0.5 {
		t.Errorf("a value half a range above every one before scores %.3f, want at least 0.5", sc.Score)
	}
	p = AnomalyPoint{Time: 2001, Actual: 50, Predicted: 50}
	if sc := a.Point("s", &p); sc.Score > 0.1 {
		t.Errorf("an ordinary value scores %.3f", sc.Score)
	}
}

// TestAnomalyNovelty: an embedding unlike the kept ones is novel, one like
// them is not.
func TestAnomalyNovelty(t *testing.T) {
	a := newTestAnomaly(t, func(c *AnomalyConfig) { c.NoveltyK, c.NoveltyEvery, c.RangeTolerance = 4, 10, 0 })
	r := rand.New(rand.NewPCG(3, 3))
	emb := make([]float64, 8)
	var last AnomalyScore
	for i := 0; i < 1000; i++ {
		for j := range emb {
			emb[j] = 0.01 * r.NormFloat64()
		}
		emb[0] = 1 // the same direction throughout
		p := AnomalyPoint{Time: int64(i), Actual: 1, Predicted: 1, Embedding: emb}
		last = a.Point("s", &p)
	}
	if !(last.Novelty < 0.01) {
		t.Errorf("novelty of a familiar embedding %v, want about 0", last.Novelty)
	}
	clear(emb)
	emb[1] = 1 // orthogonal to every kept one
	p := AnomalyPoint{Time: 1000, Actual: 1, Predicted: 1, Embedding: emb}
	sc := a.Point("s", &p)
	if math.Abs(sc.Novelty-1) > 0.05 || sc.Score < 0.5 {
		t.Errorf("a new embedding: novelty %.3f score %.3f; want about 1 and at least 0.5", sc.Novelty, sc.Score)
	}
}

// TestAnomalyStateRoundTrip: a scorer restored from a checkpoint scores the
// rest of the stream bit for bit as the one that wrote it; a wrong version,
// a truncated state or a mismatched novelty setting is refused.
func TestAnomalyStateRoundTrip(t *testing.T) {
	edit := func(c *AnomalyConfig) { c.NoveltyK, c.NoveltyEvery = 3, 5 }
	pts := noisyPoints(1500, 5)
	emb := func(i int) []float64 { return []float64{math.Sin(float64(i)), math.Cos(float64(i) / 3), 1} }
	feed := func(a *Anomaly, from, to int) []AnomalyScore {
		var out []AnomalyScore
		for i := from; i < to; i++ {
			p := pts[i]
			p.Embedding = emb(i)
			out = append(out, a.Point(fmt.Sprintf("s%d", i%3), &p))
		}
		return out
	}
	a := newTestAnomaly(t, edit)
	feed(a, 0, 1000)
	var w binenc.Writer
	a.AppendState(&w)
	b := newTestAnomaly(t, edit)
	if err := b.LoadState(binenc.NewReader(w.B)); err != nil {
		t.Fatal(err)
	}
	var w2 binenc.Writer
	b.AppendState(&w2)
	if !bytes.Equal(w.B, w2.B) {
		t.Fatal("the restored state writes other bytes")
	}
	sa, sb := feed(a, 1000, 1500), feed(b, 1000, 1500)
	for i := range sa {
		if math.Float64bits(sa[i].Score) != math.Float64bits(sb[i].Score) {
			t.Fatalf("point %d: %v before the checkpoint, %v after", 1000+i, sa[i].Score, sb[i].Score)
		}
	}

	bad := append([]byte(nil), w.B...)
	bad[0]++
	if err := newTestAnomaly(t, edit).LoadState(binenc.NewReader(bad)); err == nil {
		t.Error("a state of another version loads")
	}
	if err := newTestAnomaly(t, edit).LoadState(binenc.NewReader(w.B[:len(w.B)-9])); err == nil {
		t.Error("a truncated state loads")
	}
	if err := newTestAnomaly(t, func(c *AnomalyConfig) { c.NoveltyK = 5 }).LoadState(binenc.NewReader(w.B)); err == nil {
		t.Error("a state kept with novelty k 3 loads with 5")
	}
	// A failed load leaves the scorer as it was.
	c := newTestAnomaly(t, edit)
	_ = c.LoadState(binenc.NewReader(w.B[:len(w.B)-9]))
	if c.Series() != 0 {
		t.Errorf("a failed load left %d series", c.Series())
	}
}

// TestAnomalyBoundedSeries: past MaxSeries the least recently scored series
// is dropped.
func TestAnomalyBoundedSeries(t *testing.T) {
	a := newTestAnomaly(t, func(c *AnomalyConfig) { c.MaxSeries = 2 })
	for i := 0; i < 10; i++ {
		p := AnomalyPoint{Time: int64(i), Actual: 1, Predicted: 1}
		a.Point(fmt.Sprintf("s%d", i), &p)
	}
	if a.Series() != 2 {
		t.Errorf("%d series held, cap 2", a.Series())
	}
}

// TestAnomalyBins: the bin of x is ⌊2·log2(x/anomBase)⌋ (clamped), the
// edge table agrees, and the surprise falls as the magnitude's share of
// the histogram grows.
func TestAnomalyBins(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for i := 0; i < 100000; i++ {
		x := math.Exp(r.Float64()*40 - 8)
		want := min(anomBins-1, max(0, int(math.Floor(2*math.Log2(x/anomBase)))))
		if got := anomBin(x); got != want && math.Abs(2*math.Log2(x/anomBase)-math.Round(2*math.Log2(x/anomBase))) > 1e-9 {
			t.Fatalf("bin of %v: %d, want %d", x, got, want)
		}
		if k := anomBin(x); k < anomBins-1 && (x < anomEdges[k] && k > 0 || x >= anomEdges[k+1]) {
			t.Fatalf("%v is in bin %d, outside [%v, %v)", x, k, anomEdges[k], anomEdges[k+1])
		}
	}
	for _, x := range []float64{0, math.NaN(), -1, 1e300} {
		if k := anomBin(x); k < 0 || k >= anomBins {
			t.Errorf("bin of %v: %d", x, k)
		}
	}
	var h anomHist
	for i := 0; i < 1000; i++ {
		h.add(float64(i%10), 100)
	}
	prev := -1.0
	for _, x := range []float64{0.5, 2, 5, 9, 20, 200} {
		s := h.surprise(x, 2)
		if s < prev {
			t.Errorf("surprise of %v is %.3f, below %.3f for a smaller value", x, s, prev)
		}
		prev = s
	}
}

func TestAnomalyConfigValidate(t *testing.T) {
	for _, edit := range []func(*AnomalyConfig){
		func(c *AnomalyConfig) { c.MaxSeries = 0 },
		func(c *AnomalyConfig) { c.Warmup = -1 },
		func(c *AnomalyConfig) { c.ErrorHorizon = 1 },
		func(c *AnomalyConfig) { c.TailHorizon = 0 },
		func(c *AnomalyConfig) { c.Winsor = 0 },
		func(c *AnomalyConfig) { c.TailPower = math.NaN() },
		func(c *AnomalyConfig) { c.HalfScore = -1 },
		func(c *AnomalyConfig) { c.RangeTolerance = math.NaN() },
		func(c *AnomalyConfig) { c.NoveltyK = -1 },
		func(c *AnomalyConfig) { c.NoveltyK, c.NoveltyEvery = 4, 0 },
	} {
		c := DefaultAnomalyConfig()
		edit(&c)
		if _, err := NewAnomaly(c); err == nil {
			t.Errorf("%+v is accepted", c)
		}
	}
}

// anomalyBatches windows a few generated series (stride 1) into batches.
func anomalyBatches(t testing.TB, series, points, batch int) []arrow.RecordBatch {
	t.Helper()
	var out []arrow.RecordBatch
	w := windowing.New(windowing.Config{Interval: time.Second, Length: 32, Stride: 1, MinObserved: 0.5, BatchSize: batch, MaxSeries: series},
		memory.NewGoAllocator(), func(r arrow.RecordBatch) { out = append(out, r) })
	r := rand.New(rand.NewPCG(11, 11))
	keys := make([][]byte, series)
	for s := range keys {
		keys[s] = []byte(fmt.Sprintf("m,s=%d#v", s))
	}
	for i := 0; i < points; i++ {
		for s, k := range keys {
			v := math.Sin(2*math.Pi*float64(i)/float64(20+s)) + 0.1*r.NormFloat64()
			w.Add(k, int64(i)*int64(time.Second), v)
		}
	}
	w.Flush()
	w.Close()
	return out
}

// TestAnomalyObserve: run as the pipeline runs it (windows, a learner,
// Prequential), Observe scores every resolved point of every batch, at the
// resolved point's time and row, and the same stream scores the same.
func TestAnomalyObserve(t *testing.T) {
	recs := anomalyBatches(t, 3, 400, 50)
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	run := func() []AnomalyScore {
		f := NewForecaster(ForecasterConfig{Name: "rls", Order: 8, Forgetting: 0.999, MaxSeries: 10})
		pq := NewPrequential(10)
		a := newTestAnomaly(t, func(c *AnomalyConfig) { c.Warmup = 10 })
		var all []AnomalyScore
		for _, rec := range recs {
			out, err := f.Step(rec)
			if err != nil {
				t.Fatal(err)
			}
			b, err := View(rec)
			if err != nil {
				t.Fatal(err)
			}
			res := pq.Observe(&b, out)
			sc := a.Observe(&b, out, res)
			if len(sc) != len(res) {
				t.Fatalf("%d scores for %d resolved points", len(sc), len(res))
			}
			for i := range sc {
				if sc[i].Row != res[i].Row || sc[i].Time != res[i].Time {
					t.Fatalf("score %d is of row %d at %d, the resolved point of row %d at %d", i, sc[i].Row, sc[i].Time, res[i].Row, res[i].Time)
				}
				if !(sc[i].Score >= 0 && sc[i].Score <= 1) {
					t.Fatalf("score %v outside [0, 1]", sc[i].Score)
				}
			}
			all = append(all, sc...)
		}
		return all
	}
	a, b := run(), run()
	if len(a) < 3*300 {
		t.Fatalf("%d points scored of 3 series × 400", len(a))
	}
	for i := range a {
		if a[i] != b[i] && !(math.IsNaN(a[i].Novelty) && math.IsNaN(b[i].Novelty) && a[i].Score == b[i].Score) {
			t.Fatalf("point %d scores %+v, then %+v", i, a[i], b[i])
		}
	}
}

// TestAnomalyPointAllocs: scoring a point of a known series allocates
// nothing, novelty included.
func TestAnomalyPointAllocs(t *testing.T) {
	a := newTestAnomaly(t, func(c *AnomalyConfig) { c.NoveltyK = 8 })
	emb := []float64{1, 2, 3, 4}
	p := AnomalyPoint{Actual: 1, Predicted: 0.5, Embedding: emb}
	a.Point("series", &p)
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		i++
		p.Time, p.Actual = int64(i), float64(i%7)
		a.Point("series", &p)
	}); n != 0 {
		t.Errorf("%v allocations per point", n)
	}
}

// BenchmarkAnomalyObserve is the anomaly score's cost per scored point in
// the pipeline's shape: batches of 256 windows of 1000 series, each row
// resolving one forecast, with and without the novelty channel.
func BenchmarkAnomalyObserve(b *testing.B) {
	const series, dim = 1000, 32
	recs := anomalyBatches(b, series, 40, 256)
	var bs []Batch
	for _, rec := range recs {
		v, err := View(rec)
		if err != nil {
			b.Fatal(err)
		}
		bs = append(bs, v)
	}
	r := rand.New(rand.NewPCG(1, 2))
	outs := make([]*Output, len(bs))
	res := make([][]Resolved, len(bs))
	for k, v := range bs {
		o := &Output{Rows: v.Rows, Dim: dim, Embedding: make([]float64, v.Rows*dim)}
		for i := range o.Embedding {
			o.Embedding[i] = r.NormFloat64()
		}
		outs[k] = o
		for i := 0; i < v.Rows; i++ {
			act := v.LastObserved(i)
			res[k] = append(res[k], Resolved{Row: i, Time: int64(v.End[i]), Predicted: act + 0.1*r.NormFloat64(), Baseline: act, Actual: act})
		}
	}
	for _, k := range []int{0, 8} {
		b.Run(fmt.Sprintf("novelty_k=%d", k), func(b *testing.B) {
			a := newTestAnomaly(b, func(c *AnomalyConfig) { c.NoveltyK = k })
			for j := range bs { // every series known: steady state
				a.Observe(&bs[j], outs[j], res[j])
			}
			b.ReportAllocs()
			b.ResetTimer()
			n := 0
			for i := 0; i < b.N; i++ {
				j := i % len(bs)
				n += len(a.Observe(&bs[j], outs[j], res[j]))
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "points/s")
			b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(n), "ns/point")
		})
	}
	for _, rec := range recs {
		rec.Release()
	}
}

// ExampleAnomaly scores a series whose forecasts are good, then a point
// far outside anything seen before.
func ExampleAnomaly() {
	a, err := NewAnomaly(DefaultAnomalyConfig())
	if err != nil {
		panic(err)
	}
	key := "cpu,host=a#usage_user"
	for i := 0; i < 1000; i++ {
		v := 50 + 10*math.Sin(float64(i)/10)
		a.Point(key, &AnomalyPoint{Time: int64(i), Actual: v, Predicted: v + 0.5*math.Sin(float64(i)*7)})
	}
	normal := a.Point(key, &AnomalyPoint{Time: 1000, Actual: 50, Predicted: 50.3})
	spike := a.Point(key, &AnomalyPoint{Time: 1001, Actual: 95, Predicted: 52})
	fmt.Printf("normal %.2f, spike %.2f (error %.0f standard deviations)\n", normal.Score, spike.Score, spike.Z)
	// Output: normal 0.05, spike 0.67 (error 122 standard deviations)
}
