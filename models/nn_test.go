package models

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/floats"
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
// the loss Σ y⊙R for a fixed random R, with the input a strided view (as
// the heads' inputs are) and the input gradient taken in full and for the
// first features only.
func TestBlockGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const in, hid, out, cols = 5, 7, 3, 4
	n := blockParams(in, hid, out)
	p, g := randSlice(r, n, 0.5), make([]float64, n)
	var b block
	b.in, b.hid, b.out = in, hid, out
	b.bind(p, g, 0)
	xs := randSlice(r, in*(cols+2), 1)
	x := newMat(in, cols+2, xs).cols(1, cols)
	R := randSlice(r, out*cols, 1)
	y := make([]float64, out*cols)
	var act blockAct
	loss := func() float64 {
		b.forward(x, newMat(out, cols, y), &act)
		var s float64
		for i := range y {
			s += y[i] * R[i]
		}
		return s
	}
	for _, nx := range []int{in, 2} {
		clear(g)
		loss()
		dx := make([]float64, nx*cols)
		b.backward(&act, newMat(out, cols, R), newMat(nx, cols, dx))
		checkGrad(t, "block weights", p, g, loss)
		// dx in the layout of x's first nx rows (stride cols+2).
		dxs := make([]float64, len(xs))
		for i := 0; i < nx; i++ {
			copy(dxs[i*(cols+2)+1:], dx[i*cols:(i+1)*cols])
		}
		// Rows 0..nx-1 of x's storage, the padding columns included
		// (their gradient is zero).
		checkGrad(t, "block input", xs[:nx*(cols+2)], dxs[:nx*(cols+2)], loss)
	}
}

// TestGemmForms checks the four forms of gemm (either operand transposed,
// strided views, beta 0 over NaN and beta 1) against a direct evaluation.
func TestGemmForms(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	const m, n, k = 5, 7, 6
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			for _, beta := range []float64{0, 1} {
				ar, ac := m, k
				if ta {
					ar, ac = k, m
				}
				br, bc := k, n
				if tb {
					br, bc = n, k
				}
				a := newMat(ar, ac+3, randSlice(r, ar*(ac+3), 1)).cols(2, ac)
				b := newMat(br, bc+1, randSlice(r, br*(bc+1), 1)).cols(1, bc)
				cd := randSlice(r, m*(n+2), 1)
				if beta == 0 {
					for i := range cd {
						cd[i] = math.NaN()
					}
				}
				c := newMat(m, n+2, cd).cols(0, n)
				want := make([]float64, m*n)
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						var s float64
						for l := 0; l < k; l++ {
							av, bv := a.d[i*a.s+l], b.d[l*b.s+j]
							if ta {
								av = a.d[l*a.s+i]
							}
							if tb {
								bv = b.d[j*b.s+l]
							}
							s += av * bv
						}
						want[i*n+j] = 0.5 * s
						if beta != 0 {
							want[i*n+j] += beta * c.d[i*c.s+j]
						}
					}
				}
				pad := c.d[n] // a column outside the view
				gemm(ta, tb, 0.5, a, b, beta, c)
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						if got := c.d[i*c.s+j]; math.Abs(got-want[i*n+j]) > 1e-12 {
							t.Fatalf("ta=%v tb=%v beta=%v: c[%d,%d] = %v, want %v", ta, tb, beta, i, j, got, want[i*n+j])
						}
					}
				}
				if !(math.IsNaN(pad) && math.IsNaN(c.d[n])) && c.d[n] != pad {
					t.Fatalf("ta=%v tb=%v beta=%v: wrote outside the view", ta, tb, beta)
				}
			}
		}
	}
}

// TestInfoNCEGradient checks the contrastive gradient at a usual
// temperature (one shift for all rows) and at one small enough for the
// per-row shift.
func TestInfoNCEGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const n, dim, weight = 5, 6, 0.7
	for _, tau := range []float64{0.3, 0.002} {
		// A strided view, as the learner passes the views' embeddings.
		es := randSlice(r, dim*(3*n), 1)
		e := newMat(dim, 3*n, es).cols(n, 2*n)
		var c infoNCE
		grad := make([]float64, 2*n*dim)
		c.loss(e, tau, weight, newMat(dim, 2*n, grad))
		// The gradient in e's layout.
		gs := make([]float64, len(es))
		for i := 0; i < dim; i++ {
			copy(gs[i*3*n+n:], grad[i*2*n:(i+1)*2*n])
		}
		checkGrad(t, fmt.Sprintf("infonce tau=%g", tau), es, gs, func() float64 { return weight * c.loss(e, tau, weight, matrix{}) })
	}
}

