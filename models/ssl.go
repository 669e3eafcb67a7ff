package models

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/tsrep/tsrep/internal/lru"
)

// SSLConfig configures the self-supervised learner. Start from
// DefaultSSLConfig: every field is used as given (a zero loss weight turns
// that objective off).
type SSLConfig struct {
	// Name is the value of the model tag of what the learner writes.
	Name string
	// Length is the window length (window.length). Batches of another
	// length are refused. The encoder sees a window's last Length-1 slots.
	Length int
	// Stride is the windowing stride (window.stride); the imputation output
	// rule uses it so that each gap is written once.
	Stride int
	// Dim is the embedding size.
	Dim int
	// Hidden is the width of the hidden layers of the encoder and the
	// imputation head (the forecast head has Hidden/4).
	Hidden int
	// TrainBatch is the number of windows of one optimiser step.
	TrainBatch int
	// MaxSeries caps the per-series state held (least recently seen
	// evicted). It must be at least TrainBatch.
	MaxSeries int
	// LearningRate of Adam; ClipNorm caps the global gradient norm.
	LearningRate float64
	ClipNorm     float64
	// Temperature of the InfoNCE loss.
	Temperature float64
	// Loss weights of the three objectives.
	WeightForecast, WeightImpute, WeightContrast float64
	// HuberDelta is the threshold of the Huber losses, in normalised units.
	HuberDelta float64
	// MaskMin and MaskMax bound the share of a view's observed points hidden
	// for the imputation objective (drawn uniformly per view).
	MaskMin, MaskMax float64
	// Jitter is the standard deviation of the noise added to the visible
	// points of a view; Scale the standard deviation of the log of a view's
	// random scale factor.
	Jitter, Scale float64
	// ARLags is the order of the linear forecast path (at most Length-2).
	ARLags int
	// Forgetting is the forgetting factor of the linear path's RLS.
	Forgetting float64
	// GateDecay is the decay of the statistics that weigh the nonlinear
	// correction against the linear path, per new point.
	GateDecay float64
	// EmbedEvery emits the embedding of windows whose seq is a multiple of it.
	EmbedEvery int
	// TrainEvery puts in the training buffer only the windows whose seq is
	// a multiple of it (all windows are still predicted). With stride S and
	// length L, TrainEvery = L/S trains on non-overlapping windows: every
	// point is learnt from once, and no near-duplicate windows of a series
	// meet as each other's contrastive negatives.
	TrainEvery int
	// Seed seeds the weights' initialisation and the augmentations.
	Seed uint64
}

// DefaultSSLConfig returns the default configuration for windows of the
// given length and stride.
func DefaultSSLConfig(name string, length, stride int) SSLConfig {
	return SSLConfig{
		Name:           name,
		Length:         length,
		Stride:         stride,
		Dim:            64,
		Hidden:         256,
		TrainBatch:     128,
		MaxSeries:      10000,
		LearningRate:   1e-3,
		ClipNorm:       1,
		Temperature:    0.2,
		WeightForecast: 1,
		WeightImpute:   1,
		WeightContrast: 0.1,
		HuberDelta:     1,
		MaskMin:        0.1,
		MaskMax:        0.5,
		Jitter:         0.02,
		Scale:          0.1,
		ARLags:         max(1, min(60, length-2)),
		Forgetting:     0.999,
		GateDecay:      0.999,
		EmbedEvery:     1,
		TrainEvery:     1,
		Seed:           1,
	}
}

