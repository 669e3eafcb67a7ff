package models

import (
	"errors"
	"math"
	"math/rand/v2"
)

// convEncoderConfig configures a convEncoder (TS2Vec's TSEncoder without
// its representation dropout).
type convEncoderConfig struct {
	// In is the number of input channels per timestep.
	In int
	// Hidden is the width of the input projection and of every block but
	// the last.
	Hidden int
	// Out is the size of the per-timestep representation: the last block's
	// width.
	Out int
	// Blocks is the number of residual blocks; block i has dilation 2^i.
	// TS2Vec's depth d is Blocks = d+1 (d hidden blocks and the output one).
	Blocks int
	// Kernel is the convolutions' kernel size (TS2Vec: 3).
	Kernel int
	// ProjectLast gives the last block a 1×1 projection skip even when
	// Hidden = Out, as TS2Vec does. Otherwise a block projects its skip
	// only when its widths differ.
	ProjectLast bool
}

// validate reports the first field out of range.
func (c convEncoderConfig) validate() error {
	switch {
	case c.In < 1 || c.Hidden < 1 || c.Out < 1:
		return errors.New("conv encoder: in, hidden and out must be at least 1")
	case c.Blocks < 1 || c.Blocks > 20:
		return errors.New("conv encoder: blocks must be in [1, 20]")
	case c.Kernel < 1:
		return errors.New("conv encoder: kernel must be at least 1")
	}
	return nil
}

// convEncoder is the dilated causal convolutional encoder of TS2Vec/T-Loss
// on blocks of windows laid out as in conv.go (C×(N·T), column n·T+t):
//
//	z = inProj(x), zeroed at masked timesteps     (Hidden×N·T)
//	h_i = block_i(h_{i-1}), h_{-1} = z, dilation 2^i
//	r = h_{Blocks-1}                              (Out×N·T)
//
// r[:, n·T+t] depends on window n's steps t−RF+1..t only (causal, RF the
// receptive field), and bit-identically so whatever the other windows of
// the block (see conv.go). The window embedding is r max-pooled over time
// (maxPoolTime, or embed).
//
// The parameters live in slabs the caller owns (bind); init draws them.
// Passes run over tiles of whole windows of about tileCols columns, so
// that each layer's operands stay in cache and inference needs scratch of
// one tile only.
type convEncoder struct {
	cfg      convEncoderConfig
	proj     inProj
	blocks   []resBlock
	tileCols int
}

// convTileCols is the default tile: with gonum's one-Gemv-per-row products
// a tile of a convolution's shifted copies (2·64·512 values at most for
// the sizes planned) stays in L2 across the output rows; 64 to 1024 were
// within 5% of each other (H 16 to 64, T 64), 512 the best. An optimised
// BLAS does better with bigger products.
var convTileCols = func() int {
	if perRowGemv {
		return 512
	}
	return 4096
}()

// newConvEncoder returns an encoder with the given configuration, not yet
// bound to parameters (see bind).
func newConvEncoder(cfg convEncoderConfig) (*convEncoder, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	e := &convEncoder{cfg: cfg, proj: inProj{in: cfg.In, out: cfg.Hidden}, tileCols: convTileCols}
	in := cfg.Hidden
	for i := 0; i < cfg.Blocks; i++ {
		out, last := cfg.Hidden, i == cfg.Blocks-1
		if last {
			out = cfg.Out
		}
		e.blocks = append(e.blocks, newResBlock(in, out, cfg.Kernel, 1<<i, in != out || (last && cfg.ProjectLast)))
		in = out
	}
	return e, nil
}

// numParams is the number of parameters (the length of the slab span bind
// takes).
func (e *convEncoder) numParams() int {
	n := inProjParams(e.cfg.In, e.cfg.Hidden)
	for i := range e.blocks {
		b := &e.blocks[i]
		n += resBlockParams(b.in, b.out, e.cfg.Kernel, b.proj)
	}
	return n
}

// bind points the encoder's weights and gradients at p[off:] and g[off:]
// and returns the offset past them. The order is the input projection (W
// Hidden×In row-major, then b), then each block in turn (see
// resBlock.bind). Gradients are accumulated into g: clear it before a
// step.
func (e *convEncoder) bind(p, g []float64, off int) int {
	off = e.proj.bind(p, g, off)
	for i := range e.blocks {
		off = e.blocks[i].bind(p, g, off)
	}
	return off
}

// init draws the bound weights and biases from r, in slab order, as
// PyTorch initialises TS2Vec's layers: uniform on ±1/√fan_in, fan_in being
// a layer's inputs per output (Kernel·in for a convolution).
func (e *convEncoder) init(r *rand.Rand) {
	u := func(w []float64, fanIn int) {
		a := 1 / math.Sqrt(float64(fanIn))
		for i := range w {
			w[i] = (2*r.Float64() - 1) * a
		}
	}
	u(e.proj.w, e.cfg.In)
	u(e.proj.b, e.cfg.In)
	for i := range e.blocks {
		b := &e.blocks[i]
		for _, c := range []*conv1d{&b.c1, &b.c2} {
			u(c.w, c.k*c.in)
			u(c.b, c.k*c.in)
		}
		if b.proj {
			u(b.pw, b.in)
			u(b.pb, b.in)
		}
	}
}

