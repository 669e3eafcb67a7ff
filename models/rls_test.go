package models

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"

	"github.com/tsrep/tsrep/internal/binenc"
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

// TestRLSScaleMatchesDenseUpdate: the packed matrix kept as S·P (S taking
// forgetting's division, folded back into P past rlsMaxScale) follows the
// textbook update on a dense matrix, through several foldings.
func TestRLSScaleMatchesDenseUpdate(t *testing.T) {
	const d, lambda, n = 5, 0.99, 5000 // S folds every ~1,400 updates
	rng := rand.New(rand.NewPCG(3, 4))
	r := NewRLS(d, lambda)
	P := make([]float64, d*d)
	for i := 0; i < d; i++ {
		P[i*d+i] = rlsInitP
	}
	w := make([]float64, d)
	folds := 0
	for k := 0; k < n; k++ {
		x := make([]float64, d)
		for j := range x {
			x[j] = rng.NormFloat64()
		}
		y := 2*x[0] - x[1] + 0.1*rng.NormFloat64()
		px := make([]float64, d)
		for i := 0; i < d; i++ {
			for j := 0; j < d; j++ {
				px[i] += P[i*d+j] * x[j]
			}
		}
		den, e := lambda, y
		for i := 0; i < d; i++ {
			den += x[i] * px[i]
			e -= w[i] * x[i]
		}
		for i := 0; i < d; i++ {
			w[i] += px[i] * e / den
			for j := 0; j < d; j++ {
				P[i*d+j] = (P[i*d+j] - px[i]*px[j]/den) / lambda
			}
		}
		before := r.S
		if got := r.Update(x, y); math.Abs(got-e) > 1e-9*(1+math.Abs(e)) {
			t.Fatalf("update %d: a-priori error %v, dense %v", k, got, e)
		}
		if r.S < before {
			folds++
		}
	}
	if folds < 2 {
		t.Fatalf("S folded into P %d times, want at least 2", folds)
	}
	for i := 0; i < d; i++ {
		if math.Abs(r.W[i]-w[i]) > 1e-9 {
			t.Errorf("w[%d] = %v, dense %v", i, r.W[i], w[i])
		}
		for j := i; j < d; j++ {
			got := r.S * r.P[r.diag(i)+j-i]
			if want := P[i*d+j]; math.Abs(got-want) > 1e-9*math.Abs(want)+1e-12 {
				t.Errorf("P[%d][%d] = %v, dense %v", i, j, got, want)
			}
		}
	}
}

// TestRLSLoadsUnscaledState: a state written before the scale (W, then P)
// loads with S = 1.
func TestRLSLoadsUnscaledState(t *testing.T) {
	r := NewRLS(3, 0.9)
	for k := 0; k < 10; k++ {
		r.Update([]float64{1, float64(k), 1}, float64(k))
	}
	floats.Scale(r.S, r.P)
	r.S = 1
	var w binenc.Writer
	w.F64s(r.W)
	w.F64s(r.P)
	got := NewRLS(3, 0.9)
	rd := binenc.NewReader(w.B)
	got.loadState(rd, false)
	if rd.Err() != nil || got.S != 1 || !slices.Equal(got.W, r.W) || !slices.Equal(got.P, r.P) {
		t.Fatalf("loaded %+v (err %v), want %+v", got, rd.Err(), r)
	}
}