// Validate reports the first field out of range.
func (c *SSLConfig) Validate() error {
	bad := func(format string, a ...any) error { return fmt.Errorf("ssl config: "+format, a...) }
	switch {
	case c.Length < 3:
		return bad("length %d must be at least 3", c.Length)
	case c.Stride < 1:
		return bad("stride %d must be at least 1", c.Stride)
	case c.Dim < 1 || c.Hidden < 4:
		return bad("dim %d and hidden %d must be at least 1 and 4", c.Dim, c.Hidden)
	case c.TrainBatch < 2:
		return bad("train batch %d must be at least 2 (the contrastive objective needs negatives)", c.TrainBatch)
	case c.MaxSeries < c.TrainBatch:
		return bad("max series %d must be at least the train batch %d", c.MaxSeries, c.TrainBatch)
	case !(c.LearningRate > 0) || !(c.ClipNorm > 0) || !(c.Temperature > 0) || !(c.HuberDelta > 0):
		return bad("learning rate, clip norm, temperature and huber delta must be positive")
	case !(c.WeightForecast >= 0 && c.WeightImpute >= 0 && c.WeightContrast >= 0):
		return bad("loss weights must not be negative")
	case !(c.MaskMin >= 0 && c.MaskMin <= c.MaskMax && c.MaskMax < 1):
		return bad("mask share range [%v, %v] must lie in [0, 1)", c.MaskMin, c.MaskMax)
	case !(c.Jitter >= 0 && c.Scale >= 0):
		return bad("jitter and scale must not be negative")
	case c.ARLags < 1 || c.ARLags > c.Length-2:
		return bad("ar lags %d must be in [1, length-2=%d]", c.ARLags, c.Length-2)
	case !(c.Forgetting > 0 && c.Forgetting <= 1):
		return bad("forgetting %v must be in (0, 1]", c.Forgetting)
	case !(c.GateDecay > 0 && c.GateDecay <= 1):
		return bad("gate decay %v must be in (0, 1]", c.GateDecay)
	case c.EmbedEvery < 1:
		return bad("embed every %d must be at least 1", c.EmbedEvery)
	case c.TrainEvery < 1:
		return bad("train every %d must be at least 1", c.TrainEvery)
	}
	return nil
}

// SSL is the self-supervised learner. A shared encoder maps each window,
// normalised per series, to an embedding of Dim values; three heads on the
// embedding serve the objectives, their losses summed with the configured
// weights:
//
//   - next-step prediction. The forecast is a per-series linear path plus a
//     gated nonlinear correction. The linear path is an autoregression on
//     the ARLags values before the window's last one, each taken relative to
//     the last (so neither the level nor the normaliser's drifting mean
//     enters), fitted by RLS with forgetting in fixed per-series units. It
//     first learns the window's newest point, the answer to the previous
//     forecast, then forecasts the next slot (the FSNet online order). The
//     correction is a small head on the embedding, trained with a Huber loss
//     on the linear path's residual. A per-series gate, the decayed
//     least-squares weight of the correction on the residual clipped to
//     [0, 1], scales it: a correction that does not track the residual is
//     weighed towards zero, so the forecast falls back to the linear path.
//   - imputation. Each view hides a random share of the window's observed
//     points; the head, fed the embedding and the view, corrects the linear
//     interpolation of the visible points, with a Huber loss on the hidden
//     points only. At output time it fills the real gaps; each gap is written
//     once, by the window whose middle Stride slots hold it (see writeRange).
//     A gate, learnt on the training views' hidden points separately for
//     isolated gaps and gaps next to others, scales the correction by its
//     least-squares weight on the interpolation's residual, clipped to
//     [0, 1]: where the head does not beat interpolation, the output
//     falls back to it.
//   - contrastive. Two augmented views of each window are positives, the
//     other windows of the micro-batch negatives, InfoNCE (NT-Xent) with
//     cosine similarity and temperature Temperature. The augmentations of a
//     view: independent random masking (the imputation mask), a random scale
//     factor exp(Scale·N(0,1)) and Gaussian jitter of standard deviation
//     Jitter on the visible points.
//
// The encoder (a block: a linear skip beside a GELU hidden layer) sees the
// window's last Length-1 slots: the values normalised by the series' running
// mean and variance (models.Normaliser), gaps linearly interpolated, centred
// on their mean; the observed mask; and the centre itself, clamped, as the
// window's level. A training example is the window's first Length-1 slots
// with the last slot as the next-step target, so a forecast and a training
// example have the same shape.
//
// Learning is prequential and deterministic: each window is predicted with
// the weights current when it arrives (forecast, embedding, imputed gaps),
// then put in the training buffer; every TrainBatch windows one Adam step
// (with global gradient-norm clipping) runs on the buffer, and the losses it
// measures, with the weights the windows were predicted with, are reported
// as a TrainStep. An Arrow batch is cut where the buffer fills, and each
// piece is predicted as one block of exactly TrainBatch windows: its windows
// in the columns they take in the training buffer (while training is off,
// in consecutive columns counted across batches), the other columns zero.
// Neither the shape of a product nor a window's place in it then depends on
// where the Arrow batches were cut, so batch boundaries do not change the
// model or its outputs, also under a BLAS that picks kernels by shape
// (OpenBLAS).
//
// All matrix work goes through BLAS (gonum's, or OpenBLAS with -tags
// openblas) on whole blocks of windows stored feature-major, one column per
// window, so that each product's inner loops run along the block (see
// ssl_nn.go).
type SSL struct {
	cfg SSLConfig
	lc  int // context length: Length-1
	in  int // encoder input width: 2·lc+1

	params, grads []float64
	adamM, adamV  []float64
	adamT         uint64
	enc, fh, ih   block

	pcg *rand.PCG
	rng *rand.Rand

	series *lru.Map[*sslSeries]
	buf    sslBuffer
	train  bool
	// col is the prediction-block column of the next window: windows take
	// the block's columns in turn, counted across batches, so a window's
	// column depends only on its place in the stream.
	col int
	// igate holds, for isolated gaps (both neighbours observed) and for
	// gaps next to other gaps, the decayed sums of residual×correction and
	// correction² of the imputation head on the training views' hidden
	// points (the residual being the truth minus the linear
	// interpolation): the gate that scales the head's correction.
	igate [2]struct{ src, scc float64 }

	out Output
	ws  sslWork
}

