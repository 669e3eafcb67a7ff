package models

import (
	"gonum.org/v1/gonum/floats"
)

// This file holds the layers of the convolutional encoder (conv_encoder.go):
// a per-timestep linear input projection with timestamp masking, a dilated
// causal 1-D convolution, GELU over matrices and TS2Vec's residual block.
//
// Layout. A block of N windows of T timesteps with C channels is a C×(N·T)
// matrix: column n·T+t holds window n at step t. Every layer takes T as an
// argument (crops are shorter than the configured window) and needs x.c to
// be a multiple of it. Every matrix product runs along the N·T columns.
//
// Columns are independent. With gonum's BLAS every product of a forward
// pass is gemm's one-Gemv-per-output-row form c_i = Σ_l a_il·b_l (b's rows
// scaled and added along the columns, see gemm and perRowGemv). gonum's
// GemvT kernel (amd64 and pure Go) computes each output column with the
// same sequence of multiplies and adds whatever its position and however
// many columns there are (it blocks over b's rows, never over columns), and
// the rest of a forward pass is elementwise or within one window. So a
// window's outputs are bit-identical whichever windows share its block and
// wherever it sits in it (TestConvEncoderBatchIndependence). The products
// of backward passes (weight gradients sum over columns) make no such
// promise, nor does an optimised BLAS (-tags openblas) for any product.
//
// Layers do not allocate: the callers hand them their scratch.

// convTaps returns how many of a kernel of size k with dilation d's taps
// reach inside a window of T steps: tap j reads step t−j·d, which lies
// before the window's start for every t once j·d ≥ T. Taps that never reach
// inside are skipped, which gives the same result (they add exact zeros).
func convTaps(k, d, T int) int {
	return min(k, (T-1)/d+1)
}

// im2col writes the shifted copies of x that the taps 1..taps-1 of a
// dilated causal convolution read: row (j-1)·x.r + c of col is channel c
// delayed by j·d steps within each window of T steps, zero before the
// window's start:
//
//	col[(j-1)·C + c, n·T + t] = x[c, n·T + t − j·d]  if t ≥ j·d, else 0.
//
// Tap 0 is x itself and is not copied. col must be ((taps-1)·x.r)×x.c.
func im2col(x matrix, T, d, taps int, col matrix) {
	C, n := x.r, x.c
	if n%T != 0 || col.r != (taps-1)*C || col.c != n {
		panic("conv: im2col shape mismatch")
	}
	for j := 1; j < taps; j++ {
		s := min(j*d, T)
		for c := 0; c < C; c++ {
			src, dst := x.row(c), col.row((j-1)*C+c)
			for w := 0; w < n; w += T {
				clear(dst[w : w+s])
				copy(dst[w+s:w+T], src[w:w+T-s])
			}
		}
	}
}

// col2imAdd is im2col's adjoint: it adds each shifted row of dcol back at
// the step it was read from,
//
//	dx[c, n·T + t] += dcol[(j-1)·C + c, n·T + t + j·d]  for t + j·d < T.
func col2imAdd(dcol matrix, T, d, taps int, dx matrix) {
	C, n := dx.r, dx.c
	if n%T != 0 || dcol.r != (taps-1)*C || dcol.c != n {
		panic("conv: col2im shape mismatch")
	}
	for j := 1; j < taps; j++ {
		s := j * d
		if s >= T {
			break
		}
		for c := 0; c < C; c++ {
			src, dst := dcol.row((j-1)*C+c), dx.row(c)
			for w := 0; w < n; w += T {
				floats.Add(dst[w:w+T-s], src[w+s:w+T])
			}
		}
	}
}

// conv1d is a dilated causal 1-D convolution from in to out channels with
// kernel size k and dilation dil, applied to each window on its own:
//
//	y[o, n·T+t] = b[o] + Σ_{j<k} Σ_c W[o, j·in + c]·x[c, n·T + t − j·dil]
//
// with x taken as zero before the window's start (windows never see each
// other). W is out×(k·in): its column block j holds tap j, the input j·dil
// steps back; tap 0 is the current step. It is computed as tap 0's product
// with x plus the other taps' product with im2col's shifted copies.
type conv1d struct {
	in, out, k, dil int
	w, b, gw, gb    []float64 // views into the parameter and gradient slabs
}

// conv1dParams is the number of parameters of a conv1d.
func conv1dParams(in, out, k int) int { return out*k*in + out }

