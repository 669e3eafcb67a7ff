package models

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/floats"
)

// refVecs reads the span of each window of z (D×N·s.T) as [n][t][d].
func refVecs(z matrix, s span) [][][]float64 {
	N := z.c / s.T
	v := make([][][]float64, N)
	for n := range v {
		v[n] = make([][]float64, s.Len)
		for t := range v[n] {
			v[n][t] = make([]float64, z.r)
			for d := range z.r {
				v[n][t][d] = z.d[d*z.s+n*s.T+s.Off+t]
			}
		}
	}
	return v
}

// refSim is the similarity of two vectors.
func refSim(a, b []float64, cfg hierLossConfig) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += a[i] * b[i]
		aa += a[i] * a[i]
		bb += b[i] * b[i]
	}
	if cfg.Cosine {
		return ab / math.Max(math.Sqrt(aa), 1e-12) / math.Max(math.Sqrt(bb), 1e-12) / cfg.Tau
	}
	return ab
}

// refNCE is the mean over the vectors of −log softmax of the positive
// (the vector half the group away) among all the others, computed
// directly.
func refNCE(g [][]float64, cfg hierLossConfig, skip func(i, k int) bool) float64 {
	m := len(g)
	var total float64
	for i := range m {
		var z float64
		for k := range m {
			if k != i && (skip == nil || !skip(i, k)) {
				z += math.Exp(refSim(g[i], g[k], cfg))
			}
		}
		total -= math.Log(math.Exp(refSim(g[i], g[(i+m/2)%m], cfg)) / z)
	}
	return total / float64(m)
}

// refHierLoss is TS2Vec's hierarchical_contrastive_loss written as loops;
// in its instance loss, views of distinct windows of one series (series
// equal and not 0; nil: none) are not negatives.
func refHierLoss(v1, v2 [][][]float64, cfg hierLossConfig, series []uint64) float64 {
	N := len(v1)
	skip := func(i, k int) bool {
		a, b := i%N, k%N
		return series != nil && a != b && series[a] != 0 && series[a] == series[b]
	}
	inst := func() float64 {
		L := len(v1[0])
		var s float64
		for t := range L {
			var g [][]float64
			for n := range N {
				g = append(g, v1[n][t])
			}
			for n := range N {
				g = append(g, v2[n][t])
			}
			s += refNCE(g, cfg, skip)
		}
		return s / float64(L)
	}
	temp := func() float64 {
		var s float64
		for n := range N {
			g := append(append([][]float64{}, v1[n]...), v2[n]...)
			s += refNCE(g, cfg, nil)
		}
		return s / float64(N)
	}
	pool := func(v [][][]float64) [][][]float64 {
		out := make([][][]float64, N)
		for n := range N {
			for t := 0; t+1 < len(v[n]); t += 2 {
				p := make([]float64, len(v[n][t]))
				for d := range p {
					p[d] = math.Max(v[n][t][d], v[n][t+1][d])
				}
				out[n] = append(out[n], p)
			}
		}
		return out
	}
	var loss float64
	d := 0
	for len(v1[0]) > 1 {
		if cfg.Alpha != 0 {
			loss += cfg.Alpha * inst()
		}
		if d >= cfg.TemporalUnit && cfg.Alpha != 1 {
			loss += (1 - cfg.Alpha) * temp()
		}
		d++
		v1, v2 = pool(v1), pool(v2)
	}
	if cfg.Alpha != 0 {
		loss += cfg.Alpha * inst()
	}
	d++
	return loss / float64(d)
}

var hierCases = []struct {
	cfg    hierLossConfig
	N, L   int
	s1, s2 span
}{
	{hierLossConfig{Alpha: 0.5}, 3, 5, span{T: 5, Len: 5}, span{T: 5, Len: 5}},
	{hierLossConfig{Alpha: 0.5}, 2, 8, span{T: 10, Off: 2, Len: 8}, span{T: 9, Len: 8}},
	{hierLossConfig{Alpha: 0.5, Cosine: true, Tau: 0.3}, 3, 7, span{T: 9, Off: 2, Len: 7}, span{T: 8, Off: 0, Len: 7}},
	{hierLossConfig{Alpha: 0.3, TemporalUnit: 1, Cosine: true, Tau: 0.5}, 4, 6, span{T: 6, Len: 6}, span{T: 7, Off: 1, Len: 6}},
	{hierLossConfig{Alpha: 0}, 2, 4, span{T: 4, Len: 4}, span{T: 4, Len: 4}},
	{hierLossConfig{Alpha: 1}, 3, 3, span{T: 3, Len: 3}, span{T: 3, Len: 3}},
	{hierLossConfig{Alpha: 0.5}, 1, 4, span{T: 4, Len: 4}, span{T: 4, Len: 4}},         // one window: no instance negatives
	{hierLossConfig{Alpha: 0.5}, 3, 1, span{T: 3, Off: 2, Len: 1}, span{T: 2, Len: 1}}, // one shared step
}

