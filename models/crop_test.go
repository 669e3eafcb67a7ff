package models

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestCropPair checks the sampled crops' invariants, that they cover the
// ranges TS2Vec draws from, that the same seed gives the same crops, and
// cropCols.
func TestCropPair(t *testing.T) {
	const T, N, minOverlap = 12, 5, 2
	r := rand.New(rand.NewPCG(41, 42))
	var c cropPair
	seenOverlap := map[int]bool{}
	seenStart := map[int]bool{}
	for range 2000 {
		c.sample(r, T, N, minOverlap)
		if c.Overlap < minOverlap || c.Overlap > T || c.Len1 < c.Overlap || c.Len2 < c.Overlap || c.Len1 > T || c.Len2 > T {
			t.Fatalf("crops %+v out of range", c)
		}
		seenOverlap[c.Overlap] = true
		for n := range N {
			s1, s2 := c.Start1[n], c.Start2[n]
			seenStart[s1] = true
			if s1 < 0 || s1+c.Len1 > T || s2 < 0 || s2+c.Len2 > T {
				t.Fatalf("window %d: crops [%d,%d) and [%d,%d) leave [0,%d)", n, s1, s1+c.Len1, s2, s2+c.Len2, T)
			}
			// The overlap: view 1's last Overlap steps are view 2's first.
			if s1+c.Len1-c.Overlap != s2 {
				t.Fatalf("window %d: view 1 [%d,%d), view 2 [%d,%d) do not share %d steps", n, s1, s1+c.Len1, s2, s2+c.Len2, c.Overlap)
			}
		}
	}
	if len(seenOverlap) != T-minOverlap+1 || len(seenStart) != T-minOverlap+1 {
		t.Fatalf("overlaps %v and starts %v do not cover their ranges", seenOverlap, seenStart)
	}
	// Determinism.
	var a, b cropPair
	a.sample(rand.New(rand.NewPCG(7, 7)), T, N, minOverlap)
	b.sample(rand.New(rand.NewPCG(7, 7)), T, N, minOverlap)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("same seed: %+v and %+v", a, b)
	}
	// cropCols copies each window's crop.
	x := newMat(2, N*T, randSlice(r, 2*N*T, 1))
	dst := newMat(2, N*a.Len2, make([]float64, 2*N*a.Len2))
	cropCols(x, T, a.Start2, a.Len2, dst)
	for ch := range 2 {
		for n := range N {
			for s := range a.Len2 {
				if dst.d[ch*dst.s+n*a.Len2+s] != x.d[ch*x.s+n*T+a.Start2[n]+s] {
					t.Fatalf("cropCols: channel %d window %d step %d", ch, n, s)
				}
			}
		}
	}
}

// TestMaskMissing: a timestep with a NaN in any channel is zeroed in all
// and masked; the others are left as they were.
func TestMaskMissing(t *testing.T) {
	nan := math.NaN()
	x := newMat(2, 4, []float64{1, nan, 3, 4, 5, 6, 7, nan})
	keep := []bool{true, true, false, true}
	maskMissing(x, keep)
	wantX := []float64{1, 0, 3, 0, 5, 0, 7, 0}
	wantK := []bool{true, false, false, false}
	for i, v := range wantX {
		if x.d[i] != v {
			t.Fatalf("x = %v, want %v", x.d, wantX)
		}
	}
	for i, k := range wantK {
		if keep[i] != k {
			t.Fatalf("keep = %v, want %v", keep, wantK)
		}
	}
}
