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
// matrix is symmetric, so it is kept packed (its upper triangle, d(d+1)/2
// values: half the memory of every series) and updated row by row of the
// triangle (see Update). It is kept as S·P: forgetting divides the matrix
// by λ at every update, which on P alone would be a third pass over it;
// the scalar S takes the division instead, and P is rescaled (S back to 1)
// only when S has grown past rlsMaxScale.
type RLS struct {
	D      int     // inputs, the intercept included if the caller adds one
	Lambda float64 // forgetting factor in (0, 1]
	W      []float64
	P      []float64 // upper triangle of the D×D inverse correlation matrix over S, packed by rows
	S      float64
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

// rlsMaxDiag bounds the inverse correlation matrix's diagonal: forgetting
// with little excitation lets it grow without bound, and past this the fit
// is no longer conditioned (the matrix goes back to its prior).
const rlsMaxDiag = 1e8

// rlsMaxScale is how far S may grow before it is folded into P (with
// λ = 0.99, every 1,400 updates).
const rlsMaxScale = 1e6

// NewRLS returns an RLS over d inputs.
func NewRLS(d int, lambda float64) *RLS {
	r := newRLSIn(make([]float64, rlsSize(d)), make([]float64, d), d, lambda)
	return &r
}

// rlsSize is the storage of an RLS over d inputs: its weights and matrix.
func rlsSize(d int) int { return d + d*(d+1)/2 }

// newRLSIn returns an RLS over d inputs whose weights and matrix are
// slab[:rlsSize(d)] and whose scratch is px (d values at least; RLS that
// are updated one after the other can share it). A series' forecast
// experts live in one slab: an update then walks memory in order, which
// the processor fetches ahead, rather than matrices scattered over the
// heap.
func newRLSIn(slab, px []float64, d int, lambda float64) RLS {
	n := d * (d + 1) / 2
	r := RLS{D: d, Lambda: lambda, W: slab[:d:d], P: slab[d : d+n : d+n], px: px[:d:d]}
	r.ResetP()
	return r
}

// ResetP sets the inverse correlation matrix back to its prior, keeping
// the weights.
func (r *RLS) ResetP() {
	clear(r.P)
	for i := 0; i < r.D; i++ {
		r.P[r.diag(i)] = rlsInitP
	}
	r.S = 1
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
// loops, and this update, made for every window by each of a series'
// forecast experts and for several points of a training window by its
// imputation model, is the largest part of the ssl learner's cost per
// window.
func (r *RLS) Update(x []float64, y float64) float64 {
	d := r.D
	x = x[:d]
	q := r.px[:d]
	// q = Px, with P symmetric and only its upper triangle stored: row i
	// of the triangle, P[i][i:], gives q_i its terms j ≥ i, and q_j for
	// j > i the term P[i][j]·x_i. The inverse correlation matrix times x
	// is S·q.
	clear(q)
	off := 0
	for i := 0; i < d; i++ {
		row := r.P[off : off+d-i]
		q[i] += floats.Dot(row, x[i:])
		floats.AddScaled(q[i+1:], x[i], row[1:])
		off += d - i
	}
	s := r.S
	den := r.Lambda + s*floats.Dot(x, q)
	e := y - r.Predict(x)
	if !(den > 0) || math.IsInf(den, 0) {
		r.ResetP()
		return e
	}
	// w += S·q·e/den; the matrix (S·P − S²·q·qᵀ/den)/λ is
	// (S/λ)·(P − (S/den)·q·qᵀ): P takes the rank-1 update, S the 1/λ.
	floats.AddScaled(r.W, s*e/den, q)
	c := s / den
	s /= r.Lambda
	// The guard on the diagonal (row i of the triangle starts with P_ii),
	// in P's units.
	maxDiag := rlsMaxDiag / s
	reset := false
	off = 0
	for i := 0; i < d; i++ {
		row := r.P[off : off+d-i]
		floats.AddScaled(row, -c*q[i], q[i:])
		if v := row[0]; !(v < maxDiag) || v < 0 {
			reset = true
		}
		off += d - i
	}
	r.S = s
	if s > rlsMaxScale {
		floats.Scale(s, r.P)
		r.S = 1
	}
	if reset {
		r.ResetP()
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
	w.F64(r.S)
}

// loadState reads what appendState wrote; scaled is false for states of
// before S (the matrix was P alone, S = 1).
func (r *RLS) loadState(rd *binenc.Reader, scaled bool) {
	r.W = rd.F64s(r.W, r.D)
	r.P = rd.F64s(r.P, r.D*(r.D+1)/2)
	r.S = 1
	if scaled {
		r.S = rd.F64()
	}
	if rd.Err() == nil && (len(r.W) != r.D || len(r.P) != r.D*(r.D+1)/2) {
		rd.Fail("rls state of the wrong size (model.order changed?)")
	}
	if rd.Err() == nil && !(r.S >= 1 && r.S <= rlsMaxScale) {
		rd.Fail("rls state: scale out of range")
	}
}