// TestHierLossValue checks the loss against the reference loops.
func TestHierLossValue(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	const D = 4
	for _, tc := range hierCases {
		h, err := newHierLoss(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		z1 := newMat(D, tc.N*tc.s1.T, randSlice(r, D*tc.N*tc.s1.T, 0.5))
		z2 := newMat(D, tc.N*tc.s2.T, randSlice(r, D*tc.N*tc.s2.T, 0.5))
		for range 2 { // twice: workspaces reused
			got := h.loss(z1, tc.s1, z2, tc.s2, 1, matrix{}, matrix{})
			want := refHierLoss(refVecs(z1, tc.s1), refVecs(z2, tc.s2), tc.cfg, nil)
			if math.Abs(got-want) > 1e-12*math.Max(1, math.Abs(want)) {
				t.Fatalf("%+v N=%d L=%d: loss %v, reference %v", tc.cfg, tc.N, tc.L, got, want)
			}
		}
	}
}

// TestHierLossGradient checks the gradient of the loss against finite
// differences of the reference, and that it is added (weighted) into the
// gradients given, leaving the columns outside the spans as they were.
func TestHierLossGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(33, 34))
	const D, weight = 3, 0.7
	for _, tc := range hierCases {
		h, _ := newHierLoss(tc.cfg)
		z1s := randSlice(r, D*tc.N*tc.s1.T, 0.5)
		z2s := randSlice(r, D*tc.N*tc.s2.T, 0.5)
		z1, z2 := newMat(D, tc.N*tc.s1.T, z1s), newMat(D, tc.N*tc.s2.T, z2s)
		g0 := randSlice(r, len(z1s)+len(z2s), 1)
		g := append([]float64(nil), g0...)
		h.loss(z1, tc.s1, z2, tc.s2, weight, newMat(D, z1.c, g[:len(z1s)]), newMat(D, z2.c, g[len(z1s):]))
		for i := range g {
			g[i] = (g[i] - g0[i]) / weight
		}
		all := append(append([]float64(nil), z1s...), z2s...)
		f := func() float64 {
			a := newMat(D, z1.c, all[:len(z1s)])
			b := newMat(D, z2.c, all[len(z1s):])
			return refHierLoss(refVecs(a, tc.s1), refVecs(b, tc.s2), tc.cfg, nil)
		}
		checkGrad(t, fmt.Sprintf("hier %+v N=%d L=%d", tc.cfg, tc.N, tc.L), all, g, f)
	}
}

// TestHierLossLargeDots: raw dot products in the thousands (TS2Vec's
// similarity is unbounded) give a finite loss and gradient.
func TestHierLossLargeDots(t *testing.T) {
	r := rand.New(rand.NewPCG(35, 36))
	const D, N, L = 8, 4, 8
	h, _ := newHierLoss(hierLossConfig{Alpha: 0.5})
	z1 := newMat(D, N*L, randSlice(r, D*N*L, 30))
	z2 := newMat(D, N*L, randSlice(r, D*N*L, 30))
	g1 := newMat(D, N*L, make([]float64, D*N*L))
	g2 := newMat(D, N*L, make([]float64, D*N*L))
	l := h.loss(z1, span{T: L, Len: L}, z2, span{T: L, Len: L}, 1, g1, g2)
	if math.IsNaN(l) || math.IsInf(l, 0) || l < 0 {
		t.Fatalf("loss %v", l)
	}
	for _, v := range append(g1.d, g2.d...) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("gradient entry %v", v)
		}
	}
}

// TestPooledNCE checks the pooled instance-level InfoNCE against infoNCE
// on embeddings pooled directly, and its gradient (routed through the
// maxima) against finite differences.
func TestPooledNCE(t *testing.T) {
	r := rand.New(rand.NewPCG(37, 38))
	const D, N, tau, weight = 3, 4, 0.3, 0.6
	s1, s2 := span{T: 6, Off: 1, Len: 4}, span{T: 5, Len: 5}
	z1s, z2s := randSlice(r, D*N*s1.T, 1), randSlice(r, D*N*s2.T, 1)
	z1, z2 := newMat(D, N*s1.T, z1s), newMat(D, N*s2.T, z2s)
	var p pooledNCE
	E := newMat(D, 2*N, make([]float64, D*2*N))
	maxPoolTime(z1, s1, E.cols(0, N), nil)
	maxPoolTime(z2, s2, E.cols(N, N), nil)
	var c infoNCE
	want := c.loss(E, tau, 1, matrix{})
	if got := p.loss(z1, s1, z2, s2, tau, 1, matrix{}, matrix{}); got != want {
		t.Fatalf("pooled infonce %v, want %v", got, want)
	}
	g := make([]float64, len(z1s)+len(z2s))
	p.loss(z1, s1, z2, s2, tau, weight, newMat(D, z1.c, g[:len(z1s)]), newMat(D, z2.c, g[len(z1s):]))
	all := append(append([]float64(nil), z1s...), z2s...)
	f := func() float64 {
		a, b := newMat(D, z1.c, all[:len(z1s)]), newMat(D, z2.c, all[len(z1s):])
		return weight * p.loss(a, s1, b, s2, tau, weight, matrix{}, matrix{})
	}
	checkGrad(t, "pooled infonce", all, g, f)
}

