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

// views builds the training inputs of the buffered windows: B clean rows
// (for the forecast head) and two augmented views of each window (for the
// imputation and contrastive heads). Each view hides a share of the
// window's observed points drawn from [MaskMin, MaskMax] (at least one
// stays visible), multiplies the window by exp(Scale·N(0,1)) and adds
// N(0, Jitter²) noise to the visible points. The imputation targets are the
// hidden points' scaled clean values.
func (l *SSL) views() {
	B, lc, in := l.cfg.TrainBatch, l.lc, l.in
	w := &l.ws
	w.tx = grow(w.tx, 3*B*in)
	w.tip = grow(w.tip, 2*B*lc)
	w.ttgt = grow(w.ttgt, 2*B*lc)
	w.vals = grow(w.vals, lc)
	w.tmp = grow(w.tmp, lc)
	if cap(w.hidden) < lc {
		w.hidden = make([]bool, lc)
	}
	hidden := w.hidden[:lc]
	for k := 0; k < B; k++ {
		z := l.buf.z[k*lc : (k+1)*lc]
		ip := w.tmp
		centre, _ := interpolate(z, ip)
		fillInput(w.tx[k*in:(k+1)*in], ip, z, centre)
		for v := 0; v < 2; v++ {
			q := v*B + k // view row
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
			tgt := w.ttgt[q*lc : (q+1)*lc]
			for j, zv := range z {
				vals[j], tgt[j] = math.NaN(), math.NaN()
				switch {
				case math.IsNaN(zv):
				case hidden[j]:
					tgt[j] = scale * zv
				default:
					vals[j] = scale*zv + l.cfg.Jitter*l.rng.NormFloat64()
				}
			}
			vip := w.tip[q*lc : (q+1)*lc]
			centre, _ := interpolate(vals, vip)
			fillInput(w.tx[(B+q)*in:(B+q+1)*in], vip, vals, centre)
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
	e := l.enc.forward(w.tx, 3*B, &w.tenc)

	// Next-step prediction on the clean rows: the correction c is fitted
	// to the linear path's residual r.
	c := l.fh.forward(e[:B*D], B, &w.tfh)
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

	// Imputation on the views' hidden points.
	w.tihIn = grow(w.tihIn, 2*B*(D+in))
	for q := 0; q < 2*B; q++ {
		dst := w.tihIn[q*(D+in) : (q+1)*(D+in)]
		copy(dst[:D], e[(B+q)*D:(B+q+1)*D])
		copy(dst[D:], w.tx[(B+q)*in:(B+q+1)*in])
	}
	delta := l.ih.forward(w.tihIn, 2*B, &w.tih)
	w.dd = grow(w.dd, 2*B*lc)
	var li float64
	ni := 0
	for _, t := range w.ttgt[:2*B*lc] {
		if !math.IsNaN(t) {
			ni++
		}
	}
	for j, t := range w.ttgt[:2*B*lc] {
		w.dd[j] = 0
		if math.IsNaN(t) {
			continue
		}
		err := w.tip[j] + delta[j] - t
		li += huber(err, cfg.HuberDelta)
		w.dd[j] = cfg.WeightImpute * huberGrad(err, cfg.HuberDelta) / float64(ni)
	}

	// Contrastive between the two views.
	var dcon []float64
	if grad {
		w.dcon = grow(w.dcon, 2*B*D)
		dcon = w.dcon
	}
	lcon := w.nce.loss(e[B*D:3*B*D], B, D, cfg.Temperature, cfg.WeightContrast, dcon)

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
	w.de = grow(w.de, 3*B*D)
	clear(w.de)
	if nf > 0 {
		l.fh.backward(&w.tfh, w.dc, w.de[:B*D])
	}
	if ni > 0 {
		w.dih = grow(w.dih, 2*B*(D+in))
		l.ih.backward(&w.tih, w.dd, w.dih)
		for q := 0; q < 2*B; q++ {
			floats.Add(w.de[(B+q)*D:(B+q+1)*D], w.dih[q*(D+in):q*(D+in)+D])
		}
	}
	floats.Add(w.de[B*D:], dcon)
	l.enc.backward(&w.tenc, w.de, nil)
	return ls
}

// stepFlops is the number of floating-point operations of one optimiser
// step's network passes (forward, and backward at twice the forward).
func (l *SSL) stepFlops() float64 {
	B := l.cfg.TrainBatch
	fwd := l.enc.flops(3*B) + l.fh.flops(B) + l.ih.flops(2*B) + 2*float64(4*B*B*l.cfg.Dim)
	return 3 * fwd
}
