package models

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// TestRLSMatchesBatchLeastSquares: without forgetting, RLS after n updates
// is the ridge solution (XᵀX + I/p0) w = Xᵀy of all n samples at once.
func TestRLSMatchesBatchLeastSquares(t *testing.T) {
	const d, n = 5, 200
	rng := rand.New(rand.NewPCG(1, 2))
	r := NewRLS(d, 1)
	X := mat.NewDense(n, d, nil)
	y := mat.NewVecDense(n, nil)
	truth := []float64{0.5, -1, 2, 0, 0.25}
	for i := 0; i < n; i++ {
		x := make([]float64, d)
		var yi float64
		for j := range x {
			x[j] = rng.NormFloat64()
			yi += truth[j] * x[j]
		}
		yi += 0.1 * rng.NormFloat64()
		X.SetRow(i, x)
		y.SetVec(i, yi)
		r.Update(x, yi)
	}
	var A mat.Dense
	A.Mul(X.T(), X)
	for i := 0; i < d; i++ {
		A.Set(i, i, A.At(i, i)+1.0/rlsInitP)
	}
	var b mat.VecDense
	b.MulVec(X.T(), y)
	var w mat.VecDense
	if err := w.SolveVec(&A, &b); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < d; i++ {
		if math.Abs(w.AtVec(i)-r.W[i]) > 1e-9 {
			t.Fatalf("w[%d]: rls %.12f, batch %.12f", i, r.W[i], w.AtVec(i))
		}
	}
}

// TestRLSForgets: with forgetting, RLS follows a change of the truth.
func TestRLSForgets(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	r := NewRLS(2, 0.98)
	for i := 0; i < 2000; i++ {
		a := 1.0
		if i >= 1000 {
			a = -1
		}
		x := []float64{rng.NormFloat64(), 1}
		r.Update(x, a*x[0])
	}
	if math.Abs(r.W[0]+1) > 1e-3 {
		t.Fatalf("w = %v, want about [-1 0] after the change", r.W)
	}
}

// TestRLSStaysFinite: degenerate input (no excitation, huge values) never
// makes the state non-finite.
func TestRLSStaysFinite(t *testing.T) {
	r := NewRLS(3, 0.9)
	for i := 0; i < 10000; i++ {
		r.Update([]float64{0, 0, 1}, 1)
	}
	r.Update([]float64{1e200, -1e200, 1}, 1e300)
	for _, v := range append(append([]float64{}, r.W...), r.P...) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("state not finite: w %v", r.W)
		}
	}
}

// BenchmarkRLSUpdate is one update of the forecaster's RLS at the default
// order (24 lags and the intercept) and at the quality benchmark's (60).
func BenchmarkRLSUpdate(b *testing.B) {
	for _, d := range []int{25, 61} {
		b.Run(fmt.Sprintf("d=%d", d), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			r := NewRLS(d, 0.999)
			xs := make([][]float64, 64)
			for i := range xs {
				xs[i] = make([]float64, d)
				for j := range xs[i] {
					xs[i][j] = rng.NormFloat64()
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				x := xs[i%len(xs)]
				r.Update(x, x[0]+0.1*x[1])
				i++
			}
		})
	}
}
