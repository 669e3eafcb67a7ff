package models

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/floats"

	"github.com/tsrep/tsrep/internal/blasimpl"
)

// This file holds the SSL learner's layers. Every layer works on a whole
// block of windows stored feature-major: a features×windows row-major
// matrix, one column per window, so that every matrix product's inner loop
// runs along the windows (TrainBatch to 3·TrainBatch long) rather than
// along a layer's width (as short as Dim). The matrix products go through
// BLAS (gonum's native kernels, or OpenBLAS with -tags openblas); only the
// elementwise work (activations, losses, bias sums) is Go loops.
//
// Determinism across Arrow batch boundaries rests on two rules. Every
// product has a shape fixed by the configuration: predictions run on blocks
// of exactly TrainBatch columns (see SSL.predict), training steps on
// TrainBatch windows. And a window's column in its block is fixed by the
// window stream alone (its slot in the training buffer). A BLAS that picks
// kernels by shape (OpenBLAS) then computes each output with the same
// sequence of operations whatever the batching.

// matrix is a row-major r×c matrix view with row stride s (s ≥ c).
type matrix struct {
	r, c, s int
	d       []float64
}

// newMat views d (at least r·c long) as a dense r×c matrix.
func newMat(r, c int, d []float64) matrix { return matrix{r: r, c: c, s: c, d: d[:r*c]} }

// row returns row i.
func (m matrix) row(i int) []float64 { return m.d[i*m.s : i*m.s+m.c] }

// rows returns the n rows from row i.
func (m matrix) rows(i, n int) matrix {
	if n == 0 {
		return matrix{c: m.c, s: m.s}
	}
	return matrix{r: n, c: m.c, s: m.s, d: m.d[i*m.s : (i+n-1)*m.s+m.c]}
}

// cols returns the n columns from column j.
func (m matrix) cols(j, n int) matrix {
	if m.r == 0 || n == 0 {
		return matrix{r: m.r, c: n, s: m.s}
	}
	return matrix{r: m.r, c: n, s: m.s, d: m.d[j : (m.r-1)*m.s+j+n]}
}

func (m matrix) general() blas64.General {
	return blas64.General{Rows: m.r, Cols: m.c, Stride: m.s, Data: m.d}
}

// perRowGemv says whether gemm issues a product as one Gemv per output row.
// gonum's native Dgemm runs these small products as one Axpy or Dot call
// per pair of rows, over 64-wide tiles and on goroutines above a size
// threshold, while its Gemv kernels work on four rows of the matrix per
// pass. With the block layout the Gemv calls run along the windows; on the
// learner's shapes they reach 16-17 GFLOP/s on one core where Dgemm reaches
// 10-13 on two (a learner per Kafka partition already keeps the cores busy,
// so the learner does not spread its products over goroutines). An
// optimised BLAS (OpenBLAS) gets the whole product in one Dgemm call.
const perRowGemv = blasimpl.Name == "gonum"

// gemm computes c = alpha·op(a)·op(b) + beta·c, where op(a) is c.r×k and
// op(b) is k×c.c; a transposed operand is given as stored (k×c.r, c.c×k).
func gemm(ta, tb bool, alpha float64, a, b matrix, beta float64, c matrix) {
	m, n := c.r, c.c
	k := a.c
	if ta {
		k = a.r
	}
	if (ta && a.c != m) || (!ta && a.r != m) || (tb && (b.r != n || b.c != k)) || (!tb && (b.r != k || b.c != n)) {
		panic("ssl: gemm shape mismatch")
	}
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		for i := 0; i < m; i++ {
			if beta == 0 {
				clear(c.row(i))
			} else {
				floats.Scale(beta, c.row(i))
			}
		}
		return
	}
	if !perRowGemv {
		tA, tB := blas.NoTrans, blas.NoTrans
		if ta {
			tA = blas.Trans
		}
		if tb {
			tB = blas.Trans
		}
		blas64.Gemm(tA, tB, alpha, a.general(), b.general(), beta, c.general())
		return
	}
	// Row i of c is alpha·op(b)ᵀ·x + beta·c_i, where x is row i of op(a):
	// a row of a, or a column of a when it is transposed. With op(b) = b
	// that is Gemv with b transposed (for each of b's rows in turn, an
	// update of the whole output row); with op(b) = bᵀ, Gemv with b as it
	// is (a dot product of each of b's rows with x).
	tB := blas.Trans
	if tb {
		tB = blas.NoTrans
	}
	B := b.general()
	for i := 0; i < m; i++ {
		var x blas64.Vector
		if ta {
			x = blas64.Vector{N: k, Inc: a.s, Data: a.d[i:]}
		} else {
			x = blas64.Vector{N: k, Inc: 1, Data: a.row(i)}
		}
		// With beta 0, gonum's Gemv kernels (both transposes, assembly
		// and pure Go) clear y rather than scale it: what y held, NaN
		// included, does not matter.
		blas64.Gemv(tB, alpha, B, x, beta, blas64.Vector{N: n, Inc: 1, Data: c.row(i)})
	}
}