// receptiveField is the number of steps an output depends on: each block
// reaches 2·(Kernel−1)·2^i steps further back.
func (e *convEncoder) receptiveField() int {
	return 1 + 2*(e.cfg.Kernel-1)*((1<<e.cfg.Blocks)-1)
}

// tile is the number of columns of a pass's tiles over windows of T
// steps: whole windows, about tileCols columns. (The passes loop over
// tiles inline: a closure would allocate.)
func (e *convEncoder) tile(T int) int { return max(1, e.tileCols/T) * T }

// width is the widest layer (the scratch's row count).
func (e *convEncoder) width() int { return max(e.cfg.Hidden, e.cfg.Out) }

func (e *convEncoder) check(x matrix, T int, keep []bool) {
	if T < 1 || x.r != e.cfg.In || x.c%T != 0 || (keep != nil && len(keep) != x.c) {
		panic("conv encoder: input shape mismatch")
	}
}

// convEncAct is a training pass's record: the activations backward needs,
// kept from forward, and its scratch. One per view in flight.
type convEncAct struct {
	T     int
	x     matrix    // the input (aliased)
	keep  []bool    // the mask (aliased)
	z     []float64 // Hidden×cols: the masked input projection
	h1, y [][]float64
	s     convScratch
	g     [2][]float64 // backward's ping-pong tile gradients
}

// forward runs a training pass on x (In×N·T; keep nil or one entry per
// column, false = masked) and returns the representations r (Out×N·T).
// r and the kept activations (2 matrices per block, see resBlock.backward)
// live in act until its next forward; x and keep must stay unchanged until
// backward. The outputs are bit-identical to infer's.
func (e *convEncoder) forward(x matrix, T int, keep []bool, act *convEncAct) matrix {
	e.check(x, T, keep)
	n, H := x.c, e.cfg.Hidden
	act.T, act.x, act.keep = T, x, keep
	act.z = grow(act.z, H*n)
	K := len(e.blocks)
	if len(act.y) < K {
		act.h1 = make([][]float64, K)
		act.y = make([][]float64, K)
	}
	for i := range e.blocks {
		act.h1[i] = grow(act.h1[i], e.blocks[i].out*n)
		act.y[i] = grow(act.y[i], e.blocks[i].out*n)
	}
	step := e.tile(T)
	for c0 := 0; c0 < n; c0 += step {
		nc := min(step, n-c0)
		Z := newMat(H, n, act.z).cols(c0, nc)
		e.proj.forward(x.cols(c0, nc), keepCols(keep, c0, nc), Z)
		in := Z
		for i := range e.blocks {
			b := &e.blocks[i]
			Y := newMat(b.out, n, act.y[i]).cols(c0, nc)
			b.forward(in, T, newMat(b.out, n, act.h1[i]).cols(c0, nc), Y, &act.s)
			in = Y
		}
	}
	return newMat(e.cfg.Out, n, act.y[K-1])
}

// keepCols returns keep's entries for columns [c0, c0+nc), or nil.
func keepCols(keep []bool, c0, nc int) []bool {
	if keep == nil {
		return nil
	}
	return keep[c0 : c0+nc]
}

// backward adds the gradients of all parameters for the gradient dr
// (Out×N·T) of the representations forward returned with act. dr is not
// changed.
func (e *convEncoder) backward(act *convEncAct, dr matrix) {
	T, x, H := act.T, act.x, e.cfg.Hidden
	n := x.c
	if dr.r != e.cfg.Out || dr.c != n {
		panic("conv encoder: backward shape mismatch")
	}
	step := e.tile(T)
	for i := range act.g {
		act.g[i] = grow(act.g[i], e.width()*min(n, step))
	}
	K := len(e.blocks)
	for c0 := 0; c0 < n; c0 += step {
		nc := min(step, n-c0)
		dy := dr.cols(c0, nc)
		for i := K - 1; i >= 0; i-- {
			b := &e.blocks[i]
			var in matrix
			if i == 0 {
				in = newMat(H, n, act.z).cols(c0, nc)
			} else {
				in = newMat(b.in, n, act.y[i-1]).cols(c0, nc)
			}
			dx := newMat(b.in, nc, act.g[i%2])
			b.backward(in, newMat(b.out, n, act.h1[i]).cols(c0, nc), T, dy, dx, &act.s)
			dy = dx
		}
		e.proj.backward(x.cols(c0, nc), keepCols(act.keep, c0, nc), dy, matrix{})
	}
}

// convEncWork is the scratch of the inference passes (one tile).
type convEncWork struct {
	a, b, h1, out []float64
	s             convScratch
}

