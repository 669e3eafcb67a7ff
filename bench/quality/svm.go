package quality

import "math"

// svmAccuracy fits a support vector machine with a Gaussian (RBF) kernel
// on the train vectors and returns its test accuracy: the probe TS2Vec,
// T-Loss and TNC report on UCR (scikit-learn's SVC, gamma "scale", C by
// cross-validated grid search), so the figure stands beside their
// published ones. Rows are scaled to unit length first, as for the other
// probes (the product compares embeddings by cosine); gamma is
// 1/(d·variance of the train entries); C is chosen among 10⁻⁴ … 10⁴ by
// 5-fold cross-validated accuracy on the train set (folds fixed by index,
// ties to the smaller C). Several classes: one machine per pair of
// classes, and a vote (ties to the first class in name order), as libsvm
// does.
func svmAccuracy(train [][]float64, trainLab []string, test [][]float64, testLab []string) float64 {
	train, test = unitRows(train), unitRows(test)
	n, d := len(train), len(train[0])
	classes, y := classIndex(trainLab)
	var mean, sq float64
	for _, x := range train {
		for _, v := range x {
			mean += v
			sq += v * v
		}
	}
	cnt := float64(n * d)
	mean /= cnt
	variance := sq/cnt - mean*mean
	gamma := 1.0
	if variance > 0 {
		gamma = 1 / (float64(d) * variance)
	}
	rbf := func(a, b []float64) float64 {
		var s float64
		for i, v := range a {
			t := v - b[i]
			s += t * t
		}
		return math.Exp(-gamma * s)
	}
	K := make([]float64, n*n)
	for i := 0; i < n; i++ {
		K[i*n+i] = 1
		for j := 0; j < i; j++ {
			v := rbf(train[i], train[j])
			K[i*n+j], K[j*n+i] = v, v
		}
	}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	bestC, bestAcc := 0.0, -1.0
	for e := -4; e <= 4; e++ { // small to large: ties keep the smaller
		C := math.Pow(10, float64(e))
		right := 0
		for f := 0; f < 5; f++ {
			tr, va := fold(n, 5, f)
			m := fitSVM(K, n, y, len(classes), tr, C)
			for _, i := range va {
				if m.predict(func(j int) float64 { return K[i*n+j] }) == y[i] {
					right++
				}
			}
		}
		if acc := float64(right) / float64(n); acc > bestAcc {
			bestC, bestAcc = C, acc
		}
	}
	m := fitSVM(K, n, y, len(classes), all, bestC)
	right := 0
	for i, x := range test {
		if classes[m.predict(func(j int) float64 { return rbf(x, train[j]) })] == testLab[i] {
			right++
		}
	}
	return float64(right) / float64(len(test))
}

// svmModel is a one-against-one set of binary machines.
type svmModel struct {
	k     int
	pairs []svmBinary // for each pair a < b of classes, in order
}

// svmBinary is a binary machine of classes a (+1) and b (−1):
// f(x) = Σ coef_i·K(x_i, x) − rho over its support vectors sv (train rows).
type svmBinary struct {
	a, b int
	sv   []int
	coef []float64
	rho  float64
}

// fitSVM trains the machines of every pair of classes on the train rows
// rows, with the kernel matrix K (n×n) of all train rows.
func fitSVM(K []float64, n int, y []int, k int, rows []int, C float64) *svmModel {
	m := &svmModel{k: k}
	byClass := make([][]int, k)
	for _, r := range rows {
		byClass[y[r]] = append(byClass[y[r]], r)
	}
	for a := 0; a < k; a++ {
		for b := a + 1; b < k; b++ {
			sub := append(append([]int(nil), byClass[a]...), byClass[b]...)
			lab := make([]float64, len(sub))
			for i := range sub {
				lab[i] = 1
				if i >= len(byClass[a]) {
					lab[i] = -1
				}
			}
			bin := svmBinary{a: a, b: b}
			if len(byClass[a]) > 0 && len(byClass[b]) > 0 {
				alpha, rho := smo(func(i, j int) float64 { return K[sub[i]*n+sub[j]] }, lab, C)
				for i, al := range alpha {
					if al > 0 {
						bin.sv = append(bin.sv, sub[i])
						bin.coef = append(bin.coef, al*lab[i])
					}
				}
				bin.rho = rho
			} else if len(byClass[b]) > 0 {
				bin.rho = 1 // only b seen: always b
			} else {
				bin.rho = -1
			}
			m.pairs = append(m.pairs, bin)
		}
	}
	return m
}

// predict returns the class with the most votes for the point whose
// kernel values against the train rows kx gives.
func (m *svmModel) predict(kx func(j int) float64) int {
	votes := make([]int, m.k)
	for _, p := range m.pairs {
		f := -p.rho
		for i, s := range p.sv {
			f += p.coef[i] * kx(s)
		}
		if f > 0 {
			votes[p.a]++
		} else {
			votes[p.b]++
		}
	}
	best := 0
	for c, v := range votes {
		if v > votes[best] {
			best = c
		}
	}
	return best
}

