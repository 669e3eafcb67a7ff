package models

import (
	"math"
	"slices"

	"gonum.org/v1/gonum/floats"
)

// Adam's constants.
const (
	adamBeta1 = 0.9
	adamBeta2 = 0.999
	adamEps   = 1e-8
)

// sslLosses are the objectives' values over one micro-batch (NaN where an
// objective had nothing to score) and the weighted total.
type sslLosses struct {
	forecast, impute, contrast float64
	total                      float64
}

// step runs one optimiser step on the full training buffer and empties it.
func (l *SSL) step() TrainStep {
	B := l.cfg.TrainBatch
	l.views()
	ls := l.lossAndGrad(true)
	l.updateImputeGate()
	l.adamT++
	if !math.IsNaN(ls.total) && !math.IsInf(ls.total, 0) {
		if gn := floats.Norm(l.grads, 2); gn > l.cfg.ClipNorm {
			floats.Scale(l.cfg.ClipNorm/gn, l.grads)
		}
		l.adam()
	}
	st := TrainStep{
		Step:         l.adamT,
		Time:         slices.Max(l.buf.end[:B]),
		Windows:      B,
		LossForecast: ls.forecast,
		LossImpute:   ls.impute,
		LossContrast: ls.contrast,
	}
	l.buf.n = 0
	return st
}

// adam applies one bias-corrected Adam update with the gradient in l.grads.
func (l *SSL) adam() {
	t := float64(l.adamT)
	lr := l.cfg.LearningRate * math.Sqrt(1-math.Pow(adamBeta2, t)) / (1 - math.Pow(adamBeta1, t))
	m, v, p := l.adamM, l.adamV, l.params
	for i, g := range l.grads {
		m[i] = adamBeta1*m[i] + (1-adamBeta1)*g
		v[i] = adamBeta2*v[i] + (1-adamBeta2)*g*g
		p[i] -= lr * m[i] / (math.Sqrt(v[i]) + adamEps)
	}
}

// views builds the training inputs of the buffered windows: B clean
// windows (for the forecast head) and two augmented views of each window
// (for the imputation and contrastive heads), as the columns of the
// training block (see sslWork.tz). Each view hides a share of the window's
// observed points drawn from [MaskMin, MaskMax] (at least one stays
// visible), multiplies the window by exp(Scale·N(0,1)) and adds
// N(0, Jitter²) noise to the visible points. The imputation targets are the
// hidden points' scaled clean values.
func (l *SSL) views() {
	B, lc, in, D := l.cfg.TrainBatch, l.lc, l.in, l.cfg.Dim
	w := &l.ws
	w.tz = grow(w.tz, (D+in)*3*B)
	X := newMat(D+in, 3*B, w.tz).rows(D, in)
	w.tip = grow(w.tip, lc*2*B)
	w.ttgt = grow(w.ttgt, lc*2*B)
	if cap(w.tvis) < lc*2*B {
		w.tvis = make([]bool, lc*2*B)
	}
	w.tvis = w.tvis[:lc*2*B]
	w.vals = grow(w.vals, lc)
	w.tmp = grow(w.tmp, lc)
	w.it = grow(w.it, lc)
	if cap(w.hidden) < lc {
		w.hidden = make([]bool, lc)
	}
	hidden := w.hidden[:lc]
	for k := 0; k < B; k++ {
		z := l.buf.z[k*lc : (k+1)*lc]
		ip := w.tmp
		centre, _ := interpolate(z, ip)
		fillInput(X.d[k:], X.s, ip, z, centre)
		for v := 0; v < 2; v++ {
			q := v*B + k // view column
			scale := math.Exp(l.cfg.Scale * l.rng.NormFloat64())
			share := l.cfg.MaskMin + (l.cfg.MaskMax-l.cfg.MaskMin)*l.rng.Float64()
			visible, lastObs := 0, -1
			for j, zv := range z {
				hidden[j] = false
				if math.IsNaN(zv) {
					continue
				}
				lastObs = j
				if l.rng.Float64() < share {
					hidden[j] = true
				} else {
					visible++
				}
			}
			if visible == 0 && lastObs >= 0 {
				hidden[lastObs] = false
			}
			vals := w.vals
			for j, zv := range z {
				vals[j] = math.NaN()
				tgt := math.NaN()
				switch {
				case math.IsNaN(zv):
				case hidden[j]:
					tgt = scale * zv
				default:
					vals[j] = scale*zv + l.cfg.Jitter*l.rng.NormFloat64()
				}
				w.ttgt[j*2*B+q] = tgt
				w.tvis[j*2*B+q] = !math.IsNaN(vals[j])
			}
			vip := w.it
			centre, _ := interpolate(vals, vip)
			for j, x := range vip {
				w.tip[j*2*B+q] = x
			}
			fillInput(X.d[B+q:], X.s, vip, vals, centre)
		}
	}
}