// sslSeries is the state of one series.
type sslSeries struct {
	norm    Normaliser
	folded  int64 // newest slot folded into norm
	trained int64 // newest slot learnt by the linear path
	rls     *RLS
	scale   float64 // the linear path's unit: the std of the first window
	// gSrc and gScc are the decayed sums of residual×correction and
	// correction² of resolved forecasts; the gate is their ratio.
	gSrc, gScc float64
	pend       sslPending
}

// sslPending is the series' latest forecast, waiting for its slot.
type sslPending struct {
	ok        bool
	time      int64
	lin, c    float64 // linear prediction and correction, normalised
	mean, std float64 // the normalisation they were made in
}

// sslBuffer holds the windows waiting for the next optimiser step.
type sslBuffer struct {
	n   int
	z   []float64 // TrainBatch×lc normalised context values, NaN for gaps
	r   []float64 // residual of the linear path on the target (NaN: none)
	end []int64
}

// NewSSL returns a learner with freshly initialised weights.
func NewSSL(cfg SSLConfig) (*SSL, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &SSL{cfg: cfg, lc: cfg.Length - 1, train: true}
	l.in = 2*l.lc + 1
	D, H := cfg.Dim, cfg.Hidden
	l.enc = block{in: l.in, hid: H, out: D}
	l.fh = block{in: D, hid: max(H/4, 4), out: 1}
	l.ih = block{in: D + l.in, hid: H, out: l.lc}
	n := blockParams(l.enc.in, l.enc.hid, l.enc.out) + blockParams(l.fh.in, l.fh.hid, l.fh.out) +
		blockParams(l.ih.in, l.ih.hid, l.ih.out)
	l.params = make([]float64, n)
	l.grads = make([]float64, n)
	l.adamM = make([]float64, n)
	l.adamV = make([]float64, n)
	off := l.enc.bind(l.params, l.grads, 0)
	off = l.fh.bind(l.params, l.grads, off)
	l.ih.bind(l.params, l.grads, off)
	l.pcg = rand.NewPCG(cfg.Seed, 0x7473726570) // "tsrep"
	l.rng = rand.New(l.pcg)
	l.initWeights()
	l.series = lru.New[*sslSeries](cfg.MaxSeries)
	l.buf = sslBuffer{
		z:   make([]float64, cfg.TrainBatch*l.lc),
		r:   make([]float64, cfg.TrainBatch),
		end: make([]int64, cfg.TrainBatch),
	}
	l.out.Dim = D
	l.out.Length = cfg.Length
	return l, nil
}

