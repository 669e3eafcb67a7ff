package models

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// fillBuffer fills l's training buffer with random-walk windows, a few
// gaps included.
func fillBuffer(l *SSL, r *rand.Rand) {
	lc := l.lc
	for k := 0; k < l.cfg.TrainBatch; k++ {
		x := 0.0
		z := l.buf.z[k*lc : (k+1)*lc]
		for j := range z {
			x += r.NormFloat64() * 0.3
			z[j] = x
			if r.IntN(20) == 0 {
				z[j] = math.NaN()
			}
		}
		l.buf.r[k] = r.NormFloat64() * 0.2
		l.buf.end[k] = int64(k)
	}
	l.buf.n = l.cfg.TrainBatch
}

// gemmGFLOPs measures a large square blas64.Gemm (n=512) on this machine.
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
func BenchmarkLearnStep(b *testing.B) {
	for _, tb := range []int{64, 128, 256} {
		b.Run("blas="+BLAS+"/batch="+itoa(tb), func(b *testing.B) {
			cfg := DefaultSSLConfig("bench", 96, 1)
			cfg.TrainBatch = tb
			l, err := NewSSL(cfg)
			if err != nil {
				b.Fatal(err)
			}
			r := rand.New(rand.NewPCG(2, 2))
			fillBuffer(l, r)
			l.step() // warm the workspaces
			gemm := gemmGFLOPs(b)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				l.buf.n = tb
				l.step()
			}
			sec := b.Elapsed().Seconds()
			gf := l.stepFlops() * float64(b.N) / sec / 1e9
			b.ReportMetric(float64(tb*b.N)/sec, "windows/s")
			b.ReportMetric(gf, "GFLOP/s")
			b.ReportMetric(gemm, "gemm512-GFLOP/s")
			b.ReportMetric(gf/gemm, "of-gemm")
		})
	}
}

// BenchmarkPredict measures the prediction pass of one block of
// TrainBatch windows (embedding, forecast correction, imputation of every
// column).
func BenchmarkPredict(b *testing.B) {
	b.Run("blas="+BLAS, func(b *testing.B) {
		cfg := DefaultSSLConfig("bench", 96, 1)
		l, err := NewSSL(cfg)
		if err != nil {
			b.Fatal(err)
		}
		TB, D := cfg.TrainBatch, cfg.Dim
		r := rand.New(rand.NewPCG(3, 3))
		z := newMat(D+l.in, TB, randSlice(r, (D+l.in)*TB, 1))
		var enc, fh, ih blockAct
		c := make([]float64, TB)
		d := make([]float64, l.lc*TB)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			l.enc.forward(z.rows(D, l.in), z.rows(0, D), &enc)
			l.fh.forward(z.rows(0, D), newMat(1, TB, c), &fh)
			l.ih.forward(z, newMat(l.lc, TB, d), &ih)
		}
		b.ReportMetric(float64(TB*b.N)/b.Elapsed().Seconds(), "windows/s")
	})
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// BenchmarkTanh compares the activation's tanh with math.Tanh over the
// pre-activations' typical range.
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
func BenchmarkEncoderForward(b *testing.B) {
	const lc, hid, out, n = 63, 32, 32, 128
	in := 2*lc + 1
	r := rand.New(rand.NewPCG(1, 1))
	p, g := randSlice(r, blockParams(in, hid, out), 0.1), make([]float64, blockParams(in, hid, out))
	var bl block
	bl.in, bl.hid, bl.out = in, hid, out
	bl.bind(p, g, 0)
	xs := randSlice(r, in*n, 1)
	x := newMat(in, n, xs)
	for k := lc; k < 2*lc; k++ {
		for j := 0; j < n; j++ {
			x.d[k*n+j] = 1
		}
	}
	y := newMat(out, n, make([]float64, out*n))
	var act blockAct
	b.Run("full", func(b *testing.B) {
		for b.Loop() {
			bl.forward(x, y, &act)
		}
	})
	b.Run("masked", func(b *testing.B) {
		for b.Loop() {
			bl.forwardMasked(x, y, &act, lc)
		}
	})
}
