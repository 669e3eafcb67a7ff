package models

import (
	"math"

	"github.com/tsrep/tsrep/internal/binenc"
)

// This file holds the per-series forecaster of the ssl learner: a set of
// linear experts fitted by recursive least squares, each on the series'
// own history, mixed online by exponentiated-gradient weights on their
// recent squared errors (OneNet's idea of online ensembling, on CPU), with
// the learner's nonlinear correction as one more expert.
//
// The experts predict the next value's change from the last observed one,
// from lags taken relative to it (so neither the level nor a drifting mean
// enters), in fixed per-series units:
//
//   - dense: the Order values before the last, at every forgetting factor
//     of Forgettings (at least 0.99, 0.999, 0.9999: fast, medium and slow
//     memory);
//   - long (Seasonal): the dense lags plus lags k·Order−1 … k·Order+1 for k
//     = 2 … SeasonalCycles, at the slower forgetting factors. With hourly
//     data and Order 24 these are the same hours of the days and the week
//     before; the mixture weighs the expert down where they do not help.
//
// The mixture weight of expert i is ∝ exp(−MixRate·(L_i − min L)), L_i
// the MixDecay-discounted sum of its squared errors in running-normalised
// units: the mixture follows whichever expert has forecast best lately,
// and so is never far behind the best of them (the EG regret bound), while
// a blend often beats every single one.

// mixConfig configures a series' forecaster.
type mixConfig struct {
	Order       int
	Forgettings []float64
	// SeasonalForgettings are the forgetting factors of the long expert
	// (none: no long expert).
	SeasonalForgettings []float64
	SeasonalCycles      int
	MixRate, MixDecay   float64
	// Correction adds one expert: the linear mixture plus the learner's
	// nonlinear correction.
	Correction bool
}

// history is the number of past values a series keeps for its experts.
func (c *mixConfig) history() int {
	if len(c.SeasonalForgettings) > 0 {
		return c.SeasonalCycles*c.Order + 3
	}
	return c.Order + 2
}

func (c *mixConfig) denseDim() int { return c.Order + 1 }

func (c *mixConfig) longDim() int { return c.Order + 3*(c.SeasonalCycles-1) + 1 }

// experts is the number of mixture components.
func (c *mixConfig) experts() int {
	n := len(c.Forgettings) + len(c.SeasonalForgettings)
	if c.Correction {
		n++
	}
	return n
}

// mixer is one series' forecaster state.
type mixer struct {
	rls []RLS // dense experts, then long experts (one slab, one scratch)
	// loss is each expert's discounted squared error (the last entry the
	// correction expert's, when there is one).
	loss []float64
	// pred holds the experts' last predictions of the change, in the
	// series' fixed units (the correction expert: linear mixture plus
	// correction).
	pred []float64
}

func newMixer(c *mixConfig) *mixer {
	m := &mixer{loss: make([]float64, c.experts()), pred: make([]float64, c.experts())}
	dd, dl := c.denseDim(), c.longDim()
	size := len(c.Forgettings) * rlsSize(dd)
	if len(c.SeasonalForgettings) > 0 {
		size += len(c.SeasonalForgettings) * rlsSize(dl)
	}
	slab := make([]float64, size)
	px := make([]float64, max(dd, dl))
	m.rls = make([]RLS, 0, len(c.Forgettings)+len(c.SeasonalForgettings))
	for _, f := range c.Forgettings {
		m.rls = append(m.rls, newRLSIn(slab, px, dd, f))
		slab = slab[rlsSize(dd):]
	}
	for _, f := range c.SeasonalForgettings {
		m.rls = append(m.rls, newRLSIn(slab, px, dl, f))
		slab = slab[rlsSize(dl):]
	}
	return m
}

