package models

import (
	"math"

	"github.com/tsrep/tsrep/internal/binenc"
)

// Normaliser keeps a decayed mean and variance of one series: each new
// value weighs 1/min(n, Horizon), so the statistics follow level shifts
// within about Horizon points instead of averaging over all history.
type Normaliser struct {
	Mean, Var float64
	N         float64
}

// Horizon is the effective memory, in points, of the decayed statistics.
const Horizon = 1000

// Add folds x into the statistics.
func (n *Normaliser) Add(x float64) {
	n.N++
	k := math.Min(n.N, Horizon)
	d := x - n.Mean
	n.Mean += d / k
	n.Var += (d*(x-n.Mean) - n.Var) / k
}

// Std is the standard deviation, floored so that a flat series does not
// divide by zero.
func (n *Normaliser) Std() float64 {
	s := math.Sqrt(math.Max(n.Var, 0))
	return math.Max(s, math.Max(1e-6*math.Abs(n.Mean), 1e-9))
}

// Z normalises x.
func (n *Normaliser) Z(x float64) float64 { return (x - n.Mean) / n.Std() }

// Unz maps a normalised value back.
func (n *Normaliser) Unz(z float64) float64 { return n.Mean + z*n.Std() }

func (n *Normaliser) appendState(w *binenc.Writer) {
	w.F64(n.Mean)
	w.F64(n.Var)
	w.F64(n.N)
}

func (n *Normaliser) loadState(r *binenc.Reader) {
	n.Mean, n.Var, n.N = r.F64(), r.F64(), r.F64()
}