// bind points the layer's weights and gradients at p and g from offset
// off and returns the offset past them: W (out×k·in, row-major), then b.
func (c *conv1d) bind(p, g []float64, off int) int {
	c.w, c.gw, off = take(p, g, off, c.out*c.k*c.in)
	c.b, c.gb, off = take(p, g, off, c.out)
	return off
}

// take returns the n values of p and g from off, and off+n.
func take(p, g []float64, off, n int) ([]float64, []float64, int) {
	return p[off : off+n : off+n], g[off : off+n : off+n], off + n
}

func (c *conv1d) W() matrix  { return newMat(c.out, c.k*c.in, c.w) }
func (c *conv1d) GW() matrix { return newMat(c.out, c.k*c.in, c.gw) }

// scratch is the length of the scratch forward and backward need for cols
// columns of windows of T steps.
func (c *conv1d) scratch(cols, T int) int {
	return (convTaps(c.k, c.dil, T) - 1) * c.in * cols
}

// forward writes the convolution of x (in×cols, windows of T steps) into y
// (out×cols). col is scratch of at least c.scratch(cols, T).
func (c *conv1d) forward(x matrix, T int, y matrix, col []float64) {
	n := x.c
	if x.r != c.in || y.r != c.out || y.c != n || n%T != 0 {
		panic("conv: forward shape mismatch")
	}
	taps := convTaps(c.k, c.dil, T)
	W := c.W()
	gemm(false, false, 1, W.cols(0, c.in), x, 0, y)
	if taps > 1 {
		m := newMat((taps-1)*c.in, n, col)
		im2col(x, T, c.dil, taps, m)
		gemm(false, false, 1, W.cols(c.in, (taps-1)*c.in), m, 1, y)
	}
	for o := 0; o < c.out; o++ {
		floats.AddConst(c.b[o], y.row(o))
	}
}

// backward adds the weight and bias gradients for the output gradient dy
// (out×cols) at input x and, if dx has rows, writes the input gradient into
// dx (in×cols, overwritten). col is scratch as for forward.
func (c *conv1d) backward(x matrix, T int, dy, dx matrix, col []float64) {
	n := x.c
	if x.r != c.in || dy.r != c.out || dy.c != n || n%T != 0 || (dx.r > 0 && (dx.r != c.in || dx.c != n)) {
		panic("conv: backward shape mismatch")
	}
	taps := convTaps(c.k, c.dil, T)
	W, GW := c.W(), c.GW()
	for o := 0; o < c.out; o++ {
		c.gb[o] += floats.Sum(dy.row(o))
	}
	gemm(false, true, 1, dy, x, 1, GW.cols(0, c.in))
	var m matrix
	if taps > 1 {
		m = newMat((taps-1)*c.in, n, col)
		im2col(x, T, c.dil, taps, m)
		gemm(false, true, 1, dy, m, 1, GW.cols(c.in, (taps-1)*c.in))
	}
	if dx.r == 0 {
		return
	}
	gemm(true, false, 1, W.cols(0, c.in), dy, 0, dx)
	if taps > 1 {
		gemm(true, false, 1, W.cols(c.in, (taps-1)*c.in), dy, 0, m) // the shifted copies' gradient
		col2imAdd(m, T, c.dil, taps, dx)
	}
}

// flops is the number of floating-point operations of a forward pass over
// cols columns of windows of T steps (two per multiply-add).
func (c *conv1d) flops(cols, T int) float64 {
	return 2 * float64(cols) * float64(c.out*convTaps(c.k, c.dil, T)*c.in)
}

// inProj is the encoder's input projection, per timestep, followed by
// timestamp masking (TS2Vec's augmentation):
//
//	z[:, j] = W·x[:, j] + b  if keep[j] (or keep is nil), else 0.
//
// W is out×in.
type inProj struct {
	in, out      int
	w, b, gw, gb []float64
}

// inProjParams is the number of parameters of an inProj.
func inProjParams(in, out int) int { return out*in + out }

// bind points the layer at p and g from off (W, then b) and returns the
// offset past them.
func (l *inProj) bind(p, g []float64, off int) int {
	l.w, l.gw, off = take(p, g, off, l.out*l.in)
	l.b, l.gb, off = take(p, g, off, l.out)
	return off
}