// initWeights draws the weights: LeCun-uniform for the encoder, and zero
// skip and output weights for the heads, so that a new learner's forecast
// is its linear path and its imputation the linear interpolation.
func (l *SSL) initWeights() {
	// The weights are drawn in the order of an in×(out+hid) matrix
	// x·[Ws|W1], each stored at its place in the transposed layout.
	draw := func(w []float64, rows, cols int, from int, a float64) {
		for i := 0; i < rows; i++ {
			for j := 0; j < cols; j++ {
				v := 0.0
				if j >= from {
					v = (2*l.rng.Float64() - 1) * a
				}
				w[j*rows+i] = v
			}
		}
	}
	e := &l.enc
	draw(e.w, e.in, e.out+e.hid, 0, math.Sqrt(3/float64(e.in)))
	draw(e.w2, e.hid, e.out, 0, math.Sqrt(3/float64(e.hid)))
	for _, h := range []*block{&l.fh, &l.ih} {
		draw(h.w, h.in, h.out+h.hid, h.out, math.Sqrt(3/float64(h.in)))
	}
}

// Name implements Learner.
func (l *SSL) Name() string { return l.cfg.Name }

// Config returns the learner's configuration.
func (l *SSL) Config() SSLConfig { return l.cfg }

// Steps is the number of optimiser steps taken.
func (l *SSL) Steps() uint64 { return l.adamT }

// SetTraining turns learning of the shared network on or off. Off, Step
// still predicts and keeps the per-series statistics and linear paths up to
// date, but windows are not buffered and no optimiser step runs (for
// embedding a fixed data set with frozen weights).
func (l *SSL) SetTraining(on bool) { l.train = on }

// sslWork holds the per-batch workspaces.
type sslWork struct {
	ser  []*sslSeries
	ip   []float64 // rows×lc interpolated normalised context
	lin  []float64 // linear prediction of the next slot
	mean []float64
	std  []float64
	exZ  []float64 // rows×lc training context
	exR  []float64
	z    []float64 // one window, normalised
	tmp  []float64
	it   []float64
	// prediction: a block of TrainBatch columns, one per window
	pz    []float64 // (Dim+in)×TrainBatch: embeddings above encoder inputs
	pc    []float64 // TrainBatch forecast corrections
	pd    []float64 // lc×TrainBatch imputation corrections
	pfrom int       // the segment's first row
	pcol  int       // and its column
	enc   blockAct
	fh    blockAct
	ih    blockAct
	// training: a block of 3·TrainBatch columns, the clean windows then
	// the first and the second views
	tz     []float64 // (Dim+in)×3B: embeddings above encoder inputs
	tip    []float64 // lc×2B view interpolations
	ttgt   []float64 // lc×2B targets at hidden slots (NaN elsewhere)
	tvis   []bool    // lc×2B whether each slot is visible in the view
	tc     []float64 // B forecast corrections
	tdelta []float64 // lc×2B imputation corrections
	de     []float64 // Dim×3B
	dc     []float64
	dd     []float64
	dcon   []float64
	nce    infoNCE
	tenc   blockAct
	tfh    blockAct
	tih    blockAct
	vals   []float64
	hidden []bool
}

// Step implements Learner.
func (l *SSL) Step(rec arrow.RecordBatch) (*Output, error) {
	b, err := View(rec)
	if err != nil {
		return nil, err
	}
	if b.Length != l.cfg.Length {
		return nil, fmt.Errorf("window length %d, the ssl learner was configured for %d", b.Length, l.cfg.Length)
	}
	l.out.reset(b.Rows)
	l.prepare(b.Rows)
	TB := l.cfg.TrainBatch
	for start := 0; start < b.Rows; {
		// A segment ends where the prediction block's columns run out or
		// the training buffer fills, so it is never longer than TrainBatch
		// rows: at most MaxSeries series are touched in a segment, so none
		// is evicted between its per-series pass and its gate update.
		col := l.col
		end := min(b.Rows, start+TB-col)
		if l.train {
			n := l.buf.n
			for i := start; i < end; i++ {
				if l.trains(&b, i) {
					if n++; n == TB {
						end = i + 1
						break
					}
				}
			}
		}
		l.col = (col + end - start) % TB
		l.startBlock(start, col)
		for i := start; i < end; i++ {
			l.sequential(&b, i)
		}
		l.predict(&b, start, end)
		for i := start; i < end; i++ {
			l.gate(&b, i)
		}
		if l.train {
			for i := start; i < end; i++ {
				if l.trains(&b, i) {
					l.buffer(&b, i)
				}
			}
			if l.buf.n == TB {
				l.out.Train = append(l.out.Train, l.step())
			}
		}
		start = end
	}
	return &l.out, nil
}

