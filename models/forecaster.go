package models

import (
	"fmt"
	"math"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/tsrep/tsrep/internal/binenc"
	"github.com/tsrep/tsrep/internal/lru"
)

// ForecasterConfig configures the RLS forecaster.
type ForecasterConfig struct {
	Name       string
	Order      int     // lags of the autoregression
	Forgetting float64 // RLS forgetting factor
	MaxSeries  int
	// TrainBatch is the number of windows per reported training step.
	TrainBatch int
}

// Forecaster is online next-step prediction per series: an autoregression
// on the window's last Order normalised values plus an intercept, fitted by
// recursive least squares with forgetting, on every new point of every
// window. It predicts each window's next slot before learning from the
// window, so its errors are prequential.
type Forecaster struct {
	cfg    ForecasterConfig
	series *lru.Map[*arSeries]
	out    Output
	acc    stepAcc
	x      []float64
	z      []float64
}

type arSeries struct {
	rls     *RLS
	norm    Normaliser
	trained int64 // time of the newest slot learnt as a target
	folded  int64 // time of the newest slot folded into norm
}

// NewForecaster returns an RLS forecaster.
func NewForecaster(cfg ForecasterConfig) *Forecaster {
	if cfg.TrainBatch < 1 {
		cfg.TrainBatch = 64
	}
	return &Forecaster{
		cfg:    cfg,
		series: lru.New[*arSeries](cfg.MaxSeries),
		x:      make([]float64, cfg.Order+1),
	}
}

// Name implements Learner.
func (f *Forecaster) Name() string { return f.cfg.Name }

// Step implements Learner.
func (f *Forecaster) Step(rec arrow.RecordBatch) (*Output, error) {
	b, err := View(rec)
	if err != nil {
		return nil, err
	}
	if b.Length <= f.cfg.Order {
		return nil, fmt.Errorf("window length %d must exceed model.order %d", b.Length, f.cfg.Order)
	}
	f.out.reset(b.Rows)
	for i := 0; i < b.Rows; i++ {
		f.window(&b, i)
	}
	return &f.out, nil
}

func (f *Forecaster) window(b *Batch, i int) {
	p := f.cfg.Order
	L := b.Length
	key := b.Key(i)
	s, ok := f.series.GetString(key)
	if !ok {
		s = &arSeries{rls: NewRLS(p+1, f.cfg.Forgetting), trained: math.MinInt64, folded: math.MinInt64}
		s.rls.W[p-1] = 1 // start from "repeat the last value", the persistence forecast
		f.series.Put(strings.Clone(key), s)
	}
	row := b.Row(i)
	if s.norm.N == 0 {
		for j := 0; j < L; j++ { // start the statistics from the first window
			if b.Observed(i, j) && b.SlotTime(i, j) > s.folded {
				s.norm.Add(row[j])
				s.folded = b.SlotTime(i, j)
			}
		}
	}
	// z holds the normalised window with gaps carried forward from the last
	// observed value (the mean before the first).
	if cap(f.z) < L {
		f.z = make([]float64, L)
	}
	z := f.z[:L]
	last := 0.0
	for j := 0; j < L; j++ {
		if b.Observed(i, j) {
			last = s.norm.Z(row[j])
		}
		z[j] = last
	}

	// Predict the next slot from the last p values.
	f.lags(z, L)
	f.out.Forecast[i] = s.norm.Unz(s.rls.Predict(f.x))

	// Learn every observed slot not learnt before, from its own lags.
	var absErr float64
	var n int
	for j := p; j < L; j++ {
		t := b.SlotTime(i, j)
		if t <= s.trained || !b.Observed(i, j) {
			continue
		}
		f.lags(z, j)
		absErr += math.Abs(s.rls.Update(f.x, z[j]))
		n++
	}
	if end := int64(b.End[i]); end > s.trained {
		s.trained = end
	}
	for j := 0; j < L; j++ {
		if t := b.SlotTime(i, j); t > s.folded && b.Observed(i, j) {
			s.norm.Add(row[j])
			s.folded = t
		}
	}
	if step, ok := f.acc.add(int64(b.End[i]), f.cfg.TrainBatch, absErr, n, math.NaN(), 0, math.NaN()); ok {
		f.out.Train = append(f.out.Train, step)
	}
}