// TestInfoNCESameSeries: anchors of distinct windows of one series are
// left out of each other's negatives, with each shift: the loss is the
// formula's over the remaining negatives, and the gradient checks out.
func TestInfoNCESameSeries(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	const n, dim, weight = 5, 4, 0.8
	series := []uint64{3, 3, 5, 3, 0}
	for _, tau := range []float64{0.4, 0.002} {
		es := randSlice(r, dim*2*n, 1)
		e := newMat(dim, 2*n, es)
		var c infoNCE
		c.same = sameSeriesPairs(series, nil)
		got := c.loss(e, tau, weight, matrix{})
		m := 2 * n
		u := make([][]float64, m)
		for j := range u {
			u[j] = make([]float64, dim)
			var nr float64
			for d := 0; d < dim; d++ {
				u[j][d] = es[d*m+j]
				nr += u[j][d] * u[j][d]
			}
			floats.Scale(1/math.Sqrt(nr), u[j])
		}
		var want float64
		for i := 0; i < m; i++ {
			var z float64
			for k := 0; k < m; k++ {
				a, b := i%n, k%n
				if k == i || (a != b && series[a] != 0 && series[a] == series[b]) {
					continue
				}
				z += math.Exp(floats.Dot(u[i], u[k]) / tau)
			}
			want -= floats.Dot(u[i], u[(i+n)%m])/tau - math.Log(z)
		}
		want /= float64(m)
		if math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
			t.Fatalf("tau %v: loss %v, want %v", tau, got, want)
		}
		grad := make([]float64, len(es))
		c.loss(e, tau, weight, newMat(dim, m, grad))
		checkGrad(t, fmt.Sprintf("infonce same-series tau=%g", tau), es, grad, func() float64 { return weight * c.loss(e, tau, weight, matrix{}) })
	}
}

// TestInfoNCEShifts checks that the shared shift and the per-row shift give
// the same loss and gradient where both apply.
func TestInfoNCEShifts(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 7))
	const n, dim, tau = 16, 8, 0.2
	var c infoNCE
	c.loss(newMat(dim, 2*n, randSlice(r, dim*2*n, 1)), tau, 1, matrix{}) // fills c.s
	m := 2 * n
	S := newMat(m, m, c.s)
	for i := 0; i < m; i++ { // loss fills the upper triangle, all that symmetric reads
		for k := 0; k < i; k++ {
			S.d[i*m+k] = S.d[k*m+i]
		}
	}
	c.ds = grow(c.ds, m*m)
	c.z = grow(c.z, m)
	a := c.symmetric(S, n, tau, true)
	ga := append([]float64(nil), c.ds...)
	b := c.perRow(S, n, true)
	if math.Abs(a-b) > 1e-12*math.Abs(b) {
		t.Fatalf("loss %v with one shift, %v with a shift per row", a, b)
	}
	for i, v := range c.ds {
		if math.Abs(v-ga[i]) > 1e-15 {
			t.Fatalf("gradient[%d] %v with one shift, %v with a shift per row", i, ga[i], v)
		}
	}
}

// TestInfoNCEValue checks the loss against a direct evaluation of the
// formula for two windows, with each shift.
func TestInfoNCEValue(t *testing.T) {
	e := []float64{1, 0, 0, 1, 1, 0.1, 0.2, 1} // 4 embeddings of 2, one per pair
	et := make([]float64, 8)                   // feature-major
	for i := 0; i < 4; i++ {
		et[i], et[4+i] = e[2*i], e[2*i+1]
	}
	for _, tau := range []float64{0.5, 0.002} {
		var c infoNCE
		got := c.loss(newMat(2, 4, et), tau, 1, matrix{})
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
					z += math.Exp((u[i][0]*u[k][0] + u[i][1]*u[k][1]) / tau)
				}
			}
			want += -((u[i][0]*u[p][0]+u[i][1]*u[p][1])/tau - math.Log(z))
		}
		want /= 4
		if math.Abs(got-want) > 1e-12*math.Max(1, math.Abs(want)) {
			t.Fatalf("tau %v: infonce = %v, want %v", tau, got, want)
		}
	}
}

// smallSSL is a learner small enough for finite differences over all its
// weights, with a full buffer of synthetic windows (gaps included).
func TestTanh(t *testing.T) {
	worst, prev := 0.0, -2.0
	for x := -20.0; x <= 20; x += 1.0 / 4096 {
		got := tanh(x)
		if e := math.Abs(got - math.Tanh(x)); e > worst {
			worst = e
		}
		if got < prev || got < -1 || got > 1 || got != -tanh(-x) {
			t.Fatalf("tanh(%v) = %v: not odd, monotone and in [-1, 1] (previous %v)", x, got, prev)
		}
		prev = got
	}
	if worst > 3e-7 {
		t.Fatalf("tanh: largest absolute error %g, want at most 3e-7", worst)
	}
	t.Logf("largest absolute error %g", worst)
}

// TestForwardMasked: the encoder's prediction pass, which exploits the
// observed flags being mostly ones, agrees with the full product, gaps or
// none, on a strided view of a block.
