package quality

import (
	"math"
	"sort"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
)

// ridgeAccuracy fits a one-vs-rest ridge classifier on the train vectors
// (each scaled to unit length, as cosine similarity sees them, then centred
// and scaled by one common factor fitted on the train set; ±1 targets) and
// returns its test
// accuracy. The ridge penalty is chosen among 13 values from 1e-4 to 1e2
// times the Gram matrix's mean eigenvalue by
// exact leave-one-out squared error on the train set (the closed form
// through the eigendecomposition of the Gram matrix), as scikit-learn's
// RidgeClassifierCV does.
func ridgeAccuracy(train [][]float64, trainLab []string, test [][]float64, testLab []string) float64 {
	train, test = unitRows(train), unitRows(test)
	n, d := len(train), len(train[0])
	var classes []string
	seen := map[string]int{}
	for _, l := range trainLab {
		if _, ok := seen[l]; !ok {
			seen[l] = 0
			classes = append(classes, l)
		}
	}
	sort.Strings(classes)
	for i, c := range classes {
		seen[c] = i
	}
	k := len(classes)
	// Standardise.
	mean := make([]float64, d)
	sd := make([]float64, d)
	for _, x := range train {
		for j, v := range x {
			mean[j] += v / float64(n)
		}
	}
	for _, x := range train {
		for j, v := range x {
			sd[j] += (v - mean[j]) * (v - mean[j]) / float64(n)
		}
	}
	// One common scale for every feature (the root mean variance), so that
	// near-constant features are not blown up to unit variance.
	var tot float64
	for _, v := range sd {
		tot += v / float64(d)
	}
	for j := range sd {
		sd[j] = math.Max(math.Sqrt(tot), 1e-12)
	}
	std := func(rows [][]float64) *mat.Dense {
		m := mat.NewDense(len(rows), d, nil)
		for i, x := range rows {
			for j, v := range x {
				m.Set(i, j, (v-mean[j])/sd[j])
			}
		}
		return m
	}
	X, T := std(train), std(test)
	Y := mat.NewDense(n, k, nil)
	ymean := make([]float64, k)
	for i, l := range trainLab {
		for c := 0; c < k; c++ {
			v := -1.0
			if seen[l] == c {
				v = 1
			}
			Y.Set(i, c, v)
			ymean[c] += v / float64(n)
		}
	}
	for i := 0; i < n; i++ {
		for c := 0; c < k; c++ {
			Y.Set(i, c, Y.At(i, c)-ymean[c])
		}
	}
	var G mat.Dense
	G.Mul(X, X.T())
	var eig mat.EigenSym
	if !eig.Factorize(mat.NewSymDense(n, G.RawMatrix().Data), true) {
		return math.NaN()
	}
	lam := eig.Values(nil)
	var Q mat.Dense
	eig.VectorsTo(&Q)
	var QtY mat.Dense
	QtY.Mul(Q.T(), Y)

	// Penalties relative to the mean eigenvalue of the Gram matrix, so the
	// grid does not depend on the features' count or scale.
	var tr float64
	for _, v := range lam {
		tr += math.Max(v, 0) / float64(n)
	}
	bestAlpha, bestErr := 0.0, math.Inf(1)
	for e := -8; e <= 4; e++ {
		alpha := tr * math.Pow(10, float64(e)/2)
		// ŷ = Q diag(λ/(λ+α)) Qᵀ Y, h_ii = Σ_j Q_ij² λ_j/(λ_j+α)
		S := mat.DenseCopyOf(&QtY)
		for j := 0; j < n; j++ {
			f := math.Max(lam[j], 0) / (math.Max(lam[j], 0) + alpha)
			for c := 0; c < k; c++ {
				S.Set(j, c, S.At(j, c)*f)
			}
		}
		var Yhat mat.Dense
		Yhat.Mul(&Q, S)
		var loo float64
		for i := 0; i < n; i++ {
			var h float64
			for j := 0; j < n; j++ {
				q := Q.At(i, j)
				h += q * q * math.Max(lam[j], 0) / (math.Max(lam[j], 0) + alpha)
			}
			for c := 0; c < k; c++ {
				r := (Y.At(i, c) - Yhat.At(i, c)) / math.Max(1-h, 1e-12)
				loo += r * r
			}
		}
		if loo < bestErr {
			bestAlpha, bestErr = alpha, loo
		}
	}
	// Dual coefficients A = Q diag(1/(λ+α)) Qᵀ Y; scores = T Xᵀ A.
	S := mat.DenseCopyOf(&QtY)
	for j := 0; j < n; j++ {
		f := 1 / (math.Max(lam[j], 0) + bestAlpha)
		for c := 0; c < k; c++ {
			S.Set(j, c, S.At(j, c)*f)
		}
	}
	var A, W, scores mat.Dense
	A.Mul(&Q, S)
	W.Mul(X.T(), &A)
	scores.Mul(T, &W)
	right := 0
	for i := range test {
		best, bv := 0, math.Inf(-1)
		for c := 0; c < k; c++ {
			if v := scores.At(i, c) + ymean[c]; v > bv {
				best, bv = c, v
			}
		}
		if classes[best] == testLab[i] {
			right++
		}
	}
	return float64(right) / float64(len(test))
}

// unitRows returns copies of the vectors scaled to unit length (the
// geometry cosine similarity sees).
func unitRows(x [][]float64) [][]float64 {
	out := make([][]float64, len(x))
	for i, v := range x {
		n := floats.Norm(v, 2)
		if n == 0 {
			n = 1
		}
		out[i] = make([]float64, len(v))
		floats.ScaleTo(out[i], 1/n, v)
	}
	return out
}
