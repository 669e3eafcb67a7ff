package models

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// testConvEncoder returns an encoder bound to fresh slabs, initialised
// from seed.
func testConvEncoder(t testing.TB, cfg convEncoderConfig, seed uint64) (e *convEncoder, p, g []float64) {
	t.Helper()
	e, err := newConvEncoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := e.numParams()
	p, g = make([]float64, n), make([]float64, n)
	if off := e.bind(p, g, 0); off != n {
		t.Fatalf("bind took %d parameters, numParams says %d", off, n)
	}
	e.init(rand.New(rand.NewPCG(seed, 1)))
	return e, p, g
}

// TestConvEncoderGradient checks the gradient of every parameter of the
// encoder end to end, under a loss on the per-timestep representations
// plus one on their max-pooled window embeddings, with timestamps masked,
// windows shorter than the receptive field, one or several tiles, and
// each choice of the last block's skip.
func TestConvEncoderGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, tc := range []struct {
		out, T, tileCols int
		projectLast      bool
	}{{3, 3, 256, false}, {4, 6, 6, true}, {4, 6, 12, false}, {3, 9, 256, true}} {
		cfg := convEncoderConfig{In: 2, Hidden: 4, Out: tc.out, Blocks: 3, Kernel: 3, ProjectLast: tc.projectLast}
		e, p, g := testConvEncoder(t, cfg, 7)
		e.tileCols = tc.tileCols
		const N = 3
		T, n := tc.T, 3*tc.T
		x := newMat(cfg.In, n, randSlice(r, cfg.In*n, 1))
		keep := make([]bool, n)
		drawKeep(r, keep, 0.7)
		R := randSlice(r, cfg.Out*n, 1)
		Q := randSlice(r, cfg.Out*N, 1)
		emb := newMat(cfg.Out, N, make([]float64, cfg.Out*N))
		arg := make([]int32, cfg.Out*N)
		var act convEncAct
		f := func() float64 {
			rep := e.forward(x, T, keep, &act)
			maxPoolTime(rep, span{T: T, Len: T}, emb, arg)
			return linLoss(rep, R) + linLoss(emb, Q)
		}
		f()
		dr := append([]float64(nil), R...)
		maxPoolTimeBackward(newMat(cfg.Out, N, Q), arg, newMat(cfg.Out, n, dr))
		clear(g)
		e.backward(&act, newMat(cfg.Out, n, dr))
		name := fmt.Sprintf("encoder out=%d T=%d (RF %d) tile=%d projectLast=%v", tc.out, T, e.receptiveField(), tc.tileCols, tc.projectLast)
		checkGrad(t, name, p, g, f)
	}
}

// TestConvEncoderCausal: the representation of window n at step t does
// not depend on its steps after t, nor on any other window.
func TestConvEncoderCausal(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	cfg := convEncoderConfig{In: 2, Hidden: 5, Out: 3, Blocks: 3, Kernel: 3, ProjectLast: true}
	e, _, _ := testConvEncoder(t, cfg, 3)
	const N, T = 3, 8
	x := newMat(cfg.In, N*T, randSlice(r, cfg.In*N*T, 1))
	var w convEncWork
	base := newMat(cfg.Out, N*T, make([]float64, cfg.Out*N*T))
	e.infer(x, T, nil, base, &w)
	y := newMat(cfg.Out, N*T, make([]float64, cfg.Out*N*T))
	for n := 0; n < N; n++ {
		for s := 0; s < T; s++ {
			old := x.d[n*T+s]
			x.d[n*T+s] = old + 1
			e.infer(x, T, nil, y, &w)
			x.d[n*T+s] = old
			for j := 0; j < N*T; j++ {
				changed := false
				for o := 0; o < cfg.Out; o++ {
					changed = changed || y.d[o*N*T+j] != base.d[o*N*T+j]
				}
				may := j/T == n && j%T >= s
				if changed != may {
					t.Fatalf("input (window %d, step %d): output (window %d, step %d) changed %v, want %v", n, s, j/T, j%T, changed, may)
				}
			}
		}
	}
}

