package models

import (
	"math"
	"math/rand/v2"
	"testing"
)

// checkGrad compares the analytic gradient grad of f at x with central
// finite differences, for every coordinate.
func checkGrad(t *testing.T, name string, x, grad []float64, f func() float64) {
	t.Helper()
	const h = 1e-6
	worst := 0.0
	for i := range x {
		old := x[i]
		x[i] = old + h
		fp := f()
		x[i] = old - h
		fm := f()
		x[i] = old
		num := (fp - fm) / (2 * h)
		err := math.Abs(num-grad[i]) / math.Max(1e-3, math.Abs(num)+math.Abs(grad[i]))
		worst = math.Max(worst, err)
		if err > 1e-5 {
			t.Errorf("%s: d/dx[%d] analytic %.9g, numeric %.9g", name, i, grad[i], num)
			return
		}
	}
	t.Logf("%s: %d coordinates, worst relative error %.2g", name, len(x), worst)
}

func randSlice(r *rand.Rand, n int, scale float64) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = scale * r.NormFloat64()
	}
	return s
}

func TestGELUGradient(t *testing.T) {
	for _, x := range []float64{-4, -1.3, -0.2, 0, 0.4, 1.7, 5} {
		v := []float64{x}
		checkGrad(t, "gelu", v, []float64{geluGrad(x)}, func() float64 { return gelu(v[0]) })
	}
}

func TestHuberGradient(t *testing.T) {
	for _, e := range []float64{-3, -0.7, -0.01, 0.3, 0.99, 2.5} {
		v := []float64{e}
		checkGrad(t, "huber", v, []float64{huberGrad(e, 1)}, func() float64 { return huber(v[0], 1) })
	}
}

// TestBlockGradient checks the weight and input gradients of a block under
// the loss Σ y⊙R for a fixed random R.
func TestBlockGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const in, hid, out, rows = 5, 7, 3, 4
	n := blockParams(in, hid, out)
	p, g := randSlice(r, n, 0.5), make([]float64, n)
	var b block
	b.in, b.hid, b.out = in, hid, out
	b.bind(p, g, 0)
	x := randSlice(r, rows*in, 1)
	R := randSlice(r, rows*out, 1)
	var act blockAct
	loss := func() float64 {
		y := b.forward(x, rows, &act)
		var s float64
		for i := range y {
			s += y[i] * R[i]
		}
		return s
	}
	loss()
	dx := make([]float64, rows*in)
	b.backward(&act, R, dx)
	checkGrad(t, "block weights", p, g, loss)
	checkGrad(t, "block input", x, dx, loss)
}

func TestInfoNCEGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const n, dim, tau, weight = 5, 6, 0.3, 0.7
	e := randSlice(r, 2*n*dim, 1)
	var c infoNCE
	grad := make([]float64, len(e))
	c.loss(e, n, dim, tau, weight, grad)
	checkGrad(t, "infonce", e, grad, func() float64 { return weight * c.loss(e, n, dim, tau, weight, nil) })
}

// TestInfoNCEValue checks the loss against a direct evaluation of the
// formula for two windows.
func TestInfoNCEValue(t *testing.T) {
	e := []float64{1, 0, 0, 1, 1, 0.1, 0.2, 1}
	var c infoNCE
	got := c.loss(e, 2, 2, 0.5, 1, nil)
	u := make([][]float64, 4)
	for i := range u {
		x, y := e[2*i], e[2*i+1]
		nr := math.Hypot(x, y)
		u[i] = []float64{x / nr, y / nr}
	}
	var want float64
	for i := 0; i < 4; i++ {
		p := (i + 2) % 4
		var z float64
		for k := 0; k < 4; k++ {
			if k != i {
				z += math.Exp((u[i][0]*u[k][0] + u[i][1]*u[k][1]) / 0.5)
			}
		}
		want += -((u[i][0]*u[p][0]+u[i][1]*u[p][1])/0.5 - math.Log(z))
	}
	want /= 4
	if math.Abs(got-want) > 1e-12 {
		t.Fatalf("infonce = %v, want %v", got, want)
	}
}

// smallSSL is a learner small enough for finite differences over all its
// weights, with a full buffer of synthetic windows (gaps included).
func smallSSL(t *testing.T) *SSL {
	t.Helper()
	cfg := DefaultSSLConfig("small", 9, 1)
	cfg.Dim, cfg.Hidden, cfg.TrainBatch, cfg.MaxSeries, cfg.ARLags = 4, 8, 4, 4, 3
	cfg.HuberDelta = 0.5 // some errors land past it: both branches are checked
	l, err := NewSSL(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	// Heads start at zero output; move them off it so every path carries
	// gradient.
	for i := range l.params {
		l.params[i] += 0.3 * r.NormFloat64()
	}
	lc := l.lc
	for k := 0; k < cfg.TrainBatch; k++ {
		for j := 0; j < lc; j++ {
			l.buf.z[k*lc+j] = math.Sin(float64(j)/2+float64(k)) + 0.1*r.NormFloat64()
		}
		l.buf.z[k*lc+(k+2)%lc] = math.NaN()
		l.buf.r[k] = r.NormFloat64()
		l.buf.end[k] = int64(k)
	}
	l.buf.r[1] = math.NaN() // a window without a target
	l.buf.n = cfg.TrainBatch
	return l
}

// TestSSLLossGradient checks the gradient of the weighted sum of the three
// objectives with respect to every weight of the network.
func TestSSLLossGradient(t *testing.T) {
	l := smallSSL(t)
	l.views()
	ls := l.lossAndGrad(true)
	for _, v := range []float64{ls.forecast, ls.impute, ls.contrast} {
		if math.IsNaN(v) || v <= 0 {
			t.Fatalf("losses %+v: each objective should have a positive value", ls)
		}
	}
	grad := append([]float64(nil), l.grads...)
	checkGrad(t, "ssl total loss", l.params, grad, func() float64 { return l.lossAndGrad(false).total })
}

// TestSSLObjectiveGradients checks each objective on its own (the other two
// weighted zero), so a wrong gradient in one head cannot hide behind the
// others.
func TestSSLObjectiveGradients(t *testing.T) {
	for _, tc := range []struct {
		name    string
		f, i, c float64
	}{{"forecast", 1, 0, 0}, {"impute", 0, 1, 0}, {"contrast", 0, 0, 1}} {
		l := smallSSL(t)
		l.cfg.WeightForecast, l.cfg.WeightImpute, l.cfg.WeightContrast = tc.f, tc.i, tc.c
		l.views()
		l.lossAndGrad(true)
		grad := append([]float64(nil), l.grads...)
		nz := 0
		for _, g := range grad {
			if g != 0 {
				nz++
			}
		}
		if nz == 0 {
			t.Fatalf("%s: gradient is all zero", tc.name)
		}
		checkGrad(t, tc.name, l.params, grad, func() float64 { return l.lossAndGrad(false).total })
	}
}
