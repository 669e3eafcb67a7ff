package models

import (
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/floats"
)

// This file holds the SSL learner's layers. Every layer works on a whole
// batch: a rows×cols row-major matrix in one slice. The matrix products go
// through gonum's BLAS; only the elementwise activations are Go loops.
//
// Forward products are always A·B with neither operand transposed: gonum
// computes each output element of that product with the same sequence of
// additions whatever the number of rows, so a window's prediction does not
// depend on how many other windows shared its matrix. That is what keeps the
// learner deterministic across Arrow batch boundaries.

// gemm computes c = alpha·op(a)·op(b) + beta·c for row-major matrices, where
// op(a) is m×k and op(b) is k×n.
func gemm(ta, tb bool, m, n, k int, alpha float64, a []float64, b []float64, beta float64, c []float64) {
	if m == 0 || n == 0 {
		return
	}
	A := blas64.General{Rows: m, Cols: k, Stride: k, Data: a}
	tA := blas.NoTrans
	if ta {
		A = blas64.General{Rows: k, Cols: m, Stride: m, Data: a}
		tA = blas.Trans
	}
	B := blas64.General{Rows: k, Cols: n, Stride: n, Data: b}
	tB := blas.NoTrans
	if tb {
		B = blas64.General{Rows: n, Cols: k, Stride: k, Data: b}
		tB = blas.Trans
	}
	if k == 0 {
		if beta != 1 {
			blas64.Scal(beta, blas64.Vector{N: m * n, Data: c, Inc: 1})
		}
		return
	}
	blas64.Gemm(tA, tB, alpha, A, B, beta, blas64.General{Rows: m, Cols: n, Stride: n, Data: c})
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

func gelu(x float64) float64 {
	return 0.5 * x * (1 + math.Tanh(geluC*(x+0.044715*x*x*x)))
}

func geluGrad(x float64) float64 {
	u := geluC * (x + 0.044715*x*x*x)
	t := math.Tanh(u)
	du := geluC * (1 + 3*0.044715*x*x)
	return 0.5*(1+t) + 0.5*x*(1-t*t)*du
}

// block is a dense layer with a linear skip beside a one-hidden-layer
// nonlinear path:
//
//	y = x·Ws + gelu(x·W1 + b1)·W2 + b2
//
// Ws and W1 are stored side by side as one in×(out+hid) matrix W = [Ws|W1],
// so the skip and the hidden layer are one product.
type block struct {
	in, hid, out      int
	w, b1, w2, b2     []float64 // views into the learner's parameter slab
	gw, gb1, gw2, gb2 []float64 // views into the gradient slab
}

// blockSize is the number of parameters of a block.
func blockParams(in, hid, out int) int { return in*(out+hid) + hid + hid*out + out }

// bind points the block's weights and gradients at p and g, from offset
// off, and returns the offset past them.
func (b *block) bind(p, g []float64, off int) int {
	take := func(n int) ([]float64, []float64) {
		s, t := p[off:off+n:off+n], g[off:off+n:off+n]
		off += n
		return s, t
	}
	b.w, b.gw = take(b.in * (b.out + b.hid))
	b.b1, b.gb1 = take(b.hid)
	b.w2, b.gw2 = take(b.hid * b.out)
	b.b2, b.gb2 = take(b.out)
	return off
}

// blockAct holds what a forward pass keeps for the backward pass.
type blockAct struct {
	rows int
	x    []float64 // the input (aliased, not copied)
	p    []float64 // rows×(out+hid): x·W, then the hidden part gets b1
	a    []float64 // rows×hid: gelu of the hidden pre-activation
	y    []float64 // rows×out
	dp   []float64 // rows×(out+hid): gradient workspace
	da   []float64 // rows×hid
}

// forward computes y for rows inputs x (rows×in) into act.y.
func (b *block) forward(x []float64, rows int, act *blockAct) []float64 {
	if len(x) < rows*b.in {
		panic("ssl: block input too short")
	}
	w := b.out + b.hid
	act.rows, act.x = rows, x[:rows*b.in]
	act.p = grow(act.p, rows*w)
	act.a = grow(act.a, rows*b.hid)
	act.y = grow(act.y, rows*b.out)
	gemm(false, false, rows, w, b.in, 1, act.x, b.w, 0, act.p)
	for r := 0; r < rows; r++ {
		pre := act.p[r*w+b.out : (r+1)*w]
		floats.Add(pre, b.b1)
		a := act.a[r*b.hid : (r+1)*b.hid]
		for j, v := range pre {
			a[j] = gelu(v)
		}
		y := act.y[r*b.out : (r+1)*b.out]
		copy(y, act.p[r*w:r*w+b.out])
		floats.Add(y, b.b2)
	}
	gemm(false, false, rows, b.out, b.hid, 1, act.a, b.w2, 1, act.y)
	return act.y
}

// backward adds the parameter gradients for output gradient dy (rows×out)
// and, if dx is not nil, writes the input gradient into it (rows×in).
func (b *block) backward(act *blockAct, dy, dx []float64) {
	rows, w := act.rows, b.out+b.hid
	act.dp = grow(act.dp, rows*w)
	act.da = grow(act.da, rows*b.hid)
	// y = p[:, :out] + a·W2 + b2
	gemm(true, false, b.hid, b.out, rows, 1, act.a, dy, 1, b.gw2)
	gemm(false, true, rows, b.hid, b.out, 1, dy, b.w2, 0, act.da)
	for r := 0; r < rows; r++ {
		dyr := dy[r*b.out : (r+1)*b.out]
		floats.Add(b.gb2, dyr)
		dp := act.dp[r*w : (r+1)*w]
		copy(dp[:b.out], dyr)
		pre := act.p[r*w+b.out : (r+1)*w]
		da := act.da[r*b.hid : (r+1)*b.hid]
		dh := dp[b.out:]
		for j, v := range pre {
			dh[j] = da[j] * geluGrad(v)
		}
		floats.Add(b.gb1, dh)
	}
	gemm(true, false, b.in, w, rows, 1, act.x, act.dp, 1, b.gw)
	if dx != nil {
		gemm(false, true, rows, b.in, w, 1, act.dp, b.w, 0, dx[:rows*b.in])
	}
}

// flops is the number of floating-point operations of a forward pass over
// rows inputs (two per multiply-add); a backward pass costs about twice it.
func (b *block) flops(rows int) float64 {
	return 2 * float64(rows) * float64(b.in*(b.out+b.hid)+b.hid*b.out)
}
