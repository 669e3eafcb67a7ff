package models

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// guarded returns a rows×cols view into storage with pad NaN columns on
// each side of every row, and the storage; checkGuards reports a write
// outside the view.
func guarded(r *rand.Rand, rows, cols, pad int, scale float64) (matrix, []float64) {
	s := cols + 2*pad
	d := make([]float64, rows*s)
	for i := range d {
		if c := i % s; c < pad || c >= pad+cols {
			d[i] = math.NaN()
		} else if r != nil {
			d[i] = scale * r.NormFloat64()
		}
	}
	return newMat(rows, s, d).cols(pad, cols), d
}

func checkGuards(t *testing.T, name string, d []float64, rows, cols, pad int) {
	t.Helper()
	s := cols + 2*pad
	for i, v := range d[:rows*s] {
		if c := i % s; (c < pad || c >= pad+cols) && !math.IsNaN(v) {
			t.Fatalf("%s: wrote %v outside the view (row %d, column %d)", name, v, i/s, c-pad)
		}
	}
}

// refConv is the reference loop of conv1d.forward.
func refConv(c *conv1d, x matrix, T int) []float64 {
	n := x.c
	y := make([]float64, c.out*n)
	for o := 0; o < c.out; o++ {
		for j := 0; j < n; j++ {
			t := j % T
			s := c.b[o]
			for k := 0; k < c.k; k++ {
				if t-k*c.dil < 0 {
					continue
				}
				for ch := 0; ch < c.in; ch++ {
					s += c.w[o*c.k*c.in+k*c.in+ch] * x.d[ch*x.s+j-k*c.dil]
				}
			}
			y[o*n+j] = s
		}
	}
	return y
}

// TestConvForwardReference checks the im2col convolution against the
// reference loop on strided views with NaN guards, for windows shorter and
// longer than the kernel's reach.
func TestConvForwardReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, k := range []int{1, 2, 3} {
		for _, d := range []int{1, 2, 3, 8} {
			for _, T := range []int{1, 2, 5, 16} {
				const in, out, N, pad = 3, 4, 3, 2
				c := conv1d{in: in, out: out, k: k, dil: d}
				n := conv1dParams(in, out, k)
				c.bind(randSlice(r, n, 0.5), make([]float64, n), 0)
				x, _ := guarded(r, in, N*T, pad, 1)
				y, ys := guarded(nil, out, N*T, pad, 0)
				col := make([]float64, c.scratch(N*T, T))
				c.forward(x, T, y, col)
				name := fmt.Sprintf("k=%d d=%d T=%d", k, d, T)
				checkGuards(t, name, ys, out, N*T, pad)
				want := refConv(&c, x, T)
				for o := 0; o < out; o++ {
					for j := 0; j < N*T; j++ {
						if got := y.d[o*y.s+j]; math.Abs(got-want[o*N*T+j]) > 1e-12 {
							t.Fatalf("%s: y[%d,%d] = %v, want %v", name, o, j, got, want[o*N*T+j])
						}
					}
				}
			}
		}
	}
}

// linLoss is Σ y⊙R: its gradient with respect to y is R.
func linLoss(y matrix, R []float64) float64 {
	var s float64
	for i := 0; i < y.r; i++ {
		for j, v := range y.row(i) {
			s += v * R[i*y.c+j]
		}
	}
	return s
}

// viewGrad lays the gradient g (rows×cols, dense) out as the storage of
// a view at column off of a matrix of stride s.
func viewGrad(g []float64, rows, cols, s, off int) []float64 {
	out := make([]float64, rows*s)
	for i := 0; i < rows; i++ {
		copy(out[i*s+off:], g[i*cols:(i+1)*cols])
	}
	return out[:(rows-1)*s+off+cols]
}

