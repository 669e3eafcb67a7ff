package models

import (
	"math"
	"math/rand/v2"
)

// cropPair is TS2Vec's contextual-consistency sampling for a block of N
// windows of T steps: two overlapping crops of each window, the same
// lengths for every window (so each view is one block of equal-length
// windows), at a random offset per window. With TS2Vec's names, drawn in
// this order from the rand source:
//
//	crop_l      in [minOverlap, T]      the overlap's length
//	crop_left   in [0, T−crop_l]        the overlap's start, crop_right = crop_left+crop_l
//	crop_eleft  in [0, crop_left]       view 1 starts there (ends at crop_right)
//	crop_eright in [crop_right, T]      view 2 ends there (starts at crop_left)
//	offset_n    in [−crop_eleft, T−crop_eright], per window: shifts both views
//
// so view 1 of window n covers [offset_n+crop_eleft, offset_n+crop_right)
// and view 2 [offset_n+crop_left, offset_n+crop_eright): the overlap is
// view 1's last crop_l steps and view 2's first crop_l steps. TS2Vec draws
// from a long series and lets the views run into its NaN padding; here
// they stay inside the window (the offset's range is the one that keeps
// them there, as in TS2Vec when the series has no padding).
type cropPair struct {
	Len1, Len2 int // the views' lengths
	Overlap    int // crop_l
	// Start1 and Start2 hold, per window, the step view 1 and view 2 start
	// at (Start2[n] = Start1[n] + Len1 − Overlap).
	Start1, Start2 []int
}

// sample draws a pair of crops for n windows of T steps from r; the
// overlap is at least minOverlap steps (TS2Vec: 2^(temporal_unit+1)).
// Start1 and Start2 are reused. It panics unless 1 ≤ minOverlap ≤ T.
func (c *cropPair) sample(r *rand.Rand, T, n, minOverlap int) {
	if minOverlap < 1 || minOverlap > T || n < 0 {
		panic("crop: overlap out of range")
	}
	cl := minOverlap + r.IntN(T-minOverlap+1)
	left := r.IntN(T - cl + 1)
	right := left + cl
	eleft := r.IntN(left + 1)
	eright := right + r.IntN(T-right+1)
	c.Len1, c.Len2, c.Overlap = right-eleft, eright-left, cl
	if cap(c.Start1) < n {
		c.Start1, c.Start2 = make([]int, n), make([]int, n)
	}
	c.Start1, c.Start2 = c.Start1[:n], c.Start2[:n]
	for i := range n {
		off := -eleft + r.IntN(T-eright+eleft+1)
		c.Start1[i], c.Start2[i] = off+eleft, off+left
	}
}

// span1 and span2 select the overlap in each view's representations (for
// hierLoss.loss).
func (c *cropPair) span1() span { return span{T: c.Len1, Off: c.Len1 - c.Overlap, Len: c.Overlap} }
func (c *cropPair) span2() span { return span{T: c.Len2, Off: 0, Len: c.Overlap} }

// cropCols copies the crops of x (C×N·T) that start at start[n] and are L
// steps long into dst (C×N·L): dst[:, n·L+t] = x[:, n·T+start[n]+t].
func cropCols(x matrix, T int, start []int, L int, dst matrix) {
	N := len(start)
	if x.c != N*T || dst.r != x.r || dst.c != N*L {
		panic("crop: shape mismatch")
	}
	for _, s := range start {
		if s < 0 || s+L > T {
			panic("crop: crop outside its window")
		}
	}
	for r := 0; r < x.r; r++ {
		xr, dr := x.row(r), dst.row(r)
		for n, s := range start {
			copy(dr[n*L:(n+1)*L], xr[n*T+s:])
		}
	}
}

// drawKeep fills keep with independent draws, true with probability p:
// TS2Vec's binomial timestamp mask (p = 0.5), one per column of a view.
func drawKeep(r *rand.Rand, keep []bool, p float64) {
	for i := range keep {
		keep[i] = r.Float64() < p
	}
}

// maskMissing treats missing values as TS2Vec does: a column of x with a
// NaN in any channel is zeroed in every channel and masked (keep[j] =
// false), so that the encoder sees the timestep as masked. keep has one
// entry per column of x; its other entries and columns are left as they
// are.
func maskMissing(x matrix, keep []bool) {
	if len(keep) != x.c {
		panic("crop: maskMissing shape mismatch")
	}
	for j := range keep {
		nan := false
		for r := 0; r < x.r; r++ {
			nan = nan || math.IsNaN(x.d[r*x.s+j])
		}
		if nan {
			keep[j] = false
			for r := 0; r < x.r; r++ {
				x.d[r*x.s+j] = 0
			}
		}
	}
}