func (l *SSL) prepare(rows int) {
	w := &l.ws
	if cap(w.ser) < rows {
		w.ser = make([]*sslSeries, rows)
	}
	w.ser = w.ser[:rows]
	w.ip = grow(w.ip, rows*l.lc)
	w.lin = grow(w.lin, rows)
	w.mean = grow(w.mean, rows)
	w.std = grow(w.std, rows)
	w.exZ = grow(w.exZ, rows*l.lc)
	w.exR = grow(w.exR, rows)
	w.z = grow(w.z, l.cfg.Length)
	w.tmp = grow(w.tmp, l.lc)
	w.it = grow(w.it, l.lc)
}

// startBlock clears the prediction block for a segment whose first row,
// from, takes column col: the columns no window of the segment takes stay
// zero.
func (l *SSL) startBlock(from, col int) {
	w := &l.ws
	w.pz = grow(w.pz, (l.cfg.Dim+l.in)*l.cfg.TrainBatch)
	clear(w.pz)
	w.pfrom, w.pcol = from, col
}

// sequential runs the per-series part of row i in arrival order: the
// normalisation, the encoder input, the linear path's forecast and its
// update, and the training example.
func (l *SSL) sequential(b *Batch, i int) {
	L, lc, P := l.cfg.Length, l.lc, l.cfg.ARLags
	key := b.Key(i)
	s, ok := l.series.GetString(key)
	if !ok {
		s = &sslSeries{rls: NewRLS(P+1, l.cfg.Forgetting), folded: math.MinInt64, trained: math.MinInt64}
		l.series.Put(strings.Clone(key), s)
	}
	l.ws.ser[i] = s
	row := b.Row(i)
	if s.norm.N == 0 {
		for j := 0; j < L; j++ {
			if usable(b, i, j) {
				s.norm.Add(row[j])
				s.folded = b.SlotTime(i, j)
			}
		}
	}
	mean, std := s.norm.Mean, s.norm.Std()
	if s.scale == 0 {
		s.scale = std
	}
	f := std / s.scale // running-normalised units → the linear path's units
	l.ws.mean[i], l.ws.std[i] = mean, std
	z := l.ws.z
	for j := 0; j < L; j++ {
		z[j] = math.NaN()
		if usable(b, i, j) {
			z[j] = (row[j] - mean) / std
		}
	}
	// Prediction input: slots 1..L-1.
	ip := l.ws.ip[i*lc : (i+1)*lc]
	centre, _ := interpolate(z[1:], ip)
	TB := l.cfg.TrainBatch
	col := l.ws.pcol + i - l.ws.pfrom
	fillInput(l.ws.pz[l.cfg.Dim*TB+col:], TB, ip, z[1:], centre)
	// The linear path first learns the window's newest point (the answer to
	// the previous window's forecast, already scored), then forecasts the
	// next slot: the order of the FSNet online protocol.
	lags := l.ws.tmp[:P+1]
	copy(l.ws.exZ[i*lc:(i+1)*lc], z[:lc])
	l.ws.exR[i] = math.NaN()
	end := int64(b.End[i])
	if usable(b, i, L-1) && end > s.trained {
		it := l.ws.it
		interpolate(z[:lc], it)
		l.ws.exR[i] = s.rls.Update(relLags(it, P, f, lags), (z[L-1]-it[lc-1])*f) / f
		s.trained = end
	}
	l.ws.lin[i] = ip[lc-1] + s.rls.Predict(relLags(ip, P, f, lags))/f
	for j := 0; j < L; j++ {
		if t := b.SlotTime(i, j); t > s.folded && usable(b, i, j) {
			s.norm.Add(row[j])
			s.folded = t
		}
	}
}

// usable reports whether slot j of row i holds a finite observed value: a
// non-finite value is treated as a gap, so that it can reach neither the
// normaliser nor the linear path.
func usable(b *Batch, i, j int) bool {
	v := b.Row(i)[j]
	return b.Observed(i, j) && !math.IsNaN(v) && !math.IsInf(v, 0)
}

// maxLevel bounds the level input of the encoder, in normalised units.
const maxLevel = 5