// grow returns s with length n, reusing its storage when it is big enough.
func grow(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

// GELU, tanh form: gelu(x) = x/2·(1 + tanh(√(2/π)(x + 0.044715x³))).
const geluC = 0.7978845608028654 // √(2/π)

// geluT returns gelu(x) and the tanh it computed, which geluGradT reuses.
func geluT(x float64) (g, t float64) {
	t = tanh(geluC * (x + 0.044715*x*x*x))
	return 0.5 * x * (1 + t), t
}

// tanh is a rational approximation of math.Tanh: x·p(x²)/q(x²) on x
// clamped to ±tanhClamp, with the minimax coefficients of Eigen's
// generic_fast_tanh_float (absolute error below 3e-7 over the reals, see
// TestTanh). The activations run it tens of millions of times a second;
// math.Tanh goes through math.Exp and costs three to four times as much,
// and the network gains nothing from the last nine digits.
func tanh(x float64) float64 {
	if x > tanhClamp {
		x = tanhClamp
	} else if x < -tanhClamp {
		x = -tanhClamp
	}
	x2 := x * x
	return tanhP(x2) * x / tanhQ(x2)
}

// tanhDeriv is the derivative of tanh (the approximation) at x.
func tanhDeriv(x float64) float64 {
	if x > tanhClamp || x < -tanhClamp {
		return 0
	}
	// tanh = x·P(x²)/Q(x²): d/dx = ((P + 2x²P')·Q − 2x²·P·Q') / Q².
	x2 := x * x
	P, Q := tanhP(x2), tanhQ(x2)
	dP := (((((6*-2.76076847742355e-16*x2+5*2.00018790482477e-13)*x2-4*8.60467152213735e-11)*x2+
		3*5.12229709037114e-08)*x2+2*1.48572235717979e-05)*x2 + 6.37261928875436e-04)
	dQ := (3*1.19825839466702e-06*x2+2*1.18534705686654e-04)*x2 + 2.26843463243900e-03
	return ((P+2*x2*dP)*Q - 2*x2*P*dQ) / (Q * Q)
}

func tanhP(x2 float64) float64 {
	return (((((-2.76076847742355e-16*x2+2.00018790482477e-13)*x2-8.60467152213735e-11)*x2+
		5.12229709037114e-08)*x2+1.48572235717979e-05)*x2+6.37261928875436e-04)*x2 + 4.89352455891786e-03
}

func tanhQ(x2 float64) float64 {
	return ((1.19825839466702e-06*x2+1.18534705686654e-04)*x2+2.26843463243900e-03)*x2 + 4.89352518554385e-03
}

// tanhClamp is where the approximation reaches ±1 (in float32).
const tanhClamp = 7.90531110763549805

func gelu(x float64) float64 {
	g, _ := geluT(x)
	return g
}

// geluGradT is the derivative of gelu at x, given t from geluT(x): that of
// the function computed, tanh's approximation included, so that gradients
// agree with finite differences of the loss.
func geluGradT(x, t float64) float64 {
	du := geluC * (1 + 3*0.044715*x*x)
	return 0.5*(1+t) + 0.5*x*tanhDeriv(geluC*(x+0.044715*x*x*x))*du
}

func geluGrad(x float64) float64 {
	_, t := geluT(x)
	return geluGradT(x, t)
}

// block is a dense layer with a linear skip beside a one-hidden-layer
// nonlinear path, applied to each column x of a block:
//
//	y = Ws·x + W2·gelu(W1·x + b1) + b2
//
// Ws and W1 are stored one above the other as one (out+hid)×in matrix
// W = [Ws; W1], so the skip and the hidden layer are one product.
type block struct {
	in, hid, out      int
	w, b1, w2, b2     []float64 // views into the learner's parameter slab; w2 is out×hid
	gw, gb1, gw2, gb2 []float64 // views into the gradient slab
}

// blockParams is the number of parameters of a block.
func blockParams(in, hid, out int) int { return (out+hid)*in + hid + out*hid + out }

// bind points the block's weights and gradients at p and g, from offset
// off, and returns the offset past them.
func (b *block) bind(p, g []float64, off int) int {
	take := func(n int) ([]float64, []float64) {
		s, t := p[off:off+n:off+n], g[off:off+n:off+n]
		off += n
		return s, t
	}
	b.w, b.gw = take((b.out + b.hid) * b.in)
	b.b1, b.gb1 = take(b.hid)
	b.w2, b.gw2 = take(b.out * b.hid)
	b.b2, b.gb2 = take(b.out)
	return off
}

func (b *block) W() matrix  { return newMat(b.out+b.hid, b.in, b.w) }
func (b *block) GW() matrix { return newMat(b.out+b.hid, b.in, b.gw) }

// blockAct holds what a forward pass keeps for the backward pass.
type blockAct struct {
	n  int       // columns (windows)
	x  matrix    // the input, in×n (aliased, not copied)
	p  []float64 // (out+hid)×n: W·x, then the hidden rows get b1
	a  []float64 // hid×n: gelu of the hidden pre-activation
	t  []float64 // hid×n: the tanh inside each gelu
	dp []float64 // (out+hid)×n: gradient workspace
}

// forward computes the outputs for the columns of x (in×n) into y (out×n).
func (b *block) forward(x, y matrix, act *blockAct) {
	P := b.start(x, y, act)
	gemm(false, false, 1, b.W(), x, 0, P)
	b.finish(P, y, act)
}

// forwardMasked is forward for an input laid out as the encoder's is (see
// fillInput): lc values, then lc observed flags (1 or 0), then one level.
// The flags are mostly ones, so W·x is computed as W_values·values +
// W_level·level + the row sums of W_flags, less W_flags' column k for each
// column whose slot k is a gap: half the multiply-adds of the full product
// for the windows' predictions. (Training keeps the full product: its
// views hide up to half of each window.)
func (b *block) forwardMasked(x, y matrix, act *blockAct, lc int) {
	if b.in != 2*lc+1 {
		panic("ssl: forwardMasked on a block that is not the encoder")
	}
	P := b.start(x, y, act)
	W := b.W()
	gemm(false, false, 1, W.cols(0, lc), x.rows(0, lc), 0, P)
	level := x.row(2 * lc)
	for i := 0; i < P.r; i++ {
		wi, pi := W.row(i), P.row(i)
		floats.AddScaled(pi, wi[2*lc], level)
		floats.AddConst(floats.Sum(wi[lc:2*lc]), pi)
	}
	for k := 0; k < lc; k++ {
		for j, m := range x.row(lc + k) {
			if m != 1 {
				for i := 0; i < P.r; i++ {
					P.d[i*P.s+j] -= (1 - m) * W.d[i*W.s+lc+k]
				}
			}
		}
	}
	b.finish(P, y, act)
}

// start checks the shapes and sizes act for the columns of x; it returns
// the (out+hid)×n matrix the caller fills with W·x.
func (b *block) start(x, y matrix, act *blockAct) matrix {
	n, w := x.c, b.out+b.hid
	if x.r != b.in || y.r != b.out || y.c != n {
		panic("ssl: block shape mismatch")
	}
	act.n, act.x = n, x
	act.p = grow(act.p, w*n)
	act.a = grow(act.a, b.hid*n)
	act.t = grow(act.t, b.hid*n)
	return newMat(w, n, act.p)
}

// finish completes a forward pass from P = W·x: the hidden layer's bias
// and GELU, then y = Ws·x + W2·gelu(·) + b2.
func (b *block) finish(P, y matrix, act *blockAct) {
	n := P.c
	for h := 0; h < b.hid; h++ {
		pre := P.row(b.out + h)
		floats.AddConst(b.b1[h], pre)
		a, t := act.a[h*n:(h+1)*n], act.t[h*n:(h+1)*n]
		for j, v := range pre {
			a[j], t[j] = geluT(v)
		}
	}
	for o := 0; o < b.out; o++ {
		yo := y.row(o)
		copy(yo, P.row(o))
		floats.AddConst(b.b2[o], yo)
	}
	gemm(false, false, 1, newMat(b.out, b.hid, b.w2), newMat(b.hid, n, act.a), 1, y)
}

// backward adds the parameter gradients for the output gradient dy
// (out×n) and, if dx has rows, writes the gradient of the input's first
// dx.r features into it (dx.r×n): a caller that needs only part of the
// input's gradient does not pay for the rest.
func (b *block) backward(act *blockAct, dy, dx matrix) {
	n, w := act.n, b.out+b.hid
	act.dp = grow(act.dp, w*n)
	dP := newMat(w, n, act.dp)
	A := newMat(b.hid, n, act.a)
	// y = Ws·x + W2·a + b2
	gemm(false, true, 1, dy, A, 1, newMat(b.out, b.hid, b.gw2))
	for o := 0; o < b.out; o++ {
		dyo := dy.row(o)
		b.gb2[o] += floats.Sum(dyo)
		copy(dP.row(o), dyo)
	}
	dA := dP.rows(b.out, b.hid)
	gemm(true, false, 1, newMat(b.out, b.hid, b.w2), dy, 0, dA)
	for h := 0; h < b.hid; h++ {
		dh := dA.row(h)
		pre := act.p[(b.out+h)*n : (b.out+h+1)*n]
		t := act.t[h*n : (h+1)*n]
		for j, v := range pre {
			dh[j] *= geluGradT(v, t[j])
		}
		b.gb1[h] += floats.Sum(dh)
	}
	gemm(false, true, 1, dP, act.x, 1, b.GW())
	if dx.r > 0 {
		gemm(true, false, 1, b.W().cols(0, dx.r), dP, 0, dx)
	}
}

// flops is the number of floating-point operations of a forward pass over
// n columns (two per multiply-add).
func (b *block) flops(n int) float64 {
	return 2 * float64(n) * float64(b.in*(b.out+b.hid)+b.hid*b.out)
}

// backwardFlops is that of a backward pass computing the gradient of the
// input's first nx features.
func (b *block) backwardFlops(n, nx int) float64 {
	return 2 * float64(n) * float64(b.in*(b.out+b.hid)+2*b.hid*b.out+nx*(b.out+b.hid))
}