// smo solves the dual of the soft-margin machine, min ½αᵀQα − Σα with
// Q_ij = y_i·y_j·K(i, j), 0 ≤ α ≤ C, Σ y_i·α_i = 0, by sequential minimal
// optimisation with libsvm's second-order working-set selection (Fan,
// Chen and Lin 2005), to the tolerance 1e-3; it returns α and the offset
// rho.
func smo(K func(i, j int) float64, y []float64, C float64) ([]float64, float64) {
	const (
		eps = 1e-3
		tau = 1e-12
	)
	l := len(y)
	alpha := make([]float64, l)
	G := make([]float64, l)
	for i := range G {
		G[i] = -1
	}
	Ki := make([]float64, l)
	Kj := make([]float64, l)
	maxIter := max(10_000_000, 100*l)
	for iter := 0; iter < maxIter; iter++ {
		// i: the most violating index of I_up.
		gmax, i := math.Inf(-1), -1
		for t := 0; t < l; t++ {
			if y[t] > 0 {
				if alpha[t] < C && -G[t] >= gmax {
					gmax, i = -G[t], t
				}
			} else if alpha[t] > 0 && G[t] >= gmax {
				gmax, i = G[t], t
			}
		}
		if i < 0 {
			break
		}
		for t := 0; t < l; t++ {
			Ki[t] = K(i, t)
		}
		// j: of I_low, the largest decrease of the objective.
		gmax2, j, objMin := math.Inf(-1), -1, math.Inf(1)
		for t := 0; t < l; t++ {
			var diff float64
			if y[t] > 0 {
				if alpha[t] <= 0 {
					continue
				}
				gmax2 = max(gmax2, G[t])
				diff = gmax + G[t]
			} else {
				if alpha[t] >= C {
					continue
				}
				gmax2 = max(gmax2, -G[t])
				diff = gmax - G[t]
			}
			if diff > 0 {
				quad := Ki[i] + K(t, t) - 2*Ki[t]
				if quad <= 0 {
					quad = tau
				}
				if obj := -diff * diff / quad; obj <= objMin {
					objMin, j = obj, t
				}
			}
		}
		if gmax+gmax2 < eps || j < 0 {
			break
		}
		for t := 0; t < l; t++ {
			Kj[t] = K(j, t)
		}
		quad := Ki[i] + Kj[j] - 2*Ki[j]
		if quad <= 0 {
			quad = tau
		}
		ai, aj := alpha[i], alpha[j]
		if y[i] != y[j] {
			delta := (-G[i] - G[j]) / quad
			diff := ai - aj
			alpha[i] += delta
			alpha[j] += delta
			if diff > 0 {
				if alpha[j] < 0 {
					alpha[j], alpha[i] = 0, diff
				}
			} else if alpha[i] < 0 {
				alpha[i], alpha[j] = 0, -diff
			}
			if diff > 0 {
				if alpha[i] > C {
					alpha[i], alpha[j] = C, C-diff
				}
			} else if alpha[j] > C {
				alpha[j], alpha[i] = C, C+diff
			}
		} else {
			delta := (G[i] - G[j]) / quad
			sum := ai + aj
			alpha[i] -= delta
			alpha[j] += delta
			if sum > C {
				if alpha[i] > C {
					alpha[i], alpha[j] = C, sum-C
				}
			} else if alpha[j] < 0 {
				alpha[j], alpha[i] = 0, sum
			}
			if sum > C {
				if alpha[j] > C {
					alpha[j], alpha[i] = C, sum-C
				}
			} else if alpha[i] < 0 {
				alpha[i], alpha[j] = 0, sum
			}
		}
		di, dj := alpha[i]-ai, alpha[j]-aj
		for t := 0; t < l; t++ {
			G[t] += y[t] * (y[i]*Ki[t]*di + y[j]*Kj[t]*dj)
		}
	}
	// rho: the mean of y·G over the free α, else the middle of its bounds.
	ub, lb := math.Inf(1), math.Inf(-1)
	var sumFree float64
	nFree := 0
	for t := 0; t < l; t++ {
		yg := y[t] * G[t]
		switch {
		case alpha[t] >= C:
			if y[t] < 0 {
				ub = min(ub, yg)
			} else {
				lb = max(lb, yg)
			}
		case alpha[t] <= 0:
			if y[t] > 0 {
				ub = min(ub, yg)
			} else {
				lb = max(lb, yg)
			}
		default:
			nFree++
			sumFree += yg
		}
	}
	if nFree > 0 {
		return alpha, sumFree / float64(nFree)
	}
	return alpha, (ub + lb) / 2
}