// fillInput writes an encoder input, a column of a block (x[j·stride] is
// its j-th feature): the filled context ip minus its centre, the observed
// mask of z (NaN: a gap), and the centre itself clamped to ±maxLevel, the
// window's level relative to the series' running mean (bounded so that a
// level shift cannot push the input far from what the encoder was trained
// on).
func fillInput(x []float64, stride int, ip, z []float64, centre float64) {
	lc := len(ip)
	for j, v := range ip {
		x[j*stride] = v - centre
		m := 0.0
		if !math.IsNaN(z[j]) {
			m = 1
		}
		x[(lc+j)*stride] = m
	}
	x[2*lc*stride] = math.Max(-maxLevel, math.Min(maxLevel, centre))
}

// relLags fills dst (P+1 long) with the linear path's inputs from the
// filled context ip: the P values before the last, each minus the last (so
// the regression does not depend on the series' level, nor on the
// normaliser's mean as it drifts), times f, and the intercept 1. The linear
// path predicts the next value minus the last.
//
// The linear path works in fixed units per series (the scale of its first
// window), not in the running normaliser's: the least-squares fit then
// weighs each error as squared error in the series' units does, where the
// running scale would discount volatile stretches, which squared error
// counts most. f converts running-normalised values to those units.
func relLags(ip []float64, P int, f float64, dst []float64) []float64 {
	n := len(ip)
	last := ip[n-1]
	for k := 0; k < P; k++ {
		dst[k] = (ip[n-1-P+k] - last) * f
	}
	dst[P] = 1
	return dst[:P+1]
}

// interpolate fills out with z's values, gaps (NaN) linearly interpolated
// between their observed neighbours and held flat past the first and last
// observed value (0 if none is observed). It returns the mean of the
// observed values (0 if none) and their count.
func interpolate(z, out []float64) (mean float64, n int) {
	last := -1
	var sum float64
	for j, v := range z {
		if math.IsNaN(v) {
			continue
		}
		sum += v
		n++
		switch {
		case last < 0:
			for k := 0; k < j; k++ {
				out[k] = v
			}
		case j-last > 1:
			a := z[last]
			d := (v - a) / float64(j-last)
			for k := last + 1; k < j; k++ {
				out[k] = a + d*float64(k-last)
			}
		}
		out[j] = v
		last = j
	}
	if last < 0 {
		clear(out)
		return 0, 0
	}
	for k := last + 1; k < len(z); k++ {
		out[k] = z[last]
	}
	return sum / float64(n), n
}

// writeRange is the range of window slots [lo, hi) whose gaps row i writes
// out: the middle Stride slots of the window (each slot of a series is the
// middle of exactly one window when windows come every Stride slots), and
// for a series' first window (seq 0) also the slots before them. Slot 0 is
// not seen by the encoder and never written.
func (l *SSL) writeRange(seq uint64) (lo, hi int) {
	L, S := l.cfg.Length, l.cfg.Stride
	if S >= L {
		return 1, L
	}
	lo = (L - S) / 2
	hi = lo + S
	if seq == 0 {
		lo = 1
	}
	return max(lo, 1), hi
}