// lossAndGrad runs the network on the training inputs built by views and
// returns the losses; with grad it also leaves the gradient of the weighted
// total in l.grads.
func (l *SSL) lossAndGrad(grad bool) sslLosses {
	B, lc, in, D := l.cfg.TrainBatch, l.lc, l.in, l.cfg.Dim
	cfg := &l.cfg
	w := &l.ws
	Z := newMat(D+in, 3*B, w.tz)
	E := Z.rows(0, D)
	l.enc.forward(Z.rows(D, in), E, &w.tenc)

	// Next-step prediction on the clean windows: the correction c is
	// fitted to the linear path's residual r.
	w.tc = grow(w.tc, B)
	l.fh.forward(E.cols(0, B), newMat(1, B, w.tc), &w.tfh)
	c := w.tc
	w.dc = grow(w.dc, B)
	var lf float64
	nf := 0
	for k := 0; k < B; k++ {
		if !math.IsNaN(l.buf.r[k]) {
			nf++
		}
	}
	for k := 0; k < B; k++ {
		w.dc[k] = 0
		r := l.buf.r[k]
		if math.IsNaN(r) {
			continue
		}
		lf += huber(c[k]-r, cfg.HuberDelta)
		w.dc[k] = cfg.WeightForecast * huberGrad(c[k]-r, cfg.HuberDelta) / float64(nf)
	}

	// Imputation on the views' hidden points: the head's input is the
	// views' columns of the block, embedding above encoder input.
	w.tdelta = grow(w.tdelta, lc*2*B)
	delta := w.tdelta
	l.ih.forward(Z.cols(B, 2*B), newMat(lc, 2*B, delta), &w.tih)
	w.dd = grow(w.dd, lc*2*B)
	var li float64
	ni := 0
	for _, t := range w.ttgt[:lc*2*B] {
		if !math.IsNaN(t) {
			ni++
		}
	}
	for j, t := range w.ttgt[:lc*2*B] {
		w.dd[j] = 0
		if math.IsNaN(t) {
			continue
		}
		err := w.tip[j] + delta[j] - t
		li += huber(err, cfg.HuberDelta)
		w.dd[j] = cfg.WeightImpute * huberGrad(err, cfg.HuberDelta) / float64(ni)
	}

	// Contrastive between the two views.
	var dcon matrix
	if grad {
		w.dcon = grow(w.dcon, D*2*B)
		dcon = newMat(D, 2*B, w.dcon)
	}
	lcon := w.nce.loss(E.cols(B, 2*B), cfg.Temperature, cfg.WeightContrast, dcon)

	ls := sslLosses{forecast: math.NaN(), impute: math.NaN(), contrast: lcon}
	if nf > 0 {
		ls.forecast = lf / float64(nf)
	}
	if ni > 0 {
		ls.impute = li / float64(ni)
	}
	ls.total = cfg.WeightContrast * lcon
	if nf > 0 {
		ls.total += cfg.WeightForecast * ls.forecast
	}
	if ni > 0 {
		ls.total += cfg.WeightImpute * ls.impute
	}
	if !grad {
		return ls
	}

	clear(l.grads)
	w.de = grow(w.de, D*3*B)
	dE := newMat(D, 3*B, w.de)
	if nf > 0 {
		l.fh.backward(&w.tfh, newMat(1, B, w.dc), dE.cols(0, B))
	} else {
		for r := 0; r < D; r++ {
			clear(dE.row(r)[:B])
		}
	}
	// The imputation head's input gradient is needed for its embedding
	// rows only.
	if ni > 0 {
		l.ih.backward(&w.tih, newMat(lc, 2*B, w.dd), dE.cols(B, 2*B))
	} else {
		for r := 0; r < D; r++ {
			clear(dE.row(r)[B:])
		}
	}
	for r := 0; r < D; r++ {
		floats.Add(dE.row(r)[B:], dcon.row(r))
	}
	l.enc.backward(&w.tenc, dE, matrix{})
	return ls
}

// stepFlops is the number of floating-point operations of one optimiser
// step's network passes, forward and backward.
func (l *SSL) stepFlops() float64 {
	B, D := l.cfg.TrainBatch, l.cfg.Dim
	sims := 2 * float64(4*B*B*D) // the 2B×2B similarities
	if perRowGemv {
		sims = 2 * float64(2*B*(2*B-1)/2*D) // their upper triangle only (see infoNCE.loss)
	}
	fwd := l.enc.flops(3*B) + l.fh.flops(B) + l.ih.flops(2*B) + sims
	bwd := l.enc.backwardFlops(3*B, 0) + l.fh.backwardFlops(B, D) + l.ih.backwardFlops(2*B, D) + 2*float64(4*B*B*D)
	return fwd + bwd
}

// imputeGateDecay is the per-step decay of the imputation gate's sums.
const imputeGateDecay = 0.9

// updateImputeGate folds the step's hidden points into the imputation gate:
// for each, the residual of the linear interpolation r and the head's
// correction c (measured with the weights the step started from), split by
// whether both neighbours were visible in the view.
func (l *SSL) updateImputeGate() {
	B, lc := l.cfg.TrainBatch, l.lc
	w := &l.ws
	var sums [2]struct{ src, scc float64 }
	for j := 0; j < lc; j++ {
		for q := 0; q < 2*B; q++ {
			t := w.ttgt[j*2*B+q]
			if math.IsNaN(t) {
				continue
			}
			k := 1
			if j > 0 && j+1 < lc && w.tvis[(j-1)*2*B+q] && w.tvis[(j+1)*2*B+q] {
				k = 0
			}
			r := t - w.tip[j*2*B+q]
			c := w.tdelta[j*2*B+q]
			sums[k].src += r * c
			sums[k].scc += c * c
		}
	}
	for k := range l.igate {
		l.igate[k].src = imputeGateDecay*l.igate[k].src + sums[k].src
		l.igate[k].scc = imputeGateDecay*l.igate[k].scc + sums[k].scc
	}
}
