package models

import (
	"bytes"
	"fmt"
	"math"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tsrep/tsrep/dataset"
	"github.com/tsrep/tsrep/internal/binenc"
	"github.com/tsrep/tsrep/windowing"
)

// ettWindows windows rows [from, to) of ETTh1 (every column a series, points
// fed row by row in time order) into batches of batchSize windows. hide, if
// not nil, says which points to leave out.
func ettWindows(t testing.TB, from, to, length, stride, batchSize int, hide func(row, col int) bool) []arrow.RecordBatch {
	t.Helper()
	fr, err := dataset.ReadCSV("../data/ETT/ETTh1.csv", dataset.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var recs []arrow.RecordBatch
	w := windowing.New(windowing.Config{
		Length: length, Stride: stride, MinObserved: 0.01, BatchSize: batchSize, MaxSeries: 64,
		Interval: 3600e9,
	}, memory.DefaultAllocator, func(r arrow.RecordBatch) { recs = append(recs, r) })
	defer w.Close()
	keys := make([][]byte, len(fr.Names))
	for c, n := range fr.Names {
		keys[c] = []byte("ett,file=h1#" + n)
	}
	for i := from; i < to; i++ {
		for c := range fr.Cols {
			if hide != nil && hide(i, c) {
				continue
			}
			w.Add(keys[c], fr.Time[i], fr.Cols[c][i])
		}
	}
	w.Flush()
	t.Cleanup(func() {
		for _, r := range recs {
			r.Release()
		}
	})
	return recs
}

func testSSLConfig(length int) SSLConfig {
	cfg := DefaultSSLConfig("ssl-test", length, 1)
	cfg.Dim, cfg.Hidden, cfg.Blocks, cfg.TrainBatch, cfg.MaxSeries = 8, 8, 2, 8, 64
	cfg.ARLags = 4
	cfg.SeasonalCycles = 2
	return cfg
}

func newSSL(t testing.TB, cfg SSLConfig) *SSL {
	t.Helper()
	l, err := NewSSL(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func state(l Learner) []byte {
	var w binenc.Writer
	l.AppendState(&w)
	return w.B
}

// runAll steps l through recs and returns every output value, flattened,
// and the training steps.
func runAll(t testing.TB, l Learner, recs []arrow.RecordBatch) ([]float64, []TrainStep) {
	t.Helper()
	var fc, emb, imp []float64
	var steps []TrainStep
	for _, r := range recs {
		out, err := l.Step(r)
		if err != nil {
			t.Fatal(err)
		}
		fc = append(fc, out.Forecast...)
		emb = append(emb, out.Embedding...)
		for i, v := range out.Imputed {
			if !math.IsNaN(v) {
				imp = append(imp, float64(i%out.Length), v) // slot within its window
			}
		}
		steps = append(steps, out.Train...)
	}
	return append(append(fc, emb...), imp...), steps
}

func sameFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			return false
		}
	}
	return true
}

// TestSSLDeterministicAcrossBatchSplits feeds the same windows cut into
// Arrow batches of different sizes: the saved state and every output must
// agree bit for bit.
func TestSSLDeterministicAcrossBatchSplits(t *testing.T) {
	for _, every := range []int{1, 3} {
		t.Run(fmt.Sprintf("train_every=%d", every), func(t *testing.T) {
			cfg := testSSLConfig(24)
			cfg.TrainEvery = every
			deterministicAcrossBatchSplits(t, cfg)
		})
	}
}

func deterministicAcrossBatchSplits(t *testing.T, cfg SSLConfig) {
	hide := func(row, col int) bool { return (row*7+col*3)%11 == 0 } // gaps to impute
	var ref []byte
	var refVals []float64
	var refSteps []TrainStep
	for _, bs := range []int{1000, 1, 5, 16, 37} {
		recs := ettWindows(t, 0, 300, cfg.Length, cfg.Stride, bs, hide)
		l := newSSL(t, cfg)
		vals, steps := runAll(t, l, recs)
		st := state(l)
		if ref == nil {
			ref, refVals, refSteps = st, vals, steps
			if len(steps) < 50/cfg.TrainEvery {
				t.Fatalf("only %d training steps", len(steps))
			}
			continue
		}
		if !bytes.Equal(st, ref) {
			t.Errorf("batch size %d: state differs from batch size 1000", bs)
		}
		if !sameFloats(vals, refVals) {
			t.Errorf("batch size %d: outputs differ from batch size 1000", bs)
		}
		if fmt.Sprint(steps) != fmt.Sprint(refSteps) {
			t.Errorf("batch size %d: training steps differ from batch size 1000", bs)
		}
	}
}