// TestConvGradient checks the convolution's weight, bias and input
// gradients for several dilations and window lengths, including windows
// shorter than the kernel's reach (T ≤ 2·d).
func TestConvGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, d := range []int{1, 2, 4, 8} {
		for _, T := range []int{1, 3, 5, 16} {
			const in, out, k, N = 3, 2, 3, 3
			name := fmt.Sprintf("conv d=%d T=%d", d, T)
			c := conv1d{in: in, out: out, k: k, dil: d}
			np := conv1dParams(in, out, k)
			p, g := randSlice(r, np, 0.5), make([]float64, np)
			c.bind(p, g, 0)
			n := N * T
			xs := randSlice(r, in*(n+2), 1) // a strided view, as the encoder's tiles are
			x := newMat(in, n+2, xs).cols(1, n)
			R := randSlice(r, out*n, 1)
			y := newMat(out, n, make([]float64, out*n))
			col := make([]float64, c.scratch(n, T))
			f := func() float64 { c.forward(x, T, y, col); return linLoss(y, R) }
			f()
			dx := make([]float64, in*n)
			c.backward(x, T, newMat(out, n, R), newMat(in, n, dx), col)
			checkGrad(t, name+" params", p, g, f)
			checkGrad(t, name+" input", xs[:len(viewGrad(dx, in, n, n+2, 1))], viewGrad(dx, in, n, n+2, 1), f)
		}
	}
}

// TestConvCausal: the output at step t of a window depends on no input
// after t and on no other window.
func TestConvCausal(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const in, out, k, d, T, N = 2, 3, 3, 2, 9, 3
	c := conv1d{in: in, out: out, k: k, dil: d}
	np := conv1dParams(in, out, k)
	c.bind(randSlice(r, np, 1), make([]float64, np), 0)
	x := newMat(in, N*T, randSlice(r, in*N*T, 1))
	base := make([]float64, out*N*T)
	col := make([]float64, c.scratch(N*T, T))
	c.forward(x, T, newMat(out, N*T, base), col)
	y := make([]float64, out*N*T)
	for n := 0; n < N; n++ {
		for s := 0; s < T; s++ {
			for ch := 0; ch < in; ch++ {
				old := x.d[ch*x.s+n*T+s]
				x.d[ch*x.s+n*T+s] = old + 10
				c.forward(x, T, newMat(out, N*T, y), col)
				x.d[ch*x.s+n*T+s] = old
				for o := 0; o < out; o++ {
					for j := 0; j < N*T; j++ {
						w, tt := j/T, j%T
						// Only steps s, s+d, s+2d of window n may change.
						may := w == n && tt >= s && (tt-s)%d == 0 && (tt-s)/d < k
						if changed := y[o*N*T+j] != base[o*N*T+j]; changed && !may {
							t.Fatalf("input (window %d, step %d) changed output (window %d, step %d)", n, s, w, tt)
						} else if !changed && may {
							t.Fatalf("input (window %d, step %d) did not reach output (window %d, step %d)", n, s, w, tt)
						}
					}
				}
			}
		}
	}
}

// TestInProjGradient checks the input projection's weight, bias and input
// gradients with some timesteps masked, and that masked outputs are zero.
func TestInProjGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const in, out, n = 3, 4, 10
	for _, masked := range []bool{false, true} {
		l := inProj{in: in, out: out}
		np := inProjParams(in, out)
		p, g := randSlice(r, np, 0.5), make([]float64, np)
		l.bind(p, g, 0)
		var keep []bool
		if masked {
			keep = make([]bool, n)
			drawKeep(r, keep, 0.5)
			keep[0], keep[1] = true, false
		}
		xs := randSlice(r, in*n, 1)
		x := newMat(in, n, xs)
		R := randSlice(r, out*n, 1)
		z := newMat(out, n, make([]float64, out*n))
		f := func() float64 { l.forward(x, keep, z); return linLoss(z, R) }
		f()
		for j := range n {
			for o := 0; o < out; o++ {
				if keep != nil && !keep[j] && z.d[o*n+j] != 0 {
					t.Fatalf("masked column %d: output %v, want 0", j, z.d[o*n+j])
				}
			}
		}
		dz := append([]float64(nil), R...)
		dx := make([]float64, in*n)
		l.backward(x, keep, newMat(out, n, dz), newMat(in, n, dx))
		name := fmt.Sprintf("inproj masked=%v", masked)
		checkGrad(t, name+" params", p, g, f)
		checkGrad(t, name+" input", xs, dx, f)
	}
}