// lags fills f.x with z[j-p .. j-1] and the intercept.
func (f *Forecaster) lags(z []float64, j int) {
	p := f.cfg.Order
	copy(f.x[:p], z[j-p:j])
	f.x[p] = 1
}

// forecasterStateVersion 3: the RLS matrices' scale (version 2, P packed
// without it, is read too).
const forecasterStateVersion = 3

// AppendState implements Learner.
func (f *Forecaster) AppendState(w *binenc.Writer) {
	w.U32(forecasterStateVersion)
	w.U32(uint32(f.cfg.Order))
	f.acc.appendState(w)
	w.Len(f.series.Len())
	f.series.Range(func(k string, s *arSeries) bool {
		w.String(k)
		s.rls.appendState(w)
		s.norm.appendState(w)
		w.I64(s.trained)
		w.I64(s.folded)
		return true
	})
}

// LoadState implements Learner.
func (f *Forecaster) LoadState(r *binenc.Reader) error {
	v := r.U32()
	if r.Err() == nil && v != forecasterStateVersion && v != 2 {
		return fmt.Errorf("forecaster state version %d, this build reads 2 and %d", v, forecasterStateVersion)
	}
	if o := int(r.U32()); r.Err() == nil && o != f.cfg.Order {
		return fmt.Errorf("forecaster state has model.order %d, config has %d", o, f.cfg.Order)
	}
	f.acc.loadState(r)
	f.series = lru.New[*arSeries](f.cfg.MaxSeries)
	n := r.Len(f.cfg.MaxSeries, 1)
	for i := 0; i < n && r.Err() == nil; i++ {
		k := r.String(1 << 16)
		s := &arSeries{rls: NewRLS(f.cfg.Order+1, f.cfg.Forgetting)}
		s.rls.loadState(r, v >= 3)
		s.norm.loadState(r)
		s.trained, s.folded = r.I64(), r.I64()
		f.series.Put(k, s)
	}
	return r.Err()
}

// stepAcc gathers per-window losses into fixed-size training steps, so the
// reported steps do not depend on how windows were batched.
type stepAcc struct {
	step             uint64
	windows          int
	time             int64
	fSum, iSum, cSum float64
	fN, iN, cN       int
	hasF, hasI, hasC bool
}

// add records one window's summed losses and counts (a NaN sum marks an
// objective the learner does not have) and returns a step every size windows.
func (a *stepAcc) add(t int64, size int, fSum float64, fN int, iSum float64, iN int, cLoss float64) (TrainStep, bool) {
	a.windows++
	if t > a.time || a.windows == 1 {
		a.time = t
	}
	if !math.IsNaN(fSum) {
		a.hasF = true
		a.fSum += fSum
		a.fN += fN
	}
	if !math.IsNaN(iSum) {
		a.hasI = true
		a.iSum += iSum
		a.iN += iN
	}
	if !math.IsNaN(cLoss) {
		a.hasC = true
		a.cSum += cLoss
		a.cN++
	}
	if a.windows < size {
		return TrainStep{}, false
	}
	a.step++
	st := TrainStep{
		Step: a.step, Time: a.time, Windows: a.windows,
		LossForecast: mean(a.hasF, a.fSum, a.fN),
		LossImpute:   mean(a.hasI, a.iSum, a.iN),
		LossContrast: mean(a.hasC, a.cSum, a.cN),
	}
	step := a.step
	*a = stepAcc{step: step}
	return st, true
}

func mean(has bool, sum float64, n int) float64 {
	if !has || n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}

func (a *stepAcc) appendState(w *binenc.Writer) {
	w.U64(a.step)
	w.Len(a.windows)
	w.I64(a.time)
	for _, v := range []float64{a.fSum, a.iSum, a.cSum} {
		w.F64(v)
	}
	for _, v := range []int{a.fN, a.iN, a.cN} {
		w.Len(v)
	}
	for _, v := range []bool{a.hasF, a.hasI, a.hasC} {
		w.Bool(v)
	}
}

func (a *stepAcc) loadState(r *binenc.Reader) {
	a.step = r.U64()
	a.windows = int(r.U32())
	a.time = r.I64()
	a.fSum, a.iSum, a.cSum = r.F64(), r.F64(), r.F64()
	a.fN, a.iN, a.cN = int(r.U32()), int(r.U32()), int(r.U32())
	a.hasF, a.hasI, a.hasC = r.Bool(), r.Bool(), r.Bool()
}