// TestSSLFrozenDeterministic embeds windows with training off (as the
// repr benchmark does): outputs agree bit for bit whatever the batch
// sizes, and a state saved halfway continues as the uninterrupted run.
func TestSSLFrozenDeterministic(t *testing.T) {
	cfg := testSSLConfig(24)
	hide := func(row, col int) bool { return (row*5+col)%13 == 0 }
	trained := newSSL(t, cfg)
	runAll(t, trained, ettWindows(t, 0, 150, cfg.Length, cfg.Stride, 64, hide))
	saved := state(trained)
	frozen := func() *SSL {
		l := newSSL(t, cfg)
		if err := l.LoadState(binenc.NewReader(saved)); err != nil {
			t.Fatal(err)
		}
		l.SetTraining(false)
		return l
	}
	var refVals []float64
	var refState []byte
	for _, bs := range []int{1000, 1, 7, 16, 37} {
		recs := ettWindows(t, 150, 260, cfg.Length, cfg.Stride, bs, hide)
		l := frozen()
		vals, steps := runAll(t, l, recs)
		if len(steps) != 0 || l.Steps() != trained.Steps() {
			t.Fatalf("batch size %d: training off, yet %d steps", bs, len(steps))
		}
		if refVals == nil {
			refVals, refState = vals, state(l)
			continue
		}
		if !sameFloats(vals, refVals) {
			t.Errorf("batch size %d: outputs differ from batch size 1000", bs)
		}
		if !bytes.Equal(state(l), refState) {
			t.Errorf("batch size %d: state differs from batch size 1000", bs)
		}
		if bs == 7 {
			// Stop halfway, restore into a new learner, continue: the
			// same outputs and state as the uninterrupted run.
			half := len(recs) / 2
			a, b := frozen(), frozen()
			runAll(t, a, recs[:half])
			runAll(t, b, recs[:half])
			c := newSSL(t, cfg)
			if err := c.LoadState(binenc.NewReader(state(b))); err != nil {
				t.Fatal(err)
			}
			c.SetTraining(false)
			va, _ := runAll(t, a, recs[half:])
			vc, _ := runAll(t, c, recs[half:])
			if !sameFloats(va, vc) || !bytes.Equal(state(a), state(c)) {
				t.Errorf("restored frozen learner diverges from the uninterrupted one")
			}
		}
	}
}

