package quality

import (
	"errors"
	"math"
	"sort"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
)

// ridgeAccuracy fits a one-vs-rest ridge classifier on the train vectors
// (each scaled to unit length, as cosine similarity sees them, then centred
// and scaled by one common factor fitted on the train set) and returns its
// test accuracy. The ridge penalty is chosen among 13 values from 1e-4 to
// 1e2 times the Gram matrix's mean eigenvalue by exact leave-one-out
// squared error on the train set (see fitRidgeCV).
func ridgeAccuracy(train [][]float64, trainLab []string, test [][]float64, testLab []string) float64 {
	train, test = unitRows(train), unitRows(test)
	n, d := len(train), len(train[0])
	mean := make([]float64, d)
	for _, x := range train {
		floats.AddScaled(mean, 1/float64(n), x)
	}
	// One common scale for every feature (the root mean variance), so that
	// near-constant features are not blown up to unit variance.
	var tot float64
	for _, x := range train {
		for j, v := range x {
			tot += (v - mean[j]) * (v - mean[j]) / float64(n*d)
		}
	}
	sd := math.Max(math.Sqrt(tot), 1e-12)
	std := func(rows [][]float64) *mat.Dense {
		m := mat.NewDense(len(rows), d, nil)
		for i, x := range rows {
			r := m.RawRowView(i)
			floats.SubTo(r, x, mean)
			floats.Scale(1/sd, r)
		}
		return m
	}
	X, T := std(train), std(test)
	// Penalties relative to the mean eigenvalue of the Gram matrix (its
	// trace over n), so the grid does not depend on the features' count or
	// scale.
	tr := mat.Norm(X, 2)
	tr *= tr / float64(n)
	alphas := make([]float64, 0, 13)
	for e := -8; e <= 4; e++ {
		alphas = append(alphas, tr*math.Pow(10, float64(e)/2))
	}
	r, err := fitRidgeCV(X, trainLab, alphas)
	if err != nil {
		return math.NaN()
	}
	return r.accuracy(T, testLab)
}

// ridgeModel is a fitted one-vs-rest ridge classifier.
type ridgeModel struct {
	classes []string
	w       *mat.Dense // features × classes
	b       []float64  // intercepts
	alpha   float64    // the penalty chosen
}