// forward writes the projection of x (in×cols) into z (out×cols); keep,
// if not nil, has one entry per column and zeroes the columns it is false
// for.
func (l *inProj) forward(x matrix, keep []bool, z matrix) {
	n := x.c
	if x.r != l.in || z.r != l.out || z.c != n || (keep != nil && len(keep) != n) {
		panic("conv: inProj shape mismatch")
	}
	gemm(false, false, 1, newMat(l.out, l.in, l.w), x, 0, z)
	for o := 0; o < l.out; o++ {
		zo := z.row(o)
		floats.AddConst(l.b[o], zo)
		maskCols(zo, keep)
	}
}

// maskCols zeroes v[j] where keep[j] is false (nothing if keep is nil).
func maskCols(v []float64, keep []bool) {
	if keep == nil {
		return
	}
	for j, k := range keep {
		if !k {
			v[j] = 0
		}
	}
}

// backward adds the weight and bias gradients for the output gradient dz
// and, if dx has rows, writes the input gradient into dx. It zeroes dz's
// masked columns in place (their outputs do not depend on the weights).
func (l *inProj) backward(x matrix, keep []bool, dz, dx matrix) {
	n := x.c
	if x.r != l.in || dz.r != l.out || dz.c != n || (keep != nil && len(keep) != n) || (dx.r > 0 && (dx.r != l.in || dx.c != n)) {
		panic("conv: inProj backward shape mismatch")
	}
	for o := 0; o < l.out; o++ {
		d := dz.row(o)
		maskCols(d, keep)
		l.gb[o] += floats.Sum(d)
	}
	gemm(false, true, 1, dz, x, 1, newMat(l.out, l.in, l.gw))
	if dx.r > 0 {
		gemm(true, false, 1, newMat(l.out, l.in, l.w), dz, 0, dx)
	}
}

// geluMat writes gelu(x) into a and, if d has rows, gelu'(x) into d, for
// matrices of one shape (a may be x).
func geluMat(x, a, d matrix) {
	if a.r != x.r || a.c != x.c || (d.r > 0 && (d.r != x.r || d.c != x.c)) {
		panic("conv: gelu shape mismatch")
	}
	for i := 0; i < x.r; i++ {
		xi, ai := x.row(i), a.row(i)
		if d.r == 0 {
			for j, v := range xi {
				ai[j], _ = geluT(v)
			}
			continue
		}
		di := d.row(i)
		for j, v := range xi {
			g, t := geluT(v)
			ai[j], di[j] = g, geluGradT(v, t)
		}
	}
}

// mulMat multiplies dst by s elementwise (matrices of one shape).
func mulMat(dst, s matrix) {
	for i := 0; i < dst.r; i++ {
		floats.Mul(dst.row(i), s.row(i))
	}
}

// addMulMat adds a⊙b to dst elementwise (matrices of one shape).
func addMulMat(dst, a, b matrix) {
	for i := 0; i < dst.r; i++ {
		di, ai, bi := dst.row(i), a.row(i), b.row(i)
		for j, v := range ai {
			di[j] += v * bi[j]
		}
	}
}

// resBlock is TS2Vec's residual block of two dilated causal convolutions:
//
//	y = conv2(gelu(conv1(gelu(x)))) + skip(x)
//
// conv1 maps in to out channels, conv2 out to out, both with kernel k and
// dilation dil; skip is the identity (in = out) or, with proj, a 1×1
// projection Pw·x + pb (out×in), which TS2Vec also gives its last block.
type resBlock struct {
	in, out, dil     int
	c1, c2           conv1d
	proj             bool
	pw, pb, gpw, gpb []float64
}

// newResBlock returns a block (unbound: see bind). It panics if proj is
// false and in ≠ out.
func newResBlock(in, out, k, dil int, proj bool) resBlock {
	if !proj && in != out {
		panic("conv: identity skip needs in = out")
	}
	return resBlock{
		in: in, out: out, dil: dil, proj: proj,
		c1: conv1d{in: in, out: out, k: k, dil: dil},
		c2: conv1d{in: out, out: out, k: k, dil: dil},
	}
}

// resBlockParams is the number of parameters of a block.
func resBlockParams(in, out, k int, proj bool) int {
	n := conv1dParams(in, out, k) + conv1dParams(out, out, k)
	if proj {
		n += inProjParams(in, out)
	}
	return n
}