// TestContrastRowsShifts: the shared shift and the per-row shift give the
// same loss and gradient where both apply.
func TestContrastRowsShifts(t *testing.T) {
	r := rand.New(rand.NewPCG(43, 44))
	for _, m := range []int{2, 6, 40, 70} { // 70: more than two of upper's tiles
		V := newMat(5, m, randSlice(r, 5*m, 1))
		S := newMat(m, m, make([]float64, m*m))
		gemm(true, false, 1, V, V, 0, S)
		a := append([]float64(nil), S.d...)
		z, mx := make([]float64, m), make([]float64, m)
		la := contrastRows(newMat(m, m, a), 0.3, true, z, mx)
		b := append([]float64(nil), S.d...)
		for i := range m {
			mx[i] = math.Inf(-1)
			for k := range m {
				if k != i {
					mx[i] = math.Max(mx[i], b[i*m+k])
				}
			}
		}
		lb := contrastPerRow(newMat(m, m, b), 0.3, true, mx)
		if math.Abs(la-lb) > 1e-12*math.Abs(lb) {
			t.Fatalf("m=%d: loss %v with one shift, %v with a shift per row", m, la, lb)
		}
		for i := range a {
			if math.Abs(a[i]-b[i]) > 1e-14 {
				t.Fatalf("m=%d: gradient[%d] %v with one shift, %v with a shift per row", m, i, a[i], b[i])
			}
		}
	}
}

// TestHierLossGradientPerRowShift checks the gradient where the dot
// products are far enough apart for the per-row shift.
func TestHierLossGradientPerRowShift(t *testing.T) {
	r := rand.New(rand.NewPCG(45, 46))
	const D, N, L = 3, 3, 4
	h, _ := newHierLoss(hierLossConfig{Alpha: 0.5})
	zs := randSlice(r, 2*D*N*L, 1)
	z1, z2 := newMat(D, N*L, zs[:D*N*L]), newMat(D, N*L, zs[D*N*L:])
	// Window 0's first step, in both views (each other's positives), is
	// a large vector: its dot product with itself is far above any other
	// row's largest.
	for d := range D {
		z1.d[d*z1.s] = 25 + 0.1*float64(d)
		z2.d[d*z2.s] = 25 - 0.1*float64(d)
	}
	g := make([]float64, len(zs))
	s := span{T: L, Len: L}
	h.loss(z1, s, z2, s, 1, newMat(D, N*L, g[:D*N*L]), newMat(D, N*L, g[D*N*L:]))
	checkGrad(t, "hier, per-row shifts", zs, g, func() float64 { return h.loss(z1, s, z2, s, 1, matrix{}, matrix{}) })
}

// TestHierLossSameSeries: with windows of one series in the step, the
// instance loss leaves their pairs out of the negatives, value and
// gradient, as the reference does.
func TestHierLossSameSeries(t *testing.T) {
	r := rand.New(rand.NewPCG(35, 36))
	const D, N, weight = 3, 5, 0.6
	series := []uint64{7, 9, 7, 0, 7} // windows 0, 2, 4 of one series; 3 not known
	for _, cfg := range []hierLossConfig{{Alpha: 0.5}, {Alpha: 0.5, Cosine: true, Tau: 0.3}, {Alpha: 1}} {
		h, _ := newHierLoss(cfg)
		h.same = sameSeriesPairs(series, nil)
		s1, s2 := span{T: 6, Off: 1, Len: 5}, span{T: 5, Len: 5}
		z1s, z2s := randSlice(r, D*N*s1.T, 0.5), randSlice(r, D*N*s2.T, 0.5)
		all := append(append([]float64(nil), z1s...), z2s...)
		views := func() (matrix, matrix) {
			return newMat(D, N*s1.T, all[:len(z1s)]), newMat(D, N*s2.T, all[len(z1s):])
		}
		z1, z2 := views()
		got := h.loss(z1, s1, z2, s2, 1, matrix{}, matrix{})
		want := refHierLoss(refVecs(z1, s1), refVecs(z2, s2), cfg, series)
		plain := refHierLoss(refVecs(z1, s1), refVecs(z2, s2), cfg, nil)
		if math.Abs(got-want) > 1e-12*math.Max(1, math.Abs(want)) || math.Abs(want-plain) < 1e-9 {
			t.Fatalf("%+v: loss %v, reference %v (without the exclusion %v)", cfg, got, want, plain)
		}
		g := make([]float64, len(all))
		h.loss(z1, s1, z2, s2, weight, newMat(D, z1.c, g[:len(z1s)]), newMat(D, z2.c, g[len(z1s):]))
		floats.Scale(1/weight, g)
		checkGrad(t, fmt.Sprintf("hier same-series %+v", cfg), all, g, func() float64 {
			a, b := views()
			return refHierLoss(refVecs(a, s1), refVecs(b, s2), cfg, series)
		})
	}
}