// predict runs the network on rows [from, to), whose encoder inputs
// sequential wrote into the prediction block: embeddings, forecast
// corrections, and the imputation of the gaps the rows write out. The
// products always run on the whole block of TrainBatch columns (the unused
// ones zero), so their shapes do not depend on how many windows the
// segment has.
func (l *SSL) predict(b *Batch, from, to int) {
	n := to - from
	if n == 0 {
		return
	}
	D, lc, in, TB := l.cfg.Dim, l.lc, l.in, l.cfg.TrainBatch
	w := &l.ws
	// The products run on the block's columns c0 to c0+nc. With gonum's
	// kernels (one Gemv per output row, see gemm) a column's result does not
	// depend on the other columns, so only the segment's own are computed:
	// segments are cut by Arrow batches, block ends and optimiser steps, and
	// computing all TrainBatch columns each time did about 1.6 times the
	// work. A BLAS that picks kernels by shape gets the whole block.
	c0, nc := 0, TB
	if perRowGemv {
		c0, nc = w.pcol, n
	}
	Z := newMat(D+in, TB, w.pz).cols(c0, nc)
	E := Z.rows(0, D)
	l.enc.forwardMasked(Z.rows(D, in), E, &w.enc, lc)
	for i := from; i < to; i++ {
		col := w.pcol + i - from
		emb := l.out.Embedding[i*D : (i+1)*D]
		for d := range emb {
			emb[d] = E.d[d*TB+col-c0]
		}
		l.out.EmitEmbedding[i] = b.Seq[i]%uint64(l.cfg.EmbedEvery) == 0
	}
	w.pc = grow(w.pc, TB)
	l.fh.forward(E, newMat(1, nc, w.pc), &w.fh)
	for i := from; i < to; i++ {
		l.out.Forecast[i] = w.pc[w.pcol+i-from-c0] // the correction, until gate() combines it
	}
	// The imputation head runs if a row has gaps to write.
	gaps := func(i int) bool {
		lo, hi := l.writeRange(b.Seq[i])
		for j := lo; j < hi; j++ {
			if !b.Observed(i, j) {
				return true
			}
		}
		return false
	}
	need := false
	for i := from; i < to && !need; i++ {
		need = gaps(i)
	}
	if !need {
		return
	}
	w.pd = grow(w.pd, lc*TB)
	l.ih.forward(Z, newMat(lc, nc, w.pd), &w.ih)
	L := l.cfg.Length
	for i := from; i < to; i++ {
		lo, hi := l.writeRange(b.Seq[i])
		col := w.pcol + i - from - c0
		ip := w.ip[i*lc : (i+1)*lc]
		for j := lo; j < hi; j++ {
			if !b.Observed(i, j) {
				g := l.imputeGate(b.Observed(i, j-1) && j+1 < L && b.Observed(i, j+1))
				l.out.Imputed[i*L+j] = w.mean[i] + (ip[j-1]+g*w.pd[(j-1)*nc+col])*w.std[i]
			}
		}
	}
}

// imputeGate is the weight of the imputation head's correction for a gap
// with both neighbours observed (isolated) or not: the least-squares
// weight of the correction on the interpolation's residual over recent
// training views, clipped to [0, 1]. A head that does not beat linear
// interpolation on such gaps is weighed towards zero.
func (l *SSL) imputeGate(isolated bool) float64 {
	k := 1
	if isolated {
		k = 0
	}
	g := l.igate[k]
	if !(g.scc > 0) {
		return 0
	}
	return math.Min(math.Max(g.src/g.scc, 0), 1)
}

// gate resolves row i's series' pending forecast against the window, updates
// the series' gate, and combines row i's forecast.
func (l *SSL) gate(b *Batch, i int) {
	s := l.ws.ser[i]
	c := l.out.Forecast[i]
	if p := &s.pend; p.ok {
		start := b.SlotTime(i, 0)
		ivl := int64(b.Interval[i])
		if p.time >= start && p.time <= int64(b.End[i]) && ivl > 0 {
			j := int((p.time - start) / ivl)
			if b.SlotTime(i, j) == p.time && usable(b, i, j) {
				// In the linear path's units, as its fit is.
				f := p.std / s.scale
				r := ((b.Row(i)[j]-p.mean)/p.std - p.lin) * f
				c := p.c * f
				rho := l.cfg.GateDecay
				s.gSrc = rho*s.gSrc + r*c
				s.gScc = rho*s.gScc + c*c
				p.ok = false
			}
		}
	}
	g := 0.0
	if s.gScc > 0 {
		g = math.Min(math.Max(s.gSrc/s.gScc, 0), 1)
	}
	fz := l.ws.lin[i] + g*c
	l.out.Forecast[i] = l.ws.mean[i] + fz*l.ws.std[i]
	s.pend = sslPending{
		ok: true, time: int64(b.End[i]) + int64(b.Interval[i]),
		lin: l.ws.lin[i], c: c, mean: l.ws.mean[i], std: l.ws.std[i],
	}
}

// trains reports whether row i's window is learnt from (TrainEvery).
func (l *SSL) trains(b *Batch, i int) bool { return b.Seq[i]%uint64(l.cfg.TrainEvery) == 0 }

// buffer appends row i's training example.
func (l *SSL) buffer(b *Batch, i int) {
	k, lc := l.buf.n, l.lc
	copy(l.buf.z[k*lc:(k+1)*lc], l.ws.exZ[i*lc:(i+1)*lc])
	l.buf.r[k] = l.ws.exR[i]
	l.buf.end[k] = int64(b.End[i])
	l.buf.n++
}