// TestSSLStateRoundTrip stops a run halfway, restores the state into a new
// learner, and checks that it continues exactly as the uninterrupted one.
func TestSSLStateRoundTrip(t *testing.T) {
	cfg := testSSLConfig(24)
	recs := ettWindows(t, 0, 200, cfg.Length, cfg.Stride, 23, nil)
	a := newSSL(t, cfg)
	runAll(t, a, recs)

	b := newSSL(t, cfg)
	half := len(recs) / 2
	runAll(t, b, recs[:half])
	if b.bufN == 0 {
		t.Fatal("want a partly filled buffer at the cut")
	}
	saved := state(b)
	cfg2 := cfg
	cfg2.Seed = 99 // the state, not the config, carries the random generator
	c := newSSL(t, cfg2)
	if err := c.LoadState(binenc.NewReader(saved)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(state(c), saved) {
		t.Fatal("state does not round-trip")
	}
	valsB, _ := runAll(t, b, recs[half:])
	valsC, _ := runAll(t, c, recs[half:])
	if !sameFloats(valsB, valsC) || !bytes.Equal(state(b), state(c)) {
		t.Fatal("restored learner diverges from the original")
	}
	if !bytes.Equal(state(a), state(c)) {
		t.Fatal("interrupted run differs from the uninterrupted one")
	}
}

func TestSSLLoadStateChecksShape(t *testing.T) {
	cfg := testSSLConfig(24)
	a := newSSL(t, cfg)
	saved := state(a)
	for _, mod := range []func(*SSLConfig){
		func(c *SSLConfig) { c.Dim = 16 },
		func(c *SSLConfig) { c.Hidden = 64 },
		func(c *SSLConfig) { c.Blocks = 3 },
		func(c *SSLConfig) { c.Forgettings = []float64{0.9} },
		func(c *SSLConfig) { c.Length = 32 },
		func(c *SSLConfig) { c.TrainBatch = 32 },
		func(c *SSLConfig) { c.ARLags = 6 },
	} {
		c := cfg
		mod(&c)
		l := newSSL(t, c)
		err := l.LoadState(binenc.NewReader(saved))
		if err == nil {
			t.Fatalf("config %+v loaded a state of another shape", c)
		}
		t.Log(err)
	}
	// Truncated state.
	l := newSSL(t, cfg)
	if err := l.LoadState(binenc.NewReader(saved[:len(saved)/2])); err == nil {
		t.Fatal("truncated state loaded")
	}
}

func TestSSLRefusesOtherLength(t *testing.T) {
	l := newSSL(t, testSSLConfig(24))
	recs := ettWindows(t, 0, 40, 16, 1, 100, nil)
	if _, err := l.Step(recs[0]); err == nil {
		t.Fatal("accepted windows of another length")
	}
}

// TestSSLOutputs checks the output's shape: a finite forecast per window,
// embeddings emitted every EmbedEvery windows, and each gap written once.
func TestSSLOutputs(t *testing.T) {
	cfg := testSSLConfig(24)
	cfg.Stride = 3
	cfg.EmbedEvery = 2
	hide := func(row, col int) bool { return (row+col)%5 == 0 }
	recs := ettWindows(t, 0, 150, cfg.Length, cfg.Stride, 50, hide)
	l := newSSL(t, cfg)
	written := map[[2]int64]int{}
	gaps := map[[2]int64]bool{}
	var emitted, rows int
	for _, r := range recs {
		out, err := l.Step(r)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := View(r)
		for i := 0; i < b.Rows; i++ {
			rows++
			if f := out.Forecast[i]; math.IsNaN(f) || math.IsInf(f, 0) {
				t.Fatalf("row %d: forecast %v", i, f)
			}
			if out.EmitEmbedding[i] != (b.Seq[i]%2 == 0) {
				t.Fatalf("row %d seq %d: emit %v", i, b.Seq[i], out.EmitEmbedding[i])
			}
			if out.EmitEmbedding[i] {
				emitted++
			}
			col := seriesCol(b.Key(i))
			for j := 0; j < b.Length; j++ {
				ts := b.SlotTime(i, j)
				v := out.Imputed[i*b.Length+j]
				if b.Observed(i, j) {
					if !math.IsNaN(v) {
						t.Fatalf("observed slot imputed")
					}
					continue
				}
				gaps[[2]int64{col, ts}] = true
				if !math.IsNaN(v) {
					written[[2]int64{col, ts}]++
				}
			}
		}
	}
	if emitted == 0 || emitted == rows {
		t.Fatalf("%d of %d embeddings emitted", emitted, rows)
	}
	for k, n := range written {
		if n != 1 {
			t.Fatalf("gap %v written %d times", k, n)
		}
	}
	if len(written) < len(gaps)*8/10 {
		t.Fatalf("%d of %d gaps written", len(written), len(gaps))
	}
}

func seriesCol(key string) int64 {
	var h int64
	for _, c := range key {
		h = h*31 + int64(c)
	}
	return h
}

// TestSSLNonFiniteValues feeds observed NaN and Inf values: they are
// treated as gaps and poison neither the statistics nor the forecasts.
func TestSSLNonFiniteValues(t *testing.T) {
	cfg := testSSLConfig(24)
	var recs []arrow.RecordBatch
	w := windowing.New(windowing.Config{Length: 24, Stride: 1, MinObserved: 0.01, BatchSize: 40, MaxSeries: 8, Interval: 1e9},
		memory.DefaultAllocator, func(r arrow.RecordBatch) { recs = append(recs, r) })
	for i := 0; i < 300; i++ {
		v := math.Sin(float64(i) / 5)
		switch i % 37 {
		case 5:
			v = math.NaN()
		case 11:
			v = math.Inf(1)
		}
		w.Add([]byte("m#f"), int64(i)*1e9, v)
	}
	w.Flush()
	w.Close()
	l := newSSL(t, cfg)
	for _, r := range recs {
		out, err := l.Step(r)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range out.Forecast {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				t.Fatalf("forecast %d is %v", i, f)
			}
		}
		r.Release()
	}
	s, _ := l.series.GetString("m#f")
	if math.IsNaN(s.norm.Mean) || math.IsNaN(s.norm.Var) || math.IsInf(s.norm.Var, 0) {
		t.Fatalf("normaliser poisoned: %+v", s.norm)
	}
}