// TestGELUMat checks geluMat against gelu and geluGrad, and its derivative
// against finite differences, on a strided view and in place.
func TestGELUMat(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	const rows, cols = 3, 7
	xs := randSlice(r, rows*(cols+1), 2)
	x := newMat(rows, cols+1, xs).cols(0, cols)
	a := newMat(rows, cols, make([]float64, rows*cols))
	d := newMat(rows, cols, make([]float64, rows*cols))
	geluMat(x, a, d)
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			v := x.d[i*x.s+j]
			if a.d[i*cols+j] != gelu(v) || d.d[i*cols+j] != geluGrad(v) {
				t.Fatalf("geluMat(%v) = %v, %v; want %v, %v", v, a.d[i*cols+j], d.d[i*cols+j], gelu(v), geluGrad(v))
			}
		}
	}
	R := randSlice(r, rows*cols, 1)
	grad := make([]float64, rows*cols)
	for i := range grad {
		grad[i] = R[i] * d.d[i]
	}
	f := func() float64 { geluMat(x, a, matrix{}); return linLoss(a, R) }
	checkGrad(t, "gelu layer", xs[:len(viewGrad(grad, rows, cols, cols+1, 0))], viewGrad(grad, rows, cols, cols+1, 0), f)
	c := newMat(rows, cols, append([]float64(nil), a.d...))
	geluMat(c, c, matrix{}) // in place
	for i, v := range a.d {
		if c.d[i] != gelu(v) {
			t.Fatalf("in place: %v, want %v", c.d[i], gelu(v))
		}
	}
}

// TestResBlockGradient checks a residual block's parameter and input
// gradients with each kind of skip, at several dilations and window
// lengths (some shorter than the block's reach of 4·d steps).
func TestResBlockGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, tc := range []struct {
		in, out int
		proj    bool
	}{{3, 3, false}, {3, 2, true}, {3, 3, true}} {
		for _, d := range []int{1, 2, 4} {
			for _, T := range []int{2, 5, 9} {
				const k, N = 3, 3
				name := fmt.Sprintf("block in=%d out=%d proj=%v d=%d T=%d", tc.in, tc.out, tc.proj, d, T)
				b := newResBlock(tc.in, tc.out, k, d, tc.proj)
				np := resBlockParams(tc.in, tc.out, k, tc.proj)
				p, g := randSlice(r, np, 0.5), make([]float64, np)
				if off := b.bind(p, g, 0); off != np {
					t.Fatalf("%s: bind took %d parameters, want %d", name, off, np)
				}
				n := N * T
				xs := randSlice(r, tc.in*(n+1), 1)
				x := newMat(tc.in, n+1, xs).cols(1, n)
				R := randSlice(r, tc.out*n, 1)
				y := newMat(tc.out, n, make([]float64, tc.out*n))
				h1 := newMat(tc.out, n, make([]float64, tc.out*n))
				var s convScratch
				f := func() float64 { b.forward(x, T, h1, y, &s); return linLoss(y, R) }
				f()
				dx := make([]float64, tc.in*n)
				b.backward(x, h1, T, newMat(tc.out, n, R), newMat(tc.in, n, dx), &s)
				checkGrad(t, name+" params", p, g, f)
				vg := viewGrad(dx, tc.in, n, n+1, 1)
				checkGrad(t, name+" input", xs[:len(vg)], vg, f)
			}
		}
	}
}

// TestMaxPoolTime checks the pooling against a direct evaluation over a
// span, and its gradient against finite differences.
func TestMaxPoolTime(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	const D, N, T = 3, 4, 7
	for _, s := range []span{{T: T, Len: T}, {T: T, Off: 2, Len: 3}, {T: T, Off: 6, Len: 1}} {
		rs := randSlice(r, D*N*T, 1)
		R := newMat(D, N*T, rs)
		emb := newMat(D, N, make([]float64, D*N))
		arg := make([]int32, D*N)
		maxPoolTime(R, s, emb, arg)
		for d := 0; d < D; d++ {
			for n := 0; n < N; n++ {
				want := math.Inf(-1)
				for tt := s.Off; tt < s.Off+s.Len; tt++ {
					want = math.Max(want, rs[d*N*T+n*T+tt])
				}
				if emb.d[d*N+n] != want || rs[d*N*T+int(arg[d*N+n])] != want {
					t.Fatalf("span %+v: pooled %v at %d, want %v", s, emb.d[d*N+n], arg[d*N+n], want)
				}
			}
		}
		Q := randSlice(r, D*N, 1)
		grad := make([]float64, D*N*T)
		maxPoolTimeBackward(newMat(D, N, Q), arg, newMat(D, N*T, grad))
		checkGrad(t, fmt.Sprintf("maxpool %+v", s), rs, grad, func() float64 {
			maxPoolTime(R, s, emb, nil)
			return linLoss(emb, Q)
		})
	}
}
