package models

import (
	"math"

	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/floats"

	"github.com/tsrep/tsrep/internal/binenc"
)

// RLS is recursive least squares with exponential forgetting: an online
// linear regression whose weights are the exact weighted least-squares fit
// of everything seen, each update costing O(d²). The inverse correlation
// matrix P is symmetric, so it is kept packed (its upper triangle,
// d(d+1)/2 values: half the memory of every series) and updated row by row
// of the triangle (see Update).
type RLS struct {
	D      int     // inputs, the intercept included if the caller adds one
	Lambda float64 // forgetting factor in (0, 1]
	W      []float64
	P      []float64 // upper triangle of the D×D inverse correlation matrix, packed by rows
	px     []float64
}

// diag is the index of P's i-th diagonal element in packed upper storage.
func (r *RLS) diag(i int) int { return i*r.D - i*(i-1)/2 }

// rlsInitP is the initial diagonal of P: a ridge of 1/rlsInitP = 100 on
// normalised inputs around the initial weights. With the Forecaster's
// persistence start this keeps early forecasts near the last value until
// a few hundred points outweigh the prior (a weak prior overfits the first
// points badly); forgetting fades the prior like any other data.
const rlsInitP = 0.01

// NewRLS returns an RLS over d inputs.
func NewRLS(d int, lambda float64) *RLS {
	r := &RLS{D: d, Lambda: lambda, W: make([]float64, d), P: make([]float64, d*(d+1)/2), px: make([]float64, d)}
	r.ResetP()
	return r
}

// ResetP sets P back to its prior, keeping the weights.
func (r *RLS) ResetP() {
	clear(r.P)
	for i := 0; i < r.D; i++ {
		r.P[r.diag(i)] = rlsInitP
	}
}

// Predict returns w·x.
func (r *RLS) Predict(x []float64) float64 {
	return blas64.Dot(blas64.Vector{N: r.D, Data: r.W, Inc: 1}, blas64.Vector{N: r.D, Data: x, Inc: 1})
}

// Update learns target y for input x and returns the a-priori error y - w·x.
//
// The packed products (Spmv's Px and Spr's rank-1 update) run row by row
// of the packed upper triangle through the SIMD kernels behind
// floats.Dot and floats.AddScaled: gonum's Dspmv and Dspr are scalar Go
// loops, and this update, made once per point by the rls learner and once
// per window by ssl's linear path, took most of the rls learner's time.
func (r *RLS) Update(x []float64, y float64) float64 {
	d := r.D
	x = x[:d]
	px := r.px[:d]
	// Px, with P symmetric and only its upper triangle stored: row i of the
	// triangle, P[i][i:], gives (Px)_i its terms j ≥ i, and (Px)_j for
	// j > i the term P[i][j]·x_i.
	clear(px)
	off := 0
	for i := 0; i < d; i++ {
		row := r.P[off : off+d-i]
		px[i] += floats.Dot(row, x[i:])
		floats.AddScaled(px[i+1:], x[i], row[1:])
		off += d - i
	}
	den := r.Lambda + floats.Dot(x, px)
	e := y - r.Predict(x)
	if !(den > 0) || math.IsInf(den, 0) {
		r.ResetP()
		return e
	}
	// w += Px e / den ; P = (P - Px (Px)ᵀ / den) / λ   (P stays symmetric)
	floats.AddScaled(r.W, e/den, px)
	off = 0
	for i := 0; i < d; i++ {
		row := r.P[off : off+d-i]
		floats.AddScaled(row, -px[i]/den, px[i:])
		off += d - i
	}
	if r.Lambda != 1 {
		floats.Scale(1/r.Lambda, r.P)
	}
	// Forgetting with little excitation lets P grow without bound; a
	// diagonal past the guard means the fit is no longer conditioned.
	for i := 0; i < d; i++ {
		if v := r.P[r.diag(i)]; !(v < 1e8) || v < 0 {
			r.ResetP()
			break
		}
	}
	for _, w := range r.W {
		if math.IsNaN(w) || math.IsInf(w, 0) {
			clear(r.W)
			r.ResetP()
			break
		}
	}
	return e
}

func (r *RLS) appendState(w *binenc.Writer) {
	w.F64s(r.W)
	w.F64s(r.P)
}

func (r *RLS) loadState(rd *binenc.Reader) {
	r.W = rd.F64s(r.W, r.D)
	r.P = rd.F64s(r.P, r.D*(r.D+1)/2)
	if rd.Err() == nil && (len(r.W) != r.D || len(r.P) != r.D*(r.D+1)/2) {
		rd.Fail("rls state of the wrong size (model.order changed?)")
	}
}