// fitRidgeCV fits a one-vs-rest ridge classifier to the rows of X (±1
// targets, an unpenalised intercept), the penalty chosen among alphas by
// the mean squared leave-one-out error of the targets (ties to the first),
// as scikit-learn's RidgeClassifierCV does in its default mode. Every
// penalty's leave-one-out errors come in closed form from one
// eigendecomposition of the n × n Gram matrix, so this suits n up to a few
// thousand rows and any number of features. X is not modified.
func fitRidgeCV(X *mat.Dense, labels []string, alphas []float64) (*ridgeModel, error) {
	n, p := X.Dims()
	if n != len(labels) || len(alphas) == 0 {
		panic("quality: fitRidgeCV: shape mismatch")
	}
	classes, y := classIndex(labels)
	k := len(classes)
	if k < 2 {
		return nil, errors.New("ridge: the train set has a single class")
	}
	// Centre the features and the targets: the intercept is then the
	// targets' mean minus the centred fit at the features' mean.
	xmean := make([]float64, p)
	for i := range n {
		floats.Add(xmean, X.RawRowView(i))
	}
	floats.Scale(1/float64(n), xmean)
	Xc := mat.NewDense(n, p, nil)
	for i := range n {
		floats.SubTo(Xc.RawRowView(i), X.RawRowView(i), xmean)
	}
	Y := mat.NewDense(n, k, nil)
	ymean := make([]float64, k)
	for i, c := range y {
		row := Y.RawRowView(i)
		for j := range row {
			row[j] = -1
		}
		row[c] = 1
		floats.AddScaled(ymean, 1/float64(n), row)
	}
	for i := range n {
		floats.Sub(Y.RawRowView(i), ymean)
	}

	// K = Xc Xcᵀ + 11ᵀ: the constant direction, which centring sends to
	// eigenvalue 0, moves to eigenvalue n, apart from the rest; its weight
	// is zeroed below, which leaves the intercept unpenalised.
	var G mat.Dense
	G.Mul(Xc, Xc.T())
	K := mat.NewSymDense(n, G.RawMatrix().Data)
	for i := range n {
		for j := i; j < n; j++ {
			K.SetSym(i, j, K.At(i, j)+1)
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(K, true) {
		return nil, errors.New("ridge: the eigendecomposition of the Gram matrix did not converge")
	}
	lam := eig.Values(nil)
	var Q mat.Dense
	eig.VectorsTo(&Q)
	icept, best := 0, -1.0 // the eigenvector nearest the constant direction
	for j := range n {
		if s := math.Abs(floats.Sum(mat.Col(nil, j, &Q))); s > best {
			icept, best = j, s
		}
	}
	var QtY mat.Dense
	QtY.Mul(Q.T(), Y)
	Q2 := mat.NewDense(n, n, nil) // Q∘Q: the diagonal of Q diag(w) Qᵀ is Q2·w
	Q2.MulElem(&Q, &Q)

	// For a penalty α, with w_j = 1/(λ_j+α) (0 for the intercept), the dual
	// coefficients are C = Q diag(w) QᵀY and the leave-one-out residual of
	// row i is C_i / (Q diag(w) Qᵀ)_ii.
	w := make([]float64, n)
	diag := make([]float64, n)
	dual := func(alpha float64) *mat.Dense {
		for j, l := range lam {
			w[j] = 1 / (math.Max(l, 0) + alpha)
		}
		w[icept] = 0
		S := mat.DenseCopyOf(&QtY)
		for j := range n {
			floats.Scale(w[j], S.RawRowView(j))
		}
		var C mat.Dense
		C.Mul(&Q, S)
		return &C
	}
	bestAlpha, bestErr := alphas[0], math.Inf(1)
	for _, alpha := range alphas {
		C := dual(alpha)
		blas64.Gemv(blas.NoTrans, 1, Q2.RawMatrix(), blas64.Vector{N: n, Inc: 1, Data: w}, 0, blas64.Vector{N: n, Inc: 1, Data: diag})
		var loo float64
		for i := range n {
			d := math.Max(diag[i], 1e-300)
			for _, c := range C.RawRowView(i) {
				loo += (c / d) * (c / d)
			}
		}
		if loo < bestErr {
			bestAlpha, bestErr = alpha, loo
		}
	}
	r := &ridgeModel{classes: classes, w: mat.NewDense(p, k, nil), b: ymean, alpha: bestAlpha}
	r.w.Mul(Xc.T(), dual(bestAlpha))
	for c := range k {
		r.b[c] -= floats.Dot(xmean, mat.Col(nil, c, r.w))
	}
	return r, nil
}

// predict returns the class of each row of T (ties to the first class).
func (r *ridgeModel) predict(T *mat.Dense) []string {
	var scores mat.Dense
	scores.Mul(T, r.w)
	m, _ := T.Dims()
	out := make([]string, m)
	for i := range m {
		s := scores.RawRowView(i)
		floats.Add(s, r.b)
		out[i] = r.classes[floats.MaxIdx(s)]
	}
	return out
}

// accuracy returns the share of the rows of T that predict classifies as
// labels says.
func (r *ridgeModel) accuracy(T *mat.Dense, labels []string) float64 {
	right := 0
	for i, c := range r.predict(T) {
		if c == labels[i] {
			right++
		}
	}
	return float64(right) / float64(len(labels))
}

// classIndex returns the distinct labels, sorted, and each label's index
// among them.
func classIndex(labels []string) (classes []string, y []int) {
	idx := map[string]int{}
	for _, l := range labels {
		if _, ok := idx[l]; !ok {
			idx[l] = 0
			classes = append(classes, l)
		}
	}
	sort.Strings(classes)
	for i, c := range classes {
		idx[c] = i
	}
	y = make([]int, len(labels))
	for i, l := range labels {
		y[i] = idx[l]
	}
	return classes, y
}

// fold splits the rows 0…n-1 for fold f of k-fold cross-validation by
// index: row i is validated in fold i mod k, trained on in the others.
func fold(n, k, f int) (train, val []int) {
	for i := 0; i < n; i++ {
		if i%k == f {
			val = append(val, i)
		} else {
			train = append(train, i)
		}
	}
	return train, val
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
