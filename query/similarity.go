package query

import (
	"math"

	"gonum.org/v1/gonum/stat"
)

// How Similar ranks. The plain cosine weighs each dimension of an
// embedding by its size, and the dimensions do not vary equally across
// series: one that is large in every series makes all cosines near 1,
// while one that tells series apart may vary little in absolute terms.
// So Similar compares embeddings in the units of the population it ranks
// (the query's embedding and every compared series'): each dimension
// divided by its standard deviation over that population (Scales), then
// the cosine (ScaledCosine). The plain cosine is reported beside it
// (Match.Cosine). The scaling is per query, so it follows the population
// as series come and go; it needs no state and no extra storage. The
// README ("What the learner learns") gives its effect on 1-NN accuracy.

// Scales returns the weight of each dimension of vs (all of one length):
// 1 over the dimension's standard deviation across vs, or 0 where the
// dimension does not vary (it cannot tell the vectors apart). Nil if vs
// has fewer than two vectors.
func Scales(vs [][]float64) []float64 {
	if len(vs) < 2 {
		return nil
	}
	w := make([]float64, len(vs[0]))
	col := make([]float64, len(vs))
	top := 0.0
	for j := range w {
		for i, v := range vs {
			col[i] = v[j]
		}
		_, w[j] = stat.PopMeanStdDev(col, nil)
		top = math.Max(top, w[j])
	}
	for j, sd := range w {
		w[j] = 0
		if sd > 1e-9*top {
			w[j] = 1 / sd
		}
	}
	return w
}

// ScaledCosine is the cosine similarity of a and b (of one length) with
// dimension j multiplied by w[j] in both; with a nil w, or if either
// scaled vector is zero, the plain cosine.
func ScaledCosine(a, b, w []float64) float64 {
	if w == nil {
		return Cosine(a, b)
	}
	var dot, na, nb float64
	for j := range a {
		x, y := a[j]*w[j], b[j]*w[j]
		dot += x * y
		na += x * x
		nb += y * y
	}
	if na == 0 || nb == 0 {
		return Cosine(a, b)
	}
	return dot / math.Sqrt(na*nb)
}
