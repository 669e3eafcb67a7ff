package models

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tsrep/tsrep/dataset"
	"github.com/tsrep/tsrep/internal/binenc"
	"github.com/tsrep/tsrep/windowing"
)

// windowsOf runs the columns of an ETT file through the windowing stage
// (rows round-robin over the columns, as points arrive) and returns the
// batches, of at most batch windows each.
func windowsOf(t *testing.T, rows, batch int, mem memory.Allocator) []arrow.RecordBatch {
	t.Helper()
	fr, err := dataset.ReadCSV("../data/ETT/ETTh1.csv", dataset.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []arrow.RecordBatch
	w := windowing.New(windowing.Config{Interval: time.Hour, Length: 32, Stride: 1, MinObserved: 0.5, BatchSize: batch, MaxSeries: 100},
		mem, func(r arrow.RecordBatch) { out = append(out, r) })
	for r := 0; r < rows; r++ {
		for c, name := range fr.Names {
			w.Add([]byte("etth1#"+name), fr.Time[r], fr.Cols[c][r])
		}
	}
	w.Flush()
	w.Close()
	return out
}

func stateOf(l Learner) []byte {
	var w binenc.Writer
	l.AppendState(&w)
	return w.B
}

func newTestForecaster() *Forecaster {
	return NewForecaster(ForecasterConfig{Name: "rls", Order: 24, Forgetting: 0.9999, MaxSeries: 100, TrainBatch: 16})
}

// TestForecasterDeterministicAcrossBatching: the same windows in batches of
// different sizes give the same forecasts, training steps and state bytes.
func TestForecasterDeterministicAcrossBatching(t *testing.T) {
	run := func(batch int) ([]float64, []TrainStep, []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		f := newTestForecaster()
		var fc []float64
		var steps []TrainStep
		for _, rec := range windowsOf(t, 600, batch, mem) {
			out, err := f.Step(rec)
			if err != nil {
				t.Fatal(err)
			}
			fc = append(fc, out.Forecast...)
			steps = append(steps, out.Train...)
			rec.Release()
		}
		return fc, steps, stateOf(f)
	}
	fa, sa, ba := run(7)
	fb, sb, bb := run(256)
	if len(fa) != len(fb) || len(sa) != len(sb) || len(sa) == 0 {
		t.Fatalf("forecasts %d vs %d, steps %d vs %d", len(fa), len(fb), len(sa), len(sb))
	}
	for i := range fa {
		if math.Float64bits(fa[i]) != math.Float64bits(fb[i]) {
			t.Fatalf("forecast %d: %v vs %v", i, fa[i], fb[i])
		}
	}
	for i := range sa {
		if sa[i] != sb[i] && !(math.IsNaN(sa[i].LossImpute) && math.IsNaN(sb[i].LossImpute)) {
			t.Fatalf("step %d: %+v vs %+v", i, sa[i], sb[i])
		}
	}
	if !bytes.Equal(ba, bb) {
		t.Fatal("states differ across batchings")
	}
}

// TestForecasterStateRoundTrip: a learner restored mid-stream continues
// exactly as the original.
func TestForecasterStateRoundTrip(t *testing.T) {
	recs := windowsOf(t, 400, 64, nil)
	a := newTestForecaster()
	half := len(recs) / 2
	for _, rec := range recs[:half] {
		if _, err := a.Step(rec); err != nil {
			t.Fatal(err)
		}
	}
	b := newTestForecaster()
	r := binenc.NewReader(stateOf(a))
	if err := b.LoadState(r); err != nil {
		t.Fatal(err)
	}
	if err := r.Done(); err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs[half:] {
		oa, _ := a.Step(rec)
		fa := append([]float64(nil), oa.Forecast...)
		ob, _ := b.Step(rec)
		for i := range fa {
			if math.Float64bits(fa[i]) != math.Float64bits(ob.Forecast[i]) {
				t.Fatalf("forecast differs after restore")
			}
		}
	}
	if !bytes.Equal(stateOf(a), stateOf(b)) {
		t.Fatal("states differ after restore")
	}
	// A state of another order is refused with a clear error.
	c := NewForecaster(ForecasterConfig{Name: "rls", Order: 4, Forgetting: 0.999, MaxSeries: 100})
	if err := c.LoadState(binenc.NewReader(stateOf(a))); err == nil {
		t.Fatal("loaded a state of another order")
	}
}

// TestForecasterBeatsLastValue: on ETTh1 the prequential one-step squared
// error is below repeating the last value.
func TestForecasterBeatsLastValue(t *testing.T) {
	f := newTestForecaster()
	p := NewPrequential(100)
	var se, seBase float64
	var n int
	for _, rec := range windowsOf(t, 3000, 256, nil) {
		out, err := f.Step(rec)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := View(rec)
		for _, r := range p.Observe(&b, out) {
			se += (r.Actual - r.Predicted) * (r.Actual - r.Predicted)
			seBase += (r.Actual - r.Baseline) * (r.Actual - r.Baseline)
			n++
		}
	}
	if n < 7*2900 {
		t.Fatalf("only %d forecasts scored", n)
	}
	t.Logf("MSE %.4f, last value %.4f over %d forecasts", se/float64(n), seBase/float64(n), n)
	if !(se < 0.9*seBase) {
		t.Fatalf("MSE %.4f not 10%% below the last value's %.4f", se/float64(n), seBase/float64(n))
	}
}