// bind points the block at p and g from off — conv1 (W, b), conv2 (W, b),
// then the projection (Pw, pb) if any — and returns the offset past them.
func (b *resBlock) bind(p, g []float64, off int) int {
	off = b.c1.bind(p, g, off)
	off = b.c2.bind(p, g, off)
	if b.proj {
		b.pw, b.gpw, off = take(p, g, off, b.out*b.in)
		b.pb, b.gpb, off = take(p, g, off, b.out)
	}
	return off
}

// convScratch is the scratch of a block's passes, grown on first use.
type convScratch struct {
	a0, d0, a1, d1, da, db, col []float64
}

// forward computes y (out×cols) from x (in×cols, windows of T steps). h1
// (out×cols) receives conv1's output, which backward needs: the training
// pass keeps it, inference may pass scratch. y must not overlap x or h1.
func (b *resBlock) forward(x matrix, T int, h1, y matrix, s *convScratch) {
	n := x.c
	if x.r != b.in || y.r != b.out || y.c != n || h1.r != b.out || h1.c != n {
		panic("conv: block shape mismatch")
	}
	s.a0 = grow(s.a0, b.in*n)
	s.a1 = grow(s.a1, b.out*n)
	s.col = grow(s.col, max(b.c1.scratch(n, T), b.c2.scratch(n, T)))
	a0, a1 := newMat(b.in, n, s.a0), newMat(b.out, n, s.a1)
	geluMat(x, a0, matrix{})
	b.c1.forward(a0, T, h1, s.col)
	geluMat(h1, a1, matrix{})
	b.c2.forward(a1, T, y, s.col)
	if b.proj {
		gemm(false, false, 1, newMat(b.out, b.in, b.pw), x, 1, y)
		for o := 0; o < b.out; o++ {
			floats.AddConst(b.pb[o], y.row(o))
		}
		return
	}
	for o := 0; o < b.out; o++ {
		floats.Add(y.row(o), x.row(o))
	}
}

// backward adds the block's parameter gradients for the output gradient
// dy, given the input x and conv1's output h1 of the forward pass, and
// writes the input gradient into dx (in×cols, overwritten; it must not
// overlap dy). The GELUs are recomputed from x and h1 rather than kept
// from the forward pass: a training pass then keeps two matrices a block
// instead of six.
func (b *resBlock) backward(x, h1 matrix, T int, dy, dx matrix, s *convScratch) {
	n := x.c
	if x.r != b.in || h1.r != b.out || h1.c != n || dy.r != b.out || dy.c != n || dx.r != b.in || dx.c != n {
		panic("conv: block backward shape mismatch")
	}
	s.a0 = grow(s.a0, b.in*n)
	s.d0 = grow(s.d0, b.in*n)
	s.a1 = grow(s.a1, b.out*n)
	s.d1 = grow(s.d1, b.out*n)
	s.da = grow(s.da, b.out*n)
	s.db = grow(s.db, b.in*n)
	s.col = grow(s.col, max(b.c1.scratch(n, T), b.c2.scratch(n, T)))
	a0, d0 := newMat(b.in, n, s.a0), newMat(b.in, n, s.d0)
	a1, d1 := newMat(b.out, n, s.a1), newMat(b.out, n, s.d1)
	geluMat(x, a0, d0)
	geluMat(h1, a1, d1)
	if b.proj {
		for o := 0; o < b.out; o++ {
			b.gpb[o] += floats.Sum(dy.row(o))
		}
		gemm(false, true, 1, dy, x, 1, newMat(b.out, b.in, b.gpw))
		gemm(true, false, 1, newMat(b.out, b.in, b.pw), dy, 0, dx)
	} else {
		for o := 0; o < b.out; o++ {
			copy(dx.row(o), dy.row(o))
		}
	}
	dh := newMat(b.out, n, s.da)
	b.c2.backward(a1, T, dy, dh, s.col)
	mulMat(dh, d1)
	da0 := newMat(b.in, n, s.db)
	b.c1.backward(a0, T, dh, da0, s.col)
	addMulMat(dx, da0, d0)
}

// flops is the number of floating-point operations of a block's forward
// pass over cols columns of windows of T steps; backwardFlops that of its
// backward pass (weight and input gradients).
func (b *resBlock) flops(cols, T int) float64 {
	f := b.c1.flops(cols, T) + b.c2.flops(cols, T)
	if b.proj {
		f += 2 * float64(cols*b.in*b.out)
	}
	return f
}

func (b *resBlock) backwardFlops(cols, T int) float64 { return 2 * b.flops(cols, T) }