// inferTile runs the encoder on the columns of x (whole windows) and
// writes the representations into dst (Out×x.c).
func (e *convEncoder) inferTile(x matrix, T int, keep []bool, dst matrix, w *convEncWork) {
	n, W := x.c, e.width()
	w.a = grow(w.a, W*n)
	w.b = grow(w.b, W*n)
	w.h1 = grow(w.h1, W*n)
	in := newMat(e.cfg.Hidden, n, w.a)
	e.proj.forward(x, keep, in)
	buf := [2][]float64{w.b, w.a}
	for i := range e.blocks {
		b := &e.blocks[i]
		y := dst
		if i < len(e.blocks)-1 {
			y = newMat(b.out, n, buf[i%2])
		}
		b.forward(in, T, newMat(b.out, n, w.h1), y, &w.s)
		in = y
	}
}

// infer writes the representations of x (In×N·T) into out (Out×N·T)
// without keeping activations.
func (e *convEncoder) infer(x matrix, T int, keep []bool, out matrix, w *convEncWork) {
	e.check(x, T, keep)
	if out.r != e.cfg.Out || out.c != x.c {
		panic("conv encoder: infer shape mismatch")
	}
	step := e.tile(T)
	for c0 := 0; c0 < x.c; c0 += step {
		nc := min(step, x.c-c0)
		e.inferTile(x.cols(c0, nc), T, keepCols(keep, c0, nc), out.cols(c0, nc), w)
	}
}

// embed writes the window embeddings of x (In×N·T) into emb (Out×N): each
// window's representations max-pooled over its T steps.
func (e *convEncoder) embed(x matrix, T int, keep []bool, emb matrix, w *convEncWork) {
	e.check(x, T, keep)
	if emb.r != e.cfg.Out || emb.c*T != x.c {
		panic("conv encoder: embed shape mismatch")
	}
	step := e.tile(T)
	for c0 := 0; c0 < x.c; c0 += step {
		nc := min(step, x.c-c0)
		w.out = grow(w.out, e.cfg.Out*nc)
		r := newMat(e.cfg.Out, nc, w.out)
		e.inferTile(x.cols(c0, nc), T, keepCols(keep, c0, nc), r, w)
		maxPoolTime(r, span{T: T, Len: T}, emb.cols(c0/T, nc/T), nil)
	}
}

// flops is the number of floating-point operations of a forward pass over
// cols columns of windows of T steps (two per multiply-add); backwardFlops
// that of a backward pass (weight gradients everywhere, input gradients
// down to the input projection's output).
func (e *convEncoder) flops(cols, T int) float64 {
	f := 2 * float64(cols*e.cfg.In*e.cfg.Hidden)
	for i := range e.blocks {
		f += e.blocks[i].flops(cols, T)
	}
	return f
}

func (e *convEncoder) backwardFlops(cols, T int) float64 {
	f := 2 * float64(cols*e.cfg.In*e.cfg.Hidden)
	for i := range e.blocks {
		f += e.blocks[i].backwardFlops(cols, T)
	}
	return f
}

// span selects the steps [Off, Off+Len) of every window of a block of
// windows of T steps (columns n·T+Off .. n·T+Off+Len−1 of window n).
type span struct{ T, Off, Len int }

func (s span) check(cols int) int {
	if s.T < 1 || s.Off < 0 || s.Len < 1 || s.Off+s.Len > s.T || cols%s.T != 0 {
		panic("conv: span out of range")
	}
	return cols / s.T
}

// maxPoolTime writes into emb (D×N) the maximum of each row of r (D×N·s.T)
// over the span's steps of each window; with arg (D·N long) it records
// each maximum's column in r (the first on ties), for the backward pass.
func maxPoolTime(r matrix, s span, emb matrix, arg []int32) {
	N := s.check(r.c)
	if emb.r != r.r || emb.c != N || (arg != nil && len(arg) != r.r*N) {
		panic("conv: maxPoolTime shape mismatch")
	}
	for d := 0; d < r.r; d++ {
		rd, ed := r.row(d), emb.row(d)
		for n := 0; n < N; n++ {
			j0 := n*s.T + s.Off
			best, at := rd[j0], j0
			for j := j0 + 1; j < j0+s.Len; j++ {
				if rd[j] > best {
					best, at = rd[j], j
				}
			}
			ed[n] = best
			if arg != nil {
				arg[d*N+n] = int32(at)
			}
		}
	}
}

// maxPoolTimeBackward adds demb (D×N) into dr at the columns arg recorded.
func maxPoolTimeBackward(demb matrix, arg []int32, dr matrix) {
	if demb.r != dr.r || len(arg) != demb.r*demb.c {
		panic("conv: maxPoolTime backward shape mismatch")
	}
	N := demb.c
	for d := 0; d < demb.r; d++ {
		gd, rd := demb.row(d), dr.row(d)
		for n, v := range gd {
			rd[arg[d*N+n]] += v
		}
	}
}