// mixFeatures fills the experts' inputs from h, the series' history in
// fixed units, oldest first, whose last element is the last value (NaN
// where a slot was not observed: it is filled from its nearest observed
// neighbour towards the present). dense and long are the experts' inputs;
// ok is false when the last value is not observed.
func (c *mixConfig) features(h []float64, dense, long []float64) (last float64, ok bool) {
	n := len(h)
	last = h[n-1]
	if math.IsNaN(last) {
		return 0, false
	}
	at := func(lag int) float64 { // value lag slots before the last
		i := n - 1 - lag
		if i < 0 {
			return 0
		}
		for j := i; j < n; j++ {
			if !math.IsNaN(h[j]) {
				return h[j] - last
			}
		}
		return 0
	}
	P := c.Order
	for k := 0; k < P; k++ {
		dense[k] = at(P - k)
	}
	dense[P] = 1
	if long != nil {
		copy(long, dense[:P])
		i := P
		for k := 2; k <= c.SeasonalCycles; k++ {
			for d := -1; d <= 1; d++ {
				long[i] = at(k*P + d - 1)
				i++
			}
		}
		long[i] = 1
	}
	return last, true
}

// weights writes the mixture weights into w.
func (c *mixConfig) weights(loss, w []float64) {
	mn := math.Inf(1)
	for _, l := range loss {
		mn = math.Min(mn, l)
	}
	var sum float64
	for i, l := range loss {
		w[i] = math.Exp(-c.MixRate * (l - mn))
		sum += w[i]
	}
	for i := range w {
		w[i] /= sum
	}
}

// learn updates each linear expert with the observed change y of the
// value after the history ending at the inputs given (dense, long).
func (m *mixer) learn(c *mixConfig, dense, long []float64, y float64) {
	nd := len(c.Forgettings)
	for i := range m.rls {
		if i < nd {
			m.rls[i].Update(dense, y)
		} else {
			m.rls[i].Update(long, y)
		}
	}
}

// predict writes each linear expert's prediction of the change into
// m.pred and returns the linear mixture's (without the correction
// expert, whose share w is then returned separately by combine).
func (m *mixer) predict(c *mixConfig, dense, long []float64) {
	nd := len(c.Forgettings)
	for i := range m.rls {
		if i < nd {
			m.pred[i] = m.rls[i].Predict(dense)
		} else {
			m.pred[i] = m.rls[i].Predict(long)
		}
	}
}

// combine returns the mixture's prediction of the change, given the
// correction (in fixed units) for the correction expert. w is scratch of
// experts() values.
func (m *mixer) combine(c *mixConfig, correction float64, w []float64) float64 {
	nl := len(m.rls)
	c.weights(m.loss[:nl], w[:nl])
	var lin float64
	for i := 0; i < nl; i++ {
		lin += w[i] * m.pred[i]
	}
	if !c.Correction {
		return lin
	}
	m.pred[nl] = lin + correction
	c.weights(m.loss, w)
	var p float64
	for i, v := range m.pred {
		p += w[i] * v
	}
	return p
}

// score folds the experts' errors on the observed change y (the pending
// forecast's) into their losses, in units of scale (running-normalised).
func (m *mixer) score(c *mixConfig, y, scale float64) {
	for i, p := range m.pred {
		e := (y - p) / scale
		m.loss[i] = c.MixDecay*m.loss[i] + e*e
	}
}

func (m *mixer) appendState(w *binenc.Writer) {
	for i := range m.rls {
		m.rls[i].appendState(w)
	}
	w.F64s(m.loss)
	w.F64s(m.pred)
}

func (m *mixer) loadState(c *mixConfig, r *binenc.Reader, scaled bool) {
	for i := range m.rls {
		m.rls[i].loadState(r, scaled)
	}
	n := c.experts()
	m.loss = r.F64s(m.loss[:0], n)
	m.pred = r.F64s(m.pred[:0], n)
	if r.Err() == nil && (len(m.loss) != n || len(m.pred) != n) {
		r.Fail("forecast mixture of %d experts, want %d (model.forgetting changed?)", len(m.loss), n)
	}
}
