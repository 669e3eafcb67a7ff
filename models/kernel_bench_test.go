package models

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

func gemmGFLOPs(b *testing.B) float64 {
	const n = 512
	r := rand.New(rand.NewPCG(1, 1))
	a := blas64.General{Rows: n, Cols: n, Stride: n, Data: randSlice(r, n*n, 1)}
	bb := blas64.General{Rows: n, Cols: n, Stride: n, Data: randSlice(r, n*n, 1)}
	c := blas64.General{Rows: n, Cols: n, Stride: n, Data: make([]float64, n*n)}
	blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, a, bb, 0, c) // warm up
	reps := 0
	t0 := time.Now()
	for time.Since(t0) < 500*time.Millisecond || reps < 3 {
		blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, a, bb, 0, c)
		reps++
	}
	return 2 * n * n * n * float64(reps) / time.Since(t0).Seconds() / 1e9
}

// BenchmarkLearnStep measures one optimiser step of the default learner
// (window 96, TrainBatch windows): building the views, the forward and
// backward passes of the three objectives, clipping and Adam. It reports
// windows learnt per second and the GFLOP/s of the step's network passes
// (the products they compute, see stepFlops), next to the GFLOP/s a large
// Gemm reaches in the same run with the same BLAS. The names carry the BLAS
// in use (models.BLAS): run it with and without -tags openblas for the two
// side by side.
func BenchmarkTanh(b *testing.B) {
	xs := make([]float64, 1024)
	for i := range xs {
		xs[i] = -4 + 8*float64(i)/float64(len(xs))
	}
	for _, c := range []struct {
		name string
		f    func(float64) float64
	}{{"approx", tanh}, {"math", math.Tanh}} {
		b.Run(c.name, func(b *testing.B) {
			s := 0.0
			for b.Loop() {
				for _, x := range xs {
					s += c.f(x)
				}
			}
			tanhSink = s
		})
	}
}

var tanhSink float64

// BenchmarkEncoderForward compares the encoder's full forward pass with
// the prediction pass that uses the observed flags being ones (window 64,
// hidden 32, dim 32, a block of 128 windows without gaps).