// TestConvEncoderBatchIndependence: a window's representations and
// embedding are bit-identical whichever windows share its block, in which
// order, in tiles of any size, through infer, embed and the training pass.
func TestConvEncoderBatchIndependence(t *testing.T) {
	if !perRowGemv {
		t.Skip("an optimised BLAS makes no promise across product shapes")
	}
	r := rand.New(rand.NewPCG(25, 26))
	cfg := convEncoderConfig{In: 2, Hidden: 6, Out: 5, Blocks: 4, Kernel: 3, ProjectLast: true}
	e, _, _ := testConvEncoder(t, cfg, 5)
	const P, T = 13, 7 // odd sizes: no column count a multiple of the kernels' unrolling
	pool := newMat(cfg.In, P*T, randSlice(r, cfg.In*P*T, 1))
	poolKeep := make([]bool, P*T)
	drawKeep(r, poolKeep, 0.8)
	// Each window on its own is the reference.
	ref := make([][]float64, P)    // Out×T per window
	refEmb := make([][]float64, P) // Out per window
	var w convEncWork
	for i := range P {
		ref[i] = make([]float64, cfg.Out*T)
		refEmb[i] = make([]float64, cfg.Out)
		xi := gatherWindows(pool, T, []int{i})
		e.infer(xi, T, poolKeep[i*T:(i+1)*T], newMat(cfg.Out, T, ref[i]), &w)
		e.embed(xi, T, poolKeep[i*T:(i+1)*T], newMat(cfg.Out, 1, refEmb[i]), &w)
	}
	perm := r.Perm(P)
	for _, comp := range [][]int{
		{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
		perm,
		{5, 0, 9},
		{12, 3},
		{7, 7, 2, 7},
	} {
		for _, tile := range []int{T, 2 * T, 5 * T, 256} {
			e.tileCols = tile
			N := len(comp)
			x := gatherWindows(pool, T, comp)
			keep := make([]bool, 0, N*T)
			for _, i := range comp {
				keep = append(keep, poolKeep[i*T:(i+1)*T]...)
			}
			out := newMat(cfg.Out, N*T, make([]float64, cfg.Out*N*T))
			e.infer(x, T, keep, out, &w)
			emb := newMat(cfg.Out, N, make([]float64, cfg.Out*N))
			e.embed(x, T, keep, emb, &w)
			var act convEncAct
			tr := e.forward(x, T, keep, &act)
			for k, i := range comp {
				for o := 0; o < cfg.Out; o++ {
					for s := 0; s < T; s++ {
						want := ref[i][o*T+s]
						if got := out.d[o*N*T+k*T+s]; got != want {
							t.Fatalf("composition %v tile %d: infer window %d [%d,%d] = %v, alone %v", comp, tile, i, o, s, got, want)
						}
						if got := tr.d[o*N*T+k*T+s]; got != want {
							t.Fatalf("composition %v tile %d: training pass window %d [%d,%d] = %v, alone %v", comp, tile, i, o, s, got, want)
						}
					}
					if got := emb.d[o*N+k]; got != refEmb[i][o] {
						t.Fatalf("composition %v tile %d: embedding of window %d [%d] = %v, alone %v", comp, tile, i, o, got, refEmb[i][o])
					}
				}
			}
		}
	}
}

// gatherWindows returns the windows idx of pool (C×P·T), in that order.
func gatherWindows(pool matrix, T int, idx []int) matrix {
	x := newMat(pool.r, len(idx)*T, make([]float64, pool.r*len(idx)*T))
	for c := 0; c < pool.r; c++ {
		for k, i := range idx {
			copy(x.row(c)[k*T:(k+1)*T], pool.row(c)[i*T:(i+1)*T])
		}
	}
	return x
}

// TestConvEncoderInit: the same seed draws the same weights, another seed
// others, and every weight and bias is drawn within its bound.
func TestConvEncoderInit(t *testing.T) {
	cfg := convEncoderConfig{In: 1, Hidden: 8, Out: 4, Blocks: 3, Kernel: 3}
	_, a, _ := testConvEncoder(t, cfg, 1)
	_, b, _ := testConvEncoder(t, cfg, 1)
	_, c, _ := testConvEncoder(t, cfg, 2)
	same := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("parameter %d: %v and %v from the same seed", i, a[i], b[i])
		}
		if a[i] == c[i] {
			same++
		}
		if a[i] == 0 || a[i] < -1 || a[i] > 1 {
			t.Fatalf("parameter %d = %v: not drawn within ±1/√fan_in", i, a[i])
		}
	}
	if same > 0 {
		t.Fatalf("%d parameters equal under another seed", same)
	}
	if _, err := newConvEncoder(convEncoderConfig{In: 1, Hidden: 8, Out: 4, Blocks: 0, Kernel: 3}); err == nil {
		t.Fatal("zero blocks accepted")
	}
}
